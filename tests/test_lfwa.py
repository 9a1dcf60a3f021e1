"""The LFWA reader: the table contract on LFWA+'s .mat files, and every bad input reported with
its file and row/entry while the usable rows are kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from esgar.data.lfwa import DatasetError, load_mat, read_lfwa
from esgar.data.synthetic_faces import generate_lfwa
from esgar.schema import load_schema

NAMES = list(load_schema("lfwa").names)
BASE = ["sample_id", "image_name", "subset", "dataset_split", "photo_path", "sketch_path",
        "width", "height"]
FILES = ["Aaron_Eckhart\\Aaron_Eckhart_0001.jpg", "Aaron_Eckhart\\Aaron_Eckhart_0002.jpg",
         "Abba_Eban\\Abba_Eban_0001.jpg", "Zoe_Ball\\Zoe_Ball_0001.jpg"]
data_input = pytest.mark.bad_input(stage="prepare", kind="data")


def labels(*present: tuple[int, str]) -> np.ndarray:
    out = np.zeros((len(FILES), len(NAMES)))
    for row, name in present:
        out[row, NAMES.index(name)] = 1
    return out


LABELS = labels((0, "Male"), (0, "Smiling"), (1, "Male"), (2, "Young"), (3, "Eyeglasses"))


def cell(values, row: bool = False) -> np.ndarray:
    arr = np.empty((1, len(values)) if row else (len(values), 1), dtype=object)
    for j, v in enumerate(values):
        arr.flat[j] = v
    return arr


def make_lfwa(root: Path, names=FILES, label=LABELS, train=(1, 2, 4), test=(3,),
              attr_names=NAMES, images=None, **extra) -> Path:
    """A hand-written LFWA+ folder (v5 .mat files; the reader treats v7.3 alike)."""
    root.mkdir(parents=True, exist_ok=True)
    att = {"name": cell(names), "label": np.asarray(label, float), **extra}
    if attr_names is not None:
        att["AttrName"] = cell(attr_names, row=True)
    scipy.io.savemat(root / "lfw_att_40.mat", att)
    scipy.io.savemat(root / "indices_train_test.mat", {
        "indices_img_train": np.asarray(train, float).reshape(-1, 1),
        "indices_img_test": np.asarray(test, float).reshape(-1, 1)})
    for name in images if images is not None else names:
        path = root / "lfw" / name.replace("\\", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (10, 12), (90, 60, 50)).save(path)
    return root


def only(report):
    assert len(report.problems) == 1, report.format()
    return report.problems[0]


def test_table_contract(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    table, report = read_lfwa(root, progress=False)
    assert report.problems == []
    assert list(table.columns) == BASE + NAMES
    assert list(table["sample_id"]) == [
        "lfw_Aaron_Eckhart_Aaron_Eckhart_0001", "lfw_Aaron_Eckhart_Aaron_Eckhart_0002",
        "lfw_Abba_Eban_Abba_Eban_0001", "lfw_Zoe_Ball_Zoe_Ball_0001"]
    row = table.iloc[2]
    assert (row["image_name"], row["subset"]) == ("lfw/Abba_Eban/Abba_Eban_0001", "lfw")
    path = (root / "lfw" / "Abba_Eban" / "Abba_Eban_0001.jpg").as_posix()
    assert row["photo_path"] == path and row["sketch_path"] == path
    assert (row["width"], row["height"]) == (10, 12)
    assert list(table["dataset_split"]) == ["train", "train", "test", "train"]
    for name in ["width", "height", *NAMES]:
        assert table[name].dtype == np.int64
    assert table[NAMES].to_numpy().tolist() == LABELS.astype(int).tolist()


def test_label_stored_transposed_is_read(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", label=LABELS.T)
    table, report = read_lfwa(root, progress=False)
    assert report.problems == []
    assert table[NAMES].to_numpy().tolist() == LABELS.astype(int).tolist()


def test_minus_one_labels_are_read_with_a_warning(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", label=LABELS * 2 - 1)
    table, report = read_lfwa(root, progress=False)
    assert (only(report).kind, only(report).severity) == ("minus_one_labels", "warning")
    assert table[NAMES].to_numpy().tolist() == LABELS.astype(int).tolist()


def test_attr_names_in_another_order_or_spelling(tmp_path):
    order = list(reversed(range(len(NAMES))))
    spelled = [NAMES[i].replace("_", " ").upper() for i in order]
    root = make_lfwa(tmp_path / "LFWA", label=LABELS[:, order], attr_names=spelled)
    table, report = read_lfwa(root, progress=False)
    assert only(report).kind == "header_order"
    assert table[NAMES].to_numpy().tolist() == LABELS.astype(int).tolist()


def test_without_attr_names_the_schema_order_is_assumed(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", attr_names=None)
    table, report = read_lfwa(root, progress=False)
    assert only(report).kind == "no_attr_names" and len(table) == 4


def test_synthetic_lfwa_reads_clean(tmp_path):
    generate_lfwa(tmp_path / "out", images=12, size=32, progress=False)
    table, report = read_lfwa(tmp_path / "out" / "LFWA", progress=False)
    assert report.problems == [] and len(table) == 12
    assert set(table["dataset_split"]) == {"train", "test"}


def test_mat_v73_is_read_with_h5py(tmp_path):
    pytest.importorskip("h5py")
    generate_lfwa(tmp_path / "v5", images=12, size=32, progress=False)
    generate_lfwa(tmp_path / "v73", images=12, size=32, mat_version="7.3", progress=False)
    with pytest.raises(NotImplementedError):  # what scipy says of the release's files
        scipy.io.loadmat(tmp_path / "v73" / "LFWA" / "lfw_att_40.mat")
    a, ra = read_lfwa(tmp_path / "v5" / "LFWA", progress=False)
    b, rb = read_lfwa(tmp_path / "v73" / "LFWA", progress=False)
    assert ra.problems == rb.problems == []
    same = [c for c in a.columns if not c.endswith("_path")]
    assert a[same].equals(b[same])


@data_input
@pytest.mark.parametrize("bad", [2.0, 0.5, np.nan])
def test_label_value_other_than_0_1_drops_the_row(tmp_path, bad):
    label = LABELS.copy()
    label[1, NAMES.index("Smiling")] = bad
    root = make_lfwa(tmp_path / "LFWA", label=label)
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.severity, p.kind) == ("error", "bad_label")
    assert p.file.endswith("lfw_att_40.mat") and "row 2" in p.message and "Smiling=" in p.message
    assert p.image_name == "lfw/Aaron_Eckhart/Aaron_Eckhart_0002"
    assert len(table) == 3 and p.image_name not in table["image_name"].tolist()


@data_input
@pytest.mark.parametrize("index", [0, 5, 1.5, -1])
def test_index_out_of_range_is_ignored(tmp_path, index):
    root = make_lfwa(tmp_path / "LFWA", test=(3, index))
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.severity, p.kind) == ("error", "bad_index")
    assert p.file.endswith("indices_train_test.mat")
    assert "indices_img_test entry 2" in p.message and "1..4" in p.message
    assert len(table) == 4


@data_input
def test_image_in_both_train_and_test_is_dropped(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", test=(3, 2))
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.severity, p.kind) == ("error", "in_both_splits")
    assert p.file.endswith("indices_train_test.mat") and "row 2" in p.message
    assert "indices_img_train (entry 2)" in p.message and "indices_img_test (entry 2)" in p.message
    assert p.image_name == "lfw/Aaron_Eckhart/Aaron_Eckhart_0002"
    assert len(table) == 3


@data_input
def test_image_in_neither_split_is_dropped(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", train=(1, 2))
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.kind, p.image_name) == ("no_split", "lfw/Zoe_Ball/Zoe_Ball_0001")
    assert "row 4" in p.message and len(table) == 3


@data_input
def test_listed_image_missing_is_dropped(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", images=FILES[:3])
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.severity, p.kind) == ("error", "missing_image")
    assert p.file.endswith("lfw_att_40.mat") and "row 4" in p.message
    assert "lfw/Zoe_Ball/Zoe_Ball_0001.jpg" in p.message and len(table) == 3


@data_input
def test_unreadable_image_is_dropped(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    (root / "lfw" / "Abba_Eban" / "Abba_Eban_0001.jpg").write_bytes(b"GIF? no")
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.kind, p.image_name) == ("unreadable_image", "lfw/Abba_Eban/Abba_Eban_0001")
    assert "row 3" in p.message and len(table) == 3


@data_input
@pytest.mark.parametrize("name", ["..\\..\\etc\\passwd", "/abs/x.jpg", "C:\\x.jpg", ""])
def test_name_outside_the_image_folder_is_dropped(tmp_path, name):
    names = [*FILES[:3], name]
    root = make_lfwa(tmp_path / "LFWA", names=names, images=FILES[:3])
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.kind, p.severity) == ("bad_image_name", "error") and "row 4" in p.message
    assert len(table) == 3


@data_input
def test_duplicate_name_keeps_the_first(tmp_path):
    names = [*FILES[:3], FILES[0]]
    root = make_lfwa(tmp_path / "LFWA", names=names, images=FILES[:3])
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert p.kind == "duplicate" and "row 4" in p.message and "row 1" in p.message
    assert len(table) == 3 and table.loc[0, "Male"] == 1


@data_input
def test_duplicate_index_is_a_warning(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", train=(1, 2, 4, 2))
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.severity, p.kind) == ("warning", "duplicate_index") and "entry 4" in p.message
    assert len(table) == 4


@data_input
def test_orphan_image_is_a_warning(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", images=[*FILES, "Zoe_Ball\\Zoe_Ball_0002.jpg"])
    table, report = read_lfwa(root, progress=False)
    p = only(report)
    assert (p.kind, p.severity) == ("orphan_image", "warning")
    assert p.file.endswith("Zoe_Ball/Zoe_Ball_0002.jpg") and len(table) == 4


@data_input
@pytest.mark.parametrize("change, message", [
    ({"attr_names": NAMES[:39]}, "AttrName"),
    ({"attr_names": [*NAMES[:39], "Old"]}, "missing: Young"),
    ({"label": LABELS[:3]}, "label is 3 x 40"),
    ({"names": [1, 2, 3, 4]}, "name should be a cell array"),
])
def test_unusable_annotation_file_raises_naming_it(tmp_path, change, message):
    root = make_lfwa(tmp_path / "LFWA", images=FILES, **change)
    with pytest.raises(DatasetError, match=message) as e:
        read_lfwa(root, progress=False)
    assert "lfw_att_40.mat" in str(e.value) and isinstance(e.value, ValueError)


@data_input
def test_missing_variable_names_it(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    scipy.io.savemat(root / "indices_train_test.mat", {"indices_img_train": np.ones((2, 1))})
    with pytest.raises(DatasetError, match="indices_train_test.mat: no variable "
                                           "'indices_img_test'"):
        read_lfwa(root, progress=False)


@data_input
@pytest.mark.parametrize("missing", ["lfw_att_40.mat", "indices_train_test.mat", "lfw"])
def test_missing_file_or_folder_names_it(tmp_path, missing):
    root = make_lfwa(tmp_path / "LFWA")
    target = root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError, match=f"{missing}: missing"):
        read_lfwa(root, progress=False)


@data_input
def test_not_a_mat_file(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    (root / "lfw_att_40.mat").write_text("name,label\n")
    with pytest.raises(DatasetError, match="lfw_att_40.mat: not a readable MATLAB file"):
        read_lfwa(root, progress=False)


@data_input
def test_v73_file_that_cannot_be_read_says_so(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    header = b"MATLAB 7.3 MAT-file".ljust(116) + b" " * 8 + b"\x00\x02IM"
    (root / "lfw_att_40.mat").write_bytes(header.ljust(512, b"\x00") + b"not hdf5")
    with pytest.raises(DatasetError, match="v7.3") as e:  # h5py missing, or not HDF5 inside
        read_lfwa(root, progress=False)
    assert "lfw_att_40.mat" in str(e.value)


@data_input
def test_no_usable_row_raises_with_the_report(tmp_path):
    root = make_lfwa(tmp_path / "LFWA", images=[])
    (root / "lfw").mkdir(exist_ok=True)
    with pytest.raises(DatasetError, match="no usable image") as e:
        read_lfwa(root, progress=False)
    assert "missing_image" not in str(e.value) and "is missing" in str(e.value)


def test_load_mat_returns_matlab_shapes(tmp_path):
    root = make_lfwa(tmp_path / "LFWA")
    mat = load_mat(root / "lfw_att_40.mat")
    assert mat["name"] == FILES and mat["AttrName"] == NAMES
    assert mat["label"].shape == (4, 40)
