#!/usr/bin/env python
"""What one round of the relabeling loop is worth: a simulated annotator answers the pushed
tasks through a real Label Studio, and the model is retrained on the answers.

    python bench/bench_relabel_round.py [--pairs 2104] [--seeds 0 1 2] [--epochs 8] [--img-size 64]

On synthetic FS2K whose label noise sits in the minority classes (the generator's noise log is
the truth), with params.yaml's settings for crossfit and select:
1. `select` picks its tasks; `push` sends them to a local Label Studio (scripts/labelstudio.sh,
   its own data dir); the annotator answers every question in question with the truth, through
   the API; `pull` brings the answers back into a snapshot;
2. the same budget of tasks picked at random (random sketch x attribute pairs) goes through the
   same push, answer, pull in a second project;
3. the model (params.yaml's backbone and head, at `--img-size` for `--epochs`, to keep the run
   short) is trained on the noisy labels, the labels after each round, and the clean labels,
   `--seeds` each, and scored on the test split's TRUE labels: mean balanced accuracy and the
   recall of each attribute's rarest class.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from benchlib import REPO, build, free_port, stage_run, train_and_score, truth, truth_snapshot

from esgar import schema
from esgar.active.relabels import read_snapshot
from esgar.active.tasks import choices_result
from esgar.data.fs2k import read_fs2k
from esgar.data.table import build_sample_table
from esgar.integrations import labelstudio as ls

TOKEN = "bench-relabel-token-0123456789"


def start_server(work: Path) -> dict[str, str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")},
           "LABEL_STUDIO_ENV_FILE": os.devnull, "LABEL_STUDIO_DATA_DIR": str(work / "ls"),
           "LABEL_STUDIO_PORT": str(free_port()), "LABEL_STUDIO_DOCUMENT_ROOT": str(work),
           "LABEL_STUDIO_USERNAME": "annotator@example.com",
           "LABEL_STUDIO_PASSWORD": "bench-password", "LABEL_STUDIO_USER_TOKEN": TOKEN}
    subprocess.run([str(REPO / "scripts/labelstudio.sh"), "start"], env=env, check=True)
    return env


def answer_all(server: ls.Server, project_title: str, true: dict) -> int:
    """The simulated annotator: every question in question answered with the truth."""
    client = ls.connect(server)
    project = ls.find_project(client, project_title)
    n = 0
    for task in ls.list_tasks(client, project):
        data = task["data"]
        sid, labels = data["sample_id"], dict(data["labels"])
        for a in data["questions"]:
            if (sid, a) in true:
                labels[a] = schema.BY_NAME[a].classes[true[(sid, a)]]
        ls.annotate(client, task["id"], choices_result(labels))
        n += 1
    return n


def random_manifest(work: Path, budget: int, seed: int) -> Path:
    """A manifest of random sketch x attribute pairs, `budget` sketches, as select writes."""
    probs = pd.read_parquet(work / "data/crossfit/probs.parquet")
    ids = probs.loc[probs["fold"] >= 0, "sample_id"].to_numpy()
    pairs = [(s, a) for s in ids for a in schema.ATTRIBUTE_NAMES]
    rows, tasks = [], {}
    for i in np.random.default_rng(seed).permutation(len(pairs)):
        s, a = pairs[i]
        if s not in tasks and len(tasks) >= budget:
            continue
        tasks.setdefault(s, len(tasks))
        rows.append({"task": tasks[s], "sample_id": s, "attribute": a, "score": 0.0})
    path = work / "data/random_manifest.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def round_through_labelstudio(work: Path, env: dict, server: ls.Server, project: str,
                              manifest: Path, snapshot: Path, true: dict) -> int:
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["labelstudio"]["project"] = project
    params["push"].update(manifest=str(manifest), out=f"data/labelstudio_{snapshot.stem}")
    params["pull"].update(snapshot=str(snapshot), answers=str(snapshot.with_suffix(".answers.csv")),
                          report=str(snapshot.with_suffix(".report.json")))
    path = work / f"params_{snapshot.stem}.yaml"
    path.write_text(yaml.safe_dump(params))
    client_env = {"LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": TOKEN,
                  "LABEL_STUDIO_DOCUMENT_ROOT": str(work)}
    stage_run(work, "push", "--params", str(path), env=client_env)
    n = answer_all(server, project, true)
    stage_run(work, "pull", "--params", str(path), env=client_env)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--img-size", type=int, default=64)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params = build(work, args.pairs, ("download", "prepare", "masks", "crossfit",
                                          "select"), crossfit={"method": "folds"})  # as measured
        true = truth(work)
        budget = int(pd.read_parquet(work / "data/selection/manifest.parquet")["task"].nunique())
        env = start_server(work)
        server = ls.Server(f"http://127.0.0.1:{env['LABEL_STUDIO_PORT']}", TOKEN)
        try:
            start = time.perf_counter()
            n_select = round_through_labelstudio(
                work, env, server, "bench: select", work / "data/selection/manifest.parquet",
                work / "data/relabels/snapshot_select.csv", true)
            took = time.perf_counter() - start
            n_random = round_through_labelstudio(
                work, env, server, "bench: random", random_manifest(work, budget, 0),
                work / "data/relabels/snapshot_random.csv", true)
        finally:
            subprocess.run([str(REPO / "scripts/labelstudio.sh"), "stop"], env=env)
        os.chdir(work)
        fs2k, _ = read_fs2k("data/fs2k/FS2K", progress=False)
        clean = truth_snapshot(true)
        snapshots = {"noisy labels": read_snapshot("data/relabels/none.csv"),
                     "one round of `select`": read_snapshot("data/relabels/snapshot_select.csv"),
                     "one round of random picking": read_snapshot(
                         "data/relabels/snapshot_random.csv"),
                     "clean labels (all flips fixed)": clean}
        results = {}
        for name, snap in snapshots.items():
            table, _ = build_sample_table(fs2k, params["prepare"]["val_fraction"],
                                          params["prepare"]["seed"], snap)
            results[name] = [train_and_score(table, params, s, true, args.img_size, args.epochs)
                             for s in args.seeds]
            print(name, results[name], flush=True)
    fixed = {n: len(s) for n, s in snapshots.items()}
    print(f"\nbudget {budget} tasks ({n_select} answered for select, {n_random} at random); the "
          f"select round (push, answers, pull) took {took:.0f} s\n")
    print("| labels | decisions | test mean balanced acc | minority-class recall |")
    print("|---|---|---|---|")
    for name, rs in results.items():
        b = np.array([r["mean_bacc"] for r in rs])
        m = np.array([r["minority_recall"] for r in rs])
        print(f"| {name} | {fixed[name]} | {b.mean():.3f} ± {b.std(ddof=1):.3f} | "
              f"{m.mean():.3f} ± {m.std(ddof=1):.3f} |")
    print(f"\n{params['model']['backbone']} {params['model']['head']} at {args.img_size} px, "
          f"{args.epochs} epochs, seeds {args.seeds}; whole run "
          f"{(time.perf_counter() - t0) / 60:.1f} min, {os.cpu_count()} cores, "
          f"{platform.machine()} {platform.processor()}")


if __name__ == "__main__":
    main()
