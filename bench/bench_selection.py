#!/usr/bin/env python
"""How many wrong labels each way of picking finds within a budget, on synthetic FS2K whose label
noise sits in the minority classes (the generator's noise log is the truth).

    python bench/bench_selection.py [--pairs 2104] [--budgets 0.02 0.05 0.1] [--random-seeds 3]
        [--noise minority-uniform] [--sources folds features] [--out FILE.json]

Builds the data with the pipeline's own stages (download, prepare, masks, with params.yaml's
settings), then the out-of-sample probabilities each of `--sources` gives, through the crossfit
stage:
- `folds`: `crossfit.method: folds`, K whole models, each trained on the other folds;
- `features`: the train stage's model, then `crossfit.method: features`, a logistic regression
  per attribute on its descriptors, cross-fitted on the same folds;
- `mean`: the mean of the two (when both ran), as `crossfit.method: both` gives it.
On each source's probabilities it picks tasks (sketches) within budgets of 2, 5 and 10 % of
train+val three ways and counts the flipped labels among the questions asked:
- `select`: the project's picker (`esgar.active.selection.select`, params.yaml's settings);
- `cleanlab`: cleanlab's label quality scores (`cleanlab.rank.get_label_quality_scores`,
  self-confidence), every sample x attribute ranked together; and the same sketches asking,
  like `select`'s tasks, every label `cleanlab.filter.find_label_issues` flags on them;
- `random`: random sketches, all seven attributes of each asked (mean over seeds).
A task may hold several questions; a sketch counts once against the budget in every method, and
the table gives how many questions each asked, and each source what it cost.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from bench_noise_gap import SETTINGS
from benchlib import REPO, build, stage_run, truth
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from esgar import schema
from esgar.active.selection import select
from esgar.device import cpu_bf16_features, cpu_name
from esgar.io import write_json
from pipeline.crossfit import mean_probs


def flipped_pairs(work: Path, probs: pd.DataFrame) -> dict[tuple[str, str], int]:
    """{(sample_id, attribute): true class} of the labels the generator flipped, in train+val."""
    keep = set(probs["sample_id"])
    return {k: v for k, v in truth(work).items() if k[0] in keep}


def budgeted(pairs: Iterable[tuple[str, str]], budget: int) -> set[tuple[str, str]]:
    """The questions asked when they come in this order, each new sketch costing one task: the
    ranking's prefix up to the first pair that would need one task more."""
    asked, samples = set(), set()
    for sample, attribute in pairs:
        if sample not in samples and len(samples) >= budget:
            break
        samples.add(sample)
        asked.add((sample, attribute))
    return asked


def by_cleanlab(ids: np.ndarray, labels: dict, probs: dict, budget: int) -> set:
    scored = [(float(q), str(ids[i]), a) for a in labels
              for i, q in enumerate(get_label_quality_scores(labels[a], probs[a],
                                                             method="self_confidence"))]
    scored.sort()
    return budgeted(((s, a) for _, s, a in scored), budget)


def by_cleanlab_tasks(ids: np.ndarray, labels: dict, probs: dict, budget: int) -> set:
    """cleanlab as `select` builds tasks: sketches in the order of their worst label quality,
    each asking its label issues (`cleanlab.filter.find_label_issues`) besides that label."""
    flagged = {a: find_label_issues(labels[a], probs[a]) for a in labels}
    first = by_cleanlab(ids, labels, probs, budget)
    picked = {s for s, _ in first}
    index = {str(s): i for i, s in enumerate(ids)}
    return first | {(s, a) for s in picked for a in labels if flagged[a][index[s]]}


def by_random(ids: np.ndarray, attrs: list[str], budget: int, seed: int) -> set:
    """Random sketches, every attribute of each asked."""
    picked = np.random.default_rng(seed).permutation(len(ids))[:budget]
    return {(str(ids[i]), a) for i in picked for a in attrs}


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


SOURCES = ("folds", "features")


def source_probs(work: Path, source: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """The crossfit stage's probabilities with `crossfit.method: source` (run once, kept in
    `data/crossfit_<source>`), and the seconds each stage took (on a rerun: as first measured)."""
    out, times = work / f"data/crossfit_{source}", work / f"reports/bench_{source}.json"
    if not (out / "probs.parquet").is_file():
        params = yaml.safe_load((work / "params.yaml").read_text())
        params["crossfit"].update(method=source, out=str(out.relative_to(work)),
                                  work=f"models/crossfit_{source}",
                                  metrics=f"metrics/crossfit_{source}.json",
                                  report=f"reports/crossfit_{source}.json")
        path = work / f"params_{source}.yaml"
        path.write_text(yaml.safe_dump(params))
        seconds = {}
        for stage in ("train", "crossfit") if source == "features" else ("crossfit",):
            t0 = time.perf_counter()
            stage_run(work, stage, "--params", str(path))
            seconds[stage] = time.perf_counter() - t0
        times.parent.mkdir(parents=True, exist_ok=True)
        times.write_text(json.dumps(seconds))
    probs = pd.read_parquet(out / "probs.parquet")
    return probs[probs["fold"] >= 0].reset_index(drop=True), json.loads(times.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--random-seeds", type=int, default=3)
    ap.add_argument("--noise", default="minority-uniform", choices=list(SETTINGS))
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    ap.add_argument("--out", type=Path, help="also write the rows as JSON here (e.g. "
                                              "bench/results/selection_<noise>.json)")
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it; reuse what "
                                               "is there (data, models, probabilities) on a rerun")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if (work / "data/prepared/samples.parquet").is_file():
            params = yaml.safe_load((work / "params.yaml").read_text())
            if params["data"]["synthetic"]["noise"] != SETTINGS[args.noise]:
                raise SystemExit(f"{work}: built with other noise than {args.noise}")
        else:
            params = build(work, args.pairs, ("download", "prepare", "masks"),
                           noise=SETTINGS[args.noise])
        params["select"] = yaml.safe_load((REPO / "params.yaml").read_text())["select"]
        sources = {s: source_probs(work, s) for s in args.sources}
        flips = flipped_pairs(work, next(iter(sources.values()))[0])
    probs = {s: p for s, (p, _) in sources.items()}
    if len(probs) == 2:  # what `crossfit.method: both` gives
        probs["mean"] = mean_probs(probs["folds"], probs["features"])
    first = next(iter(probs.values()))
    ids = first["sample_id"].to_numpy()
    attrs = list(schema.ATTRIBUTE_NAMES)
    labels = {a: first[a].to_numpy() for a in attrs}
    rare = {a.name: int(np.argmin(schema.FS2K_COUNTS["train"][a.name])) for a in schema.ATTRIBUTES}
    print(f"\n{len(ids)} train+val sketches, {len(flips)} flipped labels "
          f"({sum(t == rare[k[1]] for k, t in flips.items())} of a rarest class), noise "
          f"{args.noise}\n")
    print("| budget (tasks) | probabilities | method | questions | recall of flipped labels | "
          "recall of flipped minority-class labels |")
    print("|---|---|---|---|---|---|")
    rows = []
    for share in args.budgets:
        budget = int(round(share * len(ids)))
        picks = {}
        for source, frame in probs.items():
            assert (frame["sample_id"].to_numpy() == ids).all()
            pred = {a: np.stack(frame[f"{a}_prob"]) for a in attrs}
            picks[(source, "`select`")] = [by_select(ids, labels, pred, budget, params["select"])]
            picks[(source, "cleanlab")] = [by_cleanlab(ids, labels, pred, budget)]
            picks[(source, "cleanlab, its issues asked together")] = [
                by_cleanlab_tasks(ids, labels, pred, budget)]
        picks[("none", "random")] = [by_random(ids, attrs, budget, s)
                                     for s in range(args.random_seeds)]
        for (source, name), runs in picks.items():
            rec = np.mean([recall(asked, flips, rare) for asked in runs], 0)
            questions = np.mean([len(asked) for asked in runs])
            print(f"| {share:.0%} ({budget}) | {source} | {name} | {questions:.0f} | "
                  f"{rec[0]:.3f} | {rec[1]:.3f} |")
            rows.append({"budget": share, "tasks": budget, "probabilities": source,
                         "method": name, "questions": float(questions),
                         "recall": float(rec[0]), "minority_recall": float(rec[1])})
    cf, model = params["crossfit"], params["model"]
    print(f"\nfolds: {cf['folds']} folds, {model['backbone']} {model['head']} at "
          f"{cf['img_size']} px, {cf['epochs']} epochs; features: the main model "
          f"({model['img_size']} px, {params['train']['epochs']} epochs) and C="
          f"{cf['regularization']}")
    for source, (_, seconds) in sources.items():
        print(f"{source}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    machine = (f"{os.cpu_count()} cores, {cpu_name()} "
               f"({', '.join(cpu_bf16_features()) or 'no bf16'})")
    print(f"whole run {(time.perf_counter() - t0) / 60:.1f} min, {machine}")
    if args.out:
        write_json(args.out, {"noise": args.noise, "sketches": len(ids), "flips": len(flips),
                              "machine": machine, "seconds": {s: t for s, (_, t) in
                                                              sources.items()}, "rows": rows})


if __name__ == "__main__":
    main()
