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
# Workers (pytest-xdist), a test file each at a time: one more than the cores, as a worker often
# waits (servers starting, subprocesses importing). Each worker, and every stage it starts,
# computes on cores/workers threads (at least one): torch's default of one thread per core in
# every worker oversubscribes the cores: a model trained beside the other workers took several
# times as long as alone. ESGAR_TEST_WORKERS=0 runs the suite in one process, on every core.
cores=$(nproc)
workers=${ESGAR_TEST_WORKERS:-$((cores + 1))}
if [ "$workers" -gt 1 ]; then
  threads=$((cores / workers)); [ "$threads" -ge 1 ] || threads=1
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$threads}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-$threads}"
fi
exec python -m pytest -n "$workers" --dist loadfile "$@"
