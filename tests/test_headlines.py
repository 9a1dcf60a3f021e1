"""The slow tier: a small, seeded version of each headline figure of the README's Benchmarks,
through the benchmark's own code (bench/), so that a regression in what a figure rests on fails
CI rather than a benchmark someone may never rerun. Each bound is stated beside the figure it
guards, with what this smaller run measured.

Marked `headline` (and `slow`); `pytest -m headline` runs only these.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from esgar import schema
from esgar.data.table import load_table
from esgar.device import resolve_precision

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the bench scripts import each other as top-level modules

import bench_quality  # noqa: E402
import bench_robustness  # noqa: E402
import bench_selection  # noqa: E402
from benchlib import build, stage_run  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.headline]

PAIRS = 800  # synthetic FS2K pairs: about 340 train, 60 val and 400 test sketches


@pytest.fixture(scope="module")
def clean_fs2k(tmp_path_factory) -> Path:
    """Noise-free synthetic FS2K with exact masks, through the pipeline's own stages."""
    work = tmp_path_factory.mktemp("clean")
    build(work, PAIRS, ("download", "prepare", "masks"), noise={})
    return work


# README, "The heads: quality on synthetic FS2K": esg 0.817 against global 0.684 (resnet18, 112
# px, 8 epochs, 1,058 training sketches, 3 seeds). Here a third of the data, 96 px, 6 epochs,
# seed 0:
ESG_OVER_GLOBAL = 0.06


def test_esg_beats_global_on_synthetic_fs2k(clean_fs2k, monkeypatch):
    monkeypatch.chdir(clean_fs2k)
    args = Namespace(backbone="resnet18", img_size=96, epochs=6, lr=5e-4)
    table = load_table("data/prepared/samples.parquet")
    data = bench_quality.split_data(bench_quality.model("global", args), table)
    esg, plain = (bench_quality.run_one(head, 0, data, args) for head in ("esg", "global"))
    print(f"\nesg {esg['mean_bacc']:.3f} (minority recall {esg['minority_recall']:.3f}), "
          f"global {plain['mean_bacc']:.3f} ({plain['minority_recall']:.3f})")
    # measured: esg 0.740 against global 0.619 (a 2-core AMD EPYC with AVX-512 BF16, bf16; at
    # 112 px 0.739 against 0.578). Minority-class recall is printed, not checked: 0.682 against
    # 0.626 at this size, within one seed's noise
    assert esg["mean_bacc"] >= plain["mean_bacc"] + ESG_OVER_GLOBAL, (esg, plain)


# README, "Calibration": level 1 is the level closest to EAGRNet's per-class F1 (mean absolute
# difference 4.6 points) and to Wei et al.'s (5.7), on 300 test maps. Here 100 maps of a smaller
# set: 0.75 (4.6 points) and 1 (5.7) were measured. Doubling every degradation constant puts
# the closest level at 0.5:
CALIBRATION_MAE = {"EAGRNet": 6.5, "Wei et al.": 7.5}


def test_degradation_level_one_is_a_published_parser(clean_fs2k, monkeypatch):
    monkeypatch.chdir(clean_fs2k)
    masks = yaml.safe_load(Path("params.yaml").read_text())["masks"]
    table = load_table("data/prepared/samples.parquet")
    cal = bench_robustness.calibration(masks, table, np.arange(0, 2.01, 0.25), n_maps=100)
    for parser, bound in CALIBRATION_MAE.items():
        fit = cal["fits"][parser]
        print(f"\n{parser}: closest level {fit['level']:g}, {fit['mae']:.1f} points")
        assert fit["level"] in (0.75, 1.0, 1.25), (parser, fit["level"])
        assert fit["mae"] <= bound, (parser, fit["mae"])


@pytest.fixture(scope="module")
def noisy_crossfit(tmp_path_factory) -> Path:
    """Synthetic FS2K (1,200 pairs: about 600 train+val sketches) with the benchmarks'
    minority-class label noise, and the crossfit stage's out-of-sample probabilities (3 folds
    of 8 epochs at 64 px). Smaller, the folds' models are too weak for any picker: on 400
    sketches at 4 epochs `select`, cleanlab and random sketches found the same flips per
    question."""
    work = tmp_path_factory.mktemp("noisy")
    build(work, 1200, ("download", "prepare", "masks", "crossfit"),
          crossfit={"method": "folds", "folds": 3, "epochs": 8})
    return work


# README, "which labels get checked": at 10 % of the sketches `select` finds 0.243 of the
# flipped labels, random sketches 0.090 (2.7x). Here 0.266 against 0.103 was measured (2.6x, a
# 2-core AMD EPYC, bf16); 1.5x is required:
SELECT_OVER_RANDOM = 1.5


def selection_inputs(work: Path, probs_file: Path) -> tuple:
    """From a crossfit output of `work`: (ids, labels, probabilities per attribute, the flipped
    labels, params.yaml's select section) as bench_selection's pickers take them."""
    probs = pd.read_parquet(probs_file)
    probs = probs[probs["fold"] >= 0].reset_index(drop=True)
    attrs = list(schema.ATTRIBUTE_NAMES)
    return (probs["sample_id"].to_numpy(), {a: probs[a].to_numpy() for a in attrs},
            {a: np.stack(probs[f"{a}_prob"]) for a in attrs},
            bench_selection.flipped_pairs(work, probs),
            yaml.safe_load((work / "params.yaml").read_text())["select"])


def test_select_finds_more_flipped_labels_than_random_sketches(noisy_crossfit):
    ids, labels, pred, flips, select_params = selection_inputs(
        noisy_crossfit, noisy_crossfit / "data/crossfit/probs.parquet")
    assert len(flips) >= 40, len(flips)  # enough flips for the recall to mean something
    attrs = list(schema.ATTRIBUTE_NAMES)
    rare = {a.name: int(np.argmin(schema.FS2K_COUNTS["train"][a.name]))
            for a in schema.ATTRIBUTES}
    budget = round(0.1 * len(ids))
    picked = bench_selection.by_select(ids, labels, pred, budget, select_params)
    assert len({s for s, _ in picked}) <= budget
    chosen = bench_selection.recall(picked, flips, rare)[0]
    random = np.mean([bench_selection.recall(bench_selection.by_random(ids, attrs, budget, s),
                                             flips, rare)[0] for s in range(10)])
    print(f"\n{len(flips)} flips, {budget} tasks: select {chosen:.3f}, random {random:.3f}")
    assert chosen >= SELECT_OVER_RANDOM * random, (chosen, random)


@pytest.fixture(scope="module")
def noisy_features(noisy_crossfit) -> Path:
    """The crossfit stage's `features` probabilities on the same data: the train stage's model
    (64 px, 8 epochs: the folds' size) and a logistic regression per attribute."""
    params = yaml.safe_load((noisy_crossfit / "params.yaml").read_text())
    params["model"]["img_size"] = 64
    params["train"]["epochs"] = 8
    params["crossfit"].update(method="features", out="data/crossfit_features")
    path = noisy_crossfit / "params_features.yaml"
    path.write_text(yaml.safe_dump(params))
    for stage in ("train", "crossfit"):
        stage_run(noisy_crossfit, stage, "--params", str(path))
    return noisy_crossfit / "data/crossfit_features/probs.parquet"


def flips_per_question(work: Path, probs_file: Path, share: float) -> tuple[float, int]:
    """`select`'s flipped labels found per question at `share` of the sketches as tasks."""
    ids, labels, pred, flips, select_params = selection_inputs(work, probs_file)
    picked = bench_selection.by_select(ids, labels, pred, round(share * len(ids)), select_params)
    return len(picked & set(flips)) / len(picked), len(picked)


# README, "which labels get checked": at 10 % of the sketches `select` on the trained model's
# descriptors (crossfit.method: features) finds 1.8x the flips per question it finds on 4 fold
# models (systematic-heavy noise; 2.8x on minority-uniform). Here 0.352 against 0.233 flips per
# question (1.5x; 108 and 159 questions; a 2-core AMD EPYC, fp32); required:
FEATURES_OVER_FOLDS = 1.2


def test_descriptors_find_more_flips_per_question_than_fold_models(noisy_crossfit,
                                                                    noisy_features):
    folds, asked_folds = flips_per_question(
        noisy_crossfit, noisy_crossfit / "data/crossfit/probs.parquet", 0.1)
    features, asked_features = flips_per_question(noisy_crossfit, noisy_features, 0.1)
    print(f"\nflips per question: features {features:.3f} ({asked_features} questions), "
          f"folds {folds:.3f} ({asked_folds})")
    assert features >= FEATURES_OVER_FOLDS * folds, (features, folds)


# README, the reference machine's table under "pushing tasks": batched parsing in bf16 labels
# 99.0 % of pixels as fp32 one image at a time does (BiSeNet, random weights, 32 images of
# FS2K's photo sizes). Here 8 images:
BF16_PIXEL_AGREEMENT = 0.98


def test_bf16_parsing_labels_pixels_as_fp32_does(tmp_path):
    from esgar.masks.parsers import (
        load_parser,
        parse_batch,
        parse_one_reference,
        prepare_for_batches,
    )
    from tests.helpers import write_random_weights

    if not resolve_precision("auto", torch.device("cpu")).bf16:
        pytest.skip("this CPU has no bf16 (AMX or AVX-512 BF16): masks.precision auto is fp32")
    write_random_weights(tmp_path, "bisenet")
    model = load_parser("bisenet", tmp_path, "cpu")
    fast_model = prepare_for_batches(load_parser("bisenet", tmp_path, "cpu"))
    rng = np.random.default_rng(0)
    sizes = [(250, 250), (318, 223), (340, 475)]  # FS2K's three photo sizes (H, W)
    images = [rng.integers(0, 255, (*sizes[i % 3], 3), dtype=np.uint8) for i in range(8)]
    fast = parse_batch(fast_model, "bisenet", images, precision="bf16")
    agree = np.mean([np.mean(a == parse_one_reference(model, "bisenet", im))
                     for a, im in zip(fast, images, strict=True)])
    print(f"\nbf16 against fp32: {agree:.2%} of pixels alike")
    assert agree >= BF16_PIXEL_AGREEMENT
