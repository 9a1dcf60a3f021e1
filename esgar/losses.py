"""Losses by name, for {attribute: logits [B,C]} and labels [B,A].

Per attribute a with logits z [B,C], labels y [B], training counts n_c (N = sum_c n_c) and
priors pi_c = n_c / N, each loss is a mean over the batch:

- `ce`:             -log softmax(z)_y
- `balanced_ce`:    w_y * -log softmax(z)_y, class-balanced weights, scaled so that
                    sum_c n_c w_c = N (the mean weight over the training set is 1):
                    `weighting="effective_number"` (default; Cui et al. 2019):
                        w_c ~ (1 - beta) / (1 - beta^n_c), beta = 0.999
                    `weighting="inverse_frequency"`: w_c = N / (C n_c)
- `logit_adjusted`: -log softmax(z + tau log pi)_y (Menon et al. 2021, tau = 1); predict
                    with argmax z as usual: the adjustment is for training only.
- `bce`:            one-vs-rest: (1/C) sum_c BCE(sigmoid(z_c), [y = c])
- `balanced_bce`:   one-vs-rest BCE with each class's positives and negatives weighted to equal
                    total mass (what ESGAR's "balanced cross-entropy" intends):
                    (1/C) sum_c [ w+_c [y=c] (-log sigmoid(z_c))
                                + w-_c [y!=c] (-log(1 - sigmoid(z_c))) ],
                    w+_c = 1 / (2 pi_c), w-_c = 1 / (2 (1 - pi_c))
                    (the HED-style ratio w+/w- = (1 - pi)/pi, scaled so each class's expected
                    weight pi w+ + (1-pi) w- is 1). Equal to `bce` when pi_c = 1/2.

The attribute losses are summed (`attribute_reduction="sum"`, default, ESGAR's multi-task sum)
or averaged (`"mean"`). Priors always come from the counts given, which the caller computes
from the current training labels with `esgar.metrics.class_counts`; a class with no training
sample is an error unless `smoothing` > 0 adds that many pseudo-samples to every class. Loss
names are matched exactly: an unknown name raises (ESGAR's release silently trained plain BCE when
`'bal'` was compared with `'Bal'`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from esgar.errors import ConfigError, EsgarError

__all__ = ["LOSSES", "AttributeLoss", "LossError", "build_loss", "check_loss", "class_priors",
           "class_weights"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LossError(EsgarError, ValueError):
    """The training labels cannot be weighted by the loss asked for (a class never seen...)."""


def _checked(counts: np.ndarray | Sequence[int], smoothing: float, what: str = "") -> np.ndarray:
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size < 2:
        raise LossError(f"{what}counts must be 1-D with >= 2 classes, got {n.tolist()}")
    if (n < 0).any():
        raise LossError(f"{what}counts must be >= 0, got {n.tolist()}")
    n = n + smoothing
    if (n <= 0).any():
        raise LossError(f"{what}class(es) {np.flatnonzero(n <= 0).tolist()} have no training "
                         f"sample (counts {np.asarray(counts).tolist()}); give smoothing > 0 or "
                         "fix the split")
    return n


def class_priors(counts: np.ndarray | Sequence[int], smoothing: float = 0.0) -> np.ndarray:
    """counts [C] -> priors [C] = (n_c + smoothing) / sum(n + smoothing)."""
    n = _checked(counts, smoothing)
    return n / n.sum()


def class_weights(counts: np.ndarray | Sequence[int], weighting: str = "effective_number",
                  beta: float = 0.999, smoothing: float = 0.0) -> np.ndarray:
    """Class-balanced weights [C], scaled so that sum_c n_c w_c = N.

    effective_number (Cui et al.): w_c ~ (1 - beta) / (1 - beta^n_c); inverse_frequency:
    w_c = N / (C n_c) (the limit beta -> 1).
    """
    n = _checked(counts, smoothing)
    if weighting == "inverse_frequency":
        w = 1.0 / n
    elif weighting == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        w = (1.0 - beta) / (1.0 - np.power(beta, n))
    else:
        raise ValueError(f"weighting must be 'effective_number' or 'inverse_frequency', "
                         f"got {weighting!r}")
    return w * n.sum() / (w * n).sum()


# -- per-attribute losses: (logits [B,C], labels [B]) -> scalar, given fixed class statistics --

def _ovr_bce(logits: torch.Tensor, labels: torch.Tensor, pos_w: torch.Tensor | None = None,
             neg_w: torch.Tensor | None = None) -> torch.Tensor:
    t = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    pos = F.softplus(-logits)  # -log sigmoid(z)
    neg = F.softplus(logits)   # -log (1 - sigmoid(z))
    if pos_w is not None:
        pos, neg = pos * pos_w, neg * neg_w
    return (t * pos + (1 - t) * neg).mean(1).mean()


class _Stats:
    """Per-class tensors kept on CPU, copied once per (device, dtype) they are used with."""

    def __init__(self, **arrays: np.ndarray):
        self._cpu = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in arrays.items()}
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    def on(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            self._cache[key] = {k: v.to(like.device, like.dtype) for k, v in self._cpu.items()}
        return self._cache[key]


def _ce(counts: np.ndarray, **_) -> LossFn:
    return lambda z, y: F.cross_entropy(z, y)


def _balanced_ce(counts: np.ndarray, weighting: str = "effective_number", beta: float = 0.999,
                 smoothing: float = 0.0, **_) -> LossFn:
    s = _Stats(w=class_weights(counts, weighting, beta, smoothing))
    return lambda z, y: (F.cross_entropy(z, y, reduction="none") * s.on(z)["w"][y]).mean()


def _logit_adjusted(counts: np.ndarray, tau: float = 1.0, smoothing: float = 0.0, **_) -> LossFn:
    s = _Stats(log_prior=np.log(class_priors(counts, smoothing)))
    return lambda z, y: F.cross_entropy(z + tau * s.on(z)["log_prior"], y)


def _bce(counts: np.ndarray, **_) -> LossFn:
    return lambda z, y: _ovr_bce(z, y)


def _balanced_bce(counts: np.ndarray, smoothing: float = 0.0, **_) -> LossFn:
    pi = class_priors(counts, smoothing)
    s = _Stats(pos=0.5 / pi, neg=0.5 / (1.0 - pi))

    def f(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        st = s.on(z)
        return _ovr_bce(z, y, st["pos"], st["neg"])
    return f


LOSSES: dict[str, Callable[..., LossFn]] = {
    "ce": _ce,
    "balanced_ce": _balanced_ce,
    "logit_adjusted": _logit_adjusted,
    "bce": _bce,
    "balanced_bce": _balanced_bce,
}
_OPTIONS = {"ce": set(), "bce": set(), "balanced_ce": {"weighting", "beta", "smoothing"},
            "logit_adjusted": {"tau", "smoothing"}, "balanced_bce": {"smoothing"}}
_NEEDS_ALL_CLASSES = {"balanced_ce", "logit_adjusted", "balanced_bce"}


class AttributeLoss:
    """loss(logits {attribute: [B,C]}, labels [B,A]) -> scalar; column j of labels is
    `attributes[j]`."""

    def __init__(self, name: str, attributes: Sequence[str], fns: Mapping[str, LossFn],
                 attribute_reduction: str = "sum"):
        self.name = name
        self.attributes = tuple(attributes)
        self.fns = dict(fns)
        self.attribute_reduction = attribute_reduction

    def per_attribute(self, logits: Mapping[str, torch.Tensor], labels: torch.Tensor
                      ) -> dict[str, torch.Tensor]:
        if labels.dim() != 2 or labels.shape[1] != len(self.attributes):
            raise ValueError(f"labels must be [B, {len(self.attributes)}] (columns "
                             f"{', '.join(self.attributes)}); got {tuple(labels.shape)}")
        return {a: self.fns[a](logits[a], labels[:, j].long())
                for j, a in enumerate(self.attributes)}

    def __call__(self, logits: Mapping[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        total = torch.stack(list(self.per_attribute(logits, labels).values())).sum()
        return total / len(self.attributes) if self.attribute_reduction == "mean" else total

    def __repr__(self) -> str:
        return (f"AttributeLoss({self.name!r}, attributes={list(self.attributes)}, "
                f"attribute_reduction={self.attribute_reduction!r})")


def check_loss(name: str, kwargs: Mapping[str, object]) -> None:
    """ConfigError for a loss name not in `LOSSES` or an option the loss does not take."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; known losses: {', '.join(LOSSES)} "
                          "(names are matched exactly)")
    extra = set(kwargs) - _OPTIONS[name]
    if extra:
        raise ConfigError(f"loss {name!r} takes no option(s) {', '.join(sorted(extra))}; it "
                          f"takes {', '.join(sorted(_OPTIONS[name])) or 'none'}")


def build_loss(name: str, counts_per_attribute: Mapping[str, np.ndarray | Sequence[int]],
               attribute_reduction: str = "sum", **kwargs) -> AttributeLoss:
    """The loss `name` (one of `LOSSES`) for these attributes.

    counts_per_attribute: attribute -> training class counts [C] (`esgar.metrics.class_counts`
    of the current training labels); its key order is the column order of the labels tensor.
    kwargs: the loss's options (balanced_ce: weighting, beta, smoothing; logit_adjusted: tau,
    smoothing; balanced_bce: smoothing); an option the loss does not take is an error.
    """
    check_loss(name, kwargs)
    if attribute_reduction not in ("sum", "mean"):
        raise ValueError("attribute_reduction must be 'sum' or 'mean', "
                         f"got {attribute_reduction!r}")
    fns = {}
    for a, counts in counts_per_attribute.items():
        counts = np.asarray(counts)
        if name in _NEEDS_ALL_CLASSES:
            _checked(counts, kwargs.get("smoothing", 0.0), what=f"{a}: ")
        fns[a] = LOSSES[name](counts, **kwargs)
    return AttributeLoss(name, list(counts_per_attribute), fns, attribute_reduction)
