#!/usr/bin/env python
"""What label noise costs: the default model trained on noisy and on clean labels of the same
synthetic FS2K, scored on the TRUE labels, for several noise settings.

    python bench/bench_noise_gap.py [--settings systematic minority-uniform] [--seeds 0 1 2]
                                    [--epochs 12] [--img-size 128] [--out FILE.json]

Each setting builds synthetic FS2K with that label noise through the pipeline's own stages
(download, prepare, masks; the noise falls on train, validation and test alike). The model is
params.yaml's (backbone, head, loss, precision) at `--img-size` for `--epochs`, trained with
each seed twice: on the labels as generated (noisy) and with every flipped label set back to
its true class (clean), the same splits both times. Scored on validation and test against the
true labels and against the labels the table holds (what the project would report).

"Beyond the seed spread" means the seeds' ranges do not overlap: the worst clean run beats the
best noisy run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from benchlib import NOISE, build, train_and_score, truth, truth_snapshot

from esgar.active.relabels import read_snapshot
from esgar.data.fs2k import read_fs2k
from esgar.data.table import build_sample_table
from esgar.device import cpu_bf16_features, cpu_name

# {attribute: {true class: share | {noisy class: share}}}; the rare classes, where annotators
# err in one direction: a red or golden sketch called brown, a small earring missed, a turned
# head called frontal, a bald head (or a hat) called haired, a faint smile missed.
SYSTEMATIC = {"hair_color": {2: {0: 0.3}, 4: {0: 0.2}}, "earring": {0: {1: 0.3}},
              "frontal_face": {1: {0: 0.3}}, "hair": {1: {0: 0.2}}, "smile": {0: {1: 0.1}}}
SETTINGS = {
    "systematic": SYSTEMATIC,
    "systematic-heavy": {a: {c: ({t: min(1.0, 1.5 * x) for t, x in r.items()})
                             for c, r in rows.items()} for a, rows in SYSTEMATIC.items()},
    "minority-uniform": NOISE,  # bench_relabel_round's: minority classes, uniform flips
}


def run_setting(work: Path, noise: dict, args) -> dict:
    work.mkdir(parents=True)
    params = build(work, args.pairs, ("download", "prepare", "masks"), noise=noise)
    true = truth(work)
    here = os.getcwd()
    os.chdir(work)  # the mask store is data/masks of the working folder
    try:
        fs2k, _ = read_fs2k("data/fs2k/FS2K", progress=False)
        val_fraction, seed = params["prepare"]["val_fraction"], params["prepare"]["seed"]
        noisy, _ = build_sample_table(fs2k, val_fraction, seed, read_snapshot("absent.csv"))
        clean, _ = build_sample_table(fs2k, val_fraction, seed, truth_snapshot(true))
        assert (noisy["split"] == clean["split"]).all()
        split_of = dict(zip(noisy["sample_id"], noisy["split"], strict=True))
        flipped = pd.Series([split_of[s] for s, _ in true]).value_counts().to_dict()
        runs: dict[str, list[dict]] = {"noisy": [], "clean": []}
        for s in args.seeds:
            for name, table in (("noisy", noisy), ("clean", clean)):
                start = time.perf_counter()
                r = train_and_score(table, params, s, true, args.img_size, args.epochs)
                r["train_s"] = time.perf_counter() - start
                runs[name].append(r)
                print(f"  {name} seed {s}: test mean bacc (true labels) {r['mean_bacc']:.4f}, "
                      f"minority recall {r['minority_recall']:.4f} ({r['train_s']:.0f} s)",
                      flush=True)
    finally:
        os.chdir(here)
    return {"noise": {a: {str(c): r for c, r in rows.items()} for a, rows in noise.items()},
            "flipped_labels": {k: int(v) for k, v in flipped.items()}, "runs": runs}


def summary(result: dict) -> dict:
    def values(arm: str, key: str) -> np.ndarray:
        return np.array([r[key] for r in result["runs"][arm]])

    out = {}
    for key in ("test/true/mean_bacc", "test/true/minority_recall", "test/reported/mean_bacc",
                "val/true/mean_bacc", "val/reported/mean_bacc"):
        noisy, clean = values("noisy", key), values("clean", key)
        out[key] = {"noisy": (noisy.mean(), noisy.std(ddof=1) if len(noisy) > 1 else 0.0),
                    "clean": (clean.mean(), clean.std(ddof=1) if len(clean) > 1 else 0.0),
                    "gap": clean.mean() - noisy.mean(),
                    "beyond_spread": bool(clean.min() > noisy.max())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=["systematic", "minority-uniform"],
                    choices=list(SETTINGS))
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("bench/results/noise_gap.json"))
    args = ap.parse_args()
    args.out = args.out.resolve()
    t0 = time.perf_counter()
    results = {}
    for name in args.settings:
        print(f"setting {name}", flush=True)
        with tempfile.TemporaryDirectory() as work:
            results[name] = run_setting(Path(work) / name, SETTINGS[name], args)
        results[name]["summary"] = summary(results[name])
        machine = {"cores": os.cpu_count(), "cpu": cpu_name(),
                   "bf16_instructions": cpu_bf16_features(), "torch": torch.__version__,
                   "precision": results[name]["runs"]["noisy"][0]["precision"]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: (v.name if isinstance(v, Path) else str(v))
                                               for k, v in vars(args).items()},
                                        "machine": machine, "settings": results}, indent=1))
    print(f"\n{args.img_size} px, {args.epochs} epochs, seeds {args.seeds}; mean ± sd; "
          "gap = clean - noisy; * beyond the seed spread\n")
    print("| setting | flipped labels (train/val/test) | test mean bacc, noisy | clean | gap | "
          "minority recall, noisy | clean | gap | test mean bacc as reported (noisy labels), "
          "noisy model |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        s, f = r["summary"], r["flipped_labels"]
        b, m = s["test/true/mean_bacc"], s["test/true/minority_recall"]
        rep = s["test/reported/mean_bacc"]["noisy"]
        print(f"| {name} | {f.get('train', 0)}/{f.get('val', 0)}/{f.get('test', 0)} | "
              f"{b['noisy'][0]:.3f} ± {b['noisy'][1]:.3f} | {b['clean'][0]:.3f} ± "
              f"{b['clean'][1]:.3f} | {b['gap']:+.3f}{'*' if b['beyond_spread'] else ''} | "
              f"{m['noisy'][0]:.3f} ± {m['noisy'][1]:.3f} | {m['clean'][0]:.3f} ± "
              f"{m['clean'][1]:.3f} | {m['gap']:+.3f}{'*' if m['beyond_spread'] else ''} | "
              f"{rep[0]:.3f} ± {rep[1]:.3f} |")
    print(f"\nwhole run {(time.perf_counter() - t0) / 60:.1f} min, {os.cpu_count()} cores, "
          f"{cpu_name()} (bf16 instructions: {', '.join(cpu_bf16_features()) or 'none'}), "
          f"training precision {machine['precision']}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
