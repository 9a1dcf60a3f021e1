#!/usr/bin/env bash
# Set up .venv (idempotent) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Label Studio's own venv, for the tests against a real server. Without it (no PyPI) those
# tests skip and say why; everything else still runs.
scripts/labelstudio.sh install \
  || echo "test: scripts/labelstudio.sh install failed; the Label Studio tests will skip" >&2
# Debian's Chromium, for the walkthrough's screenshots (scripts/screenshots.py). Without it
# (not root, no apt) the tests warn that the screenshots were not checked.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
    >/dev/null 2>&1 || echo "test: chromium could not be installed; the screenshots will not be checked" >&2
fi
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true
# Two workers (pytest-xdist), a test file each at a time: one process keeps about one core busy
# (it waits on servers starting and subprocesses importing), so two share two cores well.
# ESGAR_TEST_WORKERS=0 runs the suite in one process.
exec python -m pytest -n "${ESGAR_TEST_WORKERS:-2}" --dist loadfile "$@"
