"""Between the selection and Label Studio: the tasks to push, gold tasks among them.

A task shows one sketch, its photo and an overlay of the regions in question, and asks all
seven attributes. What each question starts from is the push's `prefill` policy:

- `none` (blind): the attributes in question start empty; they are required, so the annotator
  must choose. The others start from the current label (context to check, not to confirm).
- `current`: the attributes in question start from the current label too.
- `model`: they start from the model's guess (the behaviour that invites automation bias: an
  answer left as it was becomes the model's word).

The task's text names the attributes to check; with `hints` it adds the current label and the
model's guess. Its data keeps the current labels (`labels`), the questions (`questions`) and
what each question started from (`prefilled`), so the answers can be read back with their
provenance (`esgar.active.answers`).

Gold tasks are sketches whose labels are known (decided with high confidence in an earlier
round, or the synthetic generator's truth). They look exactly like the others; their answer key
is in the task's `meta` (`{"gold": {attribute: class}}`), which the labelling view never shows.
They measure each annotator (`esgar.active.consensus`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from esgar import schema

__all__ = ["IMAGE", "PREFILLS", "build_tasks", "choices_result", "gold_candidates", "interleave",
           "pick_gold", "prefilled_answers", "question_text"]

PREFILLS = ("none", "current", "model")
IMAGE = "sketch"  # the label config's Image every question points at
TITLES = {"hair": "hair", "hair_color": "hair colour", "gender": "gender", "earring": "earring",
          "smile": "smile", "frontal_face": "head pose", "style": "drawing style"}


def choices_result(answers: Mapping[str, str | Sequence[str]], to_name: str = IMAGE,
                   origins: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """A result answering Choices questions: {question (a Choices `name`): its choice, or a list
    of choices for a multiple-choice question} -> Label Studio's regions on the object `to_name`
    (the questions' `toName`). A choice is its `alias` where it has one, else its `value`.
    `origins`: {question: origin}, the mark the labelling view gives each item (`manual`,
    `prediction`, `prediction-changed`), for a client that answers as that view would."""
    origins = origins or {}
    return [{"from_name": q, "to_name": to_name, "type": "choices",
             "value": {"choices": [a] if isinstance(a, str) else list(a)},
             **({"origin": origins[q]} if q in origins else {})}
            for q, a in answers.items()]


def prefilled_answers(questions: Sequence[str], guess: Mapping[str, str],
                      labels: Mapping[str, str], prefill: str) -> dict[str, str]:
    """{attribute: class name} a task starts from (see the module); attributes in question are
    absent under `none`."""
    if prefill not in PREFILLS:
        raise ValueError(f"prefill {prefill!r}: use one of {', '.join(PREFILLS)}")
    out = {}
    for a in schema.ATTRIBUTE_NAMES:
        if a not in questions:
            out[a] = labels[a]
        elif prefill == "current":
            out[a] = labels[a]
        elif prefill == "model":
            out[a] = guess[a]
    return out


def title(attribute: str) -> str:
    """How a task names an attribute: FS2K's words, else the attribute's name in words."""
    return TITLES.get(attribute, attribute.replace("_", " ").lower())


def question_text(questions: Sequence[str], guess: Mapping[str, str],
                  labels: Mapping[str, str], hints: bool) -> str:
    """The task's line naming what to check (with the label and the guess under `hints`)."""
    if hints:
        parts = [f"{title(a)} (labelled {labels[a]}, model says {guess[a]})" for a in questions]
    else:
        parts = [title(a) for a in questions]
    return "Check: " + "; ".join(parts)


def build_tasks(manifest: pd.DataFrame, guesses: Mapping[str, Mapping[str, str]],
                labels: Mapping[str, Mapping[str, str]], urls: Callable[[str], dict[str, str]],
                model_version: str, prefill: str = "none", hints: bool = False,
                gold: Mapping[str, Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
    """One task per sketch of the manifest (task, sample_id, attribute, score), in the
    manifest's task order.

    guesses / labels: {sample_id: {attribute: class name}}, the model's and the current labels
    of all seven attributes; urls(sample_id) -> {"sketch", "photo", "overlay"} image URLs;
    gold: {sample_id: {attribute: true class name}} for the gold tasks among them. Each task
    carries one prediction, what it starts from (`prefilled_answers`), scored by its most
    suspect label (gold tasks: 0)."""
    gold = gold or {}
    tasks = []
    for _, rows in manifest.sort_values(["task", "attribute"]).groupby("task", sort=True):
        sid = rows["sample_id"].iloc[0]
        questions = [a for a in schema.ATTRIBUTE_NAMES if a in set(rows["attribute"])]
        start = prefilled_answers(questions, guesses[sid], labels[sid], prefill)
        task = {
            "data": {"sample_id": sid, **urls(sid), "questions": questions,
                     "labels": dict(labels[sid]), "prefilled": start, "prefill": prefill,
                     "model_version": model_version,
                     "in_question": question_text(questions, guesses[sid], labels[sid], hints)},
            "predictions": [{"model_version": model_version,
                             "score": float(rows["score"].max()),
                             "result": choices_result(start)}],
        }
        if sid in gold:
            task["meta"] = {"gold": {a: gold[sid][a] for a in questions}}
        tasks.append(task)
    return tasks


def gold_candidates(table: pd.DataFrame, snapshot: pd.DataFrame,
                    noise_log: pd.DataFrame | None, min_confidence: float,
                    min_annotators: int) -> pd.DataFrame:
    """(sample_id, attribute, truth: class name) of labels known to be right: decisions of
    `snapshot` (`esgar.active.relabels`) with status decided, a `confidence` of at least
    `min_confidence` and at least `min_annotators` answers; and, when `noise_log` (the
    synthetic generator's `label_noise.csv`: image_name, attribute, true_label) is given,
    every train and val label of `table` with the generator's truth. The table's `<a>_orig`
    columns hold the labels as the dataset gave them."""
    rows = []
    if noise_log is not None:
        flipped = {(str(r.image_name).replace("/", "_"), str(r.attribute)): int(r.true_label)
                   for r in noise_log.itertuples()}
        fit = table[table["split"].isin(["train", "val"])]
        for a in schema.ATTRIBUTES:
            for sid, orig in zip(fit["sample_id"], fit[f"{a.name}_orig"], strict=True):
                rows.append((sid, a.name, a.classes[flipped.get((sid, a.name), int(orig))]))
    if len(snapshot) and {"confidence", "votes"} <= set(snapshot.columns):
        sure = snapshot[(snapshot["status"] == "decided")
                        & (pd.to_numeric(snapshot["confidence"], errors="coerce")
                           >= min_confidence)
                        & (pd.to_numeric(snapshot["votes"], errors="coerce") >= min_annotators)]
        known = set(table["sample_id"])
        for r in sure.itertuples():
            attr = schema.BY_NAME.get(r.attribute)
            if attr is not None and r.sample_id in known and r.label in attr.classes:
                rows.append((r.sample_id, r.attribute, r.label))
    out = pd.DataFrame(rows, columns=["sample_id", "attribute", "truth"])
    return out.drop_duplicates(["sample_id", "attribute"], keep="last").reset_index(drop=True)


def pick_gold(manifest: pd.DataFrame, candidates: pd.DataFrame, share: float, seed: int
              ) -> pd.DataFrame:
    """Gold tasks to add to `manifest` (select's: task, sample_id, attribute, score...): about
    `share` of all tasks, on sketches not in the manifest. Each copies the attributes of a
    real task drawn at random (so gold looks like the rest), keeping those whose truth is known,
    else as many known ones. Returns manifest rows (task numbers after the manifest's, score 0)
    with a `truth` column; the caller interleaves them."""
    columns = ["task", "sample_id", "attribute", "score", "truth"]
    n_real = manifest["task"].nunique()
    n_gold = int(round(share * n_real / (1 - share))) if 0 < share < 1 else 0
    pool = candidates[~candidates["sample_id"].isin(set(manifest["sample_id"]))]
    if n_gold == 0 or pool.empty or n_real == 0:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed)
    known = {sid: dict(zip(g["attribute"], g["truth"], strict=True))
             for sid, g in pool.groupby("sample_id", sort=True)}
    sketches = list(known)
    chosen = rng.choice(len(sketches), size=min(n_gold, len(sketches)), replace=False)
    templates = [list(g["attribute"]) for _, g in manifest.groupby("task", sort=True)]
    rows, first = [], int(manifest["task"].max()) + 1
    for k, i in enumerate(sorted(chosen)):
        sid = sketches[i]
        template = templates[rng.integers(len(templates))]
        questions = [a for a in template if a in known[sid]]
        if not questions:
            have = sorted(known[sid])
            questions = list(rng.choice(have, size=min(len(template), len(have)),
                                        replace=False))
        rows += [{"task": first + k, "sample_id": sid, "attribute": a, "score": 0.0,
                  "truth": known[sid][a]} for a in questions]
    return pd.DataFrame(rows, columns=columns)


def interleave(manifest: pd.DataFrame, gold: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`manifest` and `gold` (from `pick_gold`) as one manifest whose `task` numbers put the gold
    tasks at random places among the real ones, which keep their order (most suspect first)."""
    real = sorted(manifest["task"].unique())
    fake = sorted(gold["task"].unique()) if len(gold) else []
    rng = np.random.default_rng(seed)
    slots = set(rng.choice(len(real) + len(fake), size=len(fake), replace=False).tolist())
    order, r, g = {}, iter(real), iter(fake)
    for position in range(len(real) + len(fake)):
        order[next(g) if position in slots else next(r)] = position
    both = pd.concat([manifest, gold], ignore_index=True) if len(gold) else manifest.copy()
    both["task"] = both["task"].map(order)
    return both.sort_values(["task", "attribute"], kind="stable").reset_index(drop=True)
