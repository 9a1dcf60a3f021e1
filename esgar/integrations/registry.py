"""The MLflow model registry: versions of one registered model, their tags and aliases.

Beside `tracking` (runs), the only other module that talks to MLflow; it imports `tracking`,
whose bounded HTTP timeouts hold here too, and checks the store first (`check_tracking`).
Aliases replace MLflow's deprecated stages: `champion` is the model in use,
`challenger` the latest one that did not replace it (`models:/<name>@champion`).

    version = register(name, train_run_id, tags)       # idempotent per run
    champ = get_alias(name, CHAMPION)                  # None before the first promotion
    model_dir = download_model_dir(name, champ.version, tmp)   # what load_trained reads
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from esgar.errors import EsgarError
from esgar.integrations import tracking  # sets MLflow's bounded HTTP defaults on import

__all__ = ["CHAMPION", "CHALLENGER", "ModelVersion", "RegistryError", "client",
           "download_model_dir", "download_ref", "download_run_model_dir", "evaluate_run_of",
           "get_alias",
           "get_version", "list_versions", "parse_ref", "register", "resolve_ref", "run_metrics",
           "set_alias", "set_tags", "version_of_run"]

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"  # the train stage logs its pyfunc under this name
_REF = re.compile(r"^(?:models:/)?(?P<name>[^/@\s]+)(?:/(?P<version>\d+)|@(?P<alias>\w+))$")
_log = logging.getLogger(__name__)


class RegistryError(EsgarError, RuntimeError):
    """The registry cannot do what was asked (no such model or version, a run without a model);
    the message says which and what to do."""


def client() -> MlflowClient:
    """A client of the checked tracking store (`check_tracking` first: bounded, one line)."""
    uri = tracking.check_tracking()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def _missing(error: MlflowException) -> bool:
    return error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def version_of_run(c: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version of `name` registered from run `run_id`, if any (the newest)."""
    try:
        found = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException as e:
        if _missing(e):
            return None
        raise
    return max(found, key=lambda v: int(v.version)) if found else None


def register(c: MlflowClient, name: str, run_id: str, tags: Mapping[str, str]
             ) -> tuple[ModelVersion, bool]:
    """Register the model logged by run `run_id` as a version of `name` (created if needed),
    with `tags`; (version, True). A run already registered gives its version and False: the same
    model is never two versions."""
    existing = version_of_run(c, name, run_id)
    if existing is not None:
        return existing, False
    try:
        c.get_run(run_id)
    except MlflowException as e:
        raise RegistryError(f"MLflow run {run_id} is not in {mlflow.get_tracking_uri()}: "
                            "retrain, or point MLFLOW_TRACKING_URI at the store the train stage "
                            "logged to") from None if _missing(e) else e
    try:
        c.get_registered_model(name)
    except MlflowException as e:
        if not _missing(e):
            raise
        c.create_registered_model(name, description="ESGAR face sketch attribute models; "
                                                    "the champion alias is the one in use")
    uri = _model_uri(c, run_id)
    try:
        version = mlflow.register_model(uri, name, tags={k: str(v) for k, v in tags.items()})
    except MlflowException as e:
        raise RegistryError(f"{uri}: cannot be registered as {name} ({str(e)[:200]}); does "
                            "the run hold a logged model?") from None
    _log.info("registered %s version %s from run %s", name, version.version, run_id)
    return version, True


def _model_uri(c: MlflowClient, run_id: str) -> str:
    """The URI of the model run `run_id` logged: MLflow 3's logged model (`models:/<id>`) when
    the run records one, else the run's artifact path."""
    outputs = getattr(c.get_run(run_id), "outputs", None)
    models = list(getattr(outputs, "model_outputs", None) or [])
    if models:
        return f"models:/{models[-1].model_id}"
    return f"runs:/{run_id}/{MODEL_ARTIFACT}"


def get_version(c: MlflowClient, name: str, version: str | int) -> ModelVersion:
    try:
        return c.get_model_version(name, str(version))
    except MlflowException as e:
        if _missing(e):
            raise RegistryError(f"model {name} has no version {version} in "
                                f"{mlflow.get_tracking_uri()}") from None
        raise


def get_alias(c: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None (no such alias, or no such model yet)."""
    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if _missing(e) or e.error_code == "INVALID_PARAMETER_VALUE":
            return None
        raise


def list_versions(c: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of `name`, oldest first (empty when the model does not exist)."""
    try:
        found = c.search_model_versions(f"name = '{name}'")
    except MlflowException as e:
        if _missing(e):
            return []
        raise
    return sorted(found, key=lambda v: int(v.version))


def aliases(c: MlflowClient, name: str) -> dict[str, str]:
    """{alias: version} of `name`."""
    try:
        return {a: str(v) for a, v in (c.get_registered_model(name).aliases or {}).items()}
    except MlflowException as e:
        if _missing(e):
            return {}
        raise


def set_alias(c: MlflowClient, name: str, alias: str, version: str | int) -> None:
    c.set_registered_model_alias(name, alias, str(version))


def delete_alias(c: MlflowClient, name: str, alias: str) -> None:
    try:
        c.delete_registered_model_alias(name, alias)
    except MlflowException as e:
        if not _missing(e):
            raise


def set_tags(c: MlflowClient, name: str, version: str | int, tags: Mapping[str, Any]) -> None:
    for key, value in tags.items():
        c.set_model_version_tag(name, str(version), key, str(value)[:5000])


RUN_ID = re.compile(r"[0-9a-f]{32}")


def download_ref(ref: str, work_dir: str | Path) -> tuple[Path, str]:
    """The trained-model folder a registry reference (`models:/NAME@ALIAS`,
    `models:/NAME/VERSION`, `NAME@ALIAS`, `NAME/VERSION`) or a train run's id names, downloaded
    under `work_dir`, and a description of it ("NAME version V", "run ID")."""
    text = str(ref).strip()
    if parse_ref(text) is None and not RUN_ID.fullmatch(text):
        raise RegistryError(f"{ref}: no such model folder, and not a registry reference "
                            "(models:/NAME@ALIAS, models:/NAME/VERSION) or a run id")
    c = client()
    found = resolve_ref(c, text)
    if found:
        name, version = found
        return download_model_dir(c, name, version, work_dir), f"{name} version {version}"
    return download_run_model_dir(c, text, work_dir), f"run {text}"


def parse_ref(ref: str) -> tuple[str, str, str] | None:
    """`NAME/VERSION`, `NAME@ALIAS`, `models:/NAME/VERSION` or `models:/NAME@ALIAS` ->
    (name, version, alias), one of the last two empty; None for anything else (a run id)."""
    m = _REF.match(ref.strip())
    return (m["name"], m["version"] or "", m["alias"] or "") if m else None


def resolve_ref(c: MlflowClient, ref: str) -> tuple[str, str] | None:
    """(name, version) of a registry reference (see `parse_ref`; an alias is looked up), None
    when `ref` is not one."""
    parsed = parse_ref(ref)
    if parsed is None:
        return None
    name, version, alias = parsed
    if alias:
        mv = get_alias(c, name, alias)
        if mv is None:
            raise RegistryError(f"{ref}: model {name} has no alias {alias!r} in "
                                f"{mlflow.get_tracking_uri()}")
        version = str(mv.version)
    return name, version


def _model_dir_in(root: Path, what: str) -> Path:
    """The trained-model folder inside a downloaded pyfunc model at `root`."""
    try:
        conf = yaml.safe_load((root / "MLmodel").read_text())
        rel = conf["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as e:
        raise RegistryError(f"{what} is not an esgar model (its MLmodel names no model_dir "
                            f"artifact: {e})") from None
    model_dir = root / rel
    if not (model_dir / "model.json").is_file():
        raise RegistryError(f"{what}: {rel} holds no model.json")
    return model_dir


def download_model_dir(c: MlflowClient, name: str, version: str | int, dst: str | Path
                       ) -> Path:
    """The trained-model folder (`model.json` + weights, what `load_trained` reads) inside
    version `version` of `name`, downloaded under `dst`."""
    mv = get_version(c, name, version)
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}",
                                                    dst_path=str(dst)))
    return _model_dir_in(root, f"{name} version {mv.version}")


def download_run_model_dir(c: MlflowClient, run_id: str, dst: str | Path) -> Path:
    """The trained-model folder of the model a train run logged, downloaded under `dst`."""
    try:
        uri = _model_uri(c, run_id)
    except MlflowException as e:
        if _missing(e) or e.error_code == "INVALID_PARAMETER_VALUE":
            raise RegistryError(f"{run_id!r} is neither a registry reference (NAME/VERSION, "
                                f"NAME@ALIAS) nor a run in {mlflow.get_tracking_uri()}"
                                ) from None
        raise
    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    except MlflowException as e:
        raise RegistryError(f"run {run_id} has no logged model ({' '.join(str(e).split())[:200]})"
                            ) from None
    return _model_dir_in(root, f"the model of run {run_id}")


def run_metrics(c: MlflowClient, run_id: str) -> dict[str, float]:
    """The final metrics of a run ({} for an empty run id)."""
    return dict(c.get_run(run_id).data.metrics) if run_id else {}


def evaluate_run_of(c: MlflowClient, train_run_id: str) -> str:
    """The newest finished evaluate-stage run of the model trained in `train_run_id` ('' when
    there is none)."""
    exp = c.get_experiment_by_name(tracking.EXPERIMENT)
    if exp is None:
        return ""
    found = c.search_runs([exp.experiment_id],
                          f"tags.stage = 'evaluate' and tags.train_run_id = '{train_run_id}' "
                          "and attributes.status = 'FINISHED'",
                          order_by=["attributes.start_time DESC"], max_results=1)
    return found[0].info.run_id if found else ""
