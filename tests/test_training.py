"""The training loop: seeded and deterministic on CPU, resumable, early stopping on val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from esgar import schema
from esgar.models.factory import create_model
from esgar.training import TrainConfig, load_checkpoint, make_loader, record_epoch, train
from tests.helpers import ATTRIBUTE_REGIONS, repo_params

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


def config(**kw) -> TrainConfig:
    """params.yaml's train settings (the library has no defaults of its own), changed by kw."""
    p = {k: v for k, v in repo_params("train").items()
         if k in TrainConfig.model_fields}
    return TrainConfig(**{**p, "batch_size": 8, "device": "cpu", **kw})


def model(head="esg"):
    return create_model("resnet18", head, region_names=REGIONS,
                        attribute_regions={a: "face" for a in ATTRIBUTE_REGIONS},
                        pretrained=False, img_size=32)


def fit(out, epochs=2, seed=0, head="esg", on_epoch=None, lr=1e-3, **kw):
    torch.manual_seed(123)  # the same initial weights for every call
    net = model(head)
    cfg = config(epochs=epochs, lr=lr, seed=seed, **kw)
    return net, train(net, Toy(30, 0), Toy(15, 1), cfg, out, on_epoch=on_epoch)


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


class Touch:
    """Unpickling it creates a file: what a malicious checkpoint could do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


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


def test_checkpoint_of_another_model_is_not_resumed(tmp_path, caplog):
    fit(tmp_path / "m", epochs=1, head="esg")
    esg_best = (tmp_path / "m/best.pt").read_bytes()
    epochs = []
    global_net, r = fit(tmp_path / "m", epochs=1, head="global",
                        on_epoch=lambda epoch, metrics: epochs.append(epoch))
    assert "of another model or settings; starting over" in caplog.text
    assert r.epochs_run == 1 and epochs == [1]
    best = torch.load(tmp_path / "m/best.pt", weights_only=True)
    assert best != esg_best and set(best) == set(global_net.state_dict())  # this run's


@pytest.mark.bad_input(stage="train", kind="output")
def test_stale_best_is_removed_when_starting_over(tmp_path):
    fit(tmp_path / "s", epochs=1)
    (tmp_path / "s/last.pt").unlink()

    class Exploding(Toy):
        def __getitem__(self, i):
            raise Interrupted  # the run dies in its first epoch

    cfg = config(epochs=1)
    with pytest.raises(Interrupted):
        train(model(), Exploding(30, 0), Toy(15, 1), cfg, tmp_path / "s")
    assert not (tmp_path / "s/best.pt").exists()  # no old best.pt passes for this run's


@pytest.mark.bad_input(stage="train", kind="output")
def test_truncated_checkpoint_is_set_aside_and_training_starts_over(tmp_path, caplog):
    fit(tmp_path / "t", epochs=2, on_epoch=interrupt_after(3))  # finished, not interrupted
    last = tmp_path / "t/last.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    _, r = fit(tmp_path / "t", epochs=3)
    assert r.epochs_run == 3 and len(r.history) == 3
    aside = list((tmp_path / "t").glob("last.unreadable-*.pt"))
    assert len(aside) == 1 and aside[0].read_bytes() == data[: len(data) // 2]
    assert "unreadable" in caplog.text and "starting over" in caplog.text


@pytest.mark.bad_input(stage="train", kind="output")
def test_checkpoint_loads_tensors_only(tmp_path):
    """A checkpoint that would run code when unpickled is refused, not executed."""
    out = tmp_path / "w"
    out.mkdir()
    torch.save({"model": {}, "optimizer": {}, "scheduler": {},
                "state": Touch(tmp_path / "pwned"), "fingerprint": {}}, out / "last.pt")
    cfg = config(epochs=1)
    assert load_checkpoint(out / "last.pt", {}, cfg, torch.device("cpu")) is None
    assert not (tmp_path / "pwned").exists()


def test_record_epoch_tracks_best_and_patience():
    state = {"epoch": 0, "best_score": -1.0, "best_epoch": -1, "stale": 0, "history": []}
    assert record_epoch(state, 1, {"val/mean_bacc": 0.5})
    assert not record_epoch(state, 2, {"val/mean_bacc": 0.5})  # equal is not better
    assert record_epoch(state, 3, {"val/mean_bacc": 0.6})
    assert not record_epoch(state, 4, {"val/mean_bacc": 0.1})
    assert (state["best_epoch"], state["stale"], state["epoch"]) == (3, 1, 4)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3, 4]


@pytest.mark.bad_input(stage="train", kind="params")
def test_config_has_no_defaults_and_checks_ranges():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig()
    for bad in ({"epochs": 0}, {"lr": 0}, {"patience": 0}, {"loss": "bal"},
                {"loss_kwargs": {"beta": 0.9}}, {"typo": 1}):
        with pytest.raises(ValueError):
            config(**bad)


def test_finished_run_is_trained_again_not_returned(tmp_path, caplog):
    first, _ = fit(tmp_path / "f", epochs=2)
    epochs_trained = []
    again, r = fit(tmp_path / "f", epochs=2,  # e.g. dvc repro after the data changed
                   on_epoch=lambda epoch, metrics: epochs_trained.append(epoch))
    assert "finished run; starting over" in caplog.text
    assert epochs_trained == [1, 2]
    assert r.epochs_run == 2 and len(r.history) == 2
    assert np.array_equal(weights(first), weights(again))  # trained anew, seeded alike
    longer, r = fit(tmp_path / "f", epochs=3)  # more epochs continue the finished run
    assert r.epochs_run == 3 and len(r.history) == 3


def test_early_stopping_and_best_checkpoint(tmp_path):
    # weights all but frozen (a learning rate of 1e-12; BatchNorm statistics move), so val stops
    # improving soon
    _, r = fit(tmp_path / "e", epochs=30, patience=2, lr=1e-12)
    scores = [h["val/mean_bacc"] for h in r.history]
    assert r.stopped_early and r.epochs_run == r.best_epoch + 2 < 30
    assert r.best_score == max(scores) and r.best_epoch == 1 + scores.index(max(scores))
    best = torch.load(tmp_path / "e/best.pt")
    assert any(k.startswith("head.") for k in best)


@pytest.mark.bad_input(stage="train", kind="params")
def test_missing_class_in_training_labels_is_a_clear_error(tmp_path):
    ds = Toy(30, 0)
    ds.labels[:, 0] = 0  # no "without hair" sample
    cfg = config(epochs=1, loss="balanced_bce", loss_kwargs={})
    with pytest.raises(ValueError, match="hair"):
        train(model("global"), ds, Toy(15, 1), cfg, tmp_path)


def test_a_last_batch_of_one_is_dropped_in_training_only(tmp_path):
    """BatchNorm cannot train on one sample: 17 sketches in batches of 8 must still train."""
    net = model("global")
    cfg = config(epochs=1, batch_size=8, loss_kwargs={"smoothing": 1.0})
    r = train(net, Toy(17, 0), Toy(9, 1), cfg, tmp_path)
    assert r.epochs_run == 1
    assert len(make_loader(Toy(17, 0), 8, True, 0, 0)) == 2
    assert len(make_loader(Toy(17, 0), 8, False, 0, 0)) == 3  # prediction keeps every sketch


def test_the_same_weights_are_the_same_bytes(tmp_path):
    """torch.save names its archive after the file it writes; saved through the temporary file
    of an atomic write, every save would differ (and DVC would see a new model each run)."""
    from esgar.models.factory import save_weights

    net = torch.nn.Linear(4, 2)
    first, second = save_weights(tmp_path / "a", net), save_weights(tmp_path / "b", net)
    assert first.read_bytes() == second.read_bytes()
