"""The training loop: AdamW + cosine schedule, balanced loss, checkpoint choice and early stopping
on the validation split's mean balanced accuracy, resumable, seeded.

The test split never reaches this module: the best checkpoint is chosen on validation only.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from esgar import schema
from esgar.io import atomic_path
from esgar.losses import build_loss, class_counts
from esgar.metrics import balanced_accuracy


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-5
    weight_decay: float = 0.05
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    loss: str = "balanced_bce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    patience: int = 10  # epochs without a better val mean balanced accuracy before stopping
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    attributes: tuple[str, ...] = schema.ATTRIBUTE_NAMES


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float  # val mean balanced accuracy of the best epoch
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto'")
    return torch.device(device)


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
                ) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen,
                      num_workers=num_workers, worker_init_fn=_worker_init,
                      persistent_workers=num_workers > 0, drop_last=False)


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device,
                   attributes: tuple[str, ...], amp: bool = False,
                   progress: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Logits per attribute (float [N, C]) and the dataset row index of each (int [N])."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {a: [] for a in attributes}
    index = []
    for batch in tqdm(loader, desc="predict", disable=not progress, leave=False):
        with torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=amp and device.type == "cuda"):
            logits = model(batch["image"].to(device), batch["grids"].to(device))
        for a in attributes:
            out[a].append(logits[a].float().cpu().numpy())
        index.append(np.asarray(batch["index"]))
    return {a: np.concatenate(v) for a, v in out.items()}, np.concatenate(index)


def val_score(logits: dict[str, np.ndarray], labels: np.ndarray,
              attributes: tuple[str, ...]) -> dict[str, float]:
    """Balanced accuracy per attribute on the validation split and their mean (`val/mean_bacc`)."""
    scores = {f"val/bacc/{a}": balanced_accuracy(labels[:, j], logits[a].argmax(1))
              for j, a in enumerate(attributes)}
    scores["val/mean_bacc"] = float(np.mean(list(scores.values())))
    return scores


def _lr_lambda(total_steps: int, min_ratio: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        t = min(step / max(total_steps, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return f


def _fingerprint(model: nn.Module, cfg: TrainConfig) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the network and the optimisation."""
    keep = {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "num_workers", "device")}
    return {"model": getattr(model, "config", type(model).__name__), "train": keep}


def _finished(state: dict[str, Any], cfg: TrainConfig) -> bool:
    return state["epoch"] >= cfg.epochs or state["stale"] >= cfg.patience


def train(model: nn.Module, train_ds: Dataset, val_ds: Dataset, cfg: TrainConfig,
          out_dir: str | Path, resume: bool = True,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          progress: bool = True) -> TrainResult:
    """Train `model` (images [B,3,S,S], grids [B,R,gh,gw] -> {attribute: logits [B,C]}).

    Writes `out_dir/last.pt` every epoch (model, optimiser, schedule, RNG states, history) and
    `out_dir/best.pt` (model weights) when the validation mean balanced accuracy improves.
    With `resume`, an existing `last.pt` of an interrupted run of the same network and settings
    continues where it stopped; one of another network or settings, or of a finished run,
    starts over. Asking for more epochs than a finished run had continues it: the cosine
    schedule then stretches to the new length from the step it had reached.
    `on_epoch(epoch, metrics)` is called after each epoch (for experiment tracking).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model.to(device)
    attrs = tuple(cfg.attributes)
    train_labels = train_ds.labels.numpy()  # type: ignore[attr-defined]
    # priors always come from the current training labels; build_loss rejects an empty class
    # for the losses that need every class
    counts = {a: class_counts(train_labels[:, j], schema.BY_NAME[a].num_classes, allow_zero=True)
              for j, a in enumerate(attrs)}
    loss_fn = build_loss(cfg.loss, counts, **cfg.loss_kwargs)

    train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.seed, cfg.num_workers)
    val_loader = make_loader(val_ds, cfg.batch_size, False, cfg.seed, cfg.num_workers)
    val_labels = val_ds.labels.numpy()  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(cfg.epochs * len(train_loader), cfg.min_lr_ratio))
    amp = cfg.amp and device.type == "cuda"

    state = {"epoch": 0, "best_score": -1.0, "best_epoch": -1, "stale": 0, "history": []}
    last = out_dir / "last.pt"
    fingerprint = json.loads(json.dumps(_fingerprint(model, cfg), default=str))
    ckpt = torch.load(last, map_location=device, weights_only=False) if (
        resume and last.exists()) else None
    if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
        print(f"train: {last} is of another model or settings; starting over")
        ckpt = None
    if ckpt is not None and _finished(ckpt["state"], cfg):
        # resuming is for interrupted runs; a finished one asked for again (new data or code
        # upstream) is trained again, not returned as it was
        print(f"train: {last} holds a finished run; starting over")
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        train_loader.generator.set_state(ckpt["loader_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = ckpt["state"]
        if progress:
            print(f"train: resuming after epoch {state['epoch']} from {last}")

    while state["epoch"] < cfg.epochs and state["stale"] < cfg.patience:
        epoch = state["epoch"] + 1
        model.train()
        running, seen = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress,
                   leave=False)
        for batch in bar:
            images, grids = batch["image"].to(device), batch["grids"].to(device)
            labels = batch["labels"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(images, grids)
            loss = loss_fn({a: v.float() for a, v in logits.items()}, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item() * len(images)
            seen += len(images)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        logits, index = predict_logits(model, val_loader, device, attrs, amp)
        metrics = {"train/loss": running / max(seen, 1), "lr": scheduler.get_last_lr()[0],
                   **val_score(logits, val_labels[index], attrs)}
        improved = metrics["val/mean_bacc"] > state["best_score"]
        if improved:
            state.update(best_score=metrics["val/mean_bacc"], best_epoch=epoch, stale=0)
            with atomic_path(out_dir / "best.pt") as tmp:
                torch.save(model.state_dict(), tmp)
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        state["history"].append({"epoch": epoch, **metrics})
        with atomic_path(last) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": state,
                        "loader_rng": train_loader.generator.get_state(),
                        "torch_rng": torch.get_rng_state(), "fingerprint": fingerprint}, tmp)
        if progress:
            print(f"epoch {epoch}: loss {metrics['train/loss']:.4f}  "
                  f"val mean balanced acc {metrics['val/mean_bacc']:.4f}"
                  + ("  (best)" if improved else ""))
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    return TrainResult(best_epoch=state["best_epoch"], best_score=state["best_score"],
                       epochs_run=state["epoch"], stopped_early=state["stale"] >= cfg.patience,
                       history=state["history"])
