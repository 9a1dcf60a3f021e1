"""Helpers the stage and integration tests share: running commands in a repo copy, editing its
params.yaml, and small weights files written by the tests themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
STAGES = ("pull", "download", "prepare", "masks", "train", "evaluate", "crossfit", "select",
          "push")

# Points every HTTP(S) client at a closed local port: "offline", whatever the machine's network.
OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "no_proxy": "", "NO_PROXY": ""}


def stage_env() -> dict[str, str]:
    """Environment for `dvc` and stage scripts: the venv's python first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `cmd` in `cwd`; with `check`, a non-zero exit fails the test showing its output."""
    proc = subprocess.run(cmd, cwd=cwd, env={**stage_env(), **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_repo(dest: Path) -> Path:
    """The project's files (tracked and untracked-not-ignored) in a fresh git repo at `dest`."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    run(["git", "init", "-q"], dest)
    commit_all(dest, "copy")
    return dest


def commit_all(repo: Path, message: str) -> None:
    """`git add -A` and commit in `repo`, as a test user (the machine may have none)."""
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm",
         message], repo)


def set_params(target: Path, **sections) -> None:
    """Edit a params file (`target`, or `target`/params.yaml for a repository folder), e.g.
    set_params(repo, train={"epochs": 2}, masks={"regions.face": [...]}); keys are dotted paths
    inside a section."""
    path = target if target.suffix in (".yaml", ".yml") else target / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        for key, value in values.items():
            node = params[section]
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(proc: subprocess.CompletedProcess) -> list[str]:
    """The pipeline stages `dvc repro` ran, in pipeline order. `pull` is always among them
    when the target is below it (it asks Label Studio every time)."""
    out = proc.stdout + proc.stderr
    return [s for s in STAGES if f"Running stage '{s}'" in out]


def write_random_weights(folder: Path, name: str = "bisenet") -> None:
    """A facexlib parser's weights file, randomly initialised (seeded): parsing runs offline."""
    import torch
    from facexlib.parsing import BiSeNet, ParseNet

    torch.manual_seed(0)
    net = BiSeNet(num_class=19) if name == "bisenet" else ParseNet(512, 512, parsing_ch=19)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / f"parsing_{name}.pth")


def repo_params(section: str) -> dict:
    """A section of the project's own params.yaml (the one home of every setting)."""
    return yaml.safe_load((REPO / "params.yaml").read_text())[section]


# ESGAR's attribute -> region table, as params.yaml has it
ATTRIBUTE_REGIONS: dict[str, str] = repo_params("model")["attribute_regions"]


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """`http://127.0.0.1:<port>` of a server that accepts connections and never answers (they
    are held open, neither read nor written), for the duration of the block."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def in_ci() -> bool:
    """The CI variable is set (CI=true, as `.ci/run` sets it): what a developer's machine may
    lack (Chromium, Label Studio's venv) must be there, and a missing one fails the test."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def required_in_ci(why: str) -> None:
    """Fails the calling test in CI (see `in_ci`); elsewhere returns, and the caller warns or
    skips."""
    import pytest

    if in_ci():
        pytest.fail(f"{why} (CI is set: CI must check this)", pytrace=False)


def screenshot(page: str, out: Path, *args: str, env: dict[str, str] | None = None
               ) -> Path | None:
    """`scripts/screenshots.py <page> ... --out <out>`, checked: the PNG it wrote loads, is at
    least 600x400 and is not blank (its grey levels vary). Without Chromium (scripts/test.sh
    installs Debian's where it can) a warning says the check was not made; the rest of the
    calling test still runs; in CI (`in_ci`) a missing Chromium fails the test."""
    import warnings

    import numpy as np
    from PIL import Image

    if not CHROMIUM.is_file():
        required_in_ci(f"no Chromium at {CHROMIUM}: the {page} screenshot cannot be checked")
        warnings.warn(f"no Chromium at {CHROMIUM}: the {page} screenshot was not checked "
                      "(apt-get install chromium)", stacklevel=2)
        return None
    proc = run([sys.executable, str(REPO / "scripts/screenshots.py"), page, *args,
                "--out", str(out)], REPO, env=env, timeout=300)
    png = Path(proc.stdout.strip().splitlines()[-1].rsplit(" -> ", 1)[1])
    with Image.open(png) as im:
        assert im.width >= 600 and im.height >= 400, im.size
        grey = np.asarray(im.convert("L"), np.float32)
    assert grey.std() > 10 and len(np.unique(grey)) > 50, f"{png} looks blank"
    return png
