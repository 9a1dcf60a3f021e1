#!/usr/bin/env bash
# Set up .venv (idempotent) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Label Studio's own venv, for the tests against a real server. Without it (no PyPI) those
# tests skip and say why; everything else still runs.
scripts/labelstudio.sh install \
  || echo "test: scripts/labelstudio.sh install failed; the Label Studio tests will skip" >&2
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true
exec python -m pytest "$@"
