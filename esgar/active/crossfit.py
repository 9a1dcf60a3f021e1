"""Out-of-sample class probabilities for every sketch: cross-fitting (cleanlab's rule: a label can
only be judged by a model that did not see it).

The samples are split into K folds, stratified on every attribute's current labels at once;
for each fold a model is trained on the other K-1 (its checkpoint chosen on a small stratified
validation part carved out of them) and scores the fold. Rows outside the folds (the test
split, when asked for) are scored by the mean of the K models' probabilities, which never saw
them either.

`crossfit_features` is the cheaper way: the trained main model's descriptors and a logistic
regression cross-fitted on the same folds (see `esgar.active.features`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from esgar import log as esgar_log
from esgar import schema
from esgar.active.features import classifier_inputs, crossfit_classifier
from esgar.data.dataset import SketchDataset
from esgar.data.splits import iterative_folds, iterative_split
from esgar.device import Precision, resolve_device, resolve_precision
from esgar.errors import ConfigError
from esgar.forward import batched_logits, probabilities
from esgar.models.factory import AttributeModel
from esgar.training import BEST, TrainConfig, make_loader, seed_everything, train

__all__ = ["assign_folds", "crossfit", "crossfit_features"]

log = logging.getLogger(__name__)


def _label_matrix(table: pd.DataFrame, attributes: tuple[str, ...]) -> np.ndarray:
    return table[list(attributes)].to_numpy(np.int64)


def assign_folds(table: pd.DataFrame, folds: int, seed: int,
                 attributes: tuple[str, ...] | None = None) -> np.ndarray:
    """int [N]: the fold of each row of `table`, stratified on every attribute's current label
    (`attributes`: default the schema's)."""
    attributes = schema.ATTRIBUTE_NAMES if attributes is None else attributes
    num_classes = [schema.attribute(a).num_classes for a in attributes]
    return iterative_folds(_label_matrix(table, attributes), num_classes, folds, seed)


def _fit_fold(build: Callable[[], AttributeModel], fit: pd.DataFrame, mask_dir: Path,
              cfg: TrainConfig, inner_val: float, seed: int, out: Path) -> AttributeModel:
    """A model trained on `fit`, its checkpoint chosen on a stratified part of `fit`."""
    labels = _label_matrix(fit, cfg.attributes)
    num_classes = [schema.attribute(a).num_classes for a in cfg.attributes]
    is_val = iterative_split(labels, num_classes, inner_val, seed)
    seed_everything(seed)  # the initial weights too
    net = build()
    train_ds = SketchDataset.for_model(net, fit[~is_val], mask_dir, train=True)
    val_ds = SketchDataset.for_model(net, fit[is_val], mask_dir, train=False)
    train(net, train_ds, val_ds, cfg, out)
    net.load_state_dict(torch.load(out / BEST, map_location="cpu", weights_only=True))
    return net


def _prepared(net: AttributeModel, rows: pd.DataFrame, mask_dir: Path, batch_size: int,
              device: str, precision: str) -> tuple[DataLoader, torch.device, Precision]:
    """`rows` in order as batches for `net`, and `net` moved to the device it runs on."""
    ds = SketchDataset.for_model(net, rows, mask_dir, train=False, cache=False)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    prec.prepare(net.to(dev))
    return make_loader(ds, batch_size, False, 0, 0), dev, prec


def _probs(net: AttributeModel, rows: pd.DataFrame, mask_dir: Path, cfg: TrainConfig
           ) -> dict[str, np.ndarray]:
    """{attribute: float32 [len(rows), C]} in the order of `rows`."""
    logits, index = batched_logits(net, *_prepared(net, rows, mask_dir, cfg.batch_size,
                                                   cfg.device, cfg.precision))
    order = np.argsort(index)
    return {a: p[order] for a, p in probabilities(logits).items()}


def _fold(k: int, build: Callable[[], AttributeModel], table: pd.DataFrame,
          fold_of: np.ndarray, mask_dir: Path, cfg: TrainConfig, inner_val: float, seed: int,
          work_dir: Path, extra: pd.DataFrame | None, threads: int | None = None
          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Fold `k`: a model trained on the other folds; its probabilities of fold k's rows and of
    `extra`'s. `threads`: in a worker process, how many CPU threads it may use."""
    if threads is not None:  # a worker of a pool: its share of the CPU, and no progress bars
        torch.set_num_threads(threads)
        esgar_log.configure(quiet=True)
    folds = int(fold_of.max()) + 1
    log.info("fold %d/%d: training on %d sketches, scoring %d", k + 1, folds,
             int((fold_of != k).sum()), int((fold_of == k).sum()))
    net = _fit_fold(build, table[fold_of != k], mask_dir, cfg, inner_val, seed + k,
                    work_dir / f"fold{k}")
    held_out = _probs(net, table.iloc[np.flatnonzero(fold_of == k)], mask_dir, cfg)
    scored = ({} if extra is None or not len(extra) else
              _probs(net, extra.reset_index(drop=True), mask_dir, cfg))
    return held_out, scored


def crossfit(table: pd.DataFrame, mask_dir: str | Path, build: Callable[[], AttributeModel],
             cfg: TrainConfig, folds: int, seed: int, inner_val: float, work_dir: str | Path,
             extra: pd.DataFrame | None = None, processes: int = 1) -> pd.DataFrame:
    """Out-of-sample probabilities of every row of `table` (and of `extra`, scored by all folds'
    models, e.g. the test split), from `folds` models each trained on the other folds.

    build: makes a fresh, untrained model (called once per fold, after seeding; picklable, e.g.
    a `functools.partial` of `create_model`, when `processes` > 1). cfg: how each fold's model
    trains. work_dir: one checkpoint folder per fold (`fold<k>/`): an interrupted run resumes
    where it stopped. processes: folds trained at once, each in a process of its own with an
    equal share of this process's CPU threads; the result is that of one process training the
    folds one after another with that many threads (the same bytes on the same machine).
    Returns one row per sample: sample_id, split, fold (-1 for `extra`), and per attribute its
    current label and `<a>_prob` (float32 [C]).
    """
    mask_dir, work_dir = Path(mask_dir), Path(work_dir)
    table = table.reset_index(drop=True)
    fold_of = assign_folds(table, folds, seed, cfg.attributes)
    probs = {a: np.zeros((len(table), schema.attribute(a).num_classes), np.float32)
             for a in cfg.attributes}
    extra_probs: dict[str, np.ndarray] = {}
    args = (build, table, fold_of, mask_dir, cfg, inner_val, seed, work_dir, extra)
    workers = min(processes, folds)
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        log.info("%d folds at once, %d thread(s) each", workers, threads)
        # spawn: a fork of a process that has run torch's thread pools can hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_fold, range(folds), *([a] * folds for a in args),
                                    [threads] * folds))
    else:
        results = (_fold(k, *args) for k in range(folds))
    for k, (held_out, scored) in enumerate(results):
        for a, p in held_out.items():
            probs[a][fold_of == k] = p
        for a, p in scored.items():
            extra_probs[a] = extra_probs.get(a, 0) + p / folds
    frames = [_frame(table, fold_of, probs)]
    if extra is not None and len(extra):
        frames.append(_frame(extra.reset_index(drop=True), np.full(len(extra), -1), extra_probs))
    return pd.concat(frames, ignore_index=True)


def _descriptors(net: AttributeModel, rows: pd.DataFrame, mask_dir: Path, batch_size: int,
                 device: str, precision: str, desc: str) -> dict[str, np.ndarray]:
    """{attribute: float32 [len(rows), D]} in the order of `rows`."""
    feats, index = classifier_inputs(net, *_prepared(net, rows, mask_dir, batch_size, device,
                                                     precision), desc=desc)
    order = np.argsort(index)
    return {a: f[order] for a, f in feats.items()}


def crossfit_features(table: pd.DataFrame, mask_dir: str | Path, net: AttributeModel,
                      folds: int, seed: int, c: float, batch_size: int = 64,
                      device: str = "auto", precision: str = "auto",
                      extra: pd.DataFrame | None = None,
                      attributes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Out-of-sample probabilities of every row of `table` (and of `extra`) from `net`'s
    per-attribute descriptors and a logistic regression (inverse regularisation `c`) per
    attribute, cross-fitted on `folds` folds stratified as `crossfit`'s.

    net: the trained model (`load_trained`); it must model every one of `attributes`. The same
    frame as `crossfit` returns (sample_id, split, fold, per attribute the label and `<a>_prob`).
    """
    attributes = schema.ATTRIBUTE_NAMES if attributes is None else attributes
    missing = [a for a in attributes if a not in net.attributes]
    if missing:
        raise ConfigError(f"the trained model has no classifier for {', '.join(missing)} "
                          f"(it models {', '.join(net.attributes)}): train it on every attribute")
    mask_dir = Path(mask_dir)
    table = table.reset_index(drop=True)
    fold_of = assign_folds(table, folds, seed, attributes)
    feats = _descriptors(net, table, mask_dir, batch_size, device, precision, "descriptors")
    extra_feats: dict[str, np.ndarray] = {}
    if extra is not None and len(extra):
        extra = extra.reset_index(drop=True)
        extra_feats = _descriptors(net, extra, mask_dir, batch_size, device, precision,
                                   "descriptors (extra)")
    probs, extra_probs = {}, {}
    for a in attributes:
        probs[a], extra_probs[a] = crossfit_classifier(
            feats[a], table[a].to_numpy(np.int64), fold_of, schema.attribute(a).num_classes, c,
            extra_feats.get(a))
    log.info("%d sketches judged by %d-fold logistic regressions on the trained model's "
             "descriptors", len(table), folds)
    frames = [_frame(table, fold_of, probs)]
    if extra_feats:
        frames.append(_frame(extra, np.full(len(extra), -1), extra_probs))
    return pd.concat(frames, ignore_index=True)


def _frame(rows: pd.DataFrame, fold: np.ndarray, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    out = pd.DataFrame({"sample_id": rows["sample_id"].to_numpy(),
                        "split": rows["split"].to_numpy(), "fold": fold.astype(np.int64)})
    for a, p in probs.items():
        out[a] = rows[a].to_numpy()
        out[f"{a}_prob"] = list(p.astype(np.float32))
    return out
