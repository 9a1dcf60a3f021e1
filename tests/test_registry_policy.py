"""The promotion policy (`esgar.promotion.policy`): a pure function of two models' validation
predictions, checked on constructed cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from esgar import schema
from esgar.promotion.policy import Policy, decide, paired_bootstrap

ATTRS = schema.ATTRIBUTE_NAMES
POLICY = Policy(confidence=0.95, min_gain=0.0, max_attribute_drop=0.02, bootstrap=2000, seed=0)


def labels(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, schema.attribute(a).num_classes, n) for a in ATTRS], 1)


def corrupt(truth: np.ndarray, share: float, seed: int, columns=None) -> np.ndarray:
    """`truth` with about `share` of the cells (of `columns`, default all) set to wrong
    classes."""
    rng = np.random.default_rng(seed)
    out = truth.copy()
    for j, a in enumerate(ATTRS):
        if columns is not None and j not in columns:
            continue
        k = schema.attribute(a).num_classes
        flip = rng.random(len(truth)) < share
        out[flip, j] = (truth[flip, j] + rng.integers(1, k, flip.sum())) % k
    return out


def cmp(truth, challenger, champion, **kw):
    args = {"n_resamples": POLICY.bootstrap, "seed": POLICY.seed,
            "confidence": POLICY.confidence, **kw}
    return paired_bootstrap(truth, challenger, champion, ATTRS, **args)


def test_first_model_becomes_champion():
    d = decide(None, POLICY)
    assert d.promote and d.outcome == "first champion" and "nothing to beat" in d.reason
    assert d.tags() == {"decision": "first champion", "decision.reason": d.reason}


def test_numbers_match_scikit_learn_and_repeat():
    t = labels(300)
    a, b = corrupt(t, 0.2, 1), corrupt(t, 0.3, 2)
    c = cmp(t, a, b)
    ours = np.mean([balanced_accuracy_score(t[:, j], a[:, j]) for j in range(len(ATTRS))])
    theirs = np.mean([balanced_accuracy_score(t[:, j], b[:, j]) for j in range(len(ATTRS))])
    assert c.challenger_mean_bacc == pytest.approx(ours)
    assert c.champion_mean_bacc == pytest.approx(theirs)
    assert c.gain == pytest.approx(ours - theirs)
    assert c.gain_low < c.gain < c.gain_high and c.n == 300
    assert sum(c.attribute_gain.values()) / len(ATTRS) == pytest.approx(c.gain)
    assert c == cmp(t, a, b)  # seeded


def test_a_clearly_better_challenger_is_promoted():
    t = labels(400)
    d = decide(cmp(t, corrupt(t, 0.1, 1), corrupt(t, 0.3, 2)), POLICY)
    assert d.promote and d.outcome == "promoted"
    assert d.comparison.gain_low > 0 and d.comparison.p_not_better < 0.05
    tags = d.tags()
    assert tags["decision"] == "promoted" and float(tags["decision.gain"]) > 0.1
    assert set(tags) >= {"decision.gain_low", "decision.p_not_better",
                         "decision.attribute_gain.earring"}


def test_a_worse_challenger_stays_challenger():
    t = labels(400)
    d = decide(cmp(t, corrupt(t, 0.3, 1), corrupt(t, 0.1, 2)), POLICY)
    assert not d.promote and d.outcome == "challenger" and "no gain" in d.reason


def test_a_gain_inside_the_bootstrap_noise_is_not_promoted():
    t = labels(120)
    champion = corrupt(t, 0.25, 2)
    challenger = champion.copy()
    fix = np.flatnonzero(champion[:, 0] != t[:, 0])[:2]  # two more hair labels right
    challenger[fix, 0] = t[fix, 0]
    c = cmp(t, challenger, champion)
    assert c.gain > 0 and c.gain_low <= 0
    d = decide(c, POLICY)
    assert not d.promote and "within the bootstrap noise" in d.reason


def test_an_attribute_that_drops_too_much_blocks_promotion():
    t = labels(600)
    champion = corrupt(t, 0.3, 2)
    challenger = corrupt(t, 0.1, 1, columns=range(1, len(ATTRS)))  # better everywhere ...
    challenger[:, 0] = corrupt(t, 0.45, 3)[:, 0]                     # ... but hair
    c = cmp(t, challenger, champion)
    assert c.gain_low > 0 and c.worst_attribute[0] == "hair"
    d = decide(c, POLICY)
    assert not d.promote and "hair drops by" in d.reason
    lenient = Policy(**{**POLICY.__dict__, "max_attribute_drop": 1.0})
    assert decide(c, lenient).promote


def test_min_gain_raises_the_bar():
    t = labels(400)
    c = cmp(t, corrupt(t, 0.2, 1), corrupt(t, 0.25, 2))
    assert decide(c, POLICY).promote
    strict = Policy(**{**POLICY.__dict__, "min_gain": c.gain_low + 0.01})
    assert not decide(c, strict).promote


def test_bad_inputs_are_refused():
    t = labels(10)
    with pytest.raises(ValueError, match="same sketches"):
        cmp(t, t[:5], t)
    with pytest.raises(ValueError, match="int \\[N, 7\\]"):
        cmp(t, t[:, :3], t)
    with pytest.raises(ValueError, match="confidence"):
        cmp(t, t, t, confidence=1.0)
    with pytest.raises(ValueError, match="no validation"):
        cmp(t[:0], t[:0], t[:0])
