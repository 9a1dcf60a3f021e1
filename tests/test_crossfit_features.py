"""The `features` crossfit: the trained model's descriptors and a cross-fitted classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset

from esgar.active.features import classifier_inputs, crossfit_classifier
from tests.test_models import HEADS, IMG, make, random_grids


class Batches(Dataset):
    """Items as `SketchDataset` gives them: image, grids, index."""

    def __init__(self, n: int):
        self.images = torch.randn(n, 3, IMG, IMG, generator=torch.Generator().manual_seed(2))
        self.grids = random_grids(n, seed=3)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "grids": self.grids[i], "index": i}


@pytest.mark.parametrize("head", HEADS)
def test_the_descriptors_are_what_each_classifier_reads(head):
    net = make(head).eval()
    ds = Batches(5)
    feats, index = classifier_inputs(net, DataLoader(ds, batch_size=2), torch.device("cpu"))
    assert index.tolist() == [0, 1, 2, 3, 4]
    with torch.inference_mode():
        logits = net(ds.images, ds.grids)
        for a, z in logits.items():
            assert feats[a].dtype == np.float32 and feats[a].shape[0] == 5
            again = net.head.classifiers[a](torch.from_numpy(feats[a]))
            torch.testing.assert_close(again, z, rtol=1e-4, atol=1e-4)
    assert not net.head.classifiers["hair"]._forward_pre_hooks  # the hooks are gone


def blobs(n: int = 240, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(0, 3, (classes, 8))
    return (centres[y] + rng.normal(0, 1, (n, 8))).astype(np.float32), y


def test_each_row_is_judged_by_a_classifier_that_never_saw_its_label():
    x, y = blobs()
    folds = np.arange(len(y)) % 4
    p, _ = crossfit_classifier(x, y, folds, 3)
    flipped = y.copy()
    flipped[0] = (y[0] + 1) % 3
    q, _ = crossfit_classifier(x, flipped, folds, 3)
    np.testing.assert_array_equal(p[folds == 0], q[folds == 0])  # its own fold unchanged
    assert not np.array_equal(p[folds == 1], q[folds == 1])  # the others learnt from it
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == y).mean() > 0.9  # the blobs are easy


def test_the_same_probabilities_as_scikit_learn_cross_val_predict():
    x, y = blobs(seed=1)
    folds = np.random.default_rng(0).integers(0, 3, len(y))
    p, extra = crossfit_classifier(x, y, folds, 3, c=0.5, extra=x[:7])
    reference = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(C=0.5, class_weight="balanced",
                                                           max_iter=2000)),
        x, y, cv=PredefinedSplit(folds), method="predict_proba")
    np.testing.assert_allclose(p, reference, atol=1e-5)
    assert extra.shape == (7, 3) and np.allclose(extra.sum(1), 1, atol=1e-5)


def test_a_class_a_fold_never_saw_gets_no_probability():
    x, y = blobs(n=60, classes=2)
    y[:3] = 2  # the third class only in fold 0
    folds = np.where(np.arange(60) < 3, 0, np.arange(60) % 3)
    p, _ = crossfit_classifier(x, y, folds, 4)
    assert p.shape == (60, 4) and (p[:, 3] == 0).all()
    assert (p[:3, 2] == 0).all()  # fold 0 is judged without that class
    one = crossfit_classifier(x, np.zeros(60, np.int64), folds, 2)[0]
    assert (one[:, 0] == 1).all()


def test_rows_that_do_not_line_up_are_refused():
    x, y = blobs(n=20)
    with pytest.raises(ValueError, match="one row per sample"):
        crossfit_classifier(x, y[:-1], np.arange(20) % 2, 3)
