#!/usr/bin/env bash
# A local Prefect server (API only, no UI) for the project's flows, from the project's .venv.
#
#   scripts/prefect.sh start    start it on 127.0.0.1 in the background, wait for /api/health
#   scripts/prefect.sh stop     stop it (quiet when it is not running)
#   scripts/prefect.sh status   running or not, with its API URL (exit status 3: not running)
#   scripts/prefect.sh serve    serve the deployments (python -m flows.serve, in the
#                               foreground) on that server; further arguments go to it
#   scripts/prefect.sh worker   a worker of the flows' work pool (python -m flows.worker, in the
#                               foreground; the pool is created when missing), for deployments
#                               made by python -m flows.deploy; further arguments go to it
#
# Everything Prefect writes (its database, settings, this script's pid file and log) is in
# PREFECT_HOME (default .prefect in the repository), never in the home directory. Settings come
# from the environment, then from .env at the repository root (PREFECT_ENV_FILE names another
# file); a variable set in the environment wins. .env.example documents them all.
set -euo pipefail
SERVICE=prefect
. "$(dirname "$0")/lib.sh"

check_venv() { [ -x "$VENV/bin/prefect" ] || die "no prefect in $VENV; run: scripts/setup.sh"; }

prepare() {
  export PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$PORT
  # Nothing leaves the machine: no analytics.
  export PREFECT_SERVER_ANALYTICS_ENABLED=false
}

config() {
  service_port PREFECT_PORT 4200
  service_timeout PREFECT_START_TIMEOUT 120
  VENV=$(abspath "${ESGAR_VENV:-.venv}")
  # Absolute, so that the flows' subprocesses (run elsewhere) find the same home.
  PREFECT_HOME=$(abspath "${PREFECT_HOME:-.prefect}")
  export PREFECT_HOME
  SERVICE_TITLE="the Prefect server" SERVICE_DIR=$PREFECT_HOME SERVICE_DIR_NAME=home
  # Not server.pid: `prefect server start --background` and `prefect server stop` use that one.
  PID_FILE=$PREFECT_HOME/prefect.pid
  LOG_FILE=$PREFECT_HOME/prefect.log
  SERVER_CMD=("$VENV/bin/prefect" server start --host 127.0.0.1 --port "$PORT" --no-ui
    --analytics-off)
  SERVER_MATCH="prefect server start"
  HEALTH_URL=$URL/api/health HEALTH_BODY=true
  RUNNING_INFO="API $URL/api"
  CLIENT_VAR=PREFECT_API_URL CLIENT_PATH=/api CLIENT_WHO="prefect deployment run, flows"
  START_CHECKS=check_venv BEFORE_LAUNCH=prepare
}

# PREFECT_API_URL: the local server's API when unset.
client_api() {
  config
  [ -x "$VENV/bin/python" ] || die "no $VENV; run: scripts/setup.sh"
  if [ -z "${PREFECT_API_URL:-}" ]; then
    service_pid >/dev/null || die "no local Prefect server runs for $PREFECT_HOME; start it" \
      "(scripts/prefect.sh start) or set PREFECT_API_URL to a server's API"
    PREFECT_API_URL=$(local_url "$(running_port)")/api
    export PREFECT_API_URL
  fi
}

# The deployments, served in the foreground.
serve() {
  client_api
  say "serving the deployments on $PREFECT_API_URL"
  exec "$VENV/bin/python" -m flows.serve "$@"
}

# A worker of the work pool, in the foreground: it runs the flow runs of deployments made by
# python -m flows.deploy, each in a process.
worker() {
  client_api
  say "a worker for the flows' work pool on $PREFECT_API_URL"
  exec "$VENV/bin/python" -m flows.worker "$@"
}

load_env_file "${PREFECT_ENV_FILE:-.env}"
service_main "start|stop|status|serve|worker [flows.serve or flows.worker arguments]" "$@"
