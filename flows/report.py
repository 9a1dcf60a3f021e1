"""What a flow run leaves for a person: links to MLflow and Label Studio, and markdown."""

from __future__ import annotations

from esgar.connectivity import redact, redact_text
from esgar.integrations import labelstudio as ls
from esgar.integrations import tracking

__all__ = ["labelstudio_link", "mlflow_model_link", "mlflow_run_link"]


def _ui() -> str | None:
    uri = tracking.tracking_uri()
    return redact(uri.rstrip("/")) if uri.startswith(("http://", "https://")) else None


def mlflow_run_link(run_id: str, text: str | None = None) -> str:
    """A markdown link to the run in MLflow's UI when the store is a server, else the run id and
    how to open the UI on the local store."""
    ui = _ui()
    label = text or f"run {run_id[:8]}"
    if ui:
        return f"[{label}]({ui}/#/runs/{run_id})"
    store = redact(tracking.tracking_uri())
    return f"{label} (`{run_id}`; `mlflow ui --backend-store-uri {store}` shows it)"


def mlflow_model_link(name: str, version: str) -> str:
    ui = _ui()
    if ui:
        return f"[{name} v{version}]({ui}/#/models/{name}/versions/{version})"
    return f"{name} v{version}"


def labelstudio_link(project_title: str) -> str:
    """A markdown link to the Label Studio project, or why there is none."""
    try:
        server = ls.Server.from_env()
        if server is None:
            return "no Label Studio configured (LABEL_STUDIO_URL unset)"
        with ls.connect(server) as client:
            project = ls.find_project(client, project_title)
    except ls.LabelStudioUnavailable as e:
        return f"Label Studio unavailable: {redact_text(str(e))}"
    url = redact(server.url)  # the report is shown to anyone who can see the flow run
    if project is None:
        return f"no project {project_title!r} at {url} yet"
    return f"[{project_title}]({url}/projects/{project})"
