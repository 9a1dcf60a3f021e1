"""Tasks from the selection, answers with their provenance, and decisions from several
annotators (no server: the exported shape of `esgar.integrations.labelstudio.export_annotations`;
the server's own marks are checked in Chromium, tests/test_stages_relabel.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esgar import schema
from esgar.active.answers import read_answers
from esgar.active.consensus import annotator_quality, decide
from esgar.active.relabels import apply_relabels, read_snapshot
from esgar.active.simulate import SimulatedAnnotator
from esgar.active.tasks import (
    build_tasks,
    choices_result,
    gold_candidates,
    interleave,
    pick_gold,
)

LABELS = {a.name: a.classes[0] for a in schema.ATTRIBUTES}
S = "photo1_image0001"


def manifest() -> pd.DataFrame:
    return pd.DataFrame([
        {"task": 0, "sample_id": S, "attribute": "hair", "score": 0.4},
        {"task": 0, "sample_id": S, "attribute": "earring", "score": 0.9},
        {"task": 1, "sample_id": "photo1_image0002", "attribute": "smile", "score": -0.1},
    ])


GUESSES = {sid: {**LABELS, "hair": "without_hair", "earring": "without_earring",
                 "gender": "female", "smile": "without_smile"}
           for sid in (S, "photo1_image0002")}


def tasks_for(prefill, hints=False, gold=None):
    labels = {sid: dict(LABELS) for sid in GUESSES}
    return build_tasks(manifest(), GUESSES, labels,
                       lambda sid: {"sketch": f"/s/{sid}", "photo": "/p", "overlay": "/o"}, "v1",
                       prefill, hints, gold)


def started(task) -> dict[str, str]:
    return {r["from_name"]: r["value"]["choices"][0] for r in task["predictions"][0]["result"]}


def test_blind_tasks_leave_the_questions_in_doubt_empty():
    tasks = tasks_for("none")
    assert [t["data"]["sample_id"] for t in tasks] == [S, "photo1_image0002"]
    first = tasks[0]
    assert first["data"]["questions"] == ["hair", "earring"]  # schema order
    start = started(first)
    assert "hair" not in start and "earring" not in start  # asked blind
    assert start["gender"] == "male"  # context: the current label, never the guess
    assert first["data"]["prefilled"] == start and first["data"]["prefill"] == "none"
    assert first["data"]["in_question"] == "Check: hair; earring"  # no label, no guess
    assert first["predictions"][0]["score"] == 0.9 and "meta" not in first


def test_other_prefills_and_hints():
    assert started(tasks_for("current")[0])["earring"] == "with_earring"
    assert started(tasks_for("model")[0])["earring"] == "without_earring"
    assert "earring (labelled with_earring, model says without_earring)" in \
        tasks_for("none", hints=True)[0]["data"]["in_question"]
    with pytest.raises(ValueError, match="prefill 'guess'"):
        tasks_for("guess")


def test_gold_tasks_carry_their_key_in_meta_only():
    task = tasks_for("none", gold={S: {"hair": "with_hair", "earring": "without_earring",
                                       "gender": "male"}})[0]
    assert task["meta"] == {"gold": {"hair": "with_hair", "earring": "without_earring"}}
    assert "gold" not in str(task["data"]) and "without_earring" not in str(task["data"])


def truth_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"photo1_image{i:04d}" for i in range(40)]
    table = pd.DataFrame({"sample_id": ids, "split": ["train"] * 30 + ["test"] * 10,
                          **{f"{a}_orig": [0] * 40 for a in LABELS}})
    noise = pd.DataFrame([{"image_name": "photo1/image0003", "split": "train",
                           "attribute": "earring", "true_label": 1, "noisy_label": 0}])
    return table, noise


def test_gold_comes_from_the_generators_truth_and_sure_decisions():
    table, noise = truth_table()
    snap = pd.DataFrame([
        {"sample_id": "photo1_image0005", "attribute": "smile", "label": "without_smile",
         "status": "decided", "confidence": "0.99", "votes": "2"},
        {"sample_id": "photo1_image0006", "attribute": "smile", "label": "without_smile",
         "status": "decided", "confidence": "0.80", "votes": "2"},  # not sure enough
        {"sample_id": "photo1_image0007", "attribute": "smile", "label": "without_smile",
         "status": "decided", "confidence": "0.99", "votes": "1"}])  # one annotator
    only_snap = gold_candidates(table, snap, None, 0.95, 2)
    assert only_snap.values.tolist() == [["photo1_image0005", "smile", "without_smile"]]
    both = gold_candidates(table, snap, noise, 0.95, 2).set_index(["sample_id", "attribute"])
    assert both.loc[("photo1_image0003", "earring"), "truth"] == "without_earring"  # the truth
    assert both.loc[("photo1_image0004", "earring"), "truth"] == "with_earring"
    assert both.loc[("photo1_image0005", "smile"), "truth"] == "without_smile"
    assert "photo1_image0035" not in set(both.index.get_level_values(0))  # test split


def test_gold_looks_like_the_rest_and_is_interleaved():
    table, noise = truth_table()
    candidates = gold_candidates(table, table.iloc[:0], noise, 0.95, 2)
    real = pd.DataFrame([{"task": k, "sample_id": f"photo1_image{k:04d}",
                          "attribute": "earring", "score": 1.0 - k / 10} for k in range(9)])
    gold = pick_gold(real, candidates, 0.1, seed=0)
    assert gold["task"].nunique() == 1 and set(gold["attribute"]) == {"earring"}
    assert not set(gold["sample_id"]) & set(real["sample_id"])
    both = interleave(real, gold.drop(columns="truth"), seed=0)
    assert sorted(both["task"].unique()) == list(range(10))
    assert list(both[~both["sample_id"].isin(gold["sample_id"])]["sample_id"]) == \
        list(real["sample_id"])  # the real ones keep their order
    assert pick_gold(real, candidates, 0.0, seed=0).empty


def task(annotations, questions=("earring",), task_id=7, prefill="none", gold=None):
    start = {a: LABELS[a] for a in LABELS if a not in questions}
    if prefill == "model":
        start.update({a: GUESSES[S][a] for a in questions})
    return {"id": task_id, "data": {"sample_id": S, "questions": list(questions),
                                    "labels": dict(LABELS), "prefilled": start,
                                    "prefill": prefill},
            "meta": {"gold": gold} if gold else {}, "annotations": annotations}


def answer(who, when, cancelled=False, unsure=False, origins=None, seconds=6.0, **answers):
    chosen = {**LABELS, **answers}
    result = choices_result(chosen)
    origins = origins or {}
    for item in result:
        item["origin"] = origins.get(item["from_name"], "prediction"
                                     if item["from_name"] not in answers else "manual")
    if unsure:
        result.append({"from_name": "unsure", "to_name": "sketch", "type": "choices",
                       "value": {"choices": ["unsure"]}})
    return {"id": abs(hash((who, when))) % 100000, "result": result, "completed_by": who,
            "created_at": when, "updated_at": when, "was_cancelled": cancelled,
            "lead_time": seconds}


def test_answers_keep_who_when_how_long_and_whether_chosen():
    rows, problems = read_answers([task([answer("a@x", "2026-11-25T10:00:00Z",
                                                earring="without_earring", gender="female")])])
    assert problems == []
    by = rows.set_index("attribute")
    assert list(by.index) == ["earring", "gender"]  # in question, and a change on purpose
    assert by.loc["earring", "origin"] == "manual" and bool(by.loc["earring", "chosen"])
    assert by.loc["earring", "annotator"] == "a@x" and by.loc["earring", "seconds"] == 6.0
    assert by.loc["earring", "annotated_at"] == "2026-11-25T10:00:00.000000Z"
    assert bool(by.loc["earring", "in_question"]) and not bool(by.loc["gender", "in_question"])


def test_a_prefill_submitted_unchanged_is_no_decision():
    """The careless annotator of issue 19: the model's guess pre-filled, Submit pressed."""
    lazy = answer("a@x", "2026-11-25T10:00:00Z", earring="without_earring",
                  origins={"earring": "prediction"})
    rows, _ = read_answers([task([lazy], prefill="model")])
    assert rows[["attribute", "answer", "origin", "chosen"]].values.tolist() == [
        ["earring", "without_earring", "prediction", False]]
    decisions = decide(rows, "dawid_skene", 0.8)
    assert decisions.empty  # recorded in the answers, never a decision
    # an API client that sends no marks: an answer equal to the pre-fill is not chosen either
    unmarked = answer("b@x", "2026-11-25T10:00:00Z", earring="without_earring")
    for item in unmarked["result"]:
        del item["origin"]
    rows, _ = read_answers([task([unmarked], prefill="model")])
    assert not rows.set_index("attribute").loc["earring", "chosen"]


def test_a_confirmation_chosen_blind_is_a_decision():
    rows, _ = read_answers([task([answer("a@x", "2026-11-25T10:00:00Z",
                                         origins={"earring": "manual"})])])
    d = decide(rows, "majority", 0.8)
    assert d[["attribute", "label", "status", "votes"]].values.tolist() == [
        ["earring", "with_earring", "decided", 1]]


def votes_task(*votes, task_id=7, gold=None):
    return task([answer(f"{w}@x", f"2026-11-25T1{k}:00:00Z", earring=v)
                 for k, (w, v) in enumerate(votes)], task_id=task_id, gold=gold)


def test_majority_ties_unsure_skips_and_one_answer_per_annotator():
    tasks = [votes_task(("a", "without_earring"), ("b", "without_earring"),
                        ("c", "with_earring"))]
    tasks[0]["annotations"].append(answer("d@x", "2026-11-25T13:00:00Z", cancelled=True,
                                          earring="with_earring"))
    rows, _ = read_answers(tasks)
    d = decide(rows, "majority", 0.6).set_index("attribute")
    assert d.loc["earring", "label"] == "without_earring"  # 2 against 1, the skip ignored
    assert d.loc["earring", "annotator"] == "a@x+b@x+c@x" and d.loc["earring", "votes"] == 3
    assert d.loc["earring", "confidence"] == pytest.approx(2 / 3)
    assert decide(rows, "majority", 0.8).loc[0, "status"] == "low_confidence"

    tie, _ = read_answers([votes_task(("a", "without_earring"), ("b", "with_earring"))])
    assert decide(tie, "majority", 0.5)[["label", "status"]].values.tolist() == [["", "tie"]]

    unsure, _ = read_answers([task([answer("a@x", "2026-11-25T10:00:00Z", unsure=True,
                                           earring="without_earring")])])
    assert decide(unsure, "majority", 0.5)[["attribute", "status"]].values.tolist() == [
        ["earring", "unsure"]]

    twice = votes_task(("a", "with_earring"), ("a", "without_earring"))
    rows, problems = read_answers([twice])
    assert rows["answer"].tolist() == ["without_earring"]  # the later answer counts
    assert problems == ["task 7: a@x answered it more than once; the later answer (annotation "
                        f"{twice['annotations'][1]['id']}) counts"]


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_an_answer_that_is_no_class_is_reported_and_left_out():
    rows, problems = read_answers([task([answer("a@x", "2026-11-25T10:00:00Z",
                                                earring="maybe")])])
    assert rows.empty
    assert problems == ["task 7 (photo1_image0001): answer 'maybe' is no class of earring "
                        "(with_earring, without_earring); left out"]


@pytest.mark.bad_input(stage="pull", kind="relabel")
def test_an_annotation_by_a_removed_account_is_kept_but_no_vote():
    gone = answer(None, "2026-11-25T10:00:00Z", earring="without_earring")
    rows, problems = read_answers([task([gone])])
    assert rows["annotator"].tolist() == [""]
    assert problems == [f"task 7 ({S}): annotation {gone['id']} is by an account removed "
                        "since; kept in the answers, no vote"]
    assert decide(rows, "dawid_skene", 0.5).empty
    assert annotator_quality(rows, 0.7, 1, 2.0).empty


def simulated_answers(accuracies, n=150, n_gold=30, seed=0, laziness=0.0):
    """Answers of annotators with known accuracies on n earring questions, the first n_gold of
    them gold; and the truth."""
    rng = np.random.default_rng(seed)
    truth = {f"s{i:03d}": ("with_earring" if rng.random() < 0.3 else "without_earring")
             for i in range(n)}
    tasks = []
    for i, (sid, t) in enumerate(truth.items()):
        gold = {"earring": t} if i < n_gold else None
        anns = []
        for k, (who, acc) in enumerate(accuracies.items()):
            ann = SimulatedAnnotator(who, acc, laziness, seed=seed * 1000 + i * 10 + k)
            data = task([], prefill="none")["data"] | {"sample_id": sid}
            result, seconds = ann.answer(data, lambda s, a: truth[s] if a == "earring"
                                         else LABELS[a])
            anns.append({"id": i * 10 + k, "result": result, "completed_by": who,
                         "created_at": "2026-11-25T10:00:00Z",
                         "updated_at": "2026-11-25T10:00:00Z", "was_cancelled": False,
                         "lead_time": seconds})
        tasks.append({"id": i, "data": task([])["data"] | {"sample_id": sid},
                      "meta": {"gold": gold} if gold else {}, "annotations": anns})
    rows, problems = read_answers(tasks)
    assert problems == []
    return rows, truth


def accuracy(decisions: pd.DataFrame, truth: dict) -> float:
    d = decisions[decisions["status"] == "decided"]
    return float(np.mean([truth[s] == label for s, label in zip(d["sample_id"], d["label"],
                                                                 strict=True)]))


def test_gold_measures_each_annotator_and_the_careless_one_is_left_out():
    rows, truth = simulated_answers({"good@x": 0.95, "fair@x": 0.85, "poor@x": 0.55})
    q = annotator_quality(rows, min_gold_accuracy=0.7, min_gold_answers=5, min_seconds=2.0)
    assert q.loc["good@x", "gold_accuracy"] > q.loc["fair@x", "gold_accuracy"] > \
        q.loc["poor@x", "gold_accuracy"]
    assert q["gold_answers"].tolist() == [30, 30, 30]
    assert q["flagged"].to_dict() == {"fair@x": False, "good@x": False, "poor@x": True}
    assert q.loc["good@x", "agreement_kappa"] > q.loc["poor@x", "agreement_kappa"]
    decided = decide(rows, "dawid_skene", 0.8, left_out=q.index[q["flagged"]])
    assert "poor@x" not in "+".join(decided["annotator"])
    assert len(decided) == 120  # the 30 gold questions decide nothing


def single_accuracies(rows: pd.DataFrame, truth: dict) -> dict[str, float]:
    return {who: float(np.mean([truth[s] == a for s, a in
                                zip(g["sample_id"], g["answer"], strict=True)]))
            for who, g in rows[rows["gold"] == ""].groupby("annotator")}


def test_consensus_of_comparable_annotators_beats_the_best_of_them():
    rows, truth = simulated_answers({"a@x": 0.85, "b@x": 0.8, "c@x": 0.75}, n=400,
                                    n_gold=40, seed=1)
    best = max(single_accuracies(rows, truth).values())
    assert accuracy(decide(rows, "dawid_skene", 0.0), truth) > best + 0.02


def test_dawid_skene_weighs_a_strong_annotator_over_two_weak_ones():
    rows, truth = simulated_answers({"strong@x": 0.95, "weak1@x": 0.6, "weak2@x": 0.6},
                                    n=400, n_gold=40, seed=3)
    ds, majority = decide(rows, "dawid_skene", 0.0), decide(rows, "majority", 0.0)
    assert accuracy(ds, truth) > accuracy(majority, truth) + 0.05


def test_one_annotators_confidence_follows_their_gold_accuracy():
    rows, truth = simulated_answers({"fair@x": 0.8}, n=200, n_gold=40, seed=2)
    d = decide(rows, "dawid_skene", 0.9)
    assert (d["confidence"] < 0.95).all()  # not blind trust: gold showed 1 in 5 answers wrong
    assert set(d["status"]) <= {"decided", "low_confidence"}


def test_fast_submissions_are_counted():
    rows, _ = simulated_answers({"lazy@x": 0.9}, n=20, n_gold=0, laziness=1.0)
    q = annotator_quality(rows, 0.7, 5, min_seconds=2.0)
    assert q.loc["lazy@x", "fast"] == 20  # every one under two seconds


def test_same_answers_same_bytes_and_the_decisions_apply(tmp_path):
    tasks = [votes_task(("a", "without_earring")),
             task([answer("b@x", "2026-11-26T10:00:00Z", origins={"hair": "manual"})],
                  questions=("hair",), task_id=9)]
    first = decide(read_answers(tasks)[0], "dawid_skene", 0.5)
    second = decide(read_answers(list(reversed(tasks)))[0], "dawid_skene", 0.5)
    assert first.to_csv(index=False) == second.to_csv(index=False)
    path = tmp_path / "snapshot.csv"
    first.to_csv(path, index=False)
    table = pd.DataFrame({"sample_id": [S], **{f"{a}_orig": [0] for a in LABELS}})
    out, warnings = apply_relabels(table, read_snapshot(path))
    assert warnings == []
    assert out.loc[0, "earring"] == 1 and out.loc[0, "earring_source"] == "relabel"
    assert out.loc[0, "hair"] == 0 and out.loc[0, "hair_source"] == "relabel"  # confirmed


def test_gold_weighted_a_change_must_outweigh_the_label():
    """One answer of an annotator not yet measured cannot change a label; two measured ones
    who agree can; a measured annotator's confirmation is decided."""
    rows, truth = simulated_answers({"a@x": 1.0, "b@x": 1.0}, n=60, n_gold=20, seed=4)
    real = {s: t for s, t in truth.items() if s >= "s020"}  # s000..s019 are gold
    changed = [s for s, t in real.items() if t != "with_earring"]  # every label: with_earring
    d = decide(rows, "gold_weighted", 0.9, label_accuracy=0.75).set_index("sample_id")
    assert (d.loc[changed, "label"] == "without_earring").all()
    assert (d.loc[changed, "status"] == "decided").all()  # two measured annotators agree
    alone = rows[rows["annotator"] == "a@x"]
    unmeasured = alone.assign(gold="")  # the same answers, no gold to measure them on
    d = decide(unmeasured, "gold_weighted", 0.9, label_accuracy=0.75).set_index("sample_id")
    assert (d.loc[changed, "status"] == "low_confidence").all()
    assert (d.loc[changed, "label"] == "with_earring").all()  # it leans to the label
    kept = [s for s, t in real.items() if t == "with_earring"]
    d = decide(alone, "gold_weighted", 0.9, label_accuracy=0.75).set_index("sample_id")
    assert (d.loc[kept, "status"] == "decided").all()  # a measured confirmation
