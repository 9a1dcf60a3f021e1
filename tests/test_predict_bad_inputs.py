"""`esgar predict` against a hostile user: each mistake is one line naming the file or the
setting, exit status 1, no traceback; a bad file among good ones is reported and the good ones
are still predicted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from esgar import cli
from tests.test_predict import split_rows, user_folders

pytestmark = pytest.mark.slow


@pytest.fixture
def inputs(tiny_repo, tmp_path) -> tuple[Path, Path, Path]:
    """(sketches folder, masks folder, model folder) of two test-split sketches of the tiny
    repository (read only: no case writes into it)."""
    sketches, masks = user_folders(tiny_repo, tmp_path, split_rows(tiny_repo, 2))
    return sketches, masks, tiny_repo / "models/esgar"


def predict(capsys, *args: str) -> tuple[int, str]:
    rc = cli.main(["-q", "predict", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def one_error(capsys, *args: str) -> str:
    rc, err = predict(capsys, *args)
    lines = [line for line in err.splitlines() if line.startswith("esgar: error:")]
    assert rc == 1 and len(lines) == 1, err
    return lines[0]


@pytest.mark.bad_input(stage="predict", kind="data")
def test_a_model_that_is_not_there(inputs, tmp_path, capsys):
    sketches, masks, _ = inputs
    line = one_error(capsys, str(sketches), "--model", str(tmp_path / "nope"), "--masks",
                     str(masks))
    assert "nope: no such model folder" in line and "models:/NAME@ALIAS" in line


@pytest.mark.bad_input(stage="predict", kind="data")
def test_a_model_without_its_mask_recipe(inputs, tmp_path, capsys):
    sketches, masks, model = inputs
    old = shutil.copytree(model, tmp_path / "old")
    info = json.loads((old / "model.json").read_text())
    del info["masks"]
    (old / "model.json").write_text(json.dumps(info))
    line = one_error(capsys, str(sketches), "--model", str(old), "--masks", str(masks))
    assert "model.json" in line and "no mask recipe" in line and "retrain" in line


@pytest.mark.bad_input(stage="predict", kind="data")
def test_damaged_weights(inputs, tmp_path, capsys):
    sketches, masks, model = inputs
    bad = shutil.copytree(model, tmp_path / "bad")
    (bad / "best.pt").write_bytes(b"garbage")
    line = one_error(capsys, str(sketches), "--model", str(bad), "--masks", str(masks))
    assert "best.pt" in line and "not weights" in line


@pytest.mark.bad_input(stage="predict", kind="data")
def test_an_alias_the_registry_does_not_have(inputs, tiny_repo, tmp_path, monkeypatch, capsys):
    sketches, masks, _ = inputs
    store = shutil.copy(tiny_repo / "mlflow.db", tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    line = one_error(capsys, str(sketches), "--model", "models:/esgar-fs2k@nobody", "--masks",
                     str(masks))
    assert "no alias 'nobody'" in line


@pytest.mark.bad_input(stage="predict", kind="service")
def test_a_tracking_server_that_never_answers(inputs, silent_url, monkeypatch, capsys):
    sketches, masks, _ = inputs
    monkeypatch.setenv("MLFLOW_TRACKING_URI", silent_url)
    line = one_error(capsys, str(sketches), "--model", "models:/esgar-fs2k@champion",
                     "--masks", str(masks))
    assert silent_url in line and "no answer within" in line


@pytest.mark.bad_input(stage="predict", kind="service")
def test_parser_weights_missing_offline_name_the_option_to_give(inputs, tmp_path, monkeypatch,
                                                                capsys):
    from urllib.error import URLError

    import facexlib.utils.misc as misc

    def offline(url, dst, hash_prefix=None, progress=True):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(misc, "download_url_to_file", offline)
    sketches, _, model = inputs
    rc, err = predict(capsys, str(sketches), "--model", str(model), "--parser-weights",
                      str(tmp_path / "weights"))
    assert rc == 1 and "parsing_bisenet.pth" in err and "--parser-weights DIR" in err
    assert "params.yaml" not in err  # the user ran a command, not a stage


@pytest.mark.bad_input(stage="predict", kind="arguments")
@pytest.mark.parametrize(("flags", "expected"), [
    (["--out", "pred.txt"], "write .csv or .json"),
    (["--label-order", "rainbow"], "label order 'rainbow'"),
    (["--parse-input", "photos"], "parse input 'photos'"),
    (["--parser", "deeplab"], "parser 'deeplab'"),
    (["--masks-format", "coco"], "masks format 'coco'"),
    (["--explain", "ev", "--explain-method", "shap"], "evidence method 'shap'"),
    (["--batch-size", "0"], "batch size 0"),
    (["--precision", "fp16"], "--precision 'fp16': use auto, bf16, fp32"),
    (["--photos", "no/such/folder"], "no/such/folder: no such photos folder"),
])
def test_bad_arguments(inputs, capsys, flags, expected):
    sketches, masks, model = inputs
    line = one_error(capsys, str(sketches), "--model", str(model), "--masks", str(masks),
                     *flags)
    assert expected in line


@pytest.mark.bad_input(stage="predict", kind="data")
def test_a_masks_folder_that_is_not_there_or_lacks_regions(inputs, tmp_path, capsys):
    sketches, _, model = inputs
    line = one_error(capsys, str(sketches), "--model", str(model), "--masks",
                     str(tmp_path / "none"))
    assert "none: no such masks folder" in line
    folders = tmp_path / "regions"
    (folders / "seg_hair").mkdir(parents=True)
    line = one_error(capsys, str(sketches), "--model", str(model), "--masks", str(folders),
                     "--masks-format", "region_folders")
    assert "no seg_<region> folder" in line and "earring" in line


@pytest.mark.bad_input(stage="predict", kind="data")
def test_no_sketch_at_all(tmp_path, tiny_repo, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("no images here")
    rc, err = predict(capsys, str(tmp_path / "empty"), str(tmp_path / "missing.png"),
                      "--model", str(tiny_repo / "models/esgar"))
    assert rc == 1 and "no sketch to predict" in err
    assert "empty: no images in this folder" in err and "missing.png: no such file" in err


@pytest.mark.bad_input(stage="predict", kind="data")
def test_bad_files_are_reported_and_the_rest_predicted(inputs, tmp_path, capsys):
    sketches, masks, model = inputs
    good = sorted(sketches.iterdir())
    odd_mask = sketches / "odd_mask.jpg"  # its label map has another size than the sketch
    shutil.copy(good[0], odd_mask)
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(masks / "odd_mask.png")
    odd_photo = sketches / "odd_photo.jpg"  # its photo has another size
    shutil.copy(good[0], odd_photo)
    shutil.copy(masks / f"{good[0].stem}.png", masks / "odd_photo.png")
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(photos / "odd_photo.png")
    truncated = sketches / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:200])
    out = tmp_path / "pred.csv"
    rc, err = predict(capsys, str(sketches), "--model", str(model), "--masks", str(masks),
                      "--photos", str(photos), "--out", str(out))
    frame = pd.read_csv(out, keep_default_na=False).set_index("sketch")
    assert rc == 1 and "2 predicted, 3 failed" in err
    assert all(frame.loc[str(p), "error"] == "" for p in good)
    assert "odd_mask.png" in frame.loc[str(odd_mask), "error"]
    assert "is 40x40, the sketch 250x250" in frame.loc[str(odd_photo), "error"]
    assert "cannot read the image" in frame.loc[str(truncated), "error"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                                 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.bad_input(stage="predict", kind="security")
def test_a_decompression_bomb_and_a_speck_are_listed_the_rest_predicted(inputs, capsys):
    sketches, masks, model = inputs
    (sketches / "bomb.png").write_bytes(png_header(60000, 60000))
    Image.new("RGB", (1, 1), "white").save(sketches / "speck.png")
    rc, err = predict(capsys, str(sketches), "--model", str(model), "--masks", str(masks))
    assert rc == 1
    assert "bomb.png: the image claims more than 40 megapixels" in err
    assert "speck.png: the image is 1x1: too small to judge" in err
    assert "2 predicted, 2 failed" in err


@pytest.mark.bad_input(stage="predict", kind="security")
def test_a_model_json_pointing_outside_its_folder_is_refused(inputs, tmp_path, capsys):
    sketches, masks, model = inputs
    bad = shutil.copytree(model, tmp_path / "bad")
    info = json.loads((bad / "model.json").read_text())
    info["weights"] = "../../../etc/passwd"
    (bad / "model.json").write_text(json.dumps(info))
    line = one_error(capsys, str(sketches), "--model", str(bad), "--masks", str(masks))
    assert "model.json" in line and "is not a file name inside" in line


@pytest.mark.bad_input(stage="predict", kind="data")
@pytest.mark.parametrize(("change", "expected"), [
    (lambda i: i["model"].update(img_size=-5), "cannot be built"),
    (lambda i: i["masks"].update(grid_image_size=-1), "masks.grid_image_size"),
    (lambda i: i["masks"].update(grid_rule="mystery"), "masks.grid_rule"),
    (lambda i: i["masks"]["regions"][0].update(classes=["wings"]), "'wings' is no face-parsing"),
])
def test_out_of_range_values_in_model_json_are_one_line(inputs, tmp_path, capsys, change,
                                                        expected):
    sketches, masks, model = inputs
    bad = shutil.copytree(model, tmp_path / "bad")
    info = json.loads((bad / "model.json").read_text())
    change(info)
    (bad / "model.json").write_text(json.dumps(info))
    line = one_error(capsys, str(sketches), "--model", str(bad), "--masks", str(masks))
    assert "model.json" in line and expected in line


@pytest.mark.bad_input(stage="predict", kind="arguments")
def test_explain_pointing_at_a_file(inputs, tmp_path, capsys):
    sketches, masks, model = inputs
    (tmp_path / "evidence.png").write_bytes(b"mine")
    line = one_error(capsys, str(sketches), "--model", str(model), "--masks", str(masks),
                     "--explain", str(tmp_path / "evidence.png"))
    assert "--explain" in line and "a file is there" in line
    assert (tmp_path / "evidence.png").read_bytes() == b"mine"
