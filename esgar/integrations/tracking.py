"""MLflow, the one module that imports it: runs, params, data version, curves, plots, models.

Default store: `sqlite:///mlflow.db` in the working directory (the repo root for stages), with
artifacts in `./mlruns`; `MLFLOW_TRACKING_URI` overrides it. The model is logged as a pyfunc
that takes named tensors `{"image": float32 [B,3,S,S], "grids": float32 [B,R,gh,gw]}` and
returns `{attribute: class probabilities [B,C]}` for any batch size.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402

DEFAULT_URI = "sqlite:///mlflow.db"
EXPERIMENT = "esgar"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 1e-5}} -> {"train.lr": "1e-05"} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return out


def git_commit(cwd: str | Path = ".") -> str:
    """HEAD's commit, suffixed `-dirty` when tracked files changed; `unknown` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def data_version(paths: list[str], lock: str | Path = "dvc.lock") -> dict[str, str]:
    """DVC's hash of the output holding each path (the path itself or a folder above it), as
    recorded in dvc.lock; `missing` where no stage output holds it yet."""
    lock = Path(lock)
    outs: dict[str, str] = {}
    if lock.is_file():
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []):
                outs[out["path"].rstrip("/")] = out.get("md5") or out.get("hash", "")
    result = {}
    for p in paths:
        holder = next((o for o in outs if p == o or p.startswith(o + "/")), None)
        result[f"data.{holder or p}"] = outs[holder] if holder else "missing"
    return result


@contextmanager
def run(run_name: str, params: Mapping[str, Any], tags: Mapping[str, str],
        experiment: str = EXPERIMENT) -> Iterator[mlflow.ActiveRun]:
    """Start a run in `experiment` with flattened params and tags (git commit added)."""
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as active:
        mlflow.set_tags({"git_commit": git_commit(), **tags})
        mlflow.log_params(flatten(params))
        yield active


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Metric names may hold '/', as MLflow groups them in its UI."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_artifact(path: str | Path, folder: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path=folder)


class _AttributeModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: rebuilds the network from its config and weights, softmaxes each head."""

    def load_context(self, context) -> None:
        import torch

        from esgar.models.factory import create_model

        config = json.loads(Path(context.artifacts["config"]).read_text())
        self.attributes = config["attributes"]
        self.net = create_model(**config["model"])
        self.net.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu"))
        self.net.eval()

    def predict(self, context, model_input, params=None):
        import torch

        with torch.inference_mode():
            logits = self.net(torch.as_tensor(np.asarray(model_input["image"], np.float32)),
                              torch.as_tensor(np.asarray(model_input["grids"], np.float32)))
        return {a: torch.softmax(logits[a], 1).numpy() for a in self.attributes}


def log_model(net, example: dict[str, np.ndarray], name: str = "model",
              registered_model_name: str | None = None):
    """Log `net` (an `AttributeModel`) as a pyfunc; `example` must hold a batch of >= 2 so no
    batch size is baked in. It is rebuilt from `net.config` (random init) plus its weights.
    """
    import torch

    if len(example["image"]) < 2:
        raise ValueError("log_model: give an input example with a batch of at least 2")
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pt"
        config = Path(tmp) / "config.json"
        torch.save(net.state_dict(), weights)
        attributes = list(net.attributes)
        config.write_text(json.dumps({"model": {**net.config, "pretrained": False},
                                      "attributes": attributes}))
        net.eval()
        with torch.inference_mode():
            logits = net(torch.as_tensor(example["image"]), torch.as_tensor(example["grids"]))
        output = {a: torch.softmax(logits[a], 1).numpy() for a in attributes}
        return mlflow.pyfunc.log_model(
            name=name, python_model=_AttributeModel(),
            artifacts={"weights": str(weights), "config": str(config)},
            input_example=example, signature=infer_signature(example, output),
            registered_model_name=registered_model_name, pip_requirements=_requirements(),
            code_paths=[str(Path(__file__).resolve().parents[1])],  # the esgar package itself
        )


def _requirements() -> list[str]:
    """The model's runtime packages, pinned to what is installed (skips MLflow's slow guess)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("torch", "timm", "numpy", "mlflow")]
