"""The training loop: AdamW + cosine schedule, balanced loss, checkpoint choice and early stopping
on the validation split's mean balanced accuracy, resumable, seeded.

The test split never reaches this module: the best checkpoint is chosen on validation only.
Each piece is a function of its own: `load_checkpoint` (resume, or start over and say why),
`train_one_epoch`, `record_epoch` (best epoch and patience), `save_checkpoint`.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import random
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from esgar import schema
from esgar.device import PRECISIONS, Precision, check_device, resolve_device, resolve_precision
from esgar.distributed import Ranks
from esgar.errors import ConfigError
from esgar.forward import batched_logits
from esgar.io import atomic_path
from esgar.log import progress
from esgar.losses import build_loss, check_loss
from esgar.metrics import balanced_accuracy, class_counts

__all__ = ["TrainConfig", "TrainResult", "load_checkpoint", "make_loader", "record_epoch",
           "save_checkpoint", "seed_everything", "train", "train_one_epoch", "val_score"]

log = logging.getLogger(__name__)
BEST, LAST = "best.pt", "last.pt"


class TrainConfig(BaseModel):
    """How to train: every value comes from params.yaml's `train` section (no defaults here, so
    a setting has one home)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    min_lr_ratio: float = Field(ge=0, le=1)  # cosine decays to lr * min_lr_ratio
    loss: str
    loss_kwargs: dict[str, Any]
    patience: int = Field(ge=1)  # epochs without a better val mean balanced acc before stopping
    seed: int
    num_workers: int = Field(ge=0)
    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto (bf16 where the device has it) | bf16 | fp32: esgar.device
    attributes: tuple[str, ...] = Field(default_factory=lambda: schema.ATTRIBUTE_NAMES)

    @model_validator(mode="before")
    @classmethod
    def _amp_was_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "amp" in data:
            raise ValueError("amp was replaced by precision: auto (bf16 where the CPU or GPU "
                             "has it, what amp: true did on CUDA), bf16 or fp32")
        return data

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, v: str) -> str:
        if v not in PRECISIONS:
            raise ValueError(f"{v!r} is not one of {', '.join(PRECISIONS)}")
        return v

    @field_validator("device")
    @classmethod
    def _usable_device(cls, v: str) -> str:
        return check_device(v)

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            schema.attribute(name)
        return v

    @model_validator(mode="after")
    def _known_loss(self) -> TrainConfig:
        check_loss(self.loss, self.loss_kwargs)
        return self


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float  # val mean balanced accuracy of the best epoch
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]
    class_counts: dict[str, list[int]]  # per attribute, the training labels the loss saw
    precision: dict[str, Any]  # Precision.record() of the epochs this call trained


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                ranks: Ranks | None = None) -> DataLoader:
    """Batches of `ds`, shuffled by a seeded generator when `shuffle` (training). A training
    epoch whose last batch would hold a single sketch drops it (a different one each epoch):
    BatchNorm cannot train on a batch of one.

    With `ranks` of a data-parallel run, this rank's share: for training a `DistributedSampler`
    (seeded; `set_epoch` reshuffles) and `batch_size` the per-rank batch; otherwise every
    `world`-th item from `rank` on, none repeated (gather the ranks' outputs)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = None
    if ranks is not None and ranks.parallel:
        if shuffle:
            sampler = DistributedSampler(ds, ranks.world, ranks.rank, shuffle=True, seed=seed)
        else:
            ds = Subset(ds, range(ranks.rank, len(ds), ranks.world))  # type: ignore[arg-type]
        shuffle = False
    n = len(sampler) if sampler is not None else len(ds)  # type: ignore[arg-type]
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, sampler=sampler, generator=gen,
                      num_workers=num_workers, worker_init_fn=_worker_init,
                      persistent_workers=num_workers > 0,
                      drop_last=(shuffle or sampler is not None) and n % batch_size == 1)


def val_score(logits: dict[str, np.ndarray], labels: np.ndarray,
              attributes: tuple[str, ...]) -> dict[str, float]:
    """Balanced accuracy per attribute on the validation split and their mean (`val/mean_bacc`).

    logits: {attribute: [N,C]}; labels int [N,A], columns in `attributes` order."""
    scores = {f"val/bacc/{a}": balanced_accuracy(labels[:, j], logits[a].argmax(1))
              for j, a in enumerate(attributes)}
    scores["val/mean_bacc"] = float(np.mean(list(scores.values())))
    return scores


def _lr_lambda(total_steps: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        t = min(step / max(total_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return f


def fingerprint(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the network and the optimisation.
    Not the precision: weights and optimiser state are fp32 in both, so a run interrupted in
    one precision continues in the other (`train` says so)."""
    keep = cfg.model_dump(exclude={"epochs", "num_workers", "device", "precision"}, mode="json")
    return json.loads(json.dumps(
        {"model": getattr(model, "config", type(model).__name__), "train": keep}, default=str))


def _finished(state: dict[str, Any], cfg: TrainConfig) -> bool:
    return state["epoch"] >= cfg.epochs or state["stale"] >= cfg.patience


def _set_aside(path: Path, why: str) -> Path:
    aside = path.with_name(f"{path.stem}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
    path.rename(aside)
    log.warning("%s is unreadable (%s); moved it to %s and starting over", path, why, aside.name)
    return aside


def load_checkpoint(path: Path, expected: dict[str, Any], cfg: TrainConfig,
                    device: torch.device) -> dict[str, Any] | None:
    """The checkpoint at `path` if it continues an interrupted run of this network and settings;
    None (and the reason logged) when there is none, it is of another run or a finished one, or
    it is unreadable (a truncated file is renamed aside, never deleted). Loads tensors only
    (`weights_only=True`): a checkpoint from elsewhere cannot run code."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if not {"model", "optimizer", "scheduler", "state", "fingerprint"} <= set(ckpt):
            raise KeyError("entries missing")
    except (RuntimeError, OSError, EOFError, KeyError, TypeError, pickle.UnpicklingError,
            zipfile.BadZipFile) as e:
        _set_aside(path, (str(e).strip().splitlines() or [type(e).__name__])[0])
        return None
    if ckpt["fingerprint"] != expected:
        log.info("%s is of another model or settings; starting over", path)
        return None
    if _finished(ckpt["state"], cfg):
        # resuming is for interrupted runs; a finished one asked for again (new data or code
        # upstream) is trained again, not returned as it was
        log.info("%s holds a finished run; starting over", path)
        return None
    return ckpt


def save_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict[str, Any],
                    loader: DataLoader, expected: dict[str, Any], precision: str) -> None:
    """Everything `load_checkpoint` needs to continue exactly, written atomically;
    `precision`: what the epochs so far computed in (bf16 or fp32)."""
    # Saved through a file object: torch then names the archive's root "archive", not after the
    # temporary file, so the same checkpoint gives the same bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "state": state,
                    "loader_rng": loader.generator.get_state(),
                    "torch_rng": torch.get_rng_state(), "fingerprint": expected,
                    "precision": precision}, f)


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                    optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device,
                    precision: Precision, desc: str, ranks: Ranks | None = None) -> float:
    """One pass over `loader` (batches of image, grids, labels); the mean training loss (over
    every rank's batches in a data-parallel run). The forward pass runs in `precision`; the loss
    and the optimiser step in fp32."""
    model.train()
    running, seen = 0.0, 0
    ranks = ranks or Ranks()
    bar = progress(loader, desc=desc, leave=False, unit="batch", disable=not ranks.main)
    for batch in bar:
        images = precision.images(batch["image"].to(device))
        grids, labels = batch["grids"].to(device), batch["labels"].to(device)
        with precision.autocast():
            logits = model(images, grids)
        loss = loss_fn({a: v.float() for a, v in logits.items()}, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        running += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{running / seen:.4f}")
    running, seen = ranks.sum([running, seen])
    return running / max(seen, 1)


def _val_logits(model: nn.Module, loader: DataLoader, device: torch.device,
                precision: Precision, ranks: Ranks) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The validation logits of every rank's share, gathered; rank 0's batch-norm statistics
    first given to every rank, so that the scores are those of the weights rank 0 saves."""
    if ranks.parallel:
        ranks.broadcast_buffers(model)
    shares = ranks.gather(batched_logits(model, loader, device, precision))
    logits = {a: np.concatenate([lg[a] for lg, _ in shares]) for a in shares[0][0]}
    return logits, np.concatenate([index for _, index in shares])


def record_epoch(state: dict[str, Any], epoch: int, metrics: dict[str, float]) -> bool:
    """Add an epoch's metrics to `state` (history, best epoch, epochs without improvement);
    True when it is the best so far."""
    improved = metrics["val/mean_bacc"] > state["best_score"]
    if improved:
        state.update(best_score=metrics["val/mean_bacc"], best_epoch=epoch, stale=0)
    else:
        state["stale"] += 1
    state["epoch"] = epoch
    state["history"].append({"epoch": epoch, **metrics})
    return improved


def train(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig,
          out_dir: str | Path, resume: bool = True,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          ranks: Ranks | None = None) -> TrainResult:
    """Train `model` (images [B,3,S,S], grids [B,R,gh,gw] -> {attribute: logits [B,C]}).

    Writes `out_dir/last.pt` every epoch (model, optimiser, schedule, RNG states, history) and
    `out_dir/best.pt` (model weights) when the validation mean balanced accuracy improves.
    With `resume`, an existing `last.pt` of an interrupted run of the same network and settings
    continues where it stopped; one of another network or settings, or of a finished run,
    starts over (and a stale `best.pt` is removed, so it can never pass for this run's).
    Asking for more epochs than a finished run had continues it: the cosine schedule then
    stretches to the new length from the step it had reached.
    `on_epoch(epoch, metrics)` is called after each epoch (for experiment tracking).

    `ranks` (esgar.distributed, from torchrun): data-parallel training. `cfg.batch_size` is then
    the batch of all ranks together, each rank taking an equal share, so the steps per epoch and
    the learning rate stay those of one process. Batch norm: SyncBatchNorm on CUDA; on the CPU
    (gloo has no SyncBatchNorm) each rank normalises its own share and rank 0's running
    statistics are the ones kept. Every rank computes the same validation scores from the
    gathered logits, so early stopping agrees; only rank 0 writes files and calls `on_epoch`.
    The shuffling and augmentation of epoch e are seeded by (seed, e, rank), so a resumed
    parallel run continues exactly; `last.pt` resumes under any process count.
    """
    ranks = ranks or Ranks()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = ranks.start(resolve_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    if ranks.main:
        log.info("training in %s%s", precision.describe(),
                 f", {ranks.world} processes" if ranks.parallel else "")
    precision.prepare(model.to(device))
    stepped: nn.Module = model  # what the optimiser's steps go through
    if ranks.parallel:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        stepped = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                          else None)
    attrs = tuple(cfg.attributes)
    train_labels = train_ds.labels.numpy()  # type: ignore[attr-defined]
    # priors always come from the current training labels; build_loss rejects an empty class
    # for the losses that need every class
    counts = {a: class_counts(train_labels[:, j], schema.BY_NAME[a].num_classes, allow_zero=True)
              for j, a in enumerate(attrs)}
    loss_fn = build_loss(cfg.loss, counts, **cfg.loss_kwargs)

    if ranks.parallel and min(len(train_ds), len(val_ds)) < ranks.world:  # type: ignore[arg-type]
        raise ConfigError(f"{ranks.world} processes need at least as many training and "
                          "validation sketches; use fewer processes")
    if cfg.batch_size % ranks.world:  # the stage checks train.processes; torchrun's world here
        raise ConfigError(f"batch_size {cfg.batch_size} is the batch of all {ranks.world} "
                          "processes together and must divide evenly among them")
    share = cfg.batch_size // ranks.world
    train_loader = make_loader(train_ds, share, True, cfg.seed, cfg.num_workers, ranks)
    val_loader = make_loader(val_ds, share, False, cfg.seed, cfg.num_workers, ranks)
    val_labels = val_ds.labels.numpy()  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg.epochs * len(train_loader), cfg.min_lr_ratio))

    expected = fingerprint(model, cfg)
    ckpt = load_checkpoint(out_dir / LAST, expected, cfg, device) if resume else None
    if ckpt is None:
        state = {"epoch": 0, "best_score": -1.0, "best_epoch": -1, "stale": 0, "history": []}
        if ranks.main:
            (out_dir / BEST).unlink(missing_ok=True)
    else:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        train_loader.generator.set_state(ckpt["loader_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        log.info("resuming after epoch %d from %s", state["epoch"], out_dir / LAST)
        before = ckpt.get("precision", "fp32")
        if before != precision.used and ranks.main:
            log.warning("%s: the first %d epochs computed in %s, the rest compute in %s; the "
                        "weights carry over (fp32 in both), but the result differs from a run "
                        "in one precision", out_dir / LAST, state["epoch"], before,
                        precision.used)

    while not _finished(state, cfg):
        epoch = state["epoch"] + 1
        if ranks.parallel:
            train_loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
            torch.manual_seed(cfg.seed * 1_000_003 + epoch * 1_009 + ranks.rank)
        loss = train_one_epoch(stepped, train_loader, loss_fn, optimizer, scheduler, device,
                               precision, desc=f"epoch {epoch}/{cfg.epochs}", ranks=ranks)
        logits, index = _val_logits(model, val_loader, device, precision, ranks)
        metrics = {"train/loss": loss, "lr": scheduler.get_last_lr()[0],
                   **val_score(logits, val_labels[index], attrs)}
        best = record_epoch(state, epoch, metrics)
        if ranks.main:
            if best:
                with atomic_path(out_dir / BEST) as tmp, open(tmp, "wb") as f:
                    torch.save(model.state_dict(), f)  # same weights, same bytes (see above)
            save_checkpoint(out_dir / LAST, model, optimizer, scheduler, state, train_loader,
                            expected, precision.used)
            log.info("epoch %d: loss %.4f, val mean balanced acc %.4f%s", epoch, loss,
                     metrics["val/mean_bacc"], " (best)" if state["best_epoch"] == epoch else "")
            if on_epoch is not None:
                on_epoch(epoch, metrics)

    ranks.stop()
    return TrainResult(best_epoch=state["best_epoch"], best_score=state["best_score"],
                       epochs_run=state["epoch"], stopped_early=state["stale"] >= cfg.patience,
                       history=state["history"],
                       class_counts={a: [int(n) for n in c] for a, c in counts.items()},
                       precision=precision.record())
