#!/usr/bin/env python
"""Can the labels the relabeling loop brings back be trusted? Simulated annotators answer the
pipeline's own tasks through a real Label Studio, for each prefill policy and each number of
annotators per task, and the pull stage decides.

    python bench/bench_relabel_trust.py [--pairs 2104] [--budget 0.1] [--out FILE.json]

On synthetic FS2K whose label noise sits in the minority classes (benchlib.NOISE; the
generator's record is the truth), with params.yaml's settings otherwise:
1. the pipeline's own crossfit and select pick the tasks (`--budget` of the sketches);
2. per configuration, a fresh Label Studio project: the push stage sends the tasks (with
   `push.gold_share` gold tasks among them) with `push.prefill` none, current or model and
   `labelstudio.annotators_per_task` 1, 2 or 3; three annotator accounts
   (scripts/labelstudio.sh add-annotators) answer in turns through the API, taking their next
   task from Label Studio's label stream as the labelling view does, each with an accuracy and
   a laziness (the chance of submitting a question as it started: `esgar.active.simulate`);
   the pull stage turns the answers into decisions (Dawid-Skene, gold questions, flagged
   annotators left out, `pull.min_confidence`);
3. every in-question label that was right before is checked: turned wrong by a decision? every
   one that was wrong: fixed? The same answers are also decided by a plain majority of every
   answer, as the pull stage did before provenance (an answer left as pre-filled counted as a
   decision), to show what the provenance and the consensus change.

Prints the table the README reports, with the machine, and writes the numbers to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from benchlib import REPO, build, free_port, stage_run

from esgar import schema
from esgar.active.answers import read_answers
from esgar.active.consensus import METHODS, decide
from esgar.active.simulate import SimulatedAnnotator
from esgar.integrations import labelstudio as ls

TOKEN = "bench-trust-token-0123456789"
# accuracy, laziness: the most accurate is the one who skims most; the least accurate is keen
ANNOTATORS = {"expert@example.com": (0.95, 0.3), "regular@example.com": (0.85, 0.5),
              "novice@example.com": (0.70, 0.1)}
PREFILLS = ("none", "current", "model")
OVERLAPS = (1, 2, 3)


def start_server(work: Path) -> tuple[dict[str, str], ls.Server]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LABEL_STUDIO_")},
           "LABEL_STUDIO_ENV_FILE": os.devnull, "LABEL_STUDIO_DATA_DIR": str(work / "ls"),
           "LABEL_STUDIO_PORT": str(free_port()), "LABEL_STUDIO_DOCUMENT_ROOT": str(work),
           "LABEL_STUDIO_USERNAME": "owner@example.com",
           "LABEL_STUDIO_PASSWORD": "bench-password", "LABEL_STUDIO_USER_TOKEN": TOKEN,
           "LABEL_STUDIO_ANNOTATORS": " ".join(f"{e}:password-{k}:token-{k}-bench"
                                               for k, e in enumerate(ANNOTATORS))}
    script = str(REPO / "scripts/labelstudio.sh")
    subprocess.run([script, "start"], env=env, check=True)
    subprocess.run([script, "add-annotators"], env=env, check=True)
    return env, ls.Server(f"http://127.0.0.1:{env['LABEL_STUDIO_PORT']}", TOKEN)


def truth_lookup(work: Path):
    table = pd.read_parquet(work / "data/prepared/samples.parquet").set_index("sample_id")
    flipped = {(r.image_name.replace("/", "_"), r.attribute): int(r.true_label)
               for r in pd.read_csv(work / "data/fs2k/label_noise.csv").itertuples()}

    def truth(sid: str, attr: str) -> str:
        k = flipped.get((sid, attr), int(table.loc[sid, f"{attr}_orig"]))
        return schema.BY_NAME[attr].classes[k]
    return truth


def answer_in_turns(server: ls.Server, project: int, truth, seed: int) -> set:
    """The three annotators, one task each in turn, until the label stream has none left;
    the (sample_id, attribute) pairs somebody answered lazily."""
    people = [(ls.connect(ls.Server(server.url, f"token-{k}-bench")),
               SimulatedAnnotator(email, acc, lazy, seed=seed * 10 + k))
              for k, (email, (acc, lazy)) in enumerate(ANNOTATORS.items())]
    while sum(ann.work(lambda c=c: ls.next_task(c, project),
                       lambda task_id, result, seconds, c=c: ls.annotate(
                           c, task_id, result, lead_time=seconds), truth, limit=1)
              for c, ann in people):
        pass
    for c, _ in people:
        c.close()
    return set().union(*(ann.lazy for _, ann in people))


def outcome(decisions: pd.DataFrame, asked: pd.DataFrame, truth, lazy: set) -> dict:
    """What the applied decisions did to the in-question labels (`asked`: sample_id,
    attribute, label as class name, of the real, non-gold questions); `lazy`: the pairs some
    annotator answered lazily (a right label turned wrong there counts as the lazy one's)."""
    applied = decisions[decisions["status"] == "decided"].set_index(["sample_id", "attribute"])
    right_before = wrong_before = turned_wrong = by_lazy = fixed = 0
    for r in asked.itertuples():
        true = truth(r.sample_id, r.attribute)
        now = applied["label"].get((r.sample_id, r.attribute), r.label)
        if r.label == true:
            right_before += 1
            turned_wrong += now != true
            by_lazy += now != true and (r.sample_id, r.attribute) in lazy
        else:
            wrong_before += 1
            fixed += now == true
    decided = [lab == truth(s, a) for (s, a), lab in applied["label"].items()
               if (s, a) in set(zip(asked["sample_id"], asked["attribute"], strict=True))]
    return {"right_before": right_before, "turned_wrong": int(turned_wrong),
            "turned_wrong_where_lazy": int(by_lazy),
            "wrong_before": wrong_before, "fixed": int(fixed),
            "decided": len(decided), "decided_accuracy": float(np.mean(decided))
            if decided else float("nan")}


def one_configuration(work: Path, env: dict, server: ls.Server, prefill: str, overlap: int,
                      truth) -> dict:
    tag = f"{prefill}-{overlap}"
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["labelstudio"].update(project=f"bench trust {tag}", annotators_per_task=overlap)
    params["push"].update(prefill=prefill, out=f"data/labelstudio_{tag}")
    params["pull"].update(snapshot=f"data/relabels/{tag}.csv",
                          answers=f"data/relabels/{tag}.answers.csv",
                          report=f"reports/pull_{tag}.json")
    path = work / f"params_{tag}.yaml"
    path.write_text(yaml.safe_dump(params))
    client_env = {"LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": TOKEN,
                  "LABEL_STUDIO_DOCUMENT_ROOT": str(work),
                  "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    stage_run(work, "push", "--params", str(path), env=client_env)
    client = ls.connect(server)
    project = ls.find_project(client, params["labelstudio"]["project"])
    started = time.perf_counter()
    lazy = answer_in_turns(server, project, truth, seed=OVERLAPS.index(overlap))
    answering = time.perf_counter() - started
    started = time.perf_counter()
    stage_run(work, "pull", "--params", str(path), env=client_env)
    pulling = time.perf_counter() - started
    report = json.loads((work / params["pull"]["report"]).read_text())
    answers, _ = read_answers(ls.export_annotations(client, project)[0])
    client.close()
    snapshot = pd.read_csv(work / params["pull"]["snapshot"], dtype=str,
                           keep_default_na=False)
    real = answers[(answers["gold"] == "") & answers["in_question"]]
    asked = real.drop_duplicates(["sample_id", "attribute"])[["sample_id", "attribute",
                                                              "previous"]]
    asked = asked.rename(columns={"previous": "label"})
    old = answers.assign(chosen=True)  # before provenance: every answer a decision
    singles = {who: float(np.mean([truth(s, a) == x for s, a, x in
                                   zip(g["sample_id"], g["attribute"], g["answer"],
                                       strict=True)]))
               for who, g in real[real["chosen"].astype(bool)].groupby("annotator")}
    flagged = [w for w, a in report["annotators"].items() if a["flagged"]]
    confidence = params["pull"]["min_confidence"]
    label_accuracy = params["pull"]["label_accuracy"]
    return {
        "prefill": prefill, "annotators_per_task": overlap,
        "questions_answered": int(answers["in_question"].sum()),
        "gold_questions_answered": int((answers["gold"] != "").sum()),
        "left_prefilled": int((~answers["chosen"].astype(bool)).sum()),
        "pull": outcome(snapshot, asked, truth, lazy),
        **{m: outcome(decide(answers, m, confidence, flagged, label_accuracy), asked, truth,
                      lazy) for m in METHODS},
        "gold_weighted_without_label": outcome(decide(answers, "gold_weighted", confidence,
                                                      flagged), asked, truth, lazy),
        "old_pull": outcome(decide(old, "majority", 0.0), asked, truth, lazy),
        "single_annotator_accuracy": singles,
        "gold_accuracy": {who: a["gold_accuracy"] for who, a in report["annotators"].items()},
        "flagged": sorted(w for w, a in report["annotators"].items() if a["flagged"]),
        "seconds": {"answering": round(answering, 1), "pull": round(pulling, 1)},
    }


ROWS = {"gold_weighted": "gold-weighted, the label a vote (default)",
        "gold_weighted_without_label": "gold-weighted", "dawid_skene": "Dawid-Skene",
        "majority": "majority"}


def table(results: list[dict]) -> str:
    lines = ["| prefill | annotators per task | answers to questions in doubt | consensus | "
             "right labels turned wrong (of them, where an answer was lazy) | wrong labels fixed "
             "| decisions applied (right) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for key, name in [*ROWS.items(), ("old_pull", "before provenance: every answer a "
                                                      "vote, majority")]:
            p = r[key]
            lines.append(
                f"| {r['prefill']} | {r['annotators_per_task']} | {r['questions_answered']} | "
                f"{name} | {p['turned_wrong']} of {p['right_before']} "
                f"({p['turned_wrong_where_lazy']}) | {p['fixed']} of {p['wrong_before']} | "
                f"{p['decided']} ({p['decided_accuracy']:.3f}) |")
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (Linux), for the figures' machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2104)
    ap.add_argument("--budget", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/relabel_trust.json")
    ap.add_argument("--careful", action="store_true",
                    help="annotators who are never lazy (the same accuracies), blind only")
    ap.add_argument("--work", type=Path, help="a folder to build in (kept; a folder built "
                                              "before is reused: its data, crossfit, tasks)")
    args = ap.parse_args()
    if args.careful:
        ANNOTATORS.update({who: (acc, 0.0) for who, (acc, _) in ANNOTATORS.items()})
    prefills = ("none",) if args.careful else PREFILLS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-trust-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        built = (work / "data/selection/manifest.parquet").is_file()
        if not built:
            subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        # params.yaml as this repository's (a reused folder's settings follow the code)
        build(work, args.pairs, () if built else ("download", "prepare", "masks", "crossfit",
                                                  "select"), select={"budget": args.budget},
              crossfit={"method": "folds"})  # as measured
        truth = truth_lookup(work)
        env, server = start_server(work)
        results = []
        try:
            for prefill in prefills:
                for overlap in OVERLAPS:
                    results.append(one_configuration(work, env, server, prefill, overlap,
                                                     truth))
                    print(prefill, overlap, json.dumps({m: results[-1][m] for m in ROWS}),
                          flush=True)
        finally:
            subprocess.run([str(REPO / "scripts/labelstudio.sh"), "stop"], env=env)
            shutil.rmtree(work / "ls", ignore_errors=True)
    elapsed = time.perf_counter() - started
    machine = f"{os.cpu_count()} cores, {platform.machine()} {cpu_model()}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"annotators": ANNOTATORS, "pairs": args.pairs,
                                    "budget": args.budget, "machine": machine,
                                    "seconds": round(elapsed), "results": results},
                                   indent=1) + "\n")
    print("\n" + table(results))
    print("\n| annotator | accuracy, laziness (simulated) | accuracy on gold questions | "
          "accuracy of their chosen answers on the real questions |\n|---|---|---|---|")
    for who, (acc, lazy) in ANNOTATORS.items():
        gold = [r["gold_accuracy"].get(who) for r in results]
        real = [r["single_annotator_accuracy"].get(who) for r in results]
        print(f"| {who} | {acc}, {lazy} | "
              + ", ".join("-" if g is None else f"{g:.2f}" for g in gold) + " | "
              + ", ".join("-" if x is None else f"{x:.2f}" for x in real) + " |")
    print(f"\n{elapsed / 60:.1f} min on {machine}")


if __name__ == "__main__":
    main()
