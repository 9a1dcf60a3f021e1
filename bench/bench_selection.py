#!/usr/bin/env python
"""How many wrong labels each way of picking finds within a budget, on synthetic FS2K whose label
noise sits in the minority classes (the generator's noise log is the truth).

    python bench/bench_selection.py [--pairs 2104] [--budgets 0.02 0.05 0.1] [--random-seeds 3]

Builds the data with the pipeline's own stages (download, prepare, masks, crossfit, with
params.yaml's settings), then, on the same out-of-sample probabilities, picks tasks (sketches)
within budgets of 2, 5 and 10 % of train+val three ways and counts the flipped labels among the
questions asked:
- `select`: the project's picker (`esgar.active.selection.select`, params.yaml's settings);
- `cleanlab`: cleanlab's label quality scores (`cleanlab.rank.get_label_quality_scores`,
  self-confidence), every sample x attribute ranked together;
- `random`: sample x attribute pairs in random order (mean over seeds).
A task may hold several questions; a sketch counts once against the budget in every method.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from cleanlab.rank import get_label_quality_scores

from esgar import schema
from esgar.active.selection import select

REPO = Path(__file__).resolve().parents[1]
# Flipped shares per attribute and TRUE class: the rare classes, where a few wrong labels move
# a balanced accuracy most (a flipped hair flips its hair colour too).
NOISE = {"hair": {1: 0.3}, "hair_color": {2: 0.3, 4: 0.1}, "earring": {0: 0.25},
         "frontal_face": {1: 0.25}, "smile": {1: 0.1}, "gender": {1: 0.05}}


def build(work: Path, pairs: int) -> dict:
    """The pipeline's stages up to crossfit in `work`; returns the params used."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="synthetic")
    params["data"]["synthetic"].update(pairs=pairs, noise=NOISE)
    params["masks"]["source"] = "import"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    (work / "data/relabels").mkdir(parents=True, exist_ok=True)
    for stage in ("download", "prepare", "masks", "crossfit"):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "-q"], cwd=work, check=True)
        print(f"{stage}: {time.perf_counter() - start:.0f} s", flush=True)
    return params


def flipped_pairs(work: Path, probs: pd.DataFrame) -> dict[tuple[str, str], int]:
    """{(sample_id, attribute): true class} of the labels the generator flipped, in train+val."""
    log = pd.read_csv(work / "data/fs2k/label_noise.csv")
    log["sample_id"] = log["image_name"].str.replace("/", "_")
    keep = set(probs["sample_id"])
    return {(r.sample_id, r.attribute): int(r.true_label) for r in log.itertuples()
            if r.sample_id in keep}


def budgeted(pairs: Iterable[tuple[str, str]], budget: int) -> set[tuple[str, str]]:
    """The pairs asked when questions come in this order and each new sketch costs one task."""
    asked, samples = set(), set()
    for sample, attribute in pairs:
        if sample not in samples and len(samples) >= budget:
            continue
        samples.add(sample)
        asked.add((sample, attribute))
    return asked


def by_cleanlab(ids: np.ndarray, labels: dict, probs: dict, budget: int) -> set:
    scored = [(float(q), str(ids[i]), a) for a in labels
              for i, q in enumerate(get_label_quality_scores(labels[a], probs[a],
                                                             method="self_confidence"))]
    scored.sort()
    return budgeted(((s, a) for _, s, a in scored), budget)


def by_random(ids: np.ndarray, attrs: list[str], budget: int, seed: int) -> set:
    pairs = [(str(s), a) for s in ids for a in attrs]
    order = np.random.default_rng(seed).permutation(len(pairs))
    return budgeted((pairs[i] for i in order), budget)


def by_select(ids: np.ndarray, labels: dict, probs: dict, budget: int, sp: dict) -> set:
    tasks = select(labels, probs, budget, uncertainty_kind=sp["uncertainty"],
                   quota_share=sp["quota_share"])
    return {(str(ids[c.sample]), c.attribute) for task in tasks for c in task}


def recall(asked: set, flips: dict[tuple[str, str], int], rare: dict[str, int]
           ) -> tuple[float, float]:
    """(share of flipped labels asked about, the same for flips whose true class is the
    attribute's rarest)."""
    minority = {k for k, true in flips.items() if true == rare[k[1]]}
    return (len(asked & set(flips)) / max(len(flips), 1),
            len(asked & minority) / max(len(minority), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--random-seeds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params = build(work, args.pairs)
        probs = pd.read_parquet(work / "data/crossfit/probs.parquet")
        probs = probs[probs["fold"] >= 0].reset_index(drop=True)
        flips = flipped_pairs(work, probs)
    ids = probs["sample_id"].to_numpy()
    attrs = list(schema.ATTRIBUTE_NAMES)
    labels = {a: probs[a].to_numpy() for a in attrs}
    pred = {a: np.stack(probs[f"{a}_prob"]) for a in attrs}
    rare = {a.name: int(np.argmin(schema.FS2K_COUNTS["train"][a.name])) for a in schema.ATTRIBUTES}
    print(f"\n{len(ids)} train+val sketches, {len(flips)} flipped labels "
          f"({sum(t == rare[k[1]] for k, t in flips.items())} of a rarest class)\n")
    print("| budget (tasks) | `select` recall | `select` minority | cleanlab recall | "
          "cleanlab minority | random recall | random minority |")
    print("|---|---|---|---|---|---|---|")
    for share in args.budgets:
        budget = int(round(share * len(ids)))
        ours = recall(by_select(ids, labels, pred, budget, params["select"]), flips, rare)
        theirs = recall(by_cleanlab(ids, labels, pred, budget), flips, rare)
        rand = np.mean([recall(by_random(ids, attrs, budget, s), flips, rare)
                        for s in range(args.random_seeds)], 0)
        print(f"| {share:.0%} ({budget}) | {ours[0]:.3f} | {ours[1]:.3f} | {theirs[0]:.3f} | "
              f"{theirs[1]:.3f} | {rand[0]:.3f} | {rand[1]:.3f} |")
    cf = params["crossfit"]
    print(f"\ncrossfit: {cf['folds']} folds, {params['model']['backbone']} "
          f"{params['model']['head']} at {cf['img_size']} px, {cf['epochs']} epochs; whole run "
          f"{(time.perf_counter() - t0) / 60:.1f} min, {os.cpu_count()} cores, "
          f"{platform.machine()} {platform.processor()}")


if __name__ == "__main__":
    main()
