"""A DVC remote for a team: what one clone pushes (data, masks, models, crossfit outputs), a
second clone pulls, and then has nothing to rerun; an unreachable remote fails `dvc push`
cleanly, within its timeout, the local cache untouched."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import commit_all, free_port, ran_stages, run, silent_server

pytestmark = pytest.mark.slow
# the stages that ask Label Studio every time: changed by definition, whatever the remote holds
ALWAYS = {"pull": ["always changed"], "push": ["always changed"]}


def isolated(tmp_path: Path) -> dict[str, str]:
    """No global or user DVC config of this machine in the way."""
    home = tmp_path / "home"
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache")}


def cached_outputs(repo: Path) -> list[str]:
    """The paths of dvc.lock's outputs that DVC caches (those a remote carries, git does not)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    files = run(["git", "ls-files"], repo).stdout.splitlines()
    tracked = set(files) | {str(d) for f in files for d in Path(f).parents}  # folders too
    return sorted({o["path"] for s in lock["stages"].values() for o in s.get("outs", [])
                   if (repo / o["path"]).exists() and o["path"].rstrip("/") not in tracked})


def digest(folder: Path) -> str:
    """One hash of every file under `folder`, names and bytes."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def test_a_second_clone_pulls_what_the_first_pushed_and_reruns_nothing(repo, tmp_path):
    env = isolated(tmp_path)
    remote = tmp_path / "remote"
    run(["dvc", "repro"], repo, env=env)  # the tiny repository stops at evaluate: the rest
    run(["dvc", "remote", "add", "--default", "team", str(remote)], repo, env=env)
    commit_all(repo, "the tiny pipeline's results and the team's remote")
    outputs = cached_outputs(repo)
    # what the remote must carry: every stage's cached outputs, models and crossfit included
    for expected in ("data/fs2k", "data/prepared", "data/masks", "models/esgar",
                     "data/crossfit", "data/selection", "data/labelstudio"):
        assert any(o == expected or o.startswith(expected + "/") for o in outputs), outputs
    run(["dvc", "push"], repo, env=env)
    assert "in sync" in run(["dvc", "status", "--cloud"], repo, env=env).stdout

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(repo), str(second)], tmp_path)
    assert not any((second / o).exists() for o in outputs)  # git carries none of them
    run(["dvc", "pull"], second, env=env)
    for o in outputs:
        assert (second / o).exists(), f"{o} was not pulled"
        if (repo / o).is_file():
            assert (second / o).read_bytes() == (repo / o).read_bytes(), o
    status = json.loads(run(["dvc", "status", "--json"], second, env=env).stdout)
    assert status == ALWAYS, status
    again = run(["dvc", "repro"], second, env=env)
    assert ran_stages(again) == ["pull", "push"], again.stdout  # nothing else reruns
    assert not run(["git", "status", "--porcelain"], second).stdout.strip()


@pytest.mark.bad_input(stage="remote", kind="service")
@pytest.mark.parametrize("where", ["closed port", "silent server"])
def test_an_unreachable_remote_fails_push_cleanly_and_keeps_the_cache(repo, tmp_path, where):
    """A remote host that refuses, or accepts and never answers (DVC retries a silent one a few
    times, each attempt bounded by the remote's `timeout`)."""
    env = isolated(tmp_path)
    cache = repo / ".dvc" / "cache"
    status = run(["dvc", "status", "--json"], repo, env=env).stdout  # may add .dir manifests
    before = digest(cache), status
    with silent_server() as url:
        port = free_port() if where == "closed port" else int(url.rsplit(":", 1)[1])
        run(["dvc", "remote", "add", "--default", "team", f"ssh://127.0.0.1:{port}/srv/dvc"],
            repo, env=env)
        run(["dvc", "remote", "modify", "team", "timeout", "2"], repo, env=env)
        start = time.monotonic()
        push = run(["dvc", "push"], repo, env=env, check=False, timeout=120)
        seconds = time.monotonic() - start
    assert push.returncode != 0 and "ERROR" in push.stderr
    assert seconds < 60, f"push took {seconds:.0f} s against a 2 s timeout"
    if where == "closed port":
        assert f"127.0.0.1', {port}" in push.stderr, push.stderr  # names where it failed
    assert (digest(cache), run(["dvc", "status", "--json"], repo, env=env).stdout) == before
