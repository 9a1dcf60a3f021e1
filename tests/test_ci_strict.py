"""What a developer's machine may lack (Chromium, Label Studio's venv) turns a check into a
warning or a skip there, and into a failure where the CI variable is set: CI cannot turn green
by not checking. Run as a separate pytest on a test that asks for a screenshot with no
Chromium."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

PROBE = '''
from tests.helpers import screenshot

def test_screenshot(tmp_path):
    assert screenshot("any-page", tmp_path) is None
'''


def _pytest(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(CHROMIUM=str(tmp_path / "no-chromium"), PYTHONPATH=str(REPO))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:xdist", "-W", "default", "--rootdir", str(tmp_path),
                           str(probe)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_without_chromium_a_developer_is_warned(tmp_path, ci):
    proc = _pytest(tmp_path, ci)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "screenshot was not checked" in proc.stdout


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_without_chromium_ci_fails(tmp_path, ci):
    proc = _pytest(tmp_path, ci)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no Chromium at" in proc.stdout and "CI must check this" in proc.stdout


def _test_sh(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    """scripts/test.sh, as .ci/run calls it, collecting this file only, with no Chromium."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update(CHROMIUM=str(tmp_path / "no-chromium"), ESGAR_TEST_WORKERS="0")
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([str(REPO / "scripts/test.sh"), "--co", "-q", "-p", "no:cacheprovider",
                           "tests/test_ci_strict.py"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_test_script_stops_in_ci_before_the_tests_when_chromium_is_missing(tmp_path):
    proc = _test_sh(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "no Chromium at" in proc.stderr and "CI is set" in proc.stderr
    assert "collected" not in proc.stdout


def test_the_test_script_warns_a_developer_and_goes_on(tmp_path):
    proc = _test_sh(tmp_path, None)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the screenshots will not be checked" in proc.stderr
    assert "collected" in proc.stdout
