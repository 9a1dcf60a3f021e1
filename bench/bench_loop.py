#!/usr/bin/env python
"""Does the relabeling loop improve the model? Three rounds of the real loop, each way of picking
questions at the same number of questions, on synthetic FS2K whose label noise costs something.

    python bench/bench_loop.py --careful --middle-seeds --crossfit folds
        # the README's run (careful annotators, rounds 1 and 2 not trained, fold models)
    python bench/bench_loop.py --no-training --crossfit folds   # the README's lazy run
    python bench/bench_loop.py --careful --no-training          # the rounds on the descriptors
    python bench/bench_loop.py --careful --crossfit folds --plot-only
        # redraw docs/images/relabel_loop.png
    [--rounds 3] [--seeds 0 1 2] [--arms select cleanlab random select-val] [--work DIR]
    [--crossfit features|folds|both: default params.yaml's crossfit.method]
    [--out FILE.json: default bench/results/loop_careful.json, with --careful, else loop_lazy.json;
     loop_careful_features.json etc. when the crossfit method is not folds]

The noise is bench_noise_gap's `systematic-heavy` (class-conditional confusions in the minority
classes, in train, validation and test alike), where clean labels beat noisy ones beyond the
seed spread. Each arm keeps its own labels (a relabel snapshot), its own Label Studio project
and its own stage outputs; a round of an arm is the project's own stages:
`crossfit` on the arm's current labels -> the questions -> `push` to a local Label Studio ->
three simulated annotators (bench_relabel_trust's: accuracies 0.95/0.85/0.70, some lazy;
never lazy with `--careful`)
answer through its API, two per task, among them the push's gold tasks -> `pull` (gold-weighted
consensus) -> `prepare` applies the decisions -> the model is retrained on them. The arms:
- `select`: the `select` stage (params.yaml's settings, `select.budget` of train+val a round);
- `cleanlab`: cleanlab's `find_label_issues` on the same crossfit probabilities of the arm's
  labels, tasks built as `select` builds them: sketches by their worst label quality, each
  asking that label and the sketch's other flagged ones;
- `random`: random sketch x attribute pairs;
- `select-val` (only when asked for): `select` with `--val-share` of its tasks on validation;
each of the last two asks exactly as many questions as `select` did in that round, and none
asks a pair a decision settled before. Beside them: `none` (the noisy labels, every arm's round
0) and `clean` (every flipped label set to its truth, the ceiling).

The model is params.yaml's (backbone, head, loss, size, epochs, precision). It is scored on the
TRUE labels of validation and test, and on the labels the arm holds (what the project would
report). Rounds 1 and 2 train `--middle-seeds`, round 3 and the baselines `--seeds`, to keep
the run near an hour and a half on 2 cores. Per round, the registry's promotion policy
(params.yaml's `registry.policy`) judges the round's model (seed 0) against the arm's champion
on the arm's validation labels, as the retrain flow would, and on the true ones; the true test
labels give the gain the decision was about.

`--crossfit features` (params.yaml's default) runs the train stage once on the noisy labels
before the rounds: every round's crossfit reads that model's descriptors and refits its
logistic regression on the arm's current labels. The real loop would retrain the model on those
labels first (`dvc repro push`); here its descriptors stay the noisy model's, to keep the rounds
within the time (a model per arm and round is about 8 minutes on 2 cores in fp32).

A kept `--work` folder resumes: finished rounds and trainings are not redone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from bench_noise_gap import SETTINGS
from bench_relabel_trust import ANNOTATORS, TOKEN, answer_in_turns, start_server, truth_lookup
from benchlib import REPO, build, stage_run, train_and_score, truth, truth_snapshot
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from esgar import schema
from esgar.active.relabels import read_snapshot
from esgar.data.fs2k import read_fs2k
from esgar.data.table import build_sample_table, load_table
from esgar.device import cpu_bf16_features, cpu_name
from esgar.integrations import labelstudio as ls
from esgar.promotion.policy import Policy, decide, paired_bootstrap
from pipeline.select import decided_pairs

ARMS = ("select", "cleanlab", "random", "select-val")
COLOURS = {"select": "C0", "cleanlab": "C1", "random": "C2", "select-val": "C3"}
IMAGE = REPO / "docs/images/relabel_loop.png"


def arm_params(work: Path, arm: str, rnd: int, val_share: float) -> Path:
    """params.yaml with the arm's own labels, stage outputs and Label Studio project."""
    p = yaml.safe_load((work / "params.yaml").read_text())
    snapshot = f"data/relabels/{arm}.csv"
    table = f"data/prepared_{arm}/samples.parquet"
    probs = f"data/crossfit_{arm}_{rnd}/probs.parquet" if arm != "random" and rnd > 1 \
        else "data/crossfit/probs.parquet"
    p["prepare"].update(relabels=snapshot, out=f"data/prepared_{arm}",
                        metrics=f"metrics/prepare_{arm}.json",
                        report=f"reports/prepare_{arm}.json",
                        plot=f"plots/prepare_{arm}/class_distribution.png")
    p["model"]["table"] = table
    p["crossfit"].update(work=f"models/crossfit_{arm}_{rnd}", out=f"data/crossfit_{arm}_{rnd}",
                         metrics=f"metrics/crossfit_{arm}_{rnd}.json",
                         report=f"reports/crossfit_{arm}_{rnd}.json")
    if arm == "select-val":
        p["select"]["val_share"] = val_share
    p["select"].update(probs=probs, relabels=snapshot, out=f"data/selection_{arm}_{rnd}",
                       metrics=f"metrics/select_{arm}_{rnd}.json",
                       report=f"reports/select_{arm}_{rnd}.json")
    p["labelstudio"]["project"] = f"bench loop: {arm}"
    p["push"].update(manifest=f"data/selection_{arm}_{rnd}/manifest.parquet", probs=probs,
                     relabels=snapshot, out=f"data/labelstudio_{arm}_{rnd}")
    p["pull"].update(snapshot=snapshot, answers=f"data/relabels/{arm}.answers.csv",
                     report=f"reports/pull_{arm}.json")
    path = work / f"params_{arm}_{rnd}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def candidates(probs: pd.DataFrame, snapshot: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The train and val rows of the crossfit output, and per attribute which pairs humans
    already settled (bool [N])."""
    rows = probs[probs["split"].isin(["train", "val"]) & (probs["fold"] >= 0)]
    rows = rows.reset_index(drop=True)
    return rows, decided_pairs(snapshot, rows["sample_id"])


def as_manifest(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Questions in the order asked -> the manifest `push` reads, one task per sketch."""
    tasks: dict[str, int] = {}
    out = [{"task": tasks.setdefault(s, len(tasks)), "sample_id": s, "attribute": a,
            "score": 1.0 - i / len(pairs)} for i, (s, a) in enumerate(pairs)]
    return pd.DataFrame(out, columns=["task", "sample_id", "attribute", "score"])


def cleanlab_questions(rows: pd.DataFrame, settled: dict, n: int) -> list[tuple[str, str]]:
    """`n` questions as `select` builds tasks, from cleanlab: sketches in the order of their
    worst unsettled label quality (self-confidence), each asking that label and its other
    unsettled labels `find_label_issues` flags."""
    names = schema.ATTRIBUTE_NAMES
    labels = {a: rows[a].to_numpy() for a in names}
    pred = {a: np.stack(rows[f"{a}_prob"]) for a in names}
    quality = np.stack([np.where(settled[a], np.inf, get_label_quality_scores(
        labels[a], pred[a], method="self_confidence")) for a in names], 1)
    flagged = np.stack([find_label_issues(labels[a], pred[a]) & ~settled[a] for a in names], 1)
    ids = rows["sample_id"].to_numpy()
    out: list[tuple[str, str]] = []
    for i in np.argsort(quality.min(1), kind="stable"):
        worst = int(quality[i].argmin())
        if not np.isfinite(quality[i, worst]):
            break
        asks = [worst] + [j for j in np.flatnonzero(flagged[i]) if j != worst]
        out += [(str(ids[i]), names[j]) for j in asks]
        if len(out) >= n:
            break
    return out[:n]


def random_questions(rows: pd.DataFrame, settled: dict, n: int, seed: int
                     ) -> list[tuple[str, str]]:
    """`n` random unsettled sketch x attribute pairs."""
    pairs = [(str(s), a) for a in schema.ATTRIBUTE_NAMES
             for s, done in zip(rows["sample_id"], settled[a], strict=True) if not done]
    pick = np.random.default_rng(seed).permutation(len(pairs))[:n]
    return [pairs[i] for i in sorted(pick, key=lambda i: pairs[i][0])]


def one_round(work: Path, arm: str, rnd: int, n_questions: int | None, server: ls.Server,
              truth_of, val_share: float) -> pd.DataFrame:
    """A round of `arm`: its questions pushed, answered, pulled, applied; the manifest."""
    params = arm_params(work, arm, rnd, val_share)
    p = yaml.safe_load(params.read_text())
    env = {"LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": TOKEN,
           "LABEL_STUDIO_DOCUMENT_ROOT": str(work),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    if rnd == 1:  # the arm's table: as the noisy one, no decision yet
        stage_run(work, "prepare", "--params", str(params))
    if arm != "random" and rnd > 1:  # the real loop judges the labels with a model of them
        stage_run(work, "crossfit", "--params", str(params))
    manifest = work / p["push"]["manifest"]
    if arm.startswith("select"):
        stage_run(work, "select", "--params", str(params))
    else:
        rows, settled = candidates(pd.read_parquet(work / p["select"]["probs"]),
                                   read_snapshot(work / p["select"]["relabels"]))
        pairs = (cleanlab_questions(rows, settled, n_questions) if arm == "cleanlab"
                 else random_questions(rows, settled, n_questions, seed=rnd))
        manifest.parent.mkdir(parents=True, exist_ok=True)
        as_manifest(pairs).to_parquet(manifest, index=False)
    stage_run(work, "push", "--params", str(params), env=env)
    client = ls.connect(server)
    project = ls.find_project(client, p["labelstudio"]["project"])
    client.close()
    answer_in_turns(server, project, truth_of, seed=rnd)
    stage_run(work, "pull", "--params", str(params), env=env)
    stage_run(work, "prepare", "--params", str(params))
    return pd.read_parquet(manifest)


def label_state(table: pd.DataFrame, noisy: pd.DataFrame, flipped: dict, asked: set) -> dict:
    """How the arm's train+val labels stand against the truth: flipped labels asked and fixed
    (all, and those whose true class is not the attribute's majority), right labels broken."""
    fit = table[table["split"].isin(["train", "val"])].set_index("sample_id")
    before = noisy.set_index("sample_id")
    fixed = [fit.loc[s, a] == v for (s, a), v in flipped.items()]
    broken = sum(int(fit.loc[s, a] != before.loc[s, a]) for a in schema.ATTRIBUTE_NAMES
                 for s in fit.index if (s, a) not in flipped)
    minority = [v != int(np.argmax(schema.FS2K_COUNTS["train"][a]))
                for (s, a), v in flipped.items()]
    found = [(s, a) in asked for s, a in flipped]
    n_fixed = int(np.sum(fixed))
    m = np.array(minority)
    val = np.array([fit.loc[s, "split"] == "val" for s, _ in flipped])
    return {"flipped": len(flipped), "found": int(np.sum(found)), "fixed": n_fixed,
            "val_flipped": int(val.sum()), "val_fixed": int(np.sum(np.array(fixed)[val])),
            "found_recall": float(np.mean(found)), "fixed_recall": float(np.mean(fixed)),
            "minority_flipped": int(m.sum()),
            "minority_found_recall": float(np.mean(np.array(found)[m])),
            "broken": broken}


def promotion(policy: Policy, champion: dict, challenger: dict) -> dict:
    """The registry's decision on the arm's validation labels and on the true ones, and the
    gain the true test labels show."""
    order = pd.Series(np.arange(len(champion["val"]["sample_id"])),
                      index=champion["val"]["sample_id"])
    rows = order.reindex(challenger["val"]["sample_id"]).to_numpy(np.int64)
    out = {}
    for labels in ("reported", "true"):
        c = paired_bootstrap(challenger["val"][labels], challenger["val"]["pred"],
                             champion["val"]["pred"][rows], schema.ATTRIBUTE_NAMES,
                             policy.bootstrap, policy.seed, policy.confidence)
        d = decide(c, policy)
        out[labels] = {"promote": d.promote, "gain": c.gain, "gain_low": c.gain_low}
    order = pd.Series(np.arange(len(champion["test"]["sample_id"])),
                      index=champion["test"]["sample_id"])
    rows = order.reindex(challenger["test"]["sample_id"]).to_numpy(np.int64)
    c = paired_bootstrap(challenger["test"]["true"], challenger["test"]["pred"],
                         champion["test"]["pred"][rows], schema.ATTRIBUTE_NAMES, 1, 0, 0.5)
    out["true_test_gain"] = c.gain
    return out


class Store:
    """The run's results in `work/results.json` and predictions in `work/pred/`, so that a
    kept folder resumes."""

    def __init__(self, work: Path) -> None:
        self.path, self.pred = work / "results.json", work / "pred"
        self.pred.mkdir(exist_ok=True)
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, key: str):
        return self.data.get(key)

    def put(self, key: str, value) -> None:
        self.data[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def predictions(self, key: str) -> dict:
        with np.load(self.pred / f"{key}.npz", allow_pickle=False) as z:
            out: dict = {}
            for name in z.files:
                split, field = name.split(".")
                out.setdefault(split, {})[field] = z[name]
            return out

    def save_predictions(self, key: str, pred: dict) -> None:
        np.savez(self.pred / f"{key}.npz", **{f"{s}.{k}": np.asarray(v, dtype=str if k ==
                                                                     "sample_id" else None)
                                              for s, d in pred.items() for k, v in d.items()})


def scored(store: Store, key: str, table: pd.DataFrame, params: dict, seed: int, true: dict,
           args) -> dict:
    """Train and score once; a stored result is returned as it is."""
    if (done := store.get(key)) is not None:
        return done
    start, pred = time.perf_counter(), {}
    r = train_and_score(table, params, seed, true, args.img_size, args.epochs, pred)
    r["train_s"] = round(time.perf_counter() - start, 1)
    store.save_predictions(key.replace("/", "_"), pred)
    store.put(key, r)
    print(f"  {key}: test mean bacc (true) {r['mean_bacc']:.4f}, minority recall "
          f"{r['minority_recall']:.4f}, val reported {r['val/reported/mean_bacc']:.4f} "
          f"({r['train_s']:.0f} s)", flush=True)
    return r


def relabel_rounds(work: Path, store: Store, args, noisy: pd.DataFrame, flipped: dict,
                   truth_of) -> None:
    """Every arm's rounds through Label Studio; each round's labels kept in data/tables/."""
    if all(store.get(f"round/{a}/{args.rounds}") for a in args.arms):
        return
    (work / "data/tables").mkdir(exist_ok=True)
    env, server = start_server(work)
    try:
        for rnd in range(1, args.rounds + 1):
            questions = None
            for arm in args.arms:
                key = f"round/{arm}/{rnd}"
                if store.get(key) is None:
                    t0 = time.perf_counter()
                    m = one_round(work, arm, rnd, questions, server, truth_of, args.val_share)
                    asked = {tuple(x) for x in store.get(f"asked/{arm}") or []}
                    asked |= set(zip(m["sample_id"], m["attribute"], strict=True))
                    table = work / f"data/tables/{arm}_{rnd}.parquet"
                    shutil.copy(work / f"data/prepared_{arm}/samples.parquet", table)
                    state = label_state(load_table(table), noisy, flipped, asked)
                    store.put(f"asked/{arm}", sorted(asked))
                    store.put(key, {"questions": len(m), "tasks": int(m["task"].nunique()),
                                    **state, "seconds": round(time.perf_counter() - t0, 1)})
                    print(f"{key}: {store.get(key)}", flush=True)
                if arm == "select":  # the others ask as many questions
                    questions = store.get(key)["questions"]
    finally:
        subprocess.run([str(REPO / "scripts/labelstudio.sh"), "stop"], env=env)


def run(work: Path, args) -> Store:
    """The whole benchmark in `work` (resumed where it stopped); its store."""
    work.mkdir(parents=True, exist_ok=True)
    store = Store(work)
    if not (work / "data/crossfit/probs.parquet").is_file():
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        stages = ("download", "prepare", "masks", *(("train",) if args.crossfit != "folds"
                                                     else ()), "crossfit")
        build(work, args.pairs, stages, noise=SETTINGS[args.noise],
              crossfit={"method": args.crossfit})
    params = yaml.safe_load((work / "params.yaml").read_text())
    for arm in args.arms:
        if not (snap := work / f"data/relabels/{arm}.csv").is_file():
            shutil.copy(work / "data/relabels/snapshot.csv", snap)
    true, truth_of = truth(work), truth_lookup(work)
    os.chdir(work)  # the tables' paths and the mask store are relative to it
    fs2k, _ = read_fs2k("data/fs2k/FS2K", progress=False)
    noisy = load_table("data/prepared/samples.parquet")
    clean, _ = build_sample_table(fs2k, params["prepare"]["val_fraction"],
                                  params["prepare"]["seed"], truth_snapshot(true))
    fit_ids = set(noisy.loc[noisy["split"].isin(["train", "val"]), "sample_id"])
    flipped = {k: v for k, v in true.items() if k[0] in fit_ids}
    store.put("flipped", {"train+val": len(flipped), "all": len(true)})
    relabel_rounds(work, store, args, noisy, flipped, truth_of)
    if args.no_training:
        return store
    # seed 0 of every point first, so that a whole curve exists early
    first = [s for s in args.seeds if s in args.middle_seeds]
    for s in [*first, *(s for s in args.seeds if s not in first)]:
        scored(store, f"score/none/0/{s}", noisy, params, s, true, args)
        scored(store, f"score/clean/0/{s}", clean, params, s, true, args)
        for rnd in range(1, args.rounds + 1):
            if rnd < args.rounds and s not in args.middle_seeds:
                continue
            for arm in args.arms:
                table = load_table(f"data/tables/{arm}_{rnd}.parquet")
                scored(store, f"score/{arm}/{rnd}/{s}", table, params, s, true, args)
    policy = Policy(**params["registry"]["policy"])
    for arm in args.arms:  # the retrain flow's decisions, round after round (seed 0)
        champion = "score/none/0/0"
        for rnd in range(1, args.rounds + 1):
            challenger = f"score/{arm}/{rnd}/0"
            if store.get(challenger) is None:
                continue  # a round not trained
            d = promotion(policy, store.predictions(champion.replace("/", "_")),
                          store.predictions(challenger.replace("/", "_")))
            d["champion"] = champion
            store.put(f"promotion/{arm}/{rnd}", d)
            if d["reported"]["promote"]:
                champion = challenger
    return store


def arms(data: dict) -> list[str]:
    """The arms this run has, in ARMS' order."""
    return [a for a in ARMS if f"round/{a}/1" in data]


def curve(data: dict, arm: str, rnd: int, key: str) -> np.ndarray:
    """The values of `key` over the seeds trained at this point."""
    prefix = f"score/{arm}/{rnd}/"
    return np.array([v[key] for k, v in data.items() if k.startswith(prefix)])


def cell(values: np.ndarray) -> str:
    """mean ± sd (seeds), or the one value, or - where nothing was trained."""
    if len(values) > 1:
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f} ({len(values)})"
    return f"{values.mean():.3f} (1)" if len(values) else "-"


def pair(reported: np.ndarray, true: np.ndarray) -> str:
    return f"{reported.mean():.3f} / {true.mean():.3f}" if len(true) else "-"


def table(data: dict, rounds: int) -> str:
    """The README's table: per arm and round, what was asked and found, and the model."""
    lines = ["| arm | round | questions (cumulative) | flipped labels found | fixed | right "
             "labels broken | minority flips found | test mean bacc, true labels (seeds) | "
             "minority-class recall | val mean bacc as reported / true | promoted on reported / "
             "true val labels; test gain on true labels |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for arm in ("none", "clean"):
        b, m = curve(data, arm, 0, "mean_bacc"), curve(data, arm, 0, "minority_recall")
        rep, tv = curve(data, arm, 0, "val/reported/mean_bacc"), curve(data, arm, 0,
                                                                       "val/true/mean_bacc")
        lines.append(f"| {arm} | 0 | 0 | - | - | - | - | {cell(b)} | {cell(m)} | "
                     f"{pair(rep, tv)} | - |")
    for arm in arms(data):
        total = 0
        for rnd in range(1, rounds + 1):
            r = data[f"round/{arm}/{rnd}"]
            total += r["questions"]
            b = curve(data, arm, rnd, "mean_bacc")
            m = curve(data, arm, rnd, "minority_recall")
            rep = curve(data, arm, rnd, "val/reported/mean_bacc")
            tv = curve(data, arm, rnd, "val/true/mean_bacc")
            val = f" ({r['val_fixed']} of {r['val_flipped']} in val)" if "val_fixed" in r else ""
            p = data.get(f"promotion/{arm}/{rnd}")
            promo = "-" if p is None else " / ".join(
                "yes" if p[k]["promote"] else "no" for k in ("reported", "true")) + \
                f"; {p['true_test_gain']:+.3f}"
            lines.append(f"| {arm} | {rnd} | {total} | {r['found']} of {r['flipped']} | "
                         f"{r['fixed']}{val} | {r['broken']} | {r['minority_found_recall']:.2f} | "
                         f"{cell(b)} | {cell(m)} | {pair(rep, tv)} | {promo} |")
    return "\n".join(lines)


def plot(data: dict, rounds: int, path: Path, note: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    x = np.arange(rounds + 1)
    for ax, key, title in ((axes[0], "mean_bacc", "test mean balanced accuracy (true labels)"),
                           (axes[1], "minority_recall", "minority-class recall (true labels)")):
        for arm, style in (("none", ":"), ("clean", "--")):
            v = curve(data, arm, 0, key)
            ax.axhline(v.mean(), color="k", ls=style, lw=1,
                       label="noisy labels" if arm == "none" else "clean labels")
            ax.axhspan(v.min(), v.max(), color="k", alpha=0.07)
        for i, arm in enumerate(arms(data)):
            if not len(curve(data, arm, rounds, key)):
                continue  # its rounds only (--no-training)
            trained = [0] + [r for r in range(1, rounds + 1) if len(curve(data, arm, r, key))]
            pts = [curve(data, "none" if r == 0 else arm, r, key) for r in trained]
            mean = np.array([p.mean() for p in pts])
            spread = [mean - [p.min() for p in pts], [p.max() for p in pts] - mean]
            ax.errorbar(np.array(trained) + 0.04 * (i - 1.5), mean, yerr=spread,
                        color=COLOURS[arm], marker="o", capsize=3, label=arm)
        ax.set(title=title, xlabel="round", xticks=x)
    for arm in arms(data):
        for key, style in (("found_recall", "--"), ("fixed_recall", "-")):
            rec = [0.0] + [data[f"round/{arm}/{r}"][key] for r in range(1, rounds + 1)]
            axes[2].plot(x, rec, ls=style, marker="o", color=COLOURS[arm],
                         label=f"{arm}, {key.split('_')[0]}")
    axes[2].set(title="flipped train+val labels asked (--) and fixed (-), share", xlabel="round",
                xticks=x, ylim=(0, None))
    axes[2].legend(fontsize=7)
    axes[0].legend(fontsize=8)
    fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--noise", default="systematic-heavy", choices=list(SETTINGS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--middle-seeds", type=int, nargs="*", default=[0],
                    help="the seeds trained after the rounds before the last")
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())
    ap.add_argument("--img-size", type=int, default=defaults["model"]["img_size"])
    ap.add_argument("--epochs", type=int, default=defaults["train"]["epochs"])
    ap.add_argument("--arms", nargs="+", default=list(ARMS[:3]), choices=ARMS,
                    help="select-val: select with --val-share of its tasks on validation")
    ap.add_argument("--val-share", type=float, default=0.5)
    ap.add_argument("--careful", action="store_true",
                    help="annotators who are never lazy (the same accuracies)")
    ap.add_argument("--no-training", action="store_true",
                    help="only the rounds through Label Studio: what was found and fixed")
    ap.add_argument("--crossfit", default=defaults["crossfit"]["method"],
                    choices=("features", "folds", "both"),
                    help="the crossfit stage's method (the saved runs before features: folds)")
    ap.add_argument("--work", type=Path, help="a folder to build in, kept (resumes)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--image", type=Path, default=IMAGE)
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = ap.parse_args()
    method = "" if args.crossfit == "folds" else f"_{args.crossfit}"
    args.out = (args.out or REPO / f"bench/results/loop_{'careful' if args.careful else 'lazy'}"
                                   f"{method}.json").resolve()
    args.arms = [a for a in ARMS if a in args.arms]  # select first: the others match its count
    if args.arms[0] != "select":
        ap.error("--arms: the select arm sets the number of questions; include it")
    if args.careful:
        ANNOTATORS.update({who: (acc, 0.0) for who, (acc, _) in ANNOTATORS.items()})
    if args.plot_only:
        saved = json.loads(args.out.read_text())
        print(plot(saved["results"], saved["args"]["rounds"], args.image, saved["note"]))
        print(table(saved["results"], saved["args"]["rounds"]))
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        store = run((args.work or Path(tmp)).resolve(), args)
        # a resumed run adds to the minutes of the runs before it
        minutes = (store.get("minutes") or 0) + (time.perf_counter() - started) / 60
        store.put("minutes", round(minutes, 1))
        data = store.data
    precision = data.get("score/none/0/0", {}).get("precision", "no training")
    who = "careful annotators" if args.careful else "annotators as bench_relabel_trust's"
    model = ("the rounds only, no model trained" if args.no_training else
             f"{defaults['model']['backbone']} {defaults['model']['head']}, {args.img_size} px, "
             f"{args.epochs} epochs, {precision}")
    note = (f"{model}; crossfit {args.crossfit}; noise {args.noise}; {who}; "
            f"{os.cpu_count()} cores, {cpu_name()}; {minutes:.0f} min")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "args": {k: (v.name if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "annotators": ANNOTATORS, "note": note,
        "machine": {"cores": os.cpu_count(), "cpu": cpu_name(),
                    "bf16_instructions": cpu_bf16_features(), "torch": torch.__version__},
        "minutes": round(minutes, 1), "results": data}, indent=1) + "\n")
    if not args.no_training:
        print(plot(data, args.rounds, args.image, note))
    print(table(data, args.rounds))
    print(note)


if __name__ == "__main__":
    main()
