"""Which labels to show annotators: likely-wrong labels first, minority classes given their share.

Arrays in, arrays out, in cleanlab's shape: `labels` int [N] (the current labels) and
`pred_probs` float [N, C] (out-of-sample class probabilities: each row from a model that did
not see that sample's label, see `esgar.active.crossfit`).

Label issues, confident-learning style (Northcutt et al., JAIR 2021): class j's threshold t_j is
the mean probability of j over the samples labelled j, and the label y of sample i is suspect
when another class reaches its own threshold (p_ij >= t_j for some j != y; the likeliest such j
is the class it is suspected to be). The thresholds are the prior correction: a rare class,
whose probabilities run low everywhere, is judged on its own scale instead of being drowned by
a frequent one. Suspects are ranked, as cleanlab ranks its issues, by self-confidence:

    score_i = 1 - p_iy

(Dividing p_iy by t_y, or a margin against the best other class, found fewer flipped labels on
bench/bench_selection.py's noisy synthetic FS2K, most of all for the 5-class hair colour.)

Selection (`select`) spends a budget of tasks (sketches): part of it in turns over (attribute,
class) strata, so that each class of each attribute, rare ones included, gets its share of the
suspect labels; the rest on the most suspect labels overall; then, while budget remains, on the
labels the model is least sure of (`uncertainty`). A sample x attribute a human already
decided is never asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["UNCERTAINTIES", "Candidate", "class_thresholds", "find_label_issues",
           "label_issue_scores", "select", "suspected_classes", "uncertainty"]

UNCERTAINTIES = ("entropy", "margin", "least_confidence")
_EPS = 1e-12


def _check(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(labels), np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"labels must be [N] and pred_probs [N, C]; got {y.shape}, {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]})")
    return y.astype(np.int64), p


def class_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """float [C]: t_j, the mean predicted probability of class j over the samples labelled j
    (1/C for a class nobody carries, which then never raises a suspicion by itself)."""
    y, p = _check(labels, pred_probs)
    c = p.shape[1]
    counts = np.bincount(y, minlength=c)
    sums = np.bincount(y, weights=p[np.arange(len(y)), y], minlength=c)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0 / c)


def label_issue_scores(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """float [N] in [0, 1]: how likely each label is wrong, 1 - p_iy (module docstring); which
    labels are suspect at all is `find_label_issues`'s per-class decision."""
    y, p = _check(labels, pred_probs)
    return 1 - p[np.arange(len(y)), y]


def suspected_classes(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """int [N]: the likeliest class other than the label that reaches its own threshold, or -1
    where none does (the label is not suspect)."""
    y, p = _check(labels, pred_probs)
    reach = np.where(p >= class_thresholds(y, p), p, -1.0)
    reach[np.arange(len(y)), y] = -1.0
    return np.where(reach.max(1) >= 0, reach.argmax(1), -1)


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """bool [N]: the suspect labels (another class reaches its threshold)."""
    return suspected_classes(labels, pred_probs) >= 0


def uncertainty(pred_probs: np.ndarray, kind: str = "entropy") -> np.ndarray:
    """float [N] in [0, 1], 1 = the model has no idea: `entropy` (normalised by log C), `margin`
    (1 - (p_first - p_second)) or `least_confidence` ((1 - p_max) C / (C - 1))."""
    p = np.asarray(pred_probs, dtype=np.float64)
    c = p.shape[1]
    if kind == "entropy":
        return -(p * np.log(np.clip(p, _EPS, 1))).sum(1) / np.log(c)
    if kind == "margin":
        top = np.sort(p, 1)
        return 1 - (top[:, -1] - top[:, -2])
    if kind == "least_confidence":
        return (1 - p.max(1)) * c / (c - 1)
    raise ValueError(f"unknown uncertainty {kind!r}; use one of {', '.join(UNCERTAINTIES)}")


@dataclass(frozen=True)
class Candidate:
    """One sample x attribute put to the annotators, and why."""

    sample: int  # row index
    attribute: str
    reason: str  # "suspect" (a likely-wrong label) or "uncertain"
    score: float  # label_issue_scores
    uncertainty: float
    guess: int  # the model's class
    label: int  # the current label


def _round_robin(queues: list[list[tuple]], take: Callable[[tuple], None],
                 done: Callable[[], bool]) -> None:
    """Give each queue a turn, repeatedly, until `done()` or all are empty: `take(item)`."""
    while not done() and any(queues):
        for queue in queues:
            if queue and not done():
                take(queue.pop(0))


def select(labels: Mapping[str, np.ndarray], pred_probs: Mapping[str, np.ndarray],
           budget: int, decided: Mapping[str, np.ndarray] | None = None, *,
           uncertainty_kind: str, quota_share: float) -> list[list[Candidate]]:
    """Pick up to `budget` samples (tasks) to ask about, and the attributes in question of each.

    labels: {attribute: int [N]}; pred_probs: {attribute: float [N, C]} (out-of-sample);
    decided: {attribute: bool [N]}, True where a human already decided that sample x attribute
    (never asked again). The budget is spent in three passes:
    1. `quota_share` of it in turns over the strata (attribute, suspected class) of the suspect
       labels, best score first in each: every class of every attribute, rare ones included,
       gets its share of the likely errors (a rare class's errors hide under the frequent label
       they were given, and are found by the class they are suspected to be);
    2. the remaining suspects, by score across all attributes;
    3. if budget is left, the least certain labels, in turns over (attribute, labelled class).
    A picked sample also brings its other suspect attributes into question. Returns one list of
    candidates per picked sample, in the order picked, each ordered by attribute.
    """
    if not 0 <= quota_share <= 1:
        raise ValueError(f"quota_share must be in [0, 1], got {quota_share}")
    attrs = list(labels)
    n = len(next(iter(labels.values()))) if attrs else 0
    info = {}
    for a in attrs:
        y, p = _check(labels[a], pred_probs[a])
        open_ = np.ones(n, bool) if decided is None or a not in decided else \
            ~np.asarray(decided[a], bool)
        info[a] = (y, p, label_issue_scores(y, p), uncertainty(p, uncertainty_kind), open_,
                   suspected_classes(y, p))
    picked: dict[int, dict[str, Candidate]] = {}

    def take(item: tuple) -> None:
        a, i, reason = item
        task = picked.setdefault(i, {})
        if a in task:
            return
        y, p, score, unc, _, _ = info[a]
        task[a] = Candidate(i, a, reason, float(score[i]), float(unc[i]), int(p[i].argmax()),
                            int(y[i]))
        for b in attrs:  # the sample's other suspect labels come along
            _, _, _, _, b_open, b_suspected = info[b]
            if b not in task and b_open[i] and b_suspected[i] >= 0:
                take((b, i, "suspect"))

    def queues(reason: str) -> list[list[tuple]]:
        out = []
        for a in attrs:
            y, _, score, unc, open_, suspected = info[a]
            suspect = suspected >= 0
            pool = np.flatnonzero(open_ & (suspect if reason == "suspect" else ~suspect))
            key, stratum = (score, suspected) if reason == "suspect" else (unc, y)
            for cls in np.unique(stratum[pool]):
                rows = pool[stratum[pool] == cls]
                out.append([(a, int(i), reason) for i in rows[np.argsort(-key[rows],
                                                                         kind="stable")]])
        return out

    quota = int(round(budget * quota_share))
    _round_robin(queues("suspect"), take, lambda: len(picked) >= quota)
    ranked = sorted((item for q in queues("suspect") for item in q),
                    key=lambda it: -info[it[0]][2][it[1]])
    _round_robin([ranked], take, lambda: len(picked) >= budget)
    _round_robin(queues("uncertain"), take, lambda: len(picked) >= budget)
    return [[task[a] for a in attrs if a in task] for task in picked.values()]
