"""Classification metrics per attribute, their means and bootstrap intervals.

Pure numpy: integer label arrays in, numbers or arrays out. Every metric is computed from
confusion matrices, which are batched for the bootstrap ([..., C, C]). The definitions follow
scikit-learn's, which the tests check:
- accuracy = trace / N;
- balanced accuracy = mean recall over the classes present in y_true (a class only predicted
  is left out, with a warning, as `balanced_accuracy_score` does);
- macro-F1 = mean F1 over the classes present in y_true or y_pred (`f1_score(average='macro')`;
  F1 = 2 TP / (2 TP + FP + FN));
- per-class recall over all `num_classes`, `zero_division` (default 0, with a warning) for
  classes with no true sample, like `recall_score(labels=range(C), average=None)`.

Plain accuracy hides class imbalance (a majority-class predictor scores 95 % on FS2K's `hair`):
report balanced accuracy and macro-F1 first. The papers' mean accuracy over the schema's paper
attributes is reported as `paper_mean_acc_<n>attr` (FS2K: the six without hair_color).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from esgar import schema
from esgar.errors import EsgarError

MetricFn = Callable[[np.ndarray], np.ndarray]


class EmptyClassError(EsgarError, ValueError):
    """A class has no sample where every class needs one (balanced losses, priors)."""


def _labels(y: np.ndarray | Sequence[int]) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {y.dtype}")
    return y.astype(np.int64)


def _num_classes(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None) -> int:
    seen = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if num_classes is None:
        return max(seen, 1)
    if seen > num_classes or min(y_true.min(initial=0), y_pred.min(initial=0)) < 0:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return num_classes


def class_counts(labels: np.ndarray | Sequence[int], num_classes: int,
                 allow_zero: bool = False) -> np.ndarray:
    """labels int [N] in [0, num_classes) -> counts int64 [num_classes].

    Raises ValueError for labels out of range and, unless `allow_zero`, when a class has no
    sample (balanced losses cannot weight a class they never see).
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer)):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("labels must be integers")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got min {y.min()}, "
                         f"max {y.max()}")
    counts = np.bincount(y.astype(np.int64), minlength=num_classes).astype(np.int64)
    if not allow_zero and (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise EmptyClassError(f"class(es) {empty} of {num_classes} have no training sample "
                         f"(counts {counts.tolist()}); balanced losses need every class: merge "
                         "or drop the class, or use a loss option smoothing > 0")
    return counts


def confusion_matrix(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                     num_classes: int | None = None) -> np.ndarray:
    """int64 [C,C]: row = true class, column = predicted class (scikit-learn's layout)."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    c = _num_classes(t, p, num_classes)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def batched_confusion(y_true: np.ndarray, y_pred: np.ndarray, index: np.ndarray,
                      num_classes: int) -> np.ndarray:
    """Confusion matrices [R,C,C] of the resamples index [R,N] (rows of y_true / y_pred)."""
    r = index.shape[0]
    codes = (y_true[index] * num_classes + y_pred[index]) \
        + (np.arange(r)[:, None] * num_classes * num_classes)
    return np.bincount(codes.ravel(), minlength=r * num_classes ** 2).reshape(
        r, num_classes, num_classes)


# -- metrics of confusion matrices [..., C, C] -> [...] --

def accuracy_cm(cm: np.ndarray) -> np.ndarray:
    n = cm.sum((-2, -1))
    return np.trace(cm, axis1=-2, axis2=-1) / np.maximum(n, 1)


def recall_cm(cm: np.ndarray, zero_division: float = 0.0) -> np.ndarray:
    """[..., C]: TP / (TP + FN); `zero_division` where a class has no true sample."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    support = cm.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, tp / np.maximum(support, 1), zero_division)


def balanced_accuracy_cm(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the classes with true samples (NaN recalls of absent classes dropped)."""
    support = cm.sum(-1)
    present = support > 0
    rec = recall_cm(cm)
    return (rec * present).sum(-1) / np.maximum(present.sum(-1), 1)


def macro_f1_cm(cm: np.ndarray) -> np.ndarray:
    """Mean F1 over the classes present in y_true or y_pred."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    fp = cm.sum(-2) - tp
    fn = cm.sum(-1) - tp
    used = (cm.sum(-1) + cm.sum(-2)) > 0
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return (f1 * used).sum(-1) / np.maximum(used.sum(-1), 1)


# -- metrics of label arrays --

def _warn_absent(cm: np.ndarray, what: str) -> None:
    absent_true = cm.sum(-1) == 0
    if (absent_true & (cm.sum(-2) > 0)).any():
        warnings.warn(f"{what}: y_pred contains classes not in y_true", UserWarning, stacklevel=3)


def accuracy(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int]) -> float:
    return float(accuracy_cm(confusion_matrix(y_true, y_pred)))


def balanced_accuracy(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                      num_classes: int | None = None) -> float:
    """Mean per-class recall over the classes in y_true (scikit-learn's definition; warns when
    y_pred has classes y_true lacks, whose recall is undefined and left out)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    _warn_absent(cm, "balanced_accuracy")
    return float(balanced_accuracy_cm(cm))


def macro_f1(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
             num_classes: int | None = None) -> float:
    return float(macro_f1_cm(confusion_matrix(y_true, y_pred, num_classes)))


def per_class_recall(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                     num_classes: int | None = None, zero_division: float = 0.0) -> np.ndarray:
    """float [C]; a class with no true sample gets `zero_division` (and a warning)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    if (cm.sum(-1) == 0).any():
        warnings.warn("per_class_recall: recall is ill-defined for classes with no true "
                      f"samples; set to {zero_division}", UserWarning, stacklevel=2)
    return recall_cm(cm, zero_division)


METRICS: dict[str, MetricFn] = {"acc": accuracy_cm, "bacc": balanced_accuracy_cm,
                                "macro_f1": macro_f1_cm}


def bootstrap_ci(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                 metric: str | MetricFn = "bacc", num_classes: int | None = None,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of a confusion-matrix metric (resampling samples)."""
    t, p = _labels(y_true), _labels(y_pred)
    c = _num_classes(t, p, num_classes)
    fn = METRICS[metric] if isinstance(metric, str) else metric
    values = fn(batched_confusion(t, p, bootstrap_index(len(t), n_resamples, seed), c))
    return percentile_interval(values, confidence)


def bootstrap_index(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """int [R, N]: `n_resamples` resamples (with replacement) of the rows 0..n-1, seeded.

    Shared by every metric of a split, so their resamples are paired: the same rows each time.
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap values [R] (percentile method)."""
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


HEADLINE = ("mean_bacc", "mean_macro_f1", "mean_minority_recall")


def headline(metrics: Mapping[str, float], attributes: Sequence[str] | None = None
             ) -> tuple[dict[str, float], dict[str, float]]:
    """The few numbers of one split's `evaluate` result a person reads first: the means
    `HEADLINE`, and each attribute's balanced accuracy (`bacc/<a>`; default: the schema's
    attributes), without intervals."""
    attributes = schema.ATTRIBUTE_NAMES if attributes is None else attributes
    return ({k: metrics[k] for k in HEADLINE},
            {f"bacc/{a}": metrics[f"bacc/{a}"] for a in attributes})


def paper_key() -> str:
    """The key of the papers' mean accuracy over the schema's paper attributes."""
    return f"paper_mean_acc_{len(schema.PAPER_ATTRIBUTES)}attr"


def evaluate(y_true: np.ndarray | Mapping[str, np.ndarray],
             y_pred: np.ndarray | Mapping[str, np.ndarray],
             attributes: Sequence[str] | None = None, n_resamples: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """All metrics, flat and JSON-able, balanced ones first.

    y_true, y_pred: int [N, A] (columns = `attributes`) or {attribute: int [N]}.
    Keys: `bacc/<a>`, `macro_f1/<a>`, `acc/<a>`, `recall/<a>/<class name>` (classes with
    true samples only), `minority_recall/<a>` (the recall of the attribute's rarest class in
    y_true); the means `mean_bacc`, `mean_macro_f1`, `mean_acc`, `mean_minority_recall` over
    `attributes`; `paper_key()` (plain accuracy averaged over the schema's paper attributes,
    as the literature reports it: FS2K's six without hair_color, `paper_mean_acc_6attr`;
    CelebA's 40, `paper_mean_acc_40attr`) when all of them are present; `<key>_ci_low` /
    `<key>_ci_high`: percentile bootstrap intervals (samples resampled jointly across
    attributes; `n_resamples=0`: none).
    """
    attrs = list(schema.ATTRIBUTE_NAMES if attributes is None else attributes)

    def column(y, j: int, a: str) -> np.ndarray:
        return _labels(y[a] if isinstance(y, Mapping) else np.asarray(y)[:, j])

    truth = {a: column(y_true, j, a) for j, a in enumerate(attrs)}
    pred = {a: column(y_pred, j, a) for j, a in enumerate(attrs)}
    n = len(next(iter(truth.values())))
    if any(len(v) != n for v in (*truth.values(), *pred.values())):
        raise ValueError("every attribute needs the same number of samples in y_true and y_pred")
    k = {a: schema.attribute(a).num_classes for a in attrs}
    point = {a: confusion_matrix(truth[a], pred[a], k[a])[None] for a in attrs}
    boot = None
    if n_resamples > 0:
        index = bootstrap_index(n, n_resamples, seed)
        boot = {a: batched_confusion(truth[a], pred[a], index, k[a]) for a in attrs}

    out: dict[str, float] = {}
    values: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name in ("bacc", "macro_f1", "acc"):
        fn = METRICS[name]
        for a in attrs:
            values[f"{name}/{a}"] = (fn(point[a]), fn(boot[a]) if boot else None)
        per = [values[f"{name}/{a}"] for a in attrs]
        values[f"mean_{name}"] = (np.mean([v[0] for v in per], 0),
                                  np.mean([v[1] for v in per], 0) if boot else None)
    minority = {}
    for a in attrs:  # the rarest class present in y_true (ties: the lower index)
        support = point[a][0].sum(1)
        c = int(np.argmin(np.where(support > 0, support, np.iinfo(np.int64).max)))
        minority[a] = (recall_cm(point[a])[:, c], recall_cm(boot[a])[:, c] if boot else None)
        values[f"minority_recall/{a}"] = minority[a]
    values["mean_minority_recall"] = (
        np.mean([v[0] for v in minority.values()], 0),
        np.mean([v[1] for v in minority.values()], 0) if boot else None)
    paper = [a for a in schema.PAPER_ATTRIBUTES if a in attrs]
    if len(paper) == len(schema.PAPER_ATTRIBUTES):
        values[paper_key()] = (
            np.mean([values[f"acc/{a}"][0] for a in paper], 0),
            np.mean([values[f"acc/{a}"][1] for a in paper], 0) if boot else None)

    for key, (v, b) in values.items():
        out[key] = float(v[0])
        if b is not None:
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = percentile_interval(b, confidence)
    for a in attrs:
        names = schema.attribute(a).classes
        cm = point[a][0]
        for cls, r, support in zip(names, recall_cm(cm), cm.sum(1), strict=True):
            if support:  # no recall for a class without true samples (JSON has no NaN)
                out[f"recall/{a}/{cls}"] = float(r)
    return out
