"""The synthetic CelebA, CelebAMask-HQ and LFWA writers: the published layouts exactly,
deterministic for a seed, the attributes that show in the drawing, masks that assemble back
into the drawn map."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from esgar.data.celeba import (
    assemble_label_map,
    mask_path,
    read_celeba,
    read_celebamask_hq,
)
from esgar.data.lfwa import read_lfwa
from esgar.data.synthetic_faces import (
    HAIR_SHARES,
    VISIBLE,
    draw_attributes,
    draw_face,
    fs2k_labels,
    generate_celeba,
    generate_celebamask_hq,
    generate_lfwa,
)
from esgar.errors import ConfigError, OutputError
from esgar.masks.labels import CANONICAL_CLASSES
from esgar.schema import load_schema

NAMES = list(load_schema("celeba").names)
C = CANONICAL_CLASSES.index


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("made")
    generate_celeba(out / "celeba", images=40, size=(36, 44), progress=False)
    generate_celebamask_hq(out / "hq", images=40, size=48, mask_size=48, progress=False)
    generate_lfwa(out / "lfwa", images=30, size=32, progress=False)
    return out


# ---- layouts ---------------------------------------------------------------------------------

def test_celeba_layout(made):
    root = made / "celeba" / "CelebA"
    lines = (root / "list_attr_celeba.txt").read_text().split("\n")
    assert lines[0] == "40" and lines[1] == " ".join(NAMES) + " " and lines[-1] == ""
    row = re.compile(r"^\d{6}\.jpg( -1|  1){40}$")
    assert all(row.match(line) for line in lines[2:-1]) and lines[2].startswith("000001.jpg ")
    part = (root / "list_eval_partition.txt").read_text().split("\n")[:-1]
    assert [p.split()[0] for p in part] == [f"{i:06d}.jpg" for i in range(1, 41)]
    assert sorted(p.split()[1] for p in part).count("0") == 32  # 80 / 10 / 10
    assert {p.split()[1] for p in part} == {"0", "1", "2"}
    marks = (root / "list_landmarks_align_celeba.txt").read_text().split("\n")
    assert marks[:2] == ["40", "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                               "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"]
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir())[0] == "000001.jpg"
    assert Image.open(root / "img_align_celeba" / "000040.jpg").size == (36, 44)
    table, report = read_celeba(root, progress=False)
    assert report.problems == [] and len(table) == 40
    assert (table["lefteye_x"] < table["righteye_x"]).all()
    assert (table["leftmouth_y"] > table["nose_y"]).all()


def test_celebamask_hq_layout(made):
    out = made / "hq"
    root = out / "CelebAMask-HQ"
    lines = (root / "CelebAMask-HQ-attribute-anno.txt").read_text().split("\n")
    assert lines[0] == "40" and lines[1] == " ".join(NAMES)
    assert all(re.match(r"^\d+\.jpg( -1| 1){40}$", line) for line in lines[2:-1])
    assert lines[2].startswith("0.jpg ") and lines[-2].startswith("39.jpg ")
    mapping = (root / "CelebA-HQ-to-CelebA-mapping.txt").read_text().split("\n")[:-1]
    assert mapping[0].split() == ["idx", "orig_idx", "orig_file"]
    rows = [m.split() for m in mapping[1:]]
    assert [int(r[0]) for r in rows] == list(range(40))
    assert all(r[2] == f"{int(r[1]) + 1:06d}.jpg" for r in rows)
    part = dict(p.split() for p in (out / "list_eval_partition.txt").read_text().split("\n")
                if p)
    assert set(part) == {r[2] for r in rows}
    ranges = {"0": (1, 162770), "1": (162771, 182637), "2": (182638, 202599)}
    assert all(ranges[code][0] <= int(f[:6]) <= ranges[code][1] for f, code in part.items())
    masks = sorted(p.relative_to(root / "CelebAMask-HQ-mask-anno").as_posix()
                   for p in (root / "CelebAMask-HQ-mask-anno").rglob("*.png"))
    assert all(re.match(r"^0/\d{5}_[a-z_]+\.png$", m) for m in masks)
    assert "0/00000_skin.png" in masks
    skin = Image.open(root / "CelebAMask-HQ-mask-anno" / "0" / "00000_skin.png")
    assert skin.mode == "L" and skin.size == (48, 48)
    assert set(np.unique(np.asarray(skin)).tolist()) == {0, 255}
    assert Image.open(root / "CelebA-HQ-img" / "0.jpg").size == (48, 48)
    assert mask_path("m", 4001, "skin") == Path("m") / "2" / "04001_skin.png"


def test_lfwa_layout(made):
    root = made / "lfwa" / "LFWA"
    att = scipy.io.loadmat(root / "lfw_att_40.mat")
    assert att["name"].shape == (30, 1) and att["label"].shape == (30, 40)
    assert att["AttrName"].shape == (1, 40)
    assert [str(a[0]) for a in att["AttrName"][0]] == list(load_schema("lfwa").names)
    assert set(np.unique(att["label"]).tolist()) == {0.0, 1.0}
    names = [str(n[0][0]) for n in att["name"]]
    assert names == sorted(names)
    assert all(re.match(r"^(Person_\d{4})\\\1_\d{4}\.jpg$", n) for n in names)
    idx = scipy.io.loadmat(root / "indices_train_test.mat")
    train, test = idx["indices_img_train"], idx["indices_img_test"]
    assert train.shape[1] == 1 and test.shape[1] == 1  # column vectors
    assert sorted([*train.ravel(), *test.ravel()]) == list(range(1, 31))  # 1-based, all rows
    people = {split: {names[int(i) - 1].split("\\")[0] for i in v.ravel()}
              for split, v in (("train", train), ("test", test))}
    assert not people["train"] & people["test"]  # identity-disjoint halves
    assert abs(len(people["train"]) - len(people["test"])) <= 1
    for n in names:
        assert (root / "lfw" / n.replace("\\", "/")).is_file()
    table, report = read_lfwa(root, progress=False)
    assert report.problems == [] and len(table) == 30
    assert table.groupby(table["image_name"].str.split("/").str[1])["Male"].nunique().max() == 1


def test_summary_lists_the_visible_attributes(made):
    import json

    summary = json.loads((made / "celeba" / "synthetic.json").read_text())
    assert summary["visible"] == list(VISIBLE) and len(summary["invisible"]) == 32
    assert summary["root"] == "CelebA" and summary["images"] == 40
    assert sum(summary["class_counts"]["train"]["Male"]) == 32
    invisible = [summary["priors"][a] for a in summary["invisible"]]
    assert all(0.05 <= p <= 0.40 for p in invisible)


# ---- determinism and outputs -----------------------------------------------------------------

@pytest.mark.parametrize("generate, kw", [
    (generate_celeba, {"size": (20, 24)}), (generate_celebamask_hq, {"size": 24}),
    (generate_lfwa, {"size": 20})])
def test_deterministic_for_a_seed(tmp_path, generate, kw):
    generate(tmp_path / "a", images=12, seed=3, progress=False, **kw)
    generate(tmp_path / "b", images=12, seed=3, progress=False, **kw)
    generate(tmp_path / "c", images=12, seed=4, progress=False, **kw)
    a, b, c = (files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() - {"synthetic.json"} and a != c


@pytest.mark.bad_input(stage="download", kind="output")
@pytest.mark.parametrize("generate", [generate_celeba, generate_celebamask_hq, generate_lfwa])
def test_out_dir_must_be_absent_or_empty(tmp_path, generate):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="not an empty folder"):
        generate(tmp_path / "mine", images=10, progress=False)
    assert (tmp_path / "mine" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing left beside it
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        generate(tmp_path / "file", images=10, progress=False)


def test_empty_out_dir_is_filled(tmp_path):
    (tmp_path / "out").mkdir()
    generate_celeba(tmp_path / "out", images=10, size=(20, 24), progress=False)
    assert (tmp_path / "out" / "CelebA" / "list_attr_celeba.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]


@pytest.mark.bad_input(stage="download", kind="params")
def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="images"):
        generate_celeba(tmp_path / "a", images=3, progress=False)
    with pytest.raises(ConfigError, match="people"):
        generate_lfwa(tmp_path / "b", images=10, people=11, progress=False)
    with pytest.raises(ConfigError, match="mat_version"):
        generate_lfwa(tmp_path / "c", images=10, mat_version="4", progress=False)
    assert not list(tmp_path.iterdir())


# ---- drawing ---------------------------------------------------------------------------------

def test_assembled_masks_equal_the_drawn_map(made):
    out = made / "hq"
    mask_root = out / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    for k in range(40):
        drawn = np.asarray(Image.open(out / "label_maps" / f"{k}.png"))
        assert (assemble_label_map(mask_root, k, 48) == drawn).all(), k
    # the skin mask covers the features, as real annotations do: order matters
    skin = np.asarray(Image.open(mask_path(mask_root, 0, "skin"))) > 0
    drawn = np.asarray(Image.open(out / "label_maps" / "0.png"))
    assert skin[drawn == C("nose")].all() and skin[drawn == C("l_eye")].all()


def test_masks_at_half_size_assemble_to_the_resized_drawn_map(tmp_path):
    generate_celebamask_hq(tmp_path / "hq", images=10, size=40, progress=False)  # masks 20x20
    table, report = read_celebamask_hq(tmp_path / "hq" / "CelebAMask-HQ", partition_file=tmp_path
                                       / "hq" / "list_eval_partition.txt", progress=False)
    assert report.problems == [] and len(table) == 10
    mask_root = tmp_path / "hq" / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    assert Image.open(mask_path(mask_root, 0, "skin")).size == (20, 20)
    for k in range(10):
        drawn = Image.open(tmp_path / "hq" / "label_maps" / f"{k}.png")
        small = np.asarray(drawn.resize((20, 20), Image.NEAREST))
        assert (assemble_label_map(mask_root, k, 20) == small).all()


def test_attribute_mapping_to_the_drawing():
    rng = np.random.default_rng(0)
    none = dict.fromkeys(NAMES, 0)
    bald = fs2k_labels({**none, "Bald": 1, "Male": 1}, rng)
    assert (bald["hair"], bald["hair_color"], bald["gender"]) == (1, 3, 0)
    blond = fs2k_labels({**none, "Blond_Hair": 1, "Smiling": 1, "Wearing_Earrings": 1}, rng)
    assert (blond["hair"], blond["hair_color"], blond["gender"]) == (0, 4, 1)
    assert (blond["smile"], blond["earring"], blond["style"]) == (0, 0, 0)
    assert fs2k_labels({**none, "Black_Hair": 1}, rng)["hair_color"] == 1
    assert fs2k_labels({**none, "Brown_Hair": 1}, rng)["hair_color"] == 0
    assert fs2k_labels(none, rng)["hair_color"] == 2  # red: no attribute names it
    assert {fs2k_labels(none, np.random.default_rng(s))["frontal_face"] for s in range(40)} == {
        0, 1}


def test_visible_attributes_show_in_the_drawing():
    none = dict.fromkeys(NAMES, 0)
    label, photo = draw_face({**none, "Gray_Hair": 1}, (60, 72), np.random.default_rng(1))
    hair = np.asarray(photo)[label == C("hair")].astype(int)
    assert hair.size and (hair.max(1) - hair.min(1)).mean() < 8  # grey: channels alike
    assert hair.mean() > 120
    label, _ = draw_face({**none, "Bald": 1}, (60, 72), np.random.default_rng(1))
    assert not (label == C("hair")).any()
    label, _ = draw_face({**none, "Wearing_Earrings": 1}, (60, 72), np.random.default_rng(1))
    assert (label == C("ear_r")).any()
    label, _ = draw_face({**none, "Smiling": 1}, (60, 72), np.random.default_rng(1))
    assert (label == C("mouth")).any()


def test_drawn_attributes_priors_and_one_hot_hair():
    labels, priors = draw_attributes(2000, NAMES, np.random.default_rng(0))
    hair = labels[:, [NAMES.index(a) for a in VISIBLE[:5]]]
    assert hair.sum(1).max() == 1
    assert abs((hair.sum(1) == 0).mean() - HAIR_SHARES[None]) < 0.05
    rates = labels.mean(0)
    for a in NAMES:
        if a not in VISIBLE[:5]:
            assert 0.05 <= priors[a] <= 0.40 and abs(rates[NAMES.index(a)] - priors[a]) < 0.05


def test_cli_writes_each_stand_in_and_refuses_fs2k_only_options(tmp_path, capsys):
    from esgar import cli
    from esgar.data.readers import read_dataset

    out = tmp_path / "lfwa"
    assert cli.main(["-q", "synth", str(out), "--dataset", "lfwa", "--pairs", "24"]) == 0
    table, _ = read_dataset("lfwa", out / "LFWA", progress=False)
    assert len(table) == 24
    capsys.readouterr()
    assert cli.main(["-q", "synth", str(tmp_path / "c"), "--dataset", "celeba",
                     "--noise", "Smiling:0=0.2"]) == 1
    err = capsys.readouterr().err
    assert "--noise and --label-order: synthetic FS2K's only" in err
    assert "Traceback" not in err and not (tmp_path / "c").exists()
