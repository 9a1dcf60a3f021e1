"""Label-issue scores, uncertainty and the budgeted, stratified pick, checked against cleanlab."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cleanlab.count import get_confident_thresholds
from cleanlab.rank import get_label_quality_scores

from esgar.active.selection import (
    class_thresholds,
    find_label_issues,
    label_issue_scores,
    select,
    suspected_classes,
    uncertainty,
)

SETTINGS = {"uncertainty_kind": "entropy", "quota_share": 0.25}


def noisy_problem(n: int = 3000, prior=(0.9, 0.1), flip=0.25, seed: int = 0):
    """An imbalanced binary attribute, a model of fair skill, and label flips concentrated in
    the minority class (as FS2K's rare classes are where errors cost most).

    Returns (given labels, true labels, out-of-sample probabilities [N,2])."""
    rng = np.random.default_rng(seed)
    true = (rng.random(n) < prior[1]).astype(int)
    # the model sees the truth through noise, and is shy of the rare class (its prior is low)
    logit = np.where(true == 1, 1.2, -2.2) + rng.normal(0, 1.0, n)
    p1 = 1 / (1 + np.exp(-logit))
    probs = np.stack([1 - p1, p1], 1)
    given = true.copy()
    flipped = (true == 1) & (rng.random(n) < flip)
    given[flipped] = 0
    return given, true, probs


def test_thresholds_are_cleanlabs_confident_thresholds():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 2, 0.5], 300)
    labels = rng.integers(0, 3, 300)
    np.testing.assert_allclose(class_thresholds(labels, probs),
                               get_confident_thresholds(labels, probs))


def test_scores_find_flipped_minority_labels_at_least_as_well_as_cleanlab():
    given, true, probs = noisy_problem()
    wrong = given != true
    k = int(wrong.sum())
    ours = np.argsort(-label_issue_scores(given, probs), kind="stable")[:k]
    for method in ("self_confidence", "normalized_margin"):
        theirs = np.argsort(get_label_quality_scores(given, probs, method=method),
                            kind="stable")[:k]
        assert wrong[ours].mean() >= wrong[theirs].mean(), method
    assert wrong[ours].mean() > 0.7
    flags = find_label_issues(given, probs)
    assert flags[wrong].mean() > 0.5  # most flips are flagged...
    assert flags[~wrong].mean() < 0.1  # ...and few clean labels


def test_uncertainty_kinds_span_zero_to_one():
    sure, lost = np.array([[1.0, 0.0, 0.0]]), np.full((1, 3), 1 / 3)
    for kind in ("entropy", "margin", "least_confidence"):
        assert uncertainty(sure, kind)[0] == pytest.approx(0, abs=1e-9)
        assert uncertainty(lost, kind)[0] == pytest.approx(1)
    with pytest.raises(ValueError, match="unknown uncertainty"):
        uncertainty(sure, "gini")


def attributes(seed: int = 0):
    """Two noisy attributes over the same samples: a rare class (hair) and a common one."""
    hair, hair_true, hair_probs = noisy_problem(n=1000, seed=seed)
    gender, gender_true, gender_probs = noisy_problem(n=1000, prior=(0.6, 0.4), flip=0.1,
                                                      seed=seed + 1)
    return ({"hair": hair, "gender": gender}, {"hair": hair_probs, "gender": gender_probs},
            hair != hair_true)


def test_select_respects_the_budget_and_groups_questions_by_sketch():
    labels, probs, wrong = attributes()
    tasks = select(labels, probs, budget=50, **SETTINGS)
    assert len(tasks) == 50
    samples = [t[0].sample for t in tasks]
    assert len(set(samples)) == 50  # one task per sketch
    for task in tasks:
        assert len({c.sample for c in task}) == 1
        assert [c.attribute for c in task] == sorted({c.attribute for c in task},
                                                     key=["hair", "gender"].index)
    picked = [c.sample for t in tasks for c in t if c.attribute == "hair"]
    assert wrong[picked].mean() > 0.5  # the hair questions are mostly real errors
    assert select(labels, probs, budget=50, **SETTINGS) == tasks  # deterministic


def test_select_gives_every_class_of_every_attribute_its_share():
    labels, probs, _ = attributes()
    tasks = select(labels, probs, budget=40, uncertainty_kind="entropy", quota_share=1.0)
    picked = [(c.attribute, 1 - c.label) for t in tasks for c in t if c.reason == "suspect"]
    for a in labels:  # every (attribute, suspected class) with enough suspects gets turns
        suspected = suspected_classes(labels[a], probs[a])
        for cls in (0, 1):
            if (suspected == cls).sum() >= 10:
                assert picked.count((a, cls)) >= 5, (a, cls)
    assert {a for a, _ in picked} == {"hair", "gender"}
    by_score = select(labels, probs, budget=40, uncertainty_kind="entropy", quota_share=0.0)
    assert by_score != tasks


def test_select_never_asks_again_what_a_human_decided():
    labels, probs, _ = attributes()
    first = select(labels, probs, budget=30, **SETTINGS)
    decided = {a: np.zeros(1000, bool) for a in labels}
    for t in first:
        for c in t:
            decided[c.attribute][c.sample] = True
    again = select(labels, probs, budget=30, decided=decided, **SETTINGS)
    asked_before = {(c.sample, c.attribute) for t in first for c in t}
    assert not asked_before & {(c.sample, c.attribute) for t in again for c in t}
    assert len(again) == 30


def test_select_on_too_small_a_pool_returns_what_there_is():
    labels = {"hair": np.array([0, 1, 0])}
    probs = {"hair": np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])}
    tasks = select(labels, probs, budget=10, **SETTINGS)
    assert sorted(t[0].sample for t in tasks) == [0, 1, 2]
    assert tasks[0][0].sample == 2 and tasks[0][0].reason == "suspect"  # it reaches class 1


def test_settled_pairs_are_not_asked_again_ties_and_unsure_decisions_may_be():
    from pipeline.select import decided_pairs

    snapshot = pd.DataFrame({"sample_id": ["a", "b", "c", "d"], "attribute": "earring",
                             "status": ["decided", "unsure", "tie", "low_confidence"]})
    done = decided_pairs(snapshot, pd.Series(["a", "b", "c", "d", "e"]))
    assert done["earring"].tolist() == [True, True, False, False, False]
    assert not any(done["smile"])
