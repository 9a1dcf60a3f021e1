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
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVICE=mlflow
STOP_WAIT_S=15

. scripts/lib.sh

config() {
  PORT=${MLFLOW_PORT:-5000}
  check_port MLFLOW_PORT "$PORT"
  START_TIMEOUT=${MLFLOW_START_TIMEOUT:-120}
  check_seconds MLFLOW_START_TIMEOUT "$START_TIMEOUT"
  VENV=$(abspath "${ESGAR_VENV:-.venv}")
  SERVICE_DIR=$(abspath "${MLFLOW_SERVICE_DIR:-.mlflow}")
  STORE=${MLFLOW_BACKEND_STORE_URI:-sqlite:///$ROOT/mlflow.db}
  ARTIFACTS=$(abspath "${MLFLOW_ARTIFACTS_DESTINATION:-mlartifacts}")
  URL=http://127.0.0.1:$PORT
  PID_FILE=$SERVICE_DIR/server.pid # two lines: the server's pid (= its process group), port
  LOG_FILE=$SERVICE_DIR/server.log
}

# The pid of the server this service dir's pid file names, if it is running; fails otherwise.
running_pid() { pid_file_server "mlflow server"; }

start() {
  config
  [ -x "$VENV/bin/mlflow" ] || die "no mlflow in $VENV; run: scripts/setup.sh"
  local pid
  if pid=$(running_pid); then
    [ "$(running_port)" = "$PORT" ] \
      || die "already running on port $(running_port) (pid $pid) for $SERVICE_DIR; stop it first"
    say "already running at $URL (pid $pid)"
    say "clients: export MLFLOW_TRACKING_URI=$URL"
    return 0
  fi
  if port_in_use "$PORT"; then
    die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set MLFLOW_PORT"
  fi
  mkdir -p "$SERVICE_DIR" "$ARTIFACTS"
  [ ! -f "$LOG_FILE" ] || mv -f "$LOG_FILE" "$LOG_FILE.1"

  # Nothing leaves the machine, and nothing is written in the home directory (the telemetry
  # installation id would go to $XDG_CONFIG_HOME/mlflow).
  export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
  export XDG_CONFIG_HOME=$SERVICE_DIR/config
  export PYTHONUNBUFFERED=1 # the log shows what happened up to a crash
  # Its job runner (GenAI: prompt optimisation, scorers, trace rollups) is 8 more processes,
  # of no use to this pipeline; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true turns it back on.
  export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}

  # setsid: the server leads its own process group, so `stop` ends it and its workers.
  # One worker: a local server for one user, on a small machine.
  setsid "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$PORT" --workers 1 \
    --backend-store-uri "$STORE" --serve-artifacts --artifacts-destination "$ARTIFACTS" \
    </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n%s\n' "$pid" "$PORT" >"$PID_FILE"
  say "starting on $URL (pid $pid, store $STORE, artifacts $ARTIFACTS, log $LOG_FILE)"

  local rc=0
  wait_http "$VENV/bin/python" "$pid" "$URL/health" OK "$START_TIMEOUT" || rc=$?
  case $rc in
    0) ;;
    2) fail_start "$pid" "the MLflow server exited during start" ;;
    3) fail_start "$pid" "the MLflow server did not answer $URL/health within $START_TIMEOUT s" ;;
    *) fail_start "$pid" "checking the server failed (status $rc)" ;;
  esac
  say "running at $URL (the UI is there too)"
  say "clients (the stages, mlflow): export MLFLOW_TRACKING_URI=$URL"
}

stop() {
  config
  local pid
  if pid=$(running_pid); then
    stop_group "$pid"
    say "stopped (pid $pid)"
  fi
  rm -f "$PID_FILE"
}

status() {
  config
  local pid
  if pid=$(running_pid); then
    say "running at http://127.0.0.1:$(running_port) (pid $pid, service dir $SERVICE_DIR)"
    say "clients: export MLFLOW_TRACKING_URI=http://127.0.0.1:$(running_port)"
  else
    say "not running at $URL (service dir $SERVICE_DIR)"
    return 3
  fi
}

load_env_file "${MLFLOW_ENV_FILE:-.env}"
case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: scripts/mlflow.sh start|stop|status" ;;
esac
