"""The code stays in one style: ruff's pycodestyle, pyflakes, bugbear and isort rules
(configured in pyproject.toml) over every Python file of the project."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_ruff_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
