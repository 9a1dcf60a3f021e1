"""From several annotators' answers to one decision per sketch x attribute, with a confidence,
each annotator measured on gold questions.

    quality = annotator_quality(answers, min_gold_accuracy=0.7, min_gold_answers=5,
                                min_seconds=2.0)
    decisions = decide(answers, "gold_weighted", min_confidence=0.85,
                       left_out=quality.index[quality["flagged"]], label_accuracy=0.75)

`answers` is `esgar.active.answers.read_answers`' table. A vote is an answer the annotator
chose (never one left as pre-filled), not marked unsure, by an account that still exists and is
not left out; an annotator's latest per sketch x attribute.

Three ways to turn votes into a decision, compared in bench/bench_relabel_trust.py:

- `gold_weighted` (the default): each vote weighs what its annotator's accuracy on the gold
  questions says (smoothed towards 0.7 while there are few), under a one-coin model (right with
  probability p, else any other class alike); classes start equally likely. With
  `label_accuracy` the current label counts as one more vote, so a label changes only when the
  answers outweigh it: one answer of a well-measured annotator, or several that agree.
- `dawid_skene`: crowd-kit's Dawid-Skene per attribute, each annotator's confusion matrix
  estimated by EM from all their answers, gold questions pinned to their class. With one or two
  answers per question the EM mostly trusts each annotator (the benchmark measured it
  overconfident there), which is why it is not the default.
- `majority`: the plain majority (the baseline).

The confidence of a decision is the posterior probability of its class (majority: its share of
the votes); one below `min_confidence` is recorded (`low_confidence`) and not applied.

An annotator whose accuracy on gold questions is clearly under `min_gold_accuracy` (its 90 %
upper bound is, once they answered `min_gold_answers` gold questions) is flagged, and `decide`
leaves their votes out: weighing them down would still let two careless annotators who agree
carry a decision.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.stats import beta

from esgar import schema
from esgar.active.answers import REMOVED

__all__ = ["DECISION_COLUMNS", "METHODS", "QUALITY_COLUMNS", "annotator_quality", "decide",
           "gold_accuracy", "votes"]

METHODS = ("gold_weighted", "dawid_skene", "majority")
# What an annotator not yet measured on gold is taken to be: as if they had answered 4 gold
# questions, 70 % right (Beta(2.8, 1.2)). On a two-class question at the defaults
# (label_accuracy 0.75, min_confidence 0.85), two such answers that agree against the current
# label reach 0.65 and change nothing; one annotator right on 20 of 20 gold questions (0.95)
# alone reaches 0.86, two right on 10 of 10 (0.91 each) reach 0.97.
PRIOR_RIGHT, PRIOR_WRONG = 2.8, 1.2
DECISION_COLUMNS = ["sample_id", "attribute", "label", "previous", "annotator", "annotated_at",
                    "task_id", "status", "confidence", "votes"]
QUALITY_COLUMNS = ["answers", "chosen", "left_prefilled", "unsure", "gold_answers",
                   "gold_correct", "gold_accuracy", "agreement_kappa", "agreement_n", "fast",
                   "median_seconds", "flagged", "why"]


def votes(answers: pd.DataFrame, left_out: Iterable[str] = ()) -> pd.DataFrame:
    """The answers that are votes (see the module), annotators in `left_out` removed; an
    annotator's latest answer per sketch x attribute."""
    out = set(left_out)
    keep = (answers["chosen"].astype(bool) & ~answers["unsure"].astype(bool)
            & (answers["annotator"] != REMOVED) & ~answers["annotator"].isin(out))
    # One vote per annotator and sketch x attribute: asked again in a later round, the later
    # answer counts.
    return (answers[keep].sort_values("annotated_at", kind="stable")
            .drop_duplicates(["sample_id", "attribute", "annotator"], keep="last")
            .sort_index())


def _kappa(pairs: list[tuple[str, str]]) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(pairs) < 2:
        return float("nan")
    a, b = zip(*pairs, strict=True)
    if len(set(a) | set(b)) < 2:
        return 1.0  # every answer the same class: perfect, if uninformative, agreement
    return float(cohen_kappa_score(a, b))


def _agreement(v: pd.DataFrame, annotator: str) -> tuple[float, int]:
    """Cohen's kappa between `annotator`'s votes and the majority of the OTHER annotators on the
    same sketch x attribute (ties among the others skipped), over all attributes."""
    pairs = []
    mine = v[v["annotator"] == annotator]
    others = v[v["annotator"] != annotator]
    groups = {k: list(g["answer"]) for k, g in others.groupby(["sample_id", "attribute"])}
    for row in mine.itertuples():
        theirs = groups.get((row.sample_id, row.attribute))
        if not theirs:
            continue
        top = Counter(theirs).most_common(2)
        if len(top) > 1 and top[0][1] == top[1][1]:
            continue
        pairs.append((f"{row.attribute}={row.answer}", f"{row.attribute}={top[0][0]}"))
    return _kappa(pairs), len(pairs)


def annotator_quality(answers: pd.DataFrame, min_gold_accuracy: float, min_gold_answers: int,
                      min_seconds: float) -> pd.DataFrame:
    """One row per annotator (index: their email; removed accounts left out), columns
    `QUALITY_COLUMNS`: answers recorded, chosen, left as pre-filled, unsure; gold questions
    answered (chosen answers only), right, and the accuracy; Cohen's kappa with the other
    annotators' majority and on how many answers; annotations faster than `min_seconds`;
    median seconds per annotation; flagged and why."""
    known = answers[answers["annotator"] != REMOVED]
    v = votes(known)
    rows = {}
    for who, mine in known.groupby("annotator", sort=True):
        gold = mine[(mine["gold"] != "") & mine["chosen"].astype(bool)
                    & ~mine["unsure"].astype(bool)]
        right = int((gold["answer"] == gold["gold"]).sum())
        accuracy = right / len(gold) if len(gold) else float("nan")
        kappa, n_pairs = _agreement(v, who)
        per_annotation = mine.drop_duplicates("annotation_id")["seconds"].astype(float)
        fast = int((per_annotation < min_seconds).sum())
        # flagged only when clearly below: even the 90th percentile of their accuracy's
        # posterior (Beta, uniform prior) is; a few unlucky gold answers flag nobody
        upper = float(beta.ppf(0.9, right + 1, len(gold) - right + 1))
        flagged = len(gold) >= min_gold_answers and upper < min_gold_accuracy
        why = (f"gold accuracy {accuracy:.2f} on {len(gold)} gold questions (90 % bound "
               f"{upper:.2f}) < {min_gold_accuracy:g}: answers left out" if flagged else
               "" if len(gold) >= min_gold_answers else
               f"not judged yet ({len(gold)} of {min_gold_answers} gold questions answered)")
        rows[who] = {
            "answers": len(mine), "chosen": int(mine["chosen"].astype(bool).sum()),
            "left_prefilled": int((~mine["chosen"].astype(bool)).sum()),
            "unsure": int(mine["unsure"].astype(bool).sum()), "gold_answers": len(gold),
            "gold_correct": right, "gold_accuracy": accuracy, "agreement_kappa": kappa,
            "agreement_n": n_pairs, "fast": fast,
            "median_seconds": float(per_annotation.median()) if len(per_annotation) else
            float("nan"), "flagged": bool(flagged), "why": why}
    return pd.DataFrame.from_dict(rows, orient="index", columns=QUALITY_COLUMNS)


def gold_accuracy(answers: pd.DataFrame) -> dict[str, float]:
    """{annotator: accuracy on gold questions, smoothed by the prior (`PRIOR_RIGHT`,
    `PRIOR_WRONG`)}: chosen answers only, all attributes pooled."""
    gold = answers[(answers["gold"] != "") & answers["chosen"].astype(bool)
                   & ~answers["unsure"].astype(bool)]
    right = (gold["answer"] == gold["gold"]).groupby(gold["annotator"]).agg(["sum", "count"])
    people = set(answers["annotator"])
    return {who: float((right["sum"].get(who, 0) + PRIOR_RIGHT)
                       / (right["count"].get(who, 0) + PRIOR_RIGHT + PRIOR_WRONG))
            for who in people}


def _one_coin(answer: str, p: float, classes: tuple[str, ...]) -> np.ndarray:
    """log P(answer | true class) for each class, for a source right with probability p."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    hit = np.array([c == answer for c in classes])
    return np.where(hit, np.log(p), np.log((1 - p) / max(len(classes) - 1, 1)))


def _gold_weighted(part: pd.DataFrame, classes: tuple[str, ...], accuracy: dict[str, float],
                   labels: dict[str, str], label_accuracy: float) -> pd.DataFrame:
    """Class posteriors of each task under a one-coin model: a source of accuracy p gives the
    true class with probability p, each other class with (1 - p) / (K - 1). The sources are
    the annotators (their gold accuracy) and the current label (`label_accuracy`, 0: left
    out); classes start equally likely, so the labels' class balance weighs nothing."""
    rows = {}
    for task, group in part.groupby("sample_id", sort=True):
        log_post = np.zeros(len(classes))
        if label_accuracy > 0 and labels.get(task) in classes:
            log_post += _one_coin(labels[task], label_accuracy, classes)
        for who, answer in zip(group["annotator"], group["answer"], strict=True):
            log_post += _one_coin(answer, accuracy[who], classes)
        post = np.exp(log_post - log_post.max())
        rows[task] = post / post.sum()
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(classes))


def _posteriors(v: pd.DataFrame, method: str, accuracy: dict[str, float],
                label_accuracy: float) -> dict[tuple[str, str], pd.Series]:
    """{(sample_id, attribute): class probabilities} of every pair with votes."""
    out = {}
    for attribute, part in v.groupby("attribute", sort=True):
        if method == "gold_weighted":
            labels = dict(zip(part["sample_id"], part["previous"], strict=True))
            probas = _gold_weighted(part, schema.BY_NAME[attribute].classes, accuracy, labels,
                                    label_accuracy)
            for sid, p in probas.iterrows():
                out[(str(sid), attribute)] = p.astype(float)
            continue
        data = pd.DataFrame({"task": part["sample_id"].to_numpy(),
                             "worker": part["annotator"].to_numpy(),
                             "label": part["answer"].to_numpy()})
        if method == "dawid_skene":
            from crowdkit.aggregation import DawidSkene

            gold = part[part["gold"] != ""].drop_duplicates("sample_id")
            truth = pd.Series(gold["gold"].to_numpy(), index=gold["sample_id"].to_numpy())
            with warnings.catch_warnings():  # crowd-kit 1.4.2 on pandas 3: deprecations
                warnings.filterwarnings("ignore", module="crowdkit")
                probas = DawidSkene(n_iter=100).fit_predict_proba(
                    data, truth if len(truth) else None)
        else:
            counts = data.groupby(["task", "label"]).size().unstack(fill_value=0)
            probas = counts.div(counts.sum(axis=1), axis=0)
        for sid, p in probas.iterrows():
            out[(str(sid), attribute)] = p.astype(float)
    return out


def decide(answers: pd.DataFrame, method: str, min_confidence: float,
           left_out: Iterable[str] = (), label_accuracy: float = 0.0) -> pd.DataFrame:
    """One row per sketch x attribute that was asked and got a vote or an unsure answer
    (`DECISION_COLUMNS`, sorted), gold questions excepted: status `decided` (applied),
    `low_confidence` (the top class's probability under `min_confidence`), `tie` (two classes
    equally likely) or `unsure` (no vote, an annotator could not tell). Pairs whose only answers
    were left as pre-filled, or came from annotators `left_out`, get no row: nobody decided
    them, and `select` may ask them again."""
    if method not in METHODS:
        raise ValueError(f"consensus {method!r}: use one of {', '.join(METHODS)}")
    left_out = set(left_out)
    v = votes(answers, left_out)
    probs = _posteriors(v, method, gold_accuracy(answers), label_accuracy) if len(v) else {}
    counted = answers[(answers["annotator"] != REMOVED) & ~answers["annotator"].isin(left_out)]
    by_pair = {k: g for k, g in v.groupby(["sample_id", "attribute"], sort=False)}
    rows = []
    for (sid, attr), group in counted.groupby(["sample_id", "attribute"], sort=True):
        if (group["gold"] != "").all():
            continue  # gold questions measure the annotators; their labels are known
        mine = by_pair.get((sid, attr), v.iloc[:0])
        unsure = group[group["unsure"].astype(bool)]
        if mine.empty and unsure.empty:
            continue
        who = sorted(set(mine["annotator"]) | set(unsure["annotator"]))
        base = {"sample_id": sid, "attribute": attr, "previous": group["previous"].iloc[0],
                "annotator": "+".join(who),
                "annotated_at": max(pd.concat([mine, unsure])["annotated_at"]),
                "task_id": str(int(pd.concat([mine, unsure])["task_id"].max())),
                "votes": len(mine)}
        if mine.empty:
            rows.append({**base, "label": "", "status": "unsure", "confidence": np.nan})
            continue
        p = probs[(sid, attr)].sort_values(ascending=False, kind="stable")
        top = float(p.iloc[0])
        tie = len(p) > 1 and np.isclose(top, float(p.iloc[1]))
        status = "tie" if tie else "decided" if top >= min_confidence else "low_confidence"
        rows.append({**base, "label": "" if tie else str(p.index[0]), "status": status,
                     "confidence": round(top, 6)})
    frame = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    return frame.sort_values(["sample_id", "attribute"], kind="stable").reset_index(drop=True)
