#!/usr/bin/env bash
# Set up .venv (idempotent) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Where the CI variable is set (.ci/run sets it), what a developer may lack must be there: a
# missing Label Studio venv or Chromium stops the run here, and the tests fail rather than
# skip or warn (tests/helpers.py: in_ci).
ci=false
case "${CI:-}" in ""|0|false|no|False|FALSE|No|NO) ;; *) ci=true ;; esac
missing() {
  if [ "$ci" = true ]; then echo "test: $1 (CI is set: it must be there)" >&2; exit 1; fi
  echo "test: $1; $2" >&2
}
# Label Studio's own venv, for the tests against a real server. Without it (no PyPI) those
# tests skip and say why; everything else still runs.
scripts/labelstudio.sh install \
  || missing "scripts/labelstudio.sh install failed" "the Label Studio tests will skip"
# Debian's Chromium, for the walkthrough's screenshots (scripts/screenshots.py). Without it
# (not root, no apt) the tests warn that the screenshots were not checked.
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
    >/dev/null 2>&1 || true
fi
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] \
  || missing "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium, or set CHROMIUM)" \
       "the screenshots will not be checked"
export PATH="$PWD/.venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true
# Two workers (pytest-xdist), a test file each at a time: one process keeps about one core busy
# (it waits on servers starting and subprocesses importing), so two share two cores well.
# ESGAR_TEST_WORKERS=0 runs the suite in one process.
exec python -m pytest -n "${ESGAR_TEST_WORKERS:-2}" --dist loadfile "$@"
