"""The FS2K reader: every malformed input is reported, usable data is never lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from esgar import schema
from esgar.data.fs2k import FS2KError, read_fs2k
from tests.fs2k_fixtures import make_fs2k, record, write_pair


def kinds(report):
    return sorted(f"{p.severity}:{p.kind}" for p in report.problems)


@pytest.fixture
def good(tmp_path):
    train = [record("photo1/image0001"), record("photo2/image0001", hair=1, hair_color=3),
             record("photo3/image0002", style=2)]
    test = [record("photo1/image0002", smile=1), record("photo3/image0001", gender=1)]
    return make_fs2k(tmp_path / "FS2K", train, test)


def test_clean_folder_reads_without_problems(good):
    table, report = read_fs2k(good, progress=False)
    assert report.problems == []
    assert list(table["sample_id"]) == sorted(table["sample_id"])
    assert len(table) == 5
    row = table.set_index("sample_id").loc["photo2_image0001"]
    assert (row.hair, row.hair_color, row.fs2k_split, row.subset) == (1, 3, "train", "photo2")
    assert row.sketch_path.endswith("sketch/sketch2/sketch0001.png")
    assert (row.width, row.height) == (24, 32)
    assert row.lip_color == pytest.approx([156.9, 82.5, 79.0])
    for name in schema.ATTRIBUTE_NAMES:
        assert table[name].dtype == np.int64


def test_missing_colours_in_all_three_forms_are_accepted(tmp_path):
    root = tmp_path / "FS2K"
    make_fs2k(root, [record("photo1/image0001", skin_color=[float("nan"), 1.0]),
                     record("photo1/image0002", lip_color="nan"),
                     record("photo1/image0003", eye_color=[])], [record("photo1/image0004")])
    # json.dumps writes NaN as FS2K does; make sure it is in the file as a bare NaN token
    assert "NaN" in (root / "anno_train.json").read_text()
    table, report = read_fs2k(root, progress=False)
    assert report.problems == []
    assert report.missing_colors == {"skin_color": 1, "lip_color": 1, "eye_color": 1}
    t = table.set_index("sample_id")
    assert t.loc["photo1_image0001", "skin_color"] is None
    assert t.loc["photo1_image0002", "lip_color"] is None
    assert t.loc["photo1_image0003", "eye_color"] is None


@pytest.mark.bad_input(stage="prepare", kind="data")
@pytest.mark.parametrize("bad, kind", [
    ({"hair": 2}, "error:bad_label"),
    ({"style": -1}, "error:bad_label"),
    ({"smile": "1"}, "error:bad_label"),
    ({"gender": True}, "error:bad_label"),
    ({"lip_color": [1, 2]}, "warning:bad_color"),
    ({"eye_color": "red"}, "warning:bad_color"),
    ({"mood": "happy"}, "warning:unknown_keys"),
    ({"hair": 1, "hair_color": 0}, "warning:inconsistent_hair"),
])
def test_bad_record_fields(tmp_path, bad, kind):
    root = make_fs2k(tmp_path / "FS2K", [record("photo1/image0001", **bad),
                                         record("photo1/image0002")], [record("photo1/image0003")])
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == [kind]
    assert report.problems[0].image_name == "photo1/image0001"
    assert str(root / "anno_train.json") == report.problems[0].file
    kept = "photo1_image0001" in set(table["sample_id"])
    assert kept == kind.startswith("warning")
    assert len(table) == 2 + kept


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_missing_keys_bad_names_and_non_objects(tmp_path):
    rec = record("photo1/image0001")
    del rec["earring"]
    root = make_fs2k(tmp_path / "FS2K", [rec, record("image0009"), 42, record("photo1/image0002")],
                     [record("photo1/image0003")])
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:bad_image_name", "error:bad_record", "error:missing_keys"]
    assert "earring" in next(p.message for p in report.problems if p.kind == "missing_keys")
    assert len(table) == 2


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_duplicates_across_files_keep_the_first(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record("photo1/image0001", smile=0)],
                     [record("photo1/image0001", smile=1), record("photo1/image0002")])
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:duplicate"]
    t = table.set_index("sample_id")
    assert t.loc["photo1_image0001", "smile"] == 0
    assert t.loc["photo1_image0001", "fs2k_split"] == "train"


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_missing_unreadable_and_mismatched_images(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record(f"photo1/image000{i}") for i in range(1, 5)],
                     [record("photo3/image0001")])
    (root / "sketch/sketch1/sketch0001.jpg").unlink()
    (root / "photo/photo1/image0002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    write_pair(root, "photo1/image0003", size=(24, 32), sketch_size=(30, 32))
    write_pair(root, "photo2/image0077")  # on disk, in no record
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:missing_sketch", "error:size_mismatch",
                             "error:unreadable_image", "warning:orphan_image",
                             "warning:orphan_image"]
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["unreadable_image"].file.endswith("photo/photo1/image0002.jpg")
    assert "30x32" in by_kind["size_mismatch"].message
    assert sorted(table["sample_id"]) == ["photo1_image0004", "photo3_image0001"]


def noisy_jpeg(path: Path, seed: int = 0) -> None:
    """A 24x32 JPEG of noise: dense entropy-coded data, which damage throws out of step."""
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=90)


def overwrite_mid_scan(path: Path, n: int = 64) -> None:
    """Overwrite `n` bytes in the middle of a JPEG's entropy-coded data with garbage holding no
    0xFF byte, hence no marker: Pillow then decodes the file without an error."""
    data = bytearray(path.read_bytes())
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    mid = (start + len(data) - 2) // 2
    garbage = np.random.default_rng(1).integers(0, 0xFF, n, dtype=np.uint8).tobytes()
    data[mid - n // 2:mid + n // 2] = garbage
    path.write_bytes(bytes(data))


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_jpeg_damaged_mid_stream_is_reported_corrupt_and_dropped(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record("photo1/image0001"), record("photo1/image0002")],
                     [record("photo3/image0001")])
    for name in ("image0001", "image0002"):
        noisy_jpeg(root / f"photo/photo1/{name}.jpg")
    damaged = root / "photo/photo1/image0001.jpg"
    overwrite_mid_scan(damaged)
    with Image.open(damaged) as im:
        im.load()  # the silent case: Pillow decodes it to garbage without an error
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:corrupt_image"]
    problem = report.problems[0]
    assert (problem.file, problem.image_name) == (str(damaged), "photo1/image0001")
    assert "Corrupt JPEG data" in problem.message
    assert sorted(table["sample_id"]) == ["photo1_image0002", "photo3_image0001"]


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_truncated_jpeg_is_reported(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record("photo1/image0001"), record("photo1/image0002")],
                     [record("photo3/image0001")])
    path = root / "photo/photo1/image0001.jpg"
    noisy_jpeg(path)
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:corrupt_image"]
    assert "Premature end of JPEG file" in report.problems[0].message
    assert "photo1_image0001" not in set(table["sample_id"])


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_png_with_damaged_data_is_reported(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record("photo2/image0001"), record("photo2/image0002")],
                     [record("photo1/image0001")])
    sketch = root / "sketch/sketch2/sketch0001.png"
    pixels = np.random.default_rng(0).integers(0, 256, (32, 24), dtype=np.uint8)
    Image.fromarray(pixels).save(sketch)
    data = bytearray(sketch.read_bytes())
    mid = data.index(b"IDAT") + 40
    data[mid:mid + 16] = bytes(range(16))
    sketch.write_bytes(bytes(data))
    table, report = read_fs2k(root, progress=False)
    assert kinds(report) == ["error:unreadable_image"]
    assert "photo2_image0001" not in set(table["sample_id"])


@pytest.mark.bad_input(stage="prepare", kind="data")
@pytest.mark.parametrize("breakage, message", [
    (lambda r: (r / "anno_test.json").unlink(), "anno_test.json: annotation file missing"),
    (lambda r: (r / "anno_train.json").write_text("{not json"), "anno_train.json: not valid JSON"),
    (lambda r: (r / "anno_train.json").write_text(json.dumps({"a": 1})), "expected a JSON list"),
    (lambda r: __import__("shutil").rmtree(r / "sketch"), "sketch: folder missing"),
])
def test_unusable_folders_raise_with_the_file_named(good, breakage, message):
    breakage(good)
    with pytest.raises(FS2KError, match=message.replace(".", r"\.")):
        read_fs2k(good, progress=False)


@pytest.mark.bad_input(stage="prepare", kind="data")
def test_no_usable_pair_raises(tmp_path):
    root = make_fs2k(tmp_path / "FS2K", [record("photo1/image0001", hair=7)], [], images=True)
    with pytest.raises(FS2KError, match="no usable photo/sketch pair"):
        read_fs2k(root, progress=False)
    with pytest.raises(FS2KError, match="no such dataset folder"):
        read_fs2k(tmp_path / "nowhere", progress=False)


def test_readme_name_skin_patch_is_accepted(tmp_path):
    rec = record("photo1/image0001")
    rec["skin_patch"] = rec.pop("skin_color")
    root = make_fs2k(tmp_path / "FS2K", [rec], [record("photo1/image0002")])
    table, report = read_fs2k(root, progress=False)
    assert report.problems == []
    assert table.loc[0, "skin_color"] == [163.0, 139.0]
    assert isinstance(table, pd.DataFrame)
