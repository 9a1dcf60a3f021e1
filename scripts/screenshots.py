"""The walkthrough's screenshots (docs/walkthrough.md), taken by headless Chromium (Debian's
`chromium`, driven by Playwright), so they can be made again after any change:

    python scripts/screenshots.py labelstudio   # a pushed task (questions in doubt empty), overlay
    python scripts/screenshots.py mlflow        # two registry versions' evaluate runs compared
    python scripts/screenshots.py evidence DIR  # `esgar predict --explain DIR` as a page
    python scripts/screenshots.py all DIR       # the three

labelstudio: the server of LABEL_STUDIO_URL (logged in as LABEL_STUDIO_USERNAME with
LABEL_STUDIO_PASSWORD, as scripts/labelstudio.sh made them; .env is read as that script does),
the project of params.yaml's `labelstudio.project`, its first task.
mlflow: the store of MLFLOW_TRACKING_URI (default sqlite:///mlflow.db), served here by a
temporary `mlflow server` on a free port unless it is already an http URL; the model
`registry.model_name`'s two newest versions. A page that does not load, or a screenshot that
comes out blank, is an error naming the page.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
import requests
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps calling Google's hosts at start.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 900}


class ShotError(RuntimeError):
    pass


def env_file_settings() -> dict[str, str]:
    """The repository's .env (or LABEL_STUDIO_ENV_FILE), under the environment."""
    path = Path(os.environ.get("LABEL_STUDIO_ENV_FILE") or ROOT / ".env")
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                out[key.strip()] = value.strip()
    return {**out, **os.environ}


def blank(png: Path) -> bool:
    """A screenshot with (almost) one colour: nothing rendered."""
    with Image.open(png) as im:
        grey = np.asarray(im.convert("L"), np.float32)
    return float(grey.std()) < 3.0


@contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise ShotError(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install "
                        "chromium) or set CHROMIUM to its path")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def save(page, out: Path, what: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=False)
    if blank(out):
        raise ShotError(f"{what}: the screenshot {out} came out blank")
    print(f"{what}: {page.url} -> {out}")
    return out


def logged_in(b, url: str, user: str, password: str):
    """A new page of browser `b`, logged in to the Label Studio at `url` as `user`."""
    page = b.new_page(viewport=VIEWPORT)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/login" not in u)
    return page


def labelstudio(out: Path) -> Path:
    """The first task of the pipeline's project, in the labelling view."""
    env = env_file_settings()
    url = (env.get("LABEL_STUDIO_URL") or "").rstrip("/")
    user, password, key = (env.get(k, "") for k in ("LABEL_STUDIO_USERNAME",
                                                    "LABEL_STUDIO_PASSWORD",
                                                    "LABEL_STUDIO_API_KEY"))
    if not (url and user and password and key):
        raise ShotError("labelstudio: set LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, "
                        "LABEL_STUDIO_USERNAME and LABEL_STUDIO_PASSWORD (see .env.example)")
    title = yaml.safe_load((ROOT / "params.yaml").read_text())["labelstudio"]["project"]
    headers = {"Authorization": f"Token {key}"}
    projects = requests.get(f"{url}/api/projects", params={"title": title}, headers=headers,
                            timeout=20).json()
    found = [p for p in projects.get("results", projects) if p["title"] == title]
    if not found:
        raise ShotError(f"labelstudio: no project {title!r} at {url}: run dvc repro push first")
    project = min(p["id"] for p in found)
    tasks = requests.get(f"{url}/api/tasks", params={"project": project, "page_size": 1},
                         headers=headers, timeout=20).json()
    listed = tasks.get("tasks", tasks) if isinstance(tasks, dict) else tasks
    if not listed:
        raise ShotError(f"labelstudio: project {title!r} has no tasks: run dvc repro push")
    with browser() as b:
        page = logged_in(b, url, user, password)
        page.goto(f"{url}/projects/{project}/data?task={listed[0]['id']}")
        page.get_by_text("Hair colour").first.wait_for()
        page.wait_for_function("() => [...document.images].filter(i => i.src.includes('/data/'))"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        page.wait_for_timeout(1000)
        return save(page, out, "labelstudio")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(uri: str) -> Iterator[str]:
    """The MLflow UI of `uri`: the server itself, or a temporary one on a free port."""
    if uri.startswith(("http://", "https://")):
        yield uri.rstrip("/")
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri", uri,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--artifacts-destination", tmp],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise ShotError(f"mlflow: `mlflow server` on {uri} exited ({proc.returncode})")
                try:
                    if requests.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise ShotError(f"mlflow: `mlflow server` on {uri} did not answer in 120 s")
                time.sleep(1)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def mlflow(out: Path, name: str | None = None) -> Path:
    """The compare-runs page of the evaluate runs of the two newest versions of `name`
    (default params.yaml's `registry.model_name`; a version without one: the run it was
    registered from), showing what differs."""
    sys.path.insert(0, str(ROOT))
    from esgar.integrations import registry as reg

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    name = name or params["registry"]["model_name"]
    c = reg.client()
    versions = reg.list_versions(c, name)[-2:]
    if len(versions) < 2:
        raise ShotError(f"mlflow: model {name} has {len(versions)} version(s); the comparison "
                        "needs two (run the retrain flow twice)")
    runs = []
    for v in versions:  # its evaluate run; a version registered by hand: the run it came from
        train_run = (v.tags or {}).get("train_run_id") or v.run_id
        runs.append((v.tags or {}).get("evaluate_run_id") or reg.evaluate_run_of(c, train_run)
                    or v.run_id)
    experiment = c.get_run(runs[0]).info.experiment_id
    with mlflow_ui(reg.tracking.tracking_uri()) as url, browser() as b:
        page = b.new_page(viewport=VIEWPORT)
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(f"{url}/#/compare-runs?runs={quote(json.dumps(runs))}"
                  f"&experiments={quote(json.dumps([experiment]))}")
        page.get_by_text(f"Comparing {len(runs)} Runs").wait_for()
        for button in ("Close", "Toggle sidebar"):  # the assistant panel, the side bar
            if page.get_by_role("button", name=button).count():
                page.get_by_role("button", name=button).first.click()
        page.get_by_text("Visualizations").first.click()  # folded: the numbers come first
        page.get_by_text("Run details").first.click()
        for section in ("Parameters", "Metrics", "Tags"):  # only what differs
            page.locator(f"button[aria-label='{section} - Show diff only']").click()
        page.wait_for_timeout(1500)
        return save(page, out, "mlflow")


def evidence(folder: Path, out: Path) -> Path:
    """A page of `esgar predict --explain` grids (and the predictions, if predictions.json
    sits beside them)."""
    grids = sorted(folder.glob("*.png"))
    if not grids:
        raise ShotError(f"evidence: no evidence grids (*.png) in {folder}: run esgar predict "
                        "--explain there first")
    rows = ""
    preds = folder / "predictions.json"
    if preds.is_file():
        for rec in json.loads(preds.read_text()):
            cells = "".join(f"<td>{html.escape(a)}: <b>{html.escape(v['class'])}</b> "
                            f"{v['probability']:.2f}</td>"
                            for a, v in rec.get("attributes", {}).items())
            rows += f"<tr><td>{html.escape(Path(rec['sketch']).name)}</td>{cells}</tr>"
    body = "".join(f"<img src='{g.resolve().as_uri()}' style='max-width:100%'>"
                   for g in grids[:1])
    page_html = (f"<html><body style='font-family:sans-serif;margin:16px'>"
                 f"<h3>esgar predict --explain</h3><table border=1 cellpadding=4 "
                 f"style='border-collapse:collapse;font-size:12px'>{rows}</table>{body}"
                 "</body></html>")
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "evidence.html"
        index.write_text(page_html)
        with browser() as b:
            page = b.new_page(viewport={"width": 1100, "height": 800})
            page.goto(index.as_uri())
            page.wait_for_function("() => [...document.images].every(i => i.complete && "
                                   "i.naturalWidth > 0)")
            return save(page, out, "evidence")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", choices=["labelstudio", "mlflow", "evidence", "all"])
    parser.add_argument("evidence_dir", nargs="?", type=Path,
                        help="for evidence and all: the folder esgar predict --explain wrote")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images",
                        help="folder of the PNGs (default docs/images)")
    parser.add_argument("--model", help="mlflow: the registered model (default: params.yaml's "
                                        "registry.model_name)")
    args = parser.parse_args(argv)
    shots = {"labelstudio": lambda: labelstudio(args.out / "labelstudio_task.png"),
             "mlflow": lambda: mlflow(args.out / "mlflow_compare.png", args.model),
             "evidence": lambda: evidence(args.evidence_dir, args.out / "evidence.png")}
    if args.page in ("evidence", "all") and args.evidence_dir is None:
        parser.error("evidence needs the folder esgar predict --explain wrote")
    try:
        for name in (shots if args.page == "all" else [args.page]):
            shots[name]()
    except ShotError as e:
        print(f"screenshots: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a page that never shows what it should: Playwright's timeout
        print(f"screenshots: error: {type(e).__name__}: {' '.join(str(e).split())[:400]}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
