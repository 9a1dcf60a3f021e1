#!/usr/bin/env bash
# An MLflow tracking server (UI + REST API, artifacts served through it) on the pipeline's own
# store, from the project's .venv.
#
#   scripts/mlflow.sh start    start it on 127.0.0.1 in the background, wait for /health
#   scripts/mlflow.sh stop     stop it (quiet when it is not running)
#   scripts/mlflow.sh status   running or not, with its URL (exit status 3: not running)
#
# The store is the one the stages log to without a server (sqlite:///mlflow.db in the
# repository); runs logged through the server keep their artifacts in mlartifacts/. The pid
# file and the log are in .mlflow/ (MLFLOW_SERVICE_DIR). Settings come from the environment,
# then from .env at the repository root (MLFLOW_ENV_FILE names another file); a variable set
# in the environment wins. .env.example documents them all.
set -euo pipefail
SERVICE=mlflow
. "$(dirname "$0")/lib.sh"

check_venv() { [ -x "$VENV/bin/mlflow" ] || die "no mlflow in $VENV; run: scripts/setup.sh"; }

prepare() {
  mkdir -p "$ARTIFACTS"
  # Nothing leaves the machine, and nothing is written in the home directory (the telemetry
  # installation id would go to $XDG_CONFIG_HOME/mlflow).
  export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
  export XDG_CONFIG_HOME=$SERVICE_DIR/config
  # Its job runner (GenAI: prompt optimisation, scorers, trace rollups) is 8 more processes,
  # of no use to this pipeline; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true turns it back on.
  export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
}

config() {
  service_port MLFLOW_PORT 5000
  service_timeout MLFLOW_START_TIMEOUT 120
  VENV=$(abspath "${ESGAR_VENV:-.venv}")
  SERVICE_DIR=$(abspath "${MLFLOW_SERVICE_DIR:-.mlflow}")
  STORE=${MLFLOW_BACKEND_STORE_URI:-sqlite:///$ROOT/mlflow.db}
  ARTIFACTS=$(abspath "${MLFLOW_ARTIFACTS_DESTINATION:-mlartifacts}")
  SERVICE_TITLE="the MLflow server" SERVICE_DIR_NAME="service dir"
  PID_FILE=$SERVICE_DIR/server.pid
  LOG_FILE=$SERVICE_DIR/server.log
  # One worker: a local server for one user, on a small machine.
  SERVER_CMD=("$VENV/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1
    --backend-store-uri "$STORE" --serve-artifacts --artifacts-destination "$ARTIFACTS")
  SERVER_MATCH="mlflow server"
  HEALTH_URL=$URL/health HEALTH_BODY=OK
  START_INFO="store $(redact_url "$STORE"), artifacts $ARTIFACTS" RUNNING_INFO="the UI is there too"
  CLIENT_VAR=MLFLOW_TRACKING_URI CLIENT_WHO="the stages, mlflow"
  START_CHECKS=check_venv BEFORE_LAUNCH=prepare
}

load_env_file "${MLFLOW_ENV_FILE:-.env}"
service_main "start|stop|status" "$@"
