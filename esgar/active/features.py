"""Out-of-sample probabilities from the trained model's own descriptors and a light classifier.

Cross-fitting whole networks (`esgar.active.crossfit`) trains K small, cheap models; their
probabilities are honest but weak. The main model is trained anyway, and at a size and length no
cross-fit can afford. Here each attribute's descriptor (the input of its classifier: for ESG the
vector its branch pooled from the attribute's region) is taken from the trained model, and a
logistic regression per attribute is cross-fitted on the same stratified folds: a label is
judged by a classifier that never saw it (cleanlab's rule, and its advice for a model too costly
to cross-fit: out-of-sample probabilities from a simple model on learned features).

What is and is not out of sample: the classifier of each fold never saw that fold's labels, but
the network that made the descriptors saw every train label (val labels only chose its epoch).
Descriptors of a memorised wrong label lean towards it, so this judges train labels a little
more leniently than whole-network cross-fitting would. Measured against it on the same noisy
data (`bench/bench_selection.py`), with params.yaml's model it finds more flipped labels per
question; with a main model trained too short (64 px, 5 epochs) it found fewer: it is as good
as the trained model.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

from esgar.device import Precision
from esgar.errors import ConfigError
from esgar.forward import batched_logits

__all__ = ["classifier_inputs", "crossfit_classifier"]


def _classifiers(model: nn.Module) -> Mapping[str, nn.Module]:
    head = getattr(model, "head", model)
    found = getattr(head, "classifiers", None)
    if found is None:
        raise ConfigError(f"{type(head).__name__}: the head has no per-attribute classifiers "
                          "to take descriptors from")
    return found


def classifier_inputs(model: nn.Module, loader: DataLoader, device: torch.device,
                      precision: Precision | None = None, desc: str | None = None
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """{attribute: float32 [N, D_a]}, what each attribute's classifier takes in (its
    descriptor), and the dataset row index of each (int [N]); the loader as `batched_logits`'s.
    """
    seen: dict[str, list[np.ndarray]] = {}

    def keep(name: str):
        def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            seen.setdefault(name, []).append(inputs[0].detach().float().cpu().numpy())
        return hook

    handles = [m.register_forward_pre_hook(keep(a)) for a, m in _classifiers(model).items()]
    try:
        _, index = batched_logits(model, loader, device, precision, desc)
    finally:
        for h in handles:
            h.remove()
    return {a: np.concatenate(v) for a, v in seen.items()}, index


def _fit(x: np.ndarray, y: np.ndarray, num_classes: int, c: float):
    """A scaled logistic regression on (x [n, D], y [n]) -> a function x [m, D] -> [m, C]."""
    present = np.unique(y)
    if len(present) == 1:  # nothing to tell apart: all of it on the one class seen
        only = np.zeros(num_classes, np.float32)
        only[present[0]] = 1.0
        return lambda rows: np.tile(only, (len(rows), 1))
    model = make_pipeline(StandardScaler(), LogisticRegression(
        C=c, class_weight="balanced", max_iter=2000))
    with warnings.catch_warnings():  # a few more iterations would not change the ranking
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)

    def predict(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), num_classes), np.float32)
        out[:, present] = model.predict_proba(rows)
        return out
    return predict


def crossfit_classifier(features: np.ndarray, labels: np.ndarray, fold_of: np.ndarray,
                        num_classes: int, c: float = 0.1, extra: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold class probabilities of one attribute from a cross-fitted classifier.

    features: float [N, D]. labels: int [N] in [0, num_classes). fold_of: int [N], each row's
    fold (e.g. `esgar.active.crossfit.assign_folds`). c: the logistic regression's inverse
    regularisation (smaller: stronger); classes are weighted inversely to their counts, so a rare
    class is not drowned. extra: float [M, D] of rows outside the folds (the test split).
    Returns (float32 [N, num_classes], each row's probabilities from the classifier fitted on
    the other folds; float32 [M, num_classes], the mean over the folds' classifiers, or None).
    A class absent from a fold's training rows gets probability 0 there.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    if len(features) != len(labels) or len(labels) != len(fold_of):
        raise ValueError(f"features {features.shape}, labels {labels.shape} and fold_of "
                         f"{np.shape(fold_of)} must have one row per sample")
    out = np.zeros((len(labels), num_classes), np.float32)
    extra_out = None if extra is None else np.zeros((len(extra), num_classes), np.float32)
    folds = np.unique(fold_of)
    for k in folds:
        held = fold_of == k
        predict = _fit(features[~held], labels[~held], num_classes, c)
        out[held] = predict(features[held])
        if extra_out is not None and len(extra_out):
            extra_out += predict(np.asarray(extra, np.float32)) / len(folds)
    return out, extra_out
