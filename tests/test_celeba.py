"""The CelebA and CelebAMask-HQ readers: the table contract, and every bad input reported with
its file and line while the usable rows are kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from esgar.data.celeba import (
    DatasetError,
    assemble_label_map,
    mask_path,
    read_celeba,
    read_celebamask_hq,
    write_label_maps,
)
from esgar.data.synthetic_faces import generate_celebamask_hq
from esgar.masks.importer import read_label_map
from esgar.masks.labels import CANONICAL_CLASSES, PARSENET_CLASSES
from esgar.schema import load_schema

NAMES = load_schema("celeba").names
BASE = ["sample_id", "image_name", "subset", "dataset_split", "photo_path", "sketch_path",
        "width", "height"]
LANDMARKS = ["lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
             "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y"]
PARTS = ["skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
         "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]
data_input = pytest.mark.bad_input(stage="prepare", kind="data")


def values(*present: str) -> list[int]:
    return [1 if n in present else -1 for n in NAMES]


ROWS = [("000001.jpg", values("Male", "Smiling")), ("000002.jpg", values("Blond_Hair")),
        ("000003.jpg", values()), ("000004.jpg", values("Young", "Male"))]
PARTITION = ["000001.jpg 0", "000002.jpg 1", "000003.jpg 2", "000004.jpg 0"]


def attr_text(rows=ROWS, count: int | None = None, header=NAMES) -> str:
    """list_attr_celeba.txt as published: count, header with a trailing space, `%2d` values."""
    lines = [str(len(rows) if count is None else count), " ".join(header) + " "]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in vals) for name, vals in rows]
    return "\n".join(lines) + "\n"


def write_image(path: Path, size=(6, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 60)).save(path)


def make_celeba(root: Path, attrs: str | None = None, partition=PARTITION, images=None,
                lists: str = "", img_parent: str = "") -> Path:
    """A hand-written CelebA: the lists in root/`lists`, images in root/`img_parent`."""
    (root / lists).mkdir(parents=True, exist_ok=True)
    (root / lists / "list_attr_celeba.txt").write_text(attrs if attrs is not None else attr_text())
    part_dir = root / ("Eval" if lists else "")
    part_dir.mkdir(parents=True, exist_ok=True)
    (part_dir / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    for name in images if images is not None else [r[0] for r in ROWS]:
        write_image(root / img_parent / "img_align_celeba" / name)
    return root


def problems(report, kind: str):
    return [p for p in report.problems if p.kind == kind]


# ---- CelebA ----------------------------------------------------------------------------------

def test_table_contract(tmp_path):
    root = make_celeba(tmp_path / "CelebA")
    table, report = read_celeba(root, progress=False)
    assert report.problems == []
    assert list(table.columns) == BASE + list(NAMES)
    assert list(table["sample_id"]) == ["img_align_celeba_00000" + str(i) for i in (1, 2, 3, 4)]
    row = table.iloc[0]
    assert row["image_name"] == "img_align_celeba/000001"
    assert row["subset"] == "img_align_celeba"
    assert list(table["dataset_split"]) == ["train", "val", "test", "train"]
    path = (root / "img_align_celeba" / "000001.jpg").as_posix()
    assert row["photo_path"] == path and row["sketch_path"] == path
    assert (row["width"], row["height"]) == (6, 8)
    for name in ["width", "height", *NAMES]:
        assert table[name].dtype == np.int64
    assert (row["Male"], row["Smiling"], row["Young"], row["Bald"]) == (1, 1, 0, 0)
    assert table.loc[1, "Blond_Hair"] == 1 and table.loc[1, NAMES].sum() == 1
    assert table.loc[2, NAMES].sum() == 0


def test_google_drive_layout_anno_eval_img(tmp_path):
    root = make_celeba(tmp_path / "CelebA", lists="Anno", img_parent="Img")
    table, report = read_celeba(root, progress=False)
    assert report.problems == [] and len(table) == 4
    assert table.loc[0, "image_name"] == "Img/img_align_celeba/000001"
    assert table.loc[0, "sample_id"] == "Img_img_align_celeba_000001"
    assert table.loc[0, "subset"] == "img_align_celeba"


def test_landmarks_read_into_extra_columns(tmp_path):
    root = make_celeba(tmp_path / "CelebA")
    lines = ["4", " ".join(LANDMARKS)] + [f"{r[0]}   69  109  106  113   77  142   73  152  108"
                                          f"  {150 + i}" for i, r in enumerate(ROWS)]
    (root / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    table, report = read_celeba(root, progress=False)
    assert report.problems == []
    assert list(table.columns) == BASE + list(NAMES) + LANDMARKS
    assert table["rightmouth_y"].tolist() == [150, 151, 152, 153]
    assert table["lefteye_x"].dtype == np.int64


def test_header_in_another_order_is_read_by_name(tmp_path):
    order = list(reversed(NAMES))
    rows = [(n, list(reversed(v))) for n, v in ROWS]
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(rows, header=order))
    table, report = read_celeba(root, progress=False)
    assert [p.kind for p in report.problems] == ["header_order"]
    assert (table.loc[0, "Male"], table.loc[0, "Smiling"], table.loc[1, "Blond_Hair"]) == (1, 1, 1)


def test_header_is_only_read_and_the_image_not_decoded(tmp_path):
    root = make_celeba(tmp_path / "CelebA")
    path = root / "img_align_celeba" / "000002.jpg"
    Image.new("RGB", (40, 50), (1, 2, 3)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"\xff\xda") + 20])  # cut inside the scan data
    table, report = read_celeba(root, progress=False)
    assert report.problems == []
    assert table.loc[1, ["width", "height"]].tolist() == [40, 50]


@data_input
def test_count_line_disagreeing_is_a_warning_rows_kept(tmp_path):
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(count=202599))
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.severity, p.kind) == ("warning", "count_mismatch")
    assert p.file.endswith("list_attr_celeba.txt") and "line 1" in p.message
    assert "202599" in p.message and len(table) == 4


@data_input
@pytest.mark.parametrize("header", [NAMES[:-1], [*NAMES[:-1], "Old"], [*NAMES, "Extra"]])
def test_header_not_the_schema_names_is_unusable(tmp_path, header):
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(header=header))
    with pytest.raises(DatasetError) as e:
        read_celeba(root, progress=False)
    assert "list_attr_celeba.txt" in str(e.value) and "line 2" in str(e.value)
    assert isinstance(e.value, ValueError)


@data_input
@pytest.mark.parametrize("bad", ["0", "2", "+1", "x"])
def test_value_other_than_minus_one_or_one_drops_the_row(tmp_path, bad):
    lines = attr_text().split("\n")
    tokens = lines[4].split()
    tokens[6] = bad  # the file name, then NAMES[5]
    lines[4] = " ".join(tokens)
    root = make_celeba(tmp_path / "CelebA", attrs="\n".join(lines))
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.severity, p.kind, p.image_name) == ("error", "bad_value", "000003.jpg")
    assert p.file.endswith("list_attr_celeba.txt")
    assert "line 5" in p.message and f"{NAMES[5]}={bad!r}" in p.message
    assert table["image_name"].tolist() == ["img_align_celeba/00000" + i for i in "124"]


@data_input
def test_row_with_wrong_number_of_values_is_dropped(tmp_path):
    rows = list(ROWS)
    rows[1] = ("000002.jpg", values()[:39])
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(rows))
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.kind, p.image_name) == ("wrong_count", "000002.jpg")
    assert "line 4" in p.message and "39 values" in p.message
    assert len(table) == 3


@data_input
def test_listed_image_missing_is_dropped(tmp_path):
    root = make_celeba(tmp_path / "CelebA", images=["000001.jpg", "000002.jpg", "000004.jpg"])
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.severity, p.kind) == ("error", "missing_image")
    assert p.file.endswith("list_attr_celeba.txt") and "line 5" in p.message
    assert "img_align_celeba/000003.jpg" in p.message
    assert len(table) == 3


@data_input
def test_unreadable_image_is_dropped(tmp_path):
    root = make_celeba(tmp_path / "CelebA")
    (root / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg at all")
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.kind, p.image_name) == ("unreadable_image", "img_align_celeba/000004")
    assert p.file.endswith("000004.jpg") and "line 6" in p.message
    assert len(table) == 3


@data_input
@pytest.mark.parametrize("line", ["000002.jpg 3", "000002.jpg", "000002.jpg 1 1"])
def test_partition_value_other_than_0_1_2_drops_the_image(tmp_path, line):
    partition = list(PARTITION)
    partition[1] = line
    root = make_celeba(tmp_path / "CelebA", partition=partition)
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.severity, p.kind, p.image_name) == ("error", "bad_partition", "000002.jpg")
    assert p.file.endswith("list_eval_partition.txt") and "line 2" in p.message
    assert "img_align_celeba/000002" not in table["image_name"].tolist() and len(table) == 3


@data_input
def test_image_in_one_list_only(tmp_path):
    partition = [*PARTITION[:2], PARTITION[3], "000009.jpg 2"]  # 000003 missing, 000009 extra
    root = make_celeba(tmp_path / "CelebA", partition=partition)
    table, report = read_celeba(root, progress=False)
    [dropped] = problems(report, "not_in_partition")
    assert (dropped.severity, dropped.image_name) == ("error", "000003.jpg")
    assert dropped.file.endswith("list_attr_celeba.txt") and "line 5" in dropped.message
    [extra] = problems(report, "not_in_attributes")
    assert (extra.severity, extra.image_name) == ("warning", "000009.jpg")
    assert extra.file.endswith("list_eval_partition.txt") and "line 4" in extra.message
    assert len(table) == 3


@data_input
def test_duplicate_image_row_keeps_the_first(tmp_path):
    rows = [*ROWS, ("000001.jpg", values("Bald"))]
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(rows))
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.kind, p.image_name) == ("duplicate", "000001.jpg")
    assert "line 7" in p.message and "line 3" in p.message
    assert len(table) == 4 and table.loc[0, "Bald"] == 0 and table.loc[0, "Male"] == 1


@data_input
def test_duplicate_partition_lines(tmp_path):
    root = make_celeba(tmp_path / "CelebA", partition=[*PARTITION, "000001.jpg 0",
                                                       "000002.jpg 2"])
    table, report = read_celeba(root, progress=False)
    assert sorted((p.severity, p.kind, p.image_name) for p in report.problems) == [
        ("error", "conflicting_partition", "000002.jpg"), ("warning", "duplicate", "000001.jpg")]
    assert len(table) == 3


@data_input
@pytest.mark.parametrize("name", ["../000001.jpg", "sub/000001.jpg", "..\\000001.jpg"])
def test_file_name_with_folders_is_dropped(tmp_path, name):
    rows = [*ROWS, (name, values())]
    root = make_celeba(tmp_path / "CelebA", attrs=attr_text(rows))
    table, report = read_celeba(root, progress=False)
    bad = problems(report, "bad_image_name")
    assert len(bad) == 1 and "line 7" in bad[0].message
    assert len(table) == 4


@data_input
def test_landmark_problems_keep_the_rows(tmp_path):
    root = make_celeba(tmp_path / "CelebA")
    lines = ["4", " ".join(LANDMARKS), "000001.jpg 1 2 3 4 5 6 7 8 9 10",
             "000002.jpg 1 2 3", "000003.jpg 1 2 3 4 5 6 7 8 9 10"]
    (root / "list_landmarks_align_celeba.txt").write_text("\n".join(lines) + "\n")
    table, report = read_celeba(root, progress=False)
    assert len(table) == 4
    bad = problems(report, "bad_landmarks")
    assert len(bad) == 1 and "line 4" in bad[0].message
    assert {p.image_name for p in problems(report, "no_landmarks")} == {
        "img_align_celeba/000002", "img_align_celeba/000004"}
    assert str(table["nose_x"].dtype) == "Int64" and pd.isna(table.loc[1, "nose_x"])
    assert table.loc[0, "rightmouth_y"] == 10


@data_input
@pytest.mark.parametrize("missing", ["list_attr_celeba.txt", "list_eval_partition.txt",
                                     "img_align_celeba"])
def test_missing_file_or_folder_names_it(tmp_path, missing):
    root = make_celeba(tmp_path / "CelebA")
    target = root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError, match=missing):
        read_celeba(root, progress=False)


@data_input
def test_images_still_zipped_says_unpack(tmp_path):
    """CelebA's release ships Img/img_align_celeba.zip: the message says to unpack it."""
    root = make_celeba(tmp_path / "CelebA", lists="Anno", img_parent="Img")
    images = root / "Img" / "img_align_celeba"
    shutil.make_archive(str(images), "zip", root / "Img", "img_align_celeba")
    shutil.rmtree(images)
    with pytest.raises(DatasetError, match=r"img_align_celeba\.zip: the images are still "
                                           r"zipped; unpack it"):
        read_celeba(root, progress=False)


@data_input
def test_no_usable_row_raises_with_the_report(tmp_path):
    root = make_celeba(tmp_path / "CelebA", images=[])
    (root / "img_align_celeba").mkdir()
    with pytest.raises(DatasetError, match="no usable image") as e:
        read_celeba(root, progress=False)
    assert "missing" in str(e.value)


@data_input
def test_orphan_image_is_a_warning(tmp_path):
    root = make_celeba(tmp_path / "CelebA", images=[*(r[0] for r in ROWS), "000099.jpg"])
    table, report = read_celeba(root, progress=False)
    [p] = report.problems
    assert (p.severity, p.kind) == ("warning", "orphan_image") and p.file.endswith("000099.jpg")
    assert len(table) == 4


# ---- CelebAMask-HQ ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hq_made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hq") / "gen"
    generate_celebamask_hq(out, images=12, size=64, mask_size=32, progress=False)
    return out


@pytest.fixture
def hq(hq_made, tmp_path) -> Path:
    """A private copy: out/ holds CelebAMask-HQ/, list_eval_partition.txt, label_maps/."""
    return Path(shutil.copytree(hq_made, tmp_path / "gen"))


def read_hq(out: Path, **kw):
    return read_celebamask_hq(out / "CelebAMask-HQ", partition_file=out /
                              "list_eval_partition.txt", progress=False, **kw)


def test_hq_table_contract_and_splits_through_the_mapping(hq):
    table, report = read_hq(hq)
    assert report.problems == []
    assert list(table.columns) == BASE + list(NAMES)
    assert len(table) == 12 and list(table["sample_id"]) == sorted(table["sample_id"])
    row = table.set_index("sample_id").loc["CelebA-HQ-img_3"]
    assert (row["image_name"], row["subset"]) == ("CelebA-HQ-img/3", "CelebA-HQ-img")
    assert row["photo_path"] == (hq / "CelebAMask-HQ" / "CelebA-HQ-img" / "3.jpg").as_posix()
    assert (row["width"], row["height"]) == (64, 64)
    mapping = (hq / "CelebAMask-HQ" / "CelebA-HQ-to-CelebA-mapping.txt").read_text().split("\n")
    orig = mapping[4].split()[2]  # line 5: idx 3
    code = dict(line.split() for line in (hq / "list_eval_partition.txt").read_text().split("\n")
                if line)[orig]
    assert row["dataset_split"] == {"0": "train", "1": "val", "2": "test"}[code]
    attrs = (hq / "CelebAMask-HQ" / "CelebAMask-HQ-attribute-anno.txt").read_text().split("\n")
    assert [int(v) for v in attrs[5].split()[1:]] == [2 * int(row[n]) - 1 for n in NAMES]


def test_hq_partition_file_found_in_the_root(hq):
    shutil.move(hq / "list_eval_partition.txt", hq / "CelebAMask-HQ")
    table, report = read_celebamask_hq(hq / "CelebAMask-HQ", progress=False)
    assert report.problems == [] and len(table) == 12


@data_input
def test_hq_missing_partition_file_says_what_to_do(hq):
    with pytest.raises(DatasetError, match="partition_file="):
        read_celebamask_hq(hq / "CelebAMask-HQ", progress=False)


def test_assemble_paints_in_g_mask_order_canonical_classes(tmp_path):
    masks = tmp_path / "masks"
    square = np.zeros((8, 8), np.uint8)
    square[2:6, 2:6] = 255
    full = np.full((8, 8), 255, np.uint8)
    for part, arr in (("skin", full), ("nose", square), ("hair", square[:, ::-1] * 0 + square),
                      ("cloth", np.pad(full[:2, :], ((6, 0), (0, 0))))):
        path = mask_path(masks, 2001, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
    assert mask_path(masks, 2001, "skin") == masks / "1" / "02001_skin.png"
    label = assemble_label_map(masks, 2001, 8)
    c = CANONICAL_CLASSES.index
    assert label[0, 0] == c("skin") and label[3, 3] == c("hair")  # hair is painted after nose
    assert label[7, 0] == c("cloth")
    assert label.dtype == np.uint8 and label.shape == (8, 8)
    wide = assemble_label_map(masks, 2001, (16, 4))  # (W, H), nearest neighbour
    assert wide.shape == (4, 16) and set(np.unique(wide)) <= {c("skin"), c("hair"), c("cloth")}
    assert PARTS == [p for p in PARSENET_CLASSES[1:]]  # g_mask.py's order is parsenet's


def test_hq_write_label_maps_for_the_masks_stage(hq, tmp_path):
    table, _ = read_hq(hq)
    out = tmp_path / "maps"
    report = write_label_maps(table, hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno", out,
                              progress=False)
    assert report.problems == []
    for image_name in table["image_name"]:
        label = read_label_map(out / f"{image_name}.png", "canonical", (64, 64))
        drawn = np.asarray(Image.open(hq / "label_maps" / f"{image_name.split('/')[1]}.png"))
        small = np.asarray(Image.fromarray(drawn).resize((32, 32), Image.NEAREST))
        assert (label[::2, ::2] == small).all()  # 32 -> 64 by nearest, back by striding
    assert not list(out.rglob(".*"))  # no temporary files left


@data_input
def test_hq_mask_for_an_image_id_that_does_not_exist(hq):
    stray = mask_path(hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno", 4321, "nose")
    stray.parent.mkdir(parents=True)
    Image.new("L", (32, 32)).save(stray)
    table, report = read_hq(hq)
    [p] = report.problems
    assert (p.severity, p.kind) == ("warning", "orphan_mask")
    assert p.file.endswith("2/04321_nose.png") and "4321" in p.message
    assert len(table) == 12


@data_input
def test_hq_unknown_part_and_misplaced_masks_are_warnings(hq):
    masks = hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    Image.new("L", (32, 32)).save(masks / "0" / "00002_beard.png")
    (masks / "3").mkdir()
    shutil.copy(masks / "0" / "00002_skin.png", masks / "3" / "00002_skin.png")
    table, report = read_hq(hq)
    assert sorted((p.kind, Path(p.file).name) for p in report.problems) == [
        ("misplaced_mask", "00002_skin.png"), ("unknown_part", "00002_beard.png")]
    assert len(table) == 12


@data_input
def test_hq_mask_of_another_size_is_resized(hq, tmp_path):
    masks = hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    skin = mask_path(masks, 5, "skin")
    Image.open(skin).resize((512, 512), Image.NEAREST).save(skin)
    table, report = read_hq(hq)
    assert report.problems == []
    assert (assemble_label_map(masks, 5, 32) == np.asarray(Image.fromarray(np.asarray(
        Image.open(hq / "label_maps" / "5.png"))).resize((32, 32), Image.NEAREST))).all()


@data_input
def test_hq_mask_with_unreadable_header_drops_its_row(hq):
    masks = hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    mask_path(masks, 7, "hair").write_bytes(b"\x89PNG broken")
    table, report = read_hq(hq)
    [p] = report.problems
    assert (p.severity, p.kind, p.image_name) == ("error", "unreadable_mask", "CelebA-HQ-img/7")
    assert p.file.endswith("0/00007_hair.png")
    assert "CelebA-HQ-img/7" not in table["image_name"].tolist() and len(table) == 11


@data_input
def test_hq_non_binary_and_undecodable_masks_when_writing_maps(hq, tmp_path):
    masks = hq / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno"
    skin = np.asarray(Image.open(mask_path(masks, 1, "skin")))
    Image.fromarray((skin > 0).astype(np.uint8) * 128).save(mask_path(masks, 1, "skin"))
    good = mask_path(masks, 2, "skin").read_bytes()
    mask_path(masks, 2, "skin").write_bytes(good[: len(good) // 2])  # header fine, data cut
    table, report = read_hq(hq)
    assert report.problems == [] and len(table) == 12
    out = tmp_path / "maps"
    report = write_label_maps(table, masks, out, progress=False)
    by_kind = {p.kind: p for p in report.problems}
    assert set(by_kind) == {"non_binary_mask", "unreadable_mask"}
    assert by_kind["non_binary_mask"].severity == "warning"
    assert by_kind["non_binary_mask"].image_name == "CelebA-HQ-img/1"
    assert by_kind["unreadable_mask"].file.endswith("0/00002_skin.png")
    assert (by_kind["unreadable_mask"].severity, by_kind["unreadable_mask"].image_name) == (
        "error", "CelebA-HQ-img/2")
    assert (out / "CelebA-HQ-img" / "1.png").is_file()
    assert not (out / "CelebA-HQ-img" / "2.png").exists()
    assert len(list((out / "CelebA-HQ-img").iterdir())) == 11


@data_input
def test_hq_mapping_row_pointing_outside_the_partition_file(hq):
    mapping = hq / "CelebAMask-HQ" / "CelebA-HQ-to-CelebA-mapping.txt"
    lines = mapping.read_text().split("\n")
    lines[3] = "2          999999     999999.jpg"
    mapping.write_text("\n".join(lines))
    table, report = read_hq(hq)
    [p] = report.problems
    assert (p.severity, p.kind, p.image_name) == ("error", "not_in_partition", "CelebA-HQ-img/2")
    assert p.file.endswith("CelebA-HQ-to-CelebA-mapping.txt") and "line 4" in p.message
    assert "999999.jpg" in p.message and len(table) == 11


@data_input
def test_hq_attribute_row_without_mapping_row(hq):
    mapping = hq / "CelebAMask-HQ" / "CelebA-HQ-to-CelebA-mapping.txt"
    lines = mapping.read_text().split("\n")
    mapping.write_text("\n".join(lines[:10] + lines[11:]))  # idx 9 gone
    table, report = read_hq(hq)
    [p] = report.problems
    assert (p.kind, p.image_name) == ("not_in_mapping", "9.jpg")
    assert p.file.endswith("CelebAMask-HQ-attribute-anno.txt") and "line 12" in p.message
    assert len(table) == 11


@data_input
def test_hq_bad_value_and_missing_image(hq):
    attrs = hq / "CelebAMask-HQ" / "CelebAMask-HQ-attribute-anno.txt"
    lines = attrs.read_text().split("\n")
    lines[4] = lines[4][:-2] + " 0"  # image 2's Young
    attrs.write_text("\n".join(lines))
    (hq / "CelebAMask-HQ" / "CelebA-HQ-img" / "4.jpg").unlink()
    table, report = read_hq(hq)
    kinds = {p.kind: p for p in report.problems}
    assert set(kinds) == {"bad_value", "missing_image"}
    assert "line 5" in kinds["bad_value"].message and "Young='0'" in kinds["bad_value"].message
    assert "line 7" in kinds["missing_image"].message
    assert len(table) == 10
