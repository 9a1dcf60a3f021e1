"""`dvc repro` of the masks stage on synthetic FS2K: by import, and by facexlib parsing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from esgar.masks import store
from tests.helpers import OFFLINE, ran_stages, run, set_params, write_random_weights

pytestmark = pytest.mark.slow


def test_masks_by_import_then_by_parsing(repo_copy):
    set_params(repo_copy, data={"source": "synthetic", "synthetic.pairs": 40},
               masks={"contact_sheet.n": 4})
    run(["dvc", "repro", "masks"], repo_copy)
    out = repo_copy / "data/masks"
    meta = store.read_meta(out)
    assert meta["source"] == "import" and meta["samples"] == 40
    index = store.load_index(out)
    table = pd.read_parquet(repo_copy / "data/prepared/samples.parquet")
    assert sorted(index.sample_id) == sorted(table.sample_id)
    ids, grids = store.load_grids(out, (7, 7))
    assert grids.shape == (40, len(meta["regions"]), 7, 7) and ids == index.sample_id.tolist()
    # imported masks are exactly what was drawn: earrings where the labels say so
    names = store.region_names(out)
    for row in table.itertuples():
        masks = store.load_region_masks(out, row.sample_id)
        assert masks.shape[1:] == (row.height, row.width)
        raw_earring = index.set_index("sample_id").loc[row.sample_id, "area_earring"] > 0
        assert raw_earring == (row.earring == 0)
        assert masks[names.index("face")].any()
    report = json.loads((repo_copy / "reports/masks.json").read_text())
    assert set(report["quality"]) == {"train", "val", "test"}
    empty, fell_back = (json.loads((repo_copy / f"metrics/masks/{w}.json").read_text())
                        for w in ("empty", "fell_back"))  # DVC metrics: a share per region
    assert set(empty) == set(fell_back) == set(names)
    assert empty["earring"] == round(float((index["area_earring"] == 0).mean()), 4)
    assert fell_back["earring"] == round(float(index["fell_back_earring"].mean()), 4) > 0
    for split in ("train", "val", "test"):
        assert (repo_copy / f"plots/masks/contact_sheet_{split}.png").stat().st_size > 5000
    assert (repo_copy / "plots/masks/degradation_levels.png").stat().st_size > 5000
    assert "degrade" not in meta and "degradation" not in report  # level 0: as they came

    # degraded on purpose: the store says so, the report has what it cost per region
    exact = {sid: store.load_region_masks(out, sid) for sid in table.sample_id[:5]}
    set_params(repo_copy, masks={"degrade.level": 3})
    run(["dvc", "repro", "masks"], repo_copy)
    assert store.read_meta(out)["degrade"]["level"] == 3
    f1 = json.loads((repo_copy / "reports/masks.json").read_text())["degradation"]["region_f1"]
    assert set(f1) == set(names) and all(0 < v < 1 for v in f1.values()), f1
    assert f1["earring"] < f1["face"]  # small parts suffer most
    assert any(not np.array_equal(store.load_region_masks(out, sid), m)
               for sid, m in exact.items())
    set_params(repo_copy, masks={"degrade.level": 0})

    write_random_weights(repo_copy / "models/parsing")
    set_params(repo_copy, masks={"source": "facexlib", "batch_size": 4})
    proc = run(["dvc", "repro", "masks"], repo_copy)
    assert ran_stages(proc) == ["pull", "masks"]
    meta = store.read_meta(out)
    assert meta["source"] == "facexlib" and meta["parser"] == "bisenet"
    masks = store.load_region_masks(out, table.sample_id[0])
    assert masks.shape[1:] == (table.height[0], table.width[0])
    assert np.isfinite(store.load_grids(out, (4, 4))[1]).all()


def test_parsing_without_weights_fails_clearly(repo_copy):
    set_params(repo_copy, data={"source": "synthetic", "synthetic.pairs": 20},
               masks={"source": "facexlib", "weights_dir": "nowhere"})
    run(["dvc", "repro", "prepare"], repo_copy)
    proc = run(["python", "-m", "pipeline.masks"], repo_copy, check=False, env=OFFLINE)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "parsing_bisenet.pth" in proc.stderr and "masks.weights_dir" in proc.stderr
