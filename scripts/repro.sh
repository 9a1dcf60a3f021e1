#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole pipeline with `dvc repro`.
# Where FS2K cannot be reached, the download stage generates SYNTHETIC FS2K and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true
dvc repro "$@"
python - <<'PY'
import json
src = json.load(open("data/fs2k/source.json"))
print(f"\nrepro: done on {src['dataset'].upper()} data ({src['source']}): {src.get('reason', '')}")
PY
