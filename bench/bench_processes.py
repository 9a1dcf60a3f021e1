#!/usr/bin/env python
"""Does a second process help? The train stage data-parallel (torchrun, DDP over gloo) with 1
and 2 processes, the crossfit stage's folds trained one after another and 2 at once, and face
parsing (the masks stage's facexlib path) in 1 and 2 processes, on synthetic FS2K here.

    python bench/bench_processes.py            # 600 pairs, params.yaml's model at 128 px
    [--pairs 600] [--epochs 3] [--parse-images 64] [--out bench/results/processes.json]

Training time per epoch is the difference between a run of `--epochs` and a run of 1 epoch
divided by the epochs between them, so the start-up (imports, reading the sketches, starting
the ranks) is not counted; it is reported on its own. Crossfit (`method: folds`, 2 folds of 2
epochs at 64 px) is timed whole, start-up included, as a user would see it. Parsing is BiSeNet
with random weights (the same computation as facexlib's, no download) on the synthetic photos
in batches of params.yaml's `masks.batch_size`, the workers' start included.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import yaml
from bench_parsing import random_weights
from benchlib import REPO, build, stage_run

from esgar.data.table import load_table
from esgar.device import cpu_bf16_features, cpu_name, resolve_precision
from esgar.masks.build import parsed_masks


def set_section(folder: Path, section: str, **values) -> None:
    path = folder / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section].update(values)
    path.write_text(yaml.safe_dump(params))


def timed(work: Path, stage: str) -> float:
    started = time.perf_counter()
    stage_run(work, stage, env={"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"})
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--parse-images", type=int, default=64)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/processes.json")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-processes-") as tmp:
        work = Path(tmp)
        params = build(work, args.pairs, ("download", "prepare", "masks"))
        for n in (1, 2):
            runs = {}
            for epochs in (1, args.epochs):
                set_section(work, "train", processes=n, epochs=epochs, resume=False,
                            patience=epochs)
                runs[epochs] = timed(work, "train")
            per_epoch = (runs[args.epochs] - runs[1]) / (args.epochs - 1)
            results[f"train/{n}"] = {"processes": n, "seconds_per_epoch": round(per_epoch, 1),
                                     "start_up_seconds": round(runs[1] - per_epoch, 1)}
            print(results[f"train/{n}"])
        set_section(work, "crossfit", method="folds", folds=2, epochs=2, img_size=64)
        for n in (1, 2):
            set_section(work, "crossfit", processes=n)
            # a fresh work folder each time: a finished fold would otherwise be resumed
            set_section(work, "crossfit", work=f"models/crossfit-{n}")
            results[f"crossfit/{n}"] = {"processes": n, "seconds": round(timed(work, "crossfit"),
                                                                          1)}
            print(results[f"crossfit/{n}"])
        os.chdir(work)  # the table's paths are relative to it
        table = load_table(params["model"]["table"]).iloc[:args.parse_images]
        random_weights("bisenet", work)
        for n in (1, 2):
            started = time.perf_counter()
            for _ in parsed_masks(table, "bisenet", work, "cpu", params["masks"]["batch_size"],
                                  params["masks"]["precision"], processes=n):
                pass
            seconds = time.perf_counter() - started
            results[f"parsing/{n}"] = {"processes": n, "images": len(table),
                                       "images_per_second": round(len(table) / seconds, 2)}
            print(results[f"parsing/{n}"])
        os.chdir(REPO)
    speed = {"train": results["train/1"]["seconds_per_epoch"]
             / results["train/2"]["seconds_per_epoch"],
             "crossfit": results["crossfit/1"]["seconds"] / results["crossfit/2"]["seconds"],
             "parsing": results["parsing/2"]["images_per_second"]
             / results["parsing/1"]["images_per_second"]}
    precision = resolve_precision(params["train"]["precision"], torch.device("cpu")).used
    note = (f"{params['model']['backbone']} {params['model']['head']}, "
            f"{params['model']['img_size']} px, batch {params['train']['batch_size']}, "
            f"{precision}; {args.pairs} pairs; {os.cpu_count()} cores, {cpu_name()}")
    args.out.write_text(json.dumps({
        "note": note, "machine": {"cores": os.cpu_count(), "cpu": cpu_name(),
                                  "bf16_instructions": cpu_bf16_features(),
                                  "torch": torch.__version__},
        "speed_up_with_2": {k: round(v, 2) for k, v in speed.items()},
        "results": results}, indent=1) + "\n")
    print(f"2 processes against 1: train x{speed['train']:.2f}, crossfit x{speed['crossfit']:.2f},"
          f" parsing x{speed['parsing']:.2f} ({note})")


if __name__ == "__main__":
    main()
