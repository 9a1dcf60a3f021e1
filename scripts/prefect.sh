#!/usr/bin/env bash
# A local Prefect server (API only, no UI) for the project's flows, from the project's .venv.
#
#   scripts/prefect.sh start    start it on 127.0.0.1 in the background, wait for /api/health
#   scripts/prefect.sh stop     stop it (quiet when it is not running)
#   scripts/prefect.sh status   running or not, with its API URL (exit status 3: not running)
#   scripts/prefect.sh serve    serve the deployments (python -m flows.serve, in the
#                               foreground) on that server; further arguments go to it
#
# Everything Prefect writes (its database, settings, this script's pid file and log) is in
# PREFECT_HOME (default .prefect in the repository), never in the home directory. Settings come
# from the environment, then from .env at the repository root (PREFECT_ENV_FILE names another
# file); a variable set in the environment wins. .env.example documents them all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVICE=prefect
STOP_WAIT_S=15

. scripts/lib.sh

config() {
  PORT=${PREFECT_PORT:-4200}
  check_port PREFECT_PORT "$PORT"
  START_TIMEOUT=${PREFECT_START_TIMEOUT:-120}
  check_seconds PREFECT_START_TIMEOUT "$START_TIMEOUT"
  VENV=$(abspath "${ESGAR_VENV:-.venv}")
  # Absolute, so that the flows' subprocesses (run elsewhere) find the same home.
  PREFECT_HOME=$(abspath "${PREFECT_HOME:-.prefect}")
  export PREFECT_HOME
  URL=http://127.0.0.1:$PORT
  # Not server.pid: `prefect server start --background` and `prefect server stop` use that one.
  PID_FILE=$PREFECT_HOME/prefect.pid # two lines: the server's pid (= its process group), port
  LOG_FILE=$PREFECT_HOME/prefect.log
}

# The pid of the server this home's pid file names, if it is running; fails otherwise.
running_pid() { pid_file_server "prefect server start"; }

start() {
  config
  [ -x "$VENV/bin/prefect" ] || die "no prefect in $VENV; run: scripts/setup.sh"
  local pid
  if pid=$(running_pid); then
    [ "$(running_port)" = "$PORT" ] \
      || die "already running on port $(running_port) (pid $pid) for $PREFECT_HOME; stop it first"
    say "already running at $URL (pid $pid)"
    say "clients: export PREFECT_API_URL=$URL/api"
    return 0
  fi
  if port_in_use "$PORT"; then
    die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set PREFECT_PORT"
  fi
  mkdir -p "$PREFECT_HOME"
  [ ! -f "$LOG_FILE" ] || mv -f "$LOG_FILE" "$LOG_FILE.1"

  export PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$PORT
  # Nothing leaves the machine: no analytics.
  export PREFECT_SERVER_ANALYTICS_ENABLED=false
  export PYTHONUNBUFFERED=1 # the log shows what happened up to a crash

  # setsid: the server leads its own process group, so `stop` ends it and anything it spawned.
  setsid "$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PORT" --no-ui \
    --analytics-off </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n%s\n' "$pid" "$PORT" >"$PID_FILE"
  say "starting on $URL (pid $pid, home $PREFECT_HOME, log $LOG_FILE)"

  local rc=0
  wait_http "$VENV/bin/python" "$pid" "$URL/api/health" true "$START_TIMEOUT" || rc=$?
  case $rc in
    0) ;;
    2) fail_start "$pid" "the Prefect server exited during start" ;;
    3) fail_start "$pid" "the Prefect server did not answer $URL/api/health within" \
      "$START_TIMEOUT s" ;;
    *) fail_start "$pid" "checking the server failed (status $rc)" ;;
  esac
  say "running at $URL (API $URL/api)"
  say "clients (prefect deployment run, flows): export PREFECT_API_URL=$URL/api"
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
    say "running at http://127.0.0.1:$(running_port) (pid $pid, home $PREFECT_HOME)"
    say "clients: export PREFECT_API_URL=http://127.0.0.1:$(running_port)/api"
  else
    say "not running at $URL (home $PREFECT_HOME)"
    return 3
  fi
}

# The deployments, served in the foreground on PREFECT_API_URL: the local server's when unset.
serve() {
  config
  [ -x "$VENV/bin/python" ] || die "no $VENV; run: scripts/setup.sh"
  if [ -z "${PREFECT_API_URL:-}" ]; then
    running_pid >/dev/null || die "no local Prefect server runs for $PREFECT_HOME; start it" \
      "(scripts/prefect.sh start) or set PREFECT_API_URL to a server's API"
    export PREFECT_API_URL=http://127.0.0.1:$(running_port)/api
  fi
  say "serving the deployments on $PREFECT_API_URL"
  exec "$VENV/bin/python" -m flows.serve "$@"
}

load_env_file "${PREFECT_ENV_FILE:-.env}"
case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  serve) shift && serve "$@" ;;
  *) die "usage: scripts/prefect.sh start|stop|status|serve [flows.serve arguments]" ;;
esac
