"""Prefect tasks over the pipeline: `dvc repro` of targets (DVC decides what is stale, and
`dvc.lock` stays the record), and reading what the stages wrote."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

__all__ = ["StageFailed", "dvc_repro", "in_repo", "read_json"]

RAN = re.compile(r"Running stage '([^']+)'")
LOCKED = "Unable to acquire lock"  # another dvc process holds the repository: worth a retry
REPRO_TIMEOUT_S = 6 * 3600  # the whole pipeline on FS2K with the paper's backbone, generously


class StageFailed(RuntimeError):
    """`dvc repro` failed; the message holds the stage's own `error:` line(s)."""


def _env() -> dict[str, str]:
    """The stages' environment: this interpreter's venv first on PATH (DVC runs `python`)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return env


def _transient(task, task_run, state) -> bool:
    """Retry only a repository lock held by another dvc process, not a stage's own failure."""
    try:
        state.result()
    except StageFailed as e:
        return LOCKED in str(e)
    except Exception:
        return False
    return False


@contextlib.contextmanager
def in_repo(repo: str | Path) -> Iterator[Path]:
    """Work inside the repository (params.yaml's paths and the default tracking store are
    relative to it)."""
    root = Path(repo).resolve()
    if not (root / "dvc.yaml").is_file():
        raise StageFailed(f"{root} is not the project's repository (no dvc.yaml)")
    with contextlib.chdir(root):
        yield root


@task(retries=2, retry_delay_seconds=15, retry_condition_fn=_transient, log_prints=True,
      timeout_seconds=REPRO_TIMEOUT_S, task_run_name="dvc repro {targets}")
def dvc_repro(targets: list[str], repo: str = ".") -> list[str]:
    """`dvc repro TARGETS` in `repo`, its output streamed to the flow's log; returns the stages
    that ran. StageFailed with the stages' error lines when it fails."""
    logger = get_run_logger()
    root = Path(repo).resolve()
    cmd = ["dvc", "repro", *targets]
    logger.info("%s (in %s)", " ".join(cmd), root)
    proc = subprocess.Popen(cmd, cwd=root, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    ran, errors, tail = [], [], []
    assert proc.stdout is not None
    try:
        # newline="\n": a progress bar's "\r" redraws stay inside one line, logged once
        for line in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace",
                                     newline="\n"):
            line = line.rstrip()
            if "\r" in line:  # a progress bar's redraws: its last state only
                line = line.rsplit("\r", 1)[-1]
            if not line:
                continue
            if m := RAN.search(line):
                ran.append(m.group(1))
            if line.startswith(("error:", "ERROR:")) or LOCKED in line:
                errors.append(line)
            tail = (tail + [line])[-40:]
            logger.info("%s", line)
    except BaseException:  # the flow run was cancelled or crashed: stop the stages too
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if proc.wait() != 0:
        why = "; ".join(errors) or "\n".join(tail[-10:])
        raise StageFailed(f"dvc repro {' '.join(targets)} failed ({proc.returncode}): {why}")
    logger.info("stages run: %s", ", ".join(ran) or "none (all up to date)")
    return ran


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON output of a stage ({} when the stage has not written it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
