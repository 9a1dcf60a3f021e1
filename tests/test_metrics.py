"""Metrics equal scikit-learn's, bootstrap intervals, the evaluation summary, the plot."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
from sklearn import metrics as skm

from esgar import schema
from esgar.metrics import (
    accuracy,
    balanced_accuracy,
    batched_confusion,
    bootstrap_ci,
    confusion_matrix,
    evaluate,
    macro_f1,
    per_class_recall,
)
from esgar.visualize import plot_confusion


def random_case(seed: int, n: int = 200, c: int = 5):
    """y_true lacks class 2 (predicted anyway) and class 4 (never seen at all)."""
    rng = np.random.default_rng(seed)
    y_true = rng.choice([0, 1, 3], size=n, p=[0.6, 0.3, 0.1])
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.choice([0, 1, 2, 3], size=n))
    return y_true, y_pred, c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed):
    t, p, c = random_case(seed)
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        want = skm.balanced_accuracy_score(t, p)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        assert balanced_accuracy(t, p, c) == pytest.approx(want)
    assert macro_f1(t, p, c) == pytest.approx(skm.f1_score(t, p, average="macro"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_rec = skm.recall_score(t, p, labels=range(c), average=None, zero_division=0)
    with pytest.warns(UserWarning, match="no true samples"):
        np.testing.assert_allclose(per_class_recall(t, p, c), want_rec)
    np.testing.assert_array_equal(confusion_matrix(t, p, c),
                                  skm.confusion_matrix(t, p, labels=range(c)))


def test_balanced_accuracy_without_missing_classes_does_not_warn():
    t = np.array([0, 0, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert balanced_accuracy(t, np.zeros(4, int)) == pytest.approx(0.5)  # majority class
    assert accuracy(t, np.zeros(4, int)) == pytest.approx(0.75)


def test_bootstrap_is_vectorised_seeded_and_contains_the_estimate():
    t, p, c = random_case(0)
    idx = np.random.default_rng(5).integers(0, len(t), size=(4, len(t)))
    cms = batched_confusion(t, p, idx, c)
    for r in range(4):
        np.testing.assert_array_equal(cms[r], confusion_matrix(t[idx[r]], p[idx[r]], c))
    for name, point in [("bacc", skm.balanced_accuracy_score), ("acc", skm.accuracy_score),
                        ("macro_f1", lambda a, b: skm.f1_score(a, b, average="macro"))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = point(t, p)
        lo, hi = bootstrap_ci(t, p, name, c, n_resamples=500, seed=3)
        assert lo <= est <= hi and hi - lo < 0.3
        assert (lo, hi) == bootstrap_ci(t, p, name, c, n_resamples=500, seed=3)
        assert (lo, hi) != bootstrap_ci(t, p, name, c, n_resamples=500, seed=4)


def test_evaluate_summary():
    rng = np.random.default_rng(0)
    n = 150
    attrs = schema.ATTRIBUTE_NAMES
    k = [schema.attribute(a).num_classes for a in attrs]
    y_true = np.stack([rng.integers(0, c, n) for c in k], 1)
    y_pred = np.where(rng.random((n, len(k))) < 0.7, y_true,
                      np.stack([rng.integers(0, c, n) for c in k], 1))
    out = evaluate(y_true, y_pred, n_resamples=200, seed=1)
    for j, a in enumerate(attrs):
        assert out[f"acc/{a}"] == pytest.approx(skm.accuracy_score(y_true[:, j], y_pred[:, j]))
        assert out[f"bacc/{a}"] == pytest.approx(
            skm.balanced_accuracy_score(y_true[:, j], y_pred[:, j]))
        assert out[f"bacc/{a}_ci_low"] <= out[f"bacc/{a}"] <= out[f"bacc/{a}_ci_high"]
    assert out["mean_bacc"] == pytest.approx(np.mean([out[f"bacc/{a}"] for a in attrs]))
    six = [a for a in attrs if a != "hair_color"]
    assert out["paper_mean_acc_6attr"] == pytest.approx(np.mean([out[f"acc/{a}"] for a in six]))
    assert out["mean_macro_f1_ci_low"] <= out["mean_macro_f1"] <= out["mean_macro_f1_ci_high"]
    assert out == evaluate(y_true, y_pred, n_resamples=200, seed=1)
    as_dict = evaluate({a: y_true[:, j] for j, a in enumerate(attrs)},
                       {a: y_pred[:, j] for j, a in enumerate(attrs)}, n_resamples=0)
    assert as_dict["bacc/hair"] == out["bacc/hair"] and "bacc/hair_ci_low" not in as_dict
    assert "recall/style/style0" in out
    for j, a in enumerate(attrs):  # the rarest true class's recall, as scikit-learn has it
        rare = np.bincount(y_true[:, j], minlength=k[j]).argmin()
        assert out[f"minority_recall/{a}"] == pytest.approx(skm.recall_score(
            y_true[:, j], y_pred[:, j], labels=[rare], average=None)[0])
    assert out["mean_minority_recall"] == pytest.approx(
        np.mean([out[f"minority_recall/{a}"] for a in attrs]))
    assert out["mean_minority_recall_ci_low"] <= out["mean_minority_recall"]
    only = evaluate(y_true[:, :1], y_pred[:, :1], attributes=["hair"], n_resamples=0)
    assert "paper_mean_acc_6attr" not in only


def test_plot_confusion(tmp_path):
    backend = matplotlib.get_backend()
    cm = confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    path = plot_confusion(cm, ["brown", "black", "red"], tmp_path / "cm" / "hair.png", "hair")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
    with pytest.raises(ValueError, match="class names"):
        plot_confusion(cm, ["a", "b"], tmp_path / "x.png")
