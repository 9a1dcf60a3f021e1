"""The training loop: seeded and deterministic on CPU, resumable, early stopping on val."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from esgar import schema
from esgar.models.factory import create_model
from esgar.training import TrainConfig, train

REGIONS = ["hair", "earring", "face", "foreground"]


class Toy(Dataset):
    """Random images whose labels every class of every attribute has (balanced losses need it)."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 32, 32, generator=g)
        self.grids = torch.rand(n, len(REGIONS), 1, 1, generator=g)
        self.labels = torch.stack([torch.arange(n) % a.num_classes for a in schema.ATTRIBUTES], 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "grids": self.grids[i], "labels": self.labels[i],
                "index": i}


def fit(out, epochs=2, seed=0, head="esg", on_epoch=None, lr=1e-3, **kw):
    torch.manual_seed(123)  # the same initial weights for every call
    net = create_model("resnet18", head, region_names=REGIONS, pretrained=False, img_size=32)
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=lr, seed=seed, device="cpu", **kw)
    return net, train(net, Toy(30, 0), Toy(15, 1), cfg, out, progress=False, on_epoch=on_epoch)


def weights(net) -> np.ndarray:
    return torch.cat([p.detach().flatten() for p in net.parameters()]).numpy()


def test_seeded_runs_are_identical(tmp_path):
    a, ra = fit(tmp_path / "a")
    b, rb = fit(tmp_path / "b")
    assert np.array_equal(weights(a), weights(b))
    assert ra.history == rb.history
    c, _ = fit(tmp_path / "c", seed=1)
    assert not np.array_equal(weights(a), weights(c))


class Interrupted(Exception):
    pass


def interrupt_after(n: int):
    def on_epoch(epoch, metrics):
        if epoch == n:
            raise Interrupted
    return on_epoch


def test_resume_continues_where_it_stopped(tmp_path):
    full, r_full = fit(tmp_path / "full", epochs=3)
    with pytest.raises(Interrupted):  # a run killed after its second epoch
        fit(tmp_path / "split", epochs=3, on_epoch=interrupt_after(2))
    resumed, r_res = fit(tmp_path / "split", epochs=3)
    assert r_res.epochs_run == 3 and len(r_res.history) == 3
    assert np.allclose(weights(full), weights(resumed), atol=1e-6)
    assert r_full.history[-1]["val/mean_bacc"] == pytest.approx(r_res.history[-1]["val/mean_bacc"])


def test_checkpoint_of_another_model_is_not_resumed(tmp_path, capsys):
    fit(tmp_path / "m", epochs=1, head="esg")
    _, r = fit(tmp_path / "m", epochs=1, head="global")
    assert "starting over" in capsys.readouterr().out
    assert r.epochs_run == 1 and (tmp_path / "m/best.pt").is_file()


def test_finished_run_is_trained_again_not_returned(tmp_path, capsys):
    first, _ = fit(tmp_path / "f", epochs=2)
    epochs_trained = []
    again, r = fit(tmp_path / "f", epochs=2,  # e.g. dvc repro after the data changed
                   on_epoch=lambda epoch, metrics: epochs_trained.append(epoch))
    assert "finished run; starting over" in capsys.readouterr().out
    assert epochs_trained == [1, 2]
    assert r.epochs_run == 2 and len(r.history) == 2
    assert np.array_equal(weights(first), weights(again))  # trained anew, seeded alike
    longer, r = fit(tmp_path / "f", epochs=3)  # more epochs continue the finished run
    assert r.epochs_run == 3 and len(r.history) == 3


def test_early_stopping_and_best_checkpoint(tmp_path):
    # weights frozen (only BatchNorm statistics move), so val stops improving soon
    _, r = fit(tmp_path / "e", epochs=30, patience=2, lr=0.0)
    scores = [h["val/mean_bacc"] for h in r.history]
    assert r.stopped_early and r.epochs_run == r.best_epoch + 2 < 30
    assert r.best_score == max(scores) and r.best_epoch == 1 + scores.index(max(scores))
    best = torch.load(tmp_path / "e/best.pt")
    assert any(k.startswith("head.") for k in best)


def test_missing_class_in_training_labels_is_a_clear_error(tmp_path):
    ds = Toy(30, 0)
    ds.labels[:, 0] = 0  # no "without hair" sample
    net = create_model("resnet18", "global", region_names=REGIONS, pretrained=False, img_size=32)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", loss="balanced_bce")
    with pytest.raises(ValueError, match="hair"):
        train(net, ds, Toy(15, 1), cfg, tmp_path, progress=False)
