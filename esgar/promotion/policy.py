"""The promotion policy: whether a challenger model replaces the champion, as a pure function.

Both models are scored on the same validation sketches (the champion re-scored on the current
split, so models trained on different data versions meet on equal terms); the test split never
decides. A challenger is promoted when

1. its validation mean balanced accuracy beats the champion's, and a paired bootstrap (the same
   resampled sketches for both models) puts the gain's lower confidence bound above
   `min_gain`: the gain is not noise at the `confidence` level (one-sided); and
2. no attribute's balanced accuracy drops by more than `max_attribute_drop`.

The first model of a registry has nothing to beat and becomes champion.

    cmp = paired_bootstrap(truth, challenger_pred, champion_pred, attributes,
                           n_resamples=2000, seed=0, confidence=0.95)   # int arrays [N, A]
    decision = decide(cmp, policy)           # decide(None, policy): the first model
    decision.promote, decision.reason, decision.tags()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from esgar import schema
from esgar.metrics import balanced_accuracy_cm, batched_confusion, bootstrap_index

__all__ = ["Comparison", "Decision", "Policy", "decide", "paired_bootstrap"]


@dataclass(frozen=True)
class Policy:
    """When a challenger replaces the champion (params.yaml's `registry.policy`).

    confidence: one-sided confidence that the gain in mean balanced accuracy is real, in (0, 1).
    min_gain: the gain's lower confidence bound must exceed this (0: any real gain).
    max_attribute_drop: the largest drop of one attribute's balanced accuracy accepted.
    bootstrap: resamples of the validation sketches; seed: their seed.
    """

    confidence: float
    min_gain: float
    max_attribute_drop: float
    bootstrap: int
    seed: int


@dataclass(frozen=True)
class Comparison:
    """Challenger against champion on the same `n` validation sketches.

    gain = challenger - champion mean balanced accuracy; `gain_low` its lower one-sided bound at
    `confidence` (the (1 - confidence) quantile of the paired bootstrap gains), `gain_high` the
    upper one; `p_not_better` the share of resamples in which the challenger does not gain;
    `attribute_gain` per attribute balanced accuracy change (point estimates).
    """

    n: int
    confidence: float
    challenger_mean_bacc: float
    champion_mean_bacc: float
    gain: float
    gain_low: float
    gain_high: float
    p_not_better: float
    attribute_gain: dict[str, float] = field(default_factory=dict)

    @property
    def worst_attribute(self) -> tuple[str, float]:
        name = min(self.attribute_gain, key=self.attribute_gain.__getitem__)
        return name, self.attribute_gain[name]


@dataclass(frozen=True)
class Decision:
    """`promote` or not, and why in one sentence; `comparison` is None for the first model."""

    promote: bool
    reason: str
    comparison: Comparison | None = None

    @property
    def outcome(self) -> str:
        if self.comparison is None:
            return "first champion" if self.promote else "not decided"
        return "promoted" if self.promote else "challenger"

    def tags(self, prefix: str = "decision") -> dict[str, str]:
        """Flat string tags for the model version: the outcome, the reason and the numbers."""
        out = {prefix: self.outcome, f"{prefix}.reason": self.reason}
        if self.comparison is not None:
            for key, value in asdict(self.comparison).items():
                if isinstance(value, dict):
                    out.update({f"{prefix}.{key}.{a}": f"{v:.6f}" for a, v in value.items()})
                else:
                    out[f"{prefix}.{key}"] = f"{value:.6f}" if isinstance(value, float) \
                        else str(value)
        return out


def _as_matrix(y: np.ndarray, n_attrs: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] != n_attrs:
        raise ValueError(f"{what} must be int [N, {n_attrs}], got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} must hold class indices, got {y.dtype}")
    return y.astype(np.int64)


def paired_bootstrap(truth: np.ndarray, challenger: np.ndarray, champion: np.ndarray,
                     attributes: Sequence[str], n_resamples: int, seed: int,
                     confidence: float) -> Comparison:
    """Paired bootstrap of the gain in mean balanced accuracy.

    truth, challenger, champion: int [N, A], class indices per sketch (rows aligned: the same
    sketch in each) and attribute (columns = `attributes`). Each resample draws N sketches with
    replacement and scores both models on them, so what the two share (hard sketches, a rare
    class drawn few times) cancels out of the gain.
    """
    attrs = list(attributes)
    t = _as_matrix(truth, len(attrs), "truth")
    a = _as_matrix(challenger, len(attrs), "challenger")
    b = _as_matrix(champion, len(attrs), "champion")
    if not len(t) == len(a) == len(b):
        raise ValueError(f"truth ({len(t)}), challenger ({len(a)}) and champion ({len(b)}) "
                         "must score the same sketches")
    if len(t) == 0:
        raise ValueError("no validation sketches to compare the models on")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError("the paired bootstrap needs at least one resample")
    index = bootstrap_index(len(t), n_resamples, seed)
    full = np.arange(len(t))[None]
    point_gain, boot_gain = {}, np.zeros(n_resamples)
    point_a, point_b = [], []
    for j, name in enumerate(attrs):
        k = schema.attribute(name).num_classes
        ba = balanced_accuracy_cm(batched_confusion(t[:, j], a[:, j], full, k))[0]
        bb = balanced_accuracy_cm(batched_confusion(t[:, j], b[:, j], full, k))[0]
        point_a.append(ba)
        point_b.append(bb)
        point_gain[name] = float(ba - bb)
        boot_gain += (balanced_accuracy_cm(batched_confusion(t[:, j], a[:, j], index, k))
                      - balanced_accuracy_cm(batched_confusion(t[:, j], b[:, j], index, k)))
    boot_gain /= len(attrs)
    low, high = np.quantile(boot_gain, [1 - confidence, confidence])
    return Comparison(
        n=len(t), confidence=confidence, challenger_mean_bacc=float(np.mean(point_a)),
        champion_mean_bacc=float(np.mean(point_b)),
        gain=float(np.mean(point_a) - np.mean(point_b)), gain_low=float(low),
        gain_high=float(high), p_not_better=float(np.mean(boot_gain <= 0)),
        attribute_gain=point_gain)


def decide(comparison: Comparison | None, policy: Policy) -> Decision:
    """The policy applied: `comparison` of challenger and champion, or None when there is no
    champion yet (the first model is promoted)."""
    if comparison is None:
        return Decision(True, "first model of the registry: nothing to beat")
    c = comparison
    worst, drop = c.worst_attribute
    numbers = (f"validation mean balanced accuracy {c.challenger_mean_bacc:.4f} against "
               f"{c.champion_mean_bacc:.4f} ({c.gain:+.4f}, {c.confidence:.0%} lower bound "
               f"{c.gain_low:+.4f}, n={c.n})")
    if c.gain_low <= policy.min_gain:
        why = ("no gain" if c.gain <= 0 else
               f"the gain is within the bootstrap noise (lower bound <= {policy.min_gain:+.4f})")
        return Decision(False, f"kept the champion: {why}: {numbers}", c)
    if -drop > policy.max_attribute_drop:
        return Decision(False, f"kept the champion: {worst} drops by {-drop:.4f} (more than "
                               f"{policy.max_attribute_drop:.4f}) although {numbers}", c)
    return Decision(True, f"promoted: {numbers}; no attribute drops by more than "
                          f"{policy.max_attribute_drop:.4f} (worst: {worst} {drop:+.4f})", c)
