"""Losses: class counts and priors, each loss on a hand-computed example, balancing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from esgar.errors import ConfigError
from esgar.losses import LOSSES, build_loss, class_priors, class_weights
from esgar.metrics import class_counts

# two samples, two classes: logits and labels of the hand computations below
Z = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
Y = torch.tensor([[0], [1]])
COUNTS = {"a": [3, 1]}  # class 1 is the minority


def sp(x: float) -> float:  # softplus: -log sigmoid(-x)
    return math.log1p(math.exp(x))


def value(name: str, **kw) -> float:
    return build_loss(name, COUNTS, **kw)({"a": Z}, Y).item()


def test_class_counts_and_priors():
    assert class_counts(np.array([0, 2, 2, 1, 2]), 3).tolist() == [1, 1, 3]
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] of 3 have no training sample"):
        class_counts([0, 2, 2], 3)
    assert class_counts([0, 2, 2], 3, allow_zero=True).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="must lie in"):
        class_counts([0, 3], 3)
    np.testing.assert_allclose(class_priors([3, 1]), [0.75, 0.25])
    np.testing.assert_allclose(class_priors([3, 0], smoothing=1), [0.8, 0.2])
    with pytest.raises(ValueError, match="no training"):
        class_priors([3, 0])


def test_class_weights():
    # inverse frequency: N / (C n_c)
    np.testing.assert_allclose(class_weights([3, 1], "inverse_frequency"), [4 / 6, 4 / 2])
    # effective number, beta = 0.5: raw (1-b)/(1-b^n) = [0.5/0.875, 1], scaled to sum n w = N
    raw = np.array([0.5 / 0.875, 1.0])
    np.testing.assert_allclose(class_weights([3, 1], "effective_number", beta=0.5),
                               raw * 4 / (raw @ [3, 1]))
    for w in (class_weights([900, 100]), class_weights([900, 100], "inverse_frequency")):
        assert w[1] > w[0]
        assert np.isclose(w @ [900, 100], 1000)
    np.testing.assert_allclose(class_weights([5, 5, 5]), [1, 1, 1])


def test_ce():
    assert value("ce") == pytest.approx((sp(-2) + sp(-1)) / 2, rel=1e-6)


def test_balanced_ce():
    w = [4 / 6, 2.0]
    want = (w[0] * sp(-2) + w[1] * sp(-1)) / 2
    assert value("balanced_ce", weighting="inverse_frequency") == pytest.approx(want, rel=1e-6)
    raw = np.array([0.5 / 0.875, 1.0])
    w = raw * 4 / (raw @ [3, 1])
    want = (w[0] * sp(-2) + w[1] * sp(-1)) / 2
    assert value("balanced_ce", beta=0.5) == pytest.approx(want, rel=1e-6)


def test_logit_adjusted():
    la, lb = math.log(0.75), math.log(0.25)
    # sample 0: adjusted logits [2 + la, lb], label 0; sample 1: [la, 1 + lb], label 1
    want = (sp(lb - (2 + la)) + sp(la - (1 + lb))) / 2
    assert value("logit_adjusted") == pytest.approx(want, rel=1e-6)
    want_half = (sp(0.5 * lb - (2 + 0.5 * la)) + sp(0.5 * la - (1 + 0.5 * lb))) / 2
    assert value("logit_adjusted", tau=0.5) == pytest.approx(want_half, rel=1e-6)


def test_bce_and_balanced_bce():
    # one-vs-rest: sample 0 (y=0): pos on logit 2, neg on logit 0; sample 1: neg on 0, pos on 1
    plain = ((sp(-2) + sp(0)) / 2 + (sp(0) + sp(-1)) / 2) / 2
    assert value("bce") == pytest.approx(plain, rel=1e-6)
    pi = [0.75, 0.25]
    pos = [1 / (2 * p) for p in pi]
    neg = [1 / (2 * (1 - p)) for p in pi]
    want = ((pos[0] * sp(-2) + neg[1] * sp(0)) / 2 + (neg[0] * sp(0) + pos[1] * sp(-1)) / 2) / 2
    assert value("balanced_bce") == pytest.approx(want, rel=1e-6)
    assert value("balanced_bce") != pytest.approx(plain, rel=1e-3)  # really balanced
    # balanced counts: the weights are all 1, it is plain BCE
    same = build_loss("balanced_bce", {"a": [5, 5]})({"a": Z}, Y).item()
    assert same == pytest.approx(plain, rel=1e-6)


@pytest.mark.parametrize("name", ["balanced_ce", "logit_adjusted", "balanced_bce"])
def test_balanced_losses_up_weight_the_minority(name):
    counts = {"a": [900, 100]}
    z = torch.zeros(1, 2)
    def ratio(loss: str) -> float:
        fn = build_loss(loss, counts)
        return fn({"a": z}, torch.tensor([[1]])).item() / fn({"a": z}, torch.tensor([[0]])).item()
    plain = ratio("bce" if name == "balanced_bce" else "ce")
    assert plain == pytest.approx(1.0)
    assert ratio(name) > 2.0


def test_build_loss_over_attributes():
    counts = {"a": [3, 1], "b": [2, 2, 1]}
    logits = {"a": torch.randn(4, 2, requires_grad=True), "b": torch.randn(4, 3)}
    labels = torch.tensor([[0, 2], [1, 0], [0, 1], [0, 0]])
    total = build_loss("ce", counts)(logits, labels)
    per = build_loss("ce", counts).per_attribute(logits, labels)
    torch.testing.assert_close(total, per["a"] + per["b"])
    torch.testing.assert_close(per["b"], torch.nn.functional.cross_entropy(logits["b"],
                                                                         labels[:, 1]))
    mean = build_loss("ce", counts, attribute_reduction="mean")(logits, labels)
    torch.testing.assert_close(mean, total / 2)
    total.backward()
    assert logits["a"].grad is not None
    for name in LOSSES:
        assert torch.isfinite(build_loss(name, counts)(logits, labels))


def test_build_loss_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="known losses"):
        build_loss("Balanced_BCE", COUNTS)  # no silent fallback to another loss
    with pytest.raises(ConfigError, match="takes no option"):
        build_loss("balanced_bce", COUNTS, beta=0.9)
    with pytest.raises(ValueError, match="b: class"):
        build_loss("balanced_ce", {"a": [3, 1], "b": [4, 0]})
    build_loss("balanced_ce", {"b": [4, 0]}, smoothing=1.0)
    build_loss("ce", {"b": [4, 0]})  # plain CE needs no priors
    with pytest.raises(ValueError, match=r"labels must be \[B, 1\]"):
        build_loss("ce", COUNTS)({"a": Z}, torch.zeros(2, 2, dtype=torch.long))
