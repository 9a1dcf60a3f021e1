"""`esgar predict` on sketches nobody labelled: the same numbers as the evaluate stage, from a
model folder, the registry or a run; evidence maps; a parser run; bad files reported, the rest
predicted. The model is the tiny repository's (tests/tiny_repo.py), trained in the tests."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from esgar import cli, schema
from esgar.integrations import registry as reg
from esgar.masks.store import mask_recipe
from esgar.models.factory import create_model, save_trained, save_weights
from tests.helpers import run, screenshot, set_params, write_random_weights

pytestmark = pytest.mark.slow


def split_rows(repo: Path, n: int = 3) -> pd.DataFrame:
    """The first `n` test-split rows of the tiny repository's sample table."""
    table = pd.read_parquet(repo / "data/prepared/samples.parquet")
    return table[table["split"] == "test"].head(n).reset_index(drop=True)


def user_folders(repo: Path, tmp: Path, rows: pd.DataFrame) -> tuple[Path, Path]:
    """A user's sketches (copies, as their own files) and their label maps, by stem."""
    sketches, masks = tmp / "sketches", tmp / "masks"
    sketches.mkdir()
    masks.mkdir()
    for row in rows.itertuples():
        stem = row.sample_id  # the user's own names: not FS2K's
        shutil.copy(repo / row.sketch_path, sketches / f"{stem}.jpg")
        shutil.copy(repo / "data/fs2k/parsing/bisenet" / f"{row.image_name}.png",
                    masks / f"{stem}.png")
    return sketches, masks


def stage_probs(repo: Path, sample_ids: list[str]) -> dict[str, np.ndarray]:
    """What the evaluate stage predicted for these samples ({attribute: float [N,C]})."""
    pred = pd.read_parquet(repo / "data/predictions/predictions.parquet").set_index("sample_id")
    pred = pred.loc[sample_ids]
    return {a: np.stack(pred[f"{a}_prob"].to_numpy()) for a in schema.ATTRIBUTE_NAMES}


def frame_probs(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {a.name: frame[[f"{a.name}.{c}" for c in a.classes]].to_numpy(float)
            for a in schema.ATTRIBUTES}


def test_predict_matches_the_evaluate_stage_and_reports_bad_files(tiny_repo, tmp_path, capsys):
    repo = tiny_repo  # read only: nothing here writes into the repository
    rows = split_rows(repo)
    sketches, masks = user_folders(repo, tmp_path, rows)
    (sketches / "notes.png").write_text("not an image")
    no_mask = sketches / "no_mask.jpg"
    shutil.copy(sketches / f"{rows.sample_id[0]}.jpg", no_mask)
    blank = sketches / "blank.jpg"
    shutil.copy(sketches / f"{rows.sample_id[0]}.jpg", blank)
    Image.fromarray(np.zeros((250, 250), np.uint8)).save(masks / "blank.png")  # background only

    out = tmp_path / "pred.csv"
    rc = cli.main(["-q", "predict", str(sketches), "--model", str(repo / "models/esgar"),
                   "--masks", str(masks), "--out", str(out)])
    assert rc == 1  # some files failed; the others are predicted
    frame = pd.read_csv(out, keep_default_na=False)
    errors = dict(zip(frame["sketch"], frame["error"], strict=True))
    assert "cannot read the image" in errors[str(sketches / "notes.png")]
    assert "no face region found" in errors[str(blank)]
    assert "no_mask.png" in errors[str(no_mask)]
    good = frame[frame["error"] == ""].set_index("sketch").loc[
        [str(sketches / f"{s}.jpg") for s in rows.sample_id]]
    got, want = frame_probs(good), stage_probs(repo, list(rows.sample_id))
    for a in schema.ATTRIBUTE_NAMES:  # the same masks, geometry and network as evaluate
        np.testing.assert_allclose(got[a], want[a], atol=1e-5, err_msg=a)
        assert list(good[a]) == [schema.attribute(a).classes[k] for k in want[a].argmax(1)]
    err = capsys.readouterr().err
    assert "3 predicted, 3 failed" in err and "notes.png" in err

    as_json = tmp_path / "pred.json"
    cli.main(["-q", "predict", *[str(sketches / f"{s}.jpg") for s in rows.sample_id],
              "--model", str(repo / "models/esgar"), "--masks", str(masks),
              "--out", str(as_json)])
    records = json.loads(as_json.read_text())
    assert [r["sketch"] for r in records] == [str(sketches / f"{s}.jpg") for s in rows.sample_id]
    first = records[0]["attributes"]["hair_color"]
    assert sum(first["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert first["class"] == max(first["probabilities"], key=first["probabilities"].get)


def test_a_bf16_evaluate_stage_is_predicted_alike_in_bf16(repo, tmp_path):
    """train.precision bf16 (emulated where the CPU lacks it): the evaluate stage scores in
    bf16 and says so in MLflow; `esgar predict --precision bf16` gives its numbers, and fp32
    the fp32 stage's, which differ measurably. Both stages are run here: the repository's own
    ran in `auto`, which is either, by the CPU."""
    rows = split_rows(repo)
    sketches, masks = user_folders(repo, tmp_path, rows)
    ids = list(rows.sample_id)
    probs = {}
    for precision in ("fp32", "bf16"):
        set_params(repo, train={"precision": precision},
                   evaluate={"bootstrap": 0, "attention_samples": 0})
        run([sys.executable, "-m", "pipeline.evaluate"], repo)
        probs[precision] = stage_probs(repo, ids)
    fp32, bf16 = probs["fp32"], probs["bf16"]
    assert max(np.abs(bf16[a] - fp32[a]).max() for a in schema.ATTRIBUTE_NAMES) > 1e-4
    for precision, want in (("bf16", bf16), ("fp32", fp32)):
        out = tmp_path / f"{precision}.csv"
        assert cli.main(["-q", "predict", str(sketches), "--model", str(repo / "models/esgar"),
                         "--masks", str(masks), "--out", str(out),
                         "--precision", precision]) == 0
        got = frame_probs(pd.read_csv(out, keep_default_na=False))
        for a in schema.ATTRIBUTE_NAMES:
            np.testing.assert_allclose(got[a], want[a], atol=1e-5, err_msg=f"{precision} {a}")
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.stage = "
                              "'evaluate'", order_by=["attributes.start_time DESC"])
    assert runs.iloc[0]["tags.precision.used"] == "bf16"
    assert runs.iloc[0]["tags.precision.asked"] == "bf16"


def test_predict_from_the_registry_and_a_run_id(repo, tmp_path, monkeypatch):
    rows = split_rows(repo, 2)
    sketches, masks = user_folders(repo, tmp_path, rows)
    run_id = json.loads((repo / "models/esgar/model.json").read_text())["mlflow_run_id"]
    monkeypatch.chdir(repo)
    c = reg.client()
    version, _ = reg.register(c, "t-predict", run_id, {})
    reg.set_alias(c, "t-predict", reg.CHAMPION, version.version)
    want = stage_probs(repo, list(rows.sample_id))
    for ref in ("models:/t-predict@champion", f"t-predict/{version.version}", run_id):
        out = tmp_path / f"{ref.replace('/', '_').replace(':', '_')}.csv"
        assert cli.main(["-q", "predict", str(sketches), "--model", ref, "--masks", str(masks),
                         "--out", str(out)]) == 0, ref
        got = frame_probs(pd.read_csv(out, keep_default_na=False))
        for a in schema.ATTRIBUTE_NAMES:
            np.testing.assert_allclose(got[a], want[a], atol=1e-5, err_msg=f"{ref}: {a}")


def padded_pair(repo: Path, row, tmp: Path) -> tuple[Path, Path]:
    """A non-square sketch (its FS2K sketch padded to 250x300, white) and its label map."""
    sketch = np.array(Image.open(repo / row.sketch_path).convert("RGB"))
    label = np.array(Image.open(repo / "data/fs2k/parsing/bisenet" / f"{row.image_name}.png"))
    tall = np.full((300, 250, 3), 255, np.uint8)
    tall[25:275] = sketch
    tall_label = np.zeros((300, 250), np.uint8)
    tall_label[25:275] = label
    (tmp / "in").mkdir()
    (tmp / "masks").mkdir()
    Image.fromarray(tall).save(tmp / "in/tall.png")
    Image.fromarray(tall_label).save(tmp / "masks/tall.png")
    return tmp / "in/tall.png", tmp / "masks"


def check_evidence(folder: Path, name: str, size: tuple[int, int], differ: int = 5
                   ) -> dict[str, np.ndarray]:
    """The grid, one overlay per attribute at the sketch's `size`, and maps in [0, 1] of
    which at least `differ` differ from hair's."""
    assert (folder / f"{name}.png").is_file()
    for a in schema.ATTRIBUTE_NAMES:
        with Image.open(folder / name / f"{a}.png") as im:
            assert im.size == size, a
    maps = dict(np.load(folder / name / "maps.npz"))
    assert set(maps) == set(schema.ATTRIBUTE_NAMES)
    assert all(m.shape == (size[1], size[0]) and 0 <= m.min() and m.max() <= 1 + 1e-3
               for m in maps.values())
    different = {a for a in maps if not np.allclose(maps[a], maps["hair"], atol=1e-3)}
    assert len(different) >= differ, different  # each branch looks at its own evidence
    return maps


def test_explain_writes_evidence_maps_of_the_sketch_size(tiny_repo, tmp_path):
    repo = tiny_repo  # read only: nothing here writes into the repository
    row = next(split_rows(repo, 1).itertuples())
    sketch, masks = padded_pair(repo, row, tmp_path)
    out = tmp_path / "evidence"
    assert cli.main(["-q", "predict", str(sketch), "--model", str(repo / "models/esgar"),
                     "--masks", str(masks), "--explain", str(out)]) == 0
    maps = check_evidence(out, "tall", (250, 300))
    screenshot("evidence", tmp_path / "shots", str(out))
    # the model saw the center 250x250 (to its resizing's rounding): nothing is claimed outside
    assert all(np.all(m[:20] == 0) and np.all(m[-20:] == 0) for m in maps.values())

    grad = tmp_path / "gradcam"  # Grad-CAM is there for the esg head too
    assert cli.main(["-q", "predict", str(sketch), "--model", str(repo / "models/esgar"),
                     "--masks", str(masks), "--explain", str(grad),
                     "--explain-method", "gradcam"]) == 0
    check_evidence(grad, "tall", (250, 300))


def random_model(repo: Path, head: str, folder: Path) -> Path:
    """An untrained `head` model on the tiny repository's masks, saved as training would."""
    recipe = mask_recipe(repo / "data/masks")
    regions = [r["name"] for r in recipe["regions"]]
    params = json.loads((repo / "models/esgar/model.json").read_text())["model"]
    torch.manual_seed(0)  # the same untrained network whatever ran before
    net = create_model(params["backbone"], head, region_names=regions,
                       attribute_regions=params["attribute_regions"], pretrained=False,
                       img_size=params["img_size"])
    save_trained(folder, net, save_weights(folder, net).name, masks=recipe)
    return folder


@pytest.mark.parametrize("head", ["global", "ssp_ssg"])
def test_heads_without_attention_get_gradcam(tiny_repo, tmp_path, head):
    repo = tiny_repo  # read only: nothing here writes into the repository
    row = next(split_rows(repo, 1).itertuples())
    sketch, masks = padded_pair(repo, row, tmp_path)
    model = random_model(repo, head, tmp_path / "model")
    out = tmp_path / "evidence"
    assert cli.main(["-q", "predict", str(sketch), "--model", str(model), "--masks", str(masks),
                     "--explain", str(out)]) == 0
    check_evidence(out, "tall", (250, 300), differ=1)  # untrained: many Grad-CAMs are all 0
    assert cli.main(["-q", "predict", str(sketch), "--model", str(model), "--masks", str(masks),
                     "--explain", str(out), "--explain-method", "attention"]) == 1


def test_masks_parsed_from_the_photo_or_the_sketch(tiny_repo, tmp_path):
    """No masks given: facexlib parses (weights written by the test: random, so its regions
    are arbitrary, but every sketch comes out predicted or with its reason)."""
    repo = tiny_repo  # read only: nothing here writes into the repository
    rows = split_rows(repo, 2)
    sketches, photos = tmp_path / "sketches", tmp_path / "photos"
    sketches.mkdir()
    photos.mkdir()
    for row in rows.itertuples():
        shutil.copy(repo / row.sketch_path, sketches / Path(row.sketch_path).name)
    first = rows.iloc[0]  # only the first has a photo (FS2K's names: sketchN <-> imageN)
    shutil.copy(repo / first.photo_path, photos / Path(first.photo_path).name)
    weights = tmp_path / "weights"
    write_random_weights(weights, "bisenet")
    out = tmp_path / "pred.json"
    rc = cli.main(["-q", "predict", str(sketches), "--model", str(repo / "models/esgar"),
                   "--photos", str(photos), "--parser-weights", str(weights),
                   "--out", str(out)])
    records = json.loads(out.read_text())
    assert len(records) == 2 and rc == (1 if any("error" in r for r in records) else 0)
    assert all("attributes" in r or "no face region found" in r["error"] for r in records)
