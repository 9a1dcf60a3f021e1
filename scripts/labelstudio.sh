#!/usr/bin/env bash
# Label Studio as a local service, in its own virtual environment (its pins clash with Prefect's).
#
#   scripts/labelstudio.sh install   create or update .labelstudio/venv (idempotent; the set of
#                                    packages is pinned by scripts/labelstudio-constraints.txt)
#   scripts/labelstudio.sh start     start it on 127.0.0.1 in the background, wait for /health
#   scripts/labelstudio.sh stop      stop it (quiet when it is not running)
#   scripts/labelstudio.sh status    running or not, with its URL (exit status 3: not running)
#
# Settings come from the environment, then from .env at the repository root (LABEL_STUDIO_ENV_FILE
# names another file); a variable set in the environment wins. .env.example documents them all.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVICE=labelstudio

LS_VERSION=1.23.2
VENV=.labelstudio/venv
CONSTRAINTS=scripts/labelstudio-constraints.txt
STOP_WAIT_S=15

. scripts/lib.sh

config() {
  PORT=${LABEL_STUDIO_PORT:-8080}
  check_port LABEL_STUDIO_PORT "$PORT"
  START_TIMEOUT=${LABEL_STUDIO_START_TIMEOUT:-180}
  check_seconds LABEL_STUDIO_START_TIMEOUT "$START_TIMEOUT"
  DATA_DIR=$(abspath "${LABEL_STUDIO_DATA_DIR:-.labelstudio/data}")
  URL=http://127.0.0.1:$PORT
  PID_FILE=$DATA_DIR/labelstudio.pid # two lines: the server's pid (= its process group), port
  LOG_FILE=$DATA_DIR/labelstudio.log
}

# The pid of the server this data dir's pid file names, if it is running; fails otherwise.
running_pid() { pid_file_server label-studio; }

install() {
  local stamp=$VENV/.esgar-labelstudio-stamp want
  want=$({ echo "label-studio==$LS_VERSION"; cat "$CONSTRAINTS"; } | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "$VENV is up to date"
    return 0
  fi
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$(dirname "$VENV")/install.lock"
  flock 9 # two installs at once (parallel test runs) would corrupt the venv
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "$VENV is up to date"
    return 0
  fi
  say "installing label-studio==$LS_VERSION into $VENV (a few minutes the first time)"
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
  # Filter only the noise of pip's "Location ... is ignored" lines, keep its exit status.
  pip() {
    "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored" >&2)
  }
  pip install -U "pip>=24"
  pip install -c "$CONSTRAINTS" "label-studio==$LS_VERSION"
  "$VENV/bin/python" - "$LS_VERSION" <<'PY'
import importlib.metadata as md
import sys

found = md.version("label-studio")
if found != sys.argv[1]:
    raise SystemExit(f"labelstudio: error: installed label-studio {found}, wanted {sys.argv[1]}")
print(f"labelstudio: label-studio {found}, label-studio-sdk {md.version('label-studio-sdk')}")
PY
  echo "$want" >"$stamp"
  say "done ($VENV)"
}

require() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] \
      || die "$name is not set; set it in the environment or in .env (see .env.example)"
  done
}

# Exits 0 once the server answers /health on $URL and accepts the token, else prints why and
# exits non-zero: 2 the process ended, 3 no answer before the deadline, 4 the token is refused.
wait_ready() {
  "$VENV/bin/python" - "$1" "$URL" "$START_TIMEOUT" <<'PY'
import os, sys, time, urllib.error, urllib.request

pid, url, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + limit


def ended() -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return True


while True:
    if ended():
        sys.exit(2)
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            if r.status == 200:
                break
    except (OSError, ValueError):
        pass
    if time.monotonic() > deadline:
        print(f"no answer from {url}/health within {limit:g} s", file=sys.stderr)
        sys.exit(3)
    time.sleep(0.2)
token = os.environ["LABEL_STUDIO_USER_TOKEN"]
who = urllib.request.Request(f"{url}/api/current-user/whoami",
                             headers={"Authorization": f"Token {token}"})
try:
    urllib.request.urlopen(who, timeout=10).close()
except urllib.error.HTTPError as e:
    print(f"HTTP {e.code} from {url}/api/current-user/whoami with LABEL_STUDIO_USER_TOKEN",
          file=sys.stderr)
    sys.exit(4)
PY
}

start() {
  config
  require LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD LABEL_STUDIO_USER_TOKEN
  ((${#LABEL_STUDIO_USER_TOKEN} >= 6)) || die "LABEL_STUDIO_USER_TOKEN must have at least 6" \
    "characters (Label Studio ignores shorter ones)"
  [ -x "$VENV/bin/label-studio" ] \
    || die "no Label Studio in $VENV; run: scripts/labelstudio.sh install"
  local pid docroot
  if pid=$(running_pid); then
    [ "$(running_port)" = "$PORT" ] \
      || die "already running on port $(running_port) (pid $pid) for $DATA_DIR; stop it first"
    say "already running at $URL (pid $pid)"
    return 0
  fi
  # Label Studio silently moves to the next free port when its port is taken: refuse instead.
  if port_in_use "$PORT"; then
    die "port $PORT on 127.0.0.1 is already in use;" \
      "stop what listens there or set LABEL_STUDIO_PORT"
  fi
  docroot=$(abspath "${LABEL_STUDIO_DOCUMENT_ROOT:-.}")
  [ -d "$docroot" ] || die "LABEL_STUDIO_DOCUMENT_ROOT=$docroot is not a folder"
  docroot=$(cd "$docroot" && pwd)
  mkdir -p "$DATA_DIR"
  [ ! -f "$LOG_FILE" ] || mv -f "$LOG_FILE" "$LOG_FILE.1"

  export LABEL_STUDIO_BASE_DATA_DIR=$DATA_DIR # else it writes under the home directory
  export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
  export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=$docroot
  # Without it a fresh organisation refuses LABEL_STUDIO_USER_TOKEN with HTTP 401.
  export LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true
  # Its SSRF guard refuses webhooks to 127.0.0.1 (the project's receiver) otherwise.
  export LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS=${LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS:-false}
  # Refuse predictions that do not fit the label config (HTTP 400) instead of only logging them.
  local flag=fflag_feat_utc_210_prediction_validation_15082025
  export "$flag=${!flag:-true}"
  # Nothing leaves the machine: no analytics, no error reports, no version check.
  export LABEL_STUDIO_COLLECT_ANALYTICS=false LABEL_STUDIO_LATEST_VERSION_CHECK=false
  export LABEL_STUDIO_SENTRY_DSN= LABEL_STUDIO_FRONTEND_SENTRY_DSN=
  export LABEL_STUDIO_HOST=${LABEL_STUDIO_HOST:-} # a stray HOST variable would become its URL
  export PYTHONUNBUFFERED=1 # the log shows what happened up to a crash
  export XDG_CONFIG_HOME=$DATA_DIR/config # its anonymous server id, not in the user's home

  # setsid: the server leads its own process group, so `stop` ends it and anything it spawned.
  setsid "$VENV/bin/label-studio" start --internal-host 127.0.0.1 --port "$PORT" --no-browser \
    --data-dir "$DATA_DIR" </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n%s\n' "$pid" "$PORT" >"$PID_FILE"
  say "starting on $URL (pid $pid, data dir $DATA_DIR, log $LOG_FILE)"

  local rc=0 token_refused
  token_refused="Label Studio refuses LABEL_STUDIO_USER_TOKEN: it sets the admin's token only"
  token_refused+=" when it creates the account (and legacy tokens only with a new organisation),"
  token_refused+=" so $DATA_DIR keeps those of its first start; use that token, or a fresh"
  token_refused+=" LABEL_STUDIO_DATA_DIR"
  wait_ready "$pid" || rc=$?
  case $rc in
    0) ;;
    2) fail_start "$pid" "Label Studio exited during start" ;;
    3) fail_start "$pid" "Label Studio did not answer $URL/health within $START_TIMEOUT s" ;;
    4) fail_start "$pid" "$token_refused" quiet ;;
    *) fail_start "$pid" "checking the server failed (status $rc)" ;;
  esac
  # The port was free a moment ago; make sure the server did not move to another one meanwhile.
  grep -q "127.0.0.1:$PORT/" "$LOG_FILE" \
    || fail_start "$pid" "Label Studio does not say it serves 127.0.0.1:$PORT"
  say "running at $URL (admin $LABEL_STUDIO_USERNAME; document root $docroot)"
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
    say "running at http://127.0.0.1:$(running_port) (pid $pid, data dir $DATA_DIR)"
  else
    say "not running at $URL (data dir $DATA_DIR)"
    return 3
  fi
}

load_env_file "${LABEL_STUDIO_ENV_FILE:-.env}"
case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: scripts/labelstudio.sh install|start|stop|status" ;;
esac
