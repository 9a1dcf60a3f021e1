# shellcheck shell=bash
# The helpers and the lifecycle (start, stop, status) of the service scripts
# (scripts/labelstudio.sh, prefect.sh, mlflow.sh); sourced, not run, once the script has set
# SERVICE (its name in messages). Sourcing it moves to the repository, ROOT. A service script
# is a `config` function, the hooks it needs, and `service_main "start|stop|status" "$@"`. A
# pid file has two lines: the server's pid (= its process group, as `setsid` starts it) and
# its port.
#
# `config` sets, from the service's settings:
#   PORT PORT_VAR URL  by `service_port SETTING DEFAULT` (PORT_VAR: the setting, in messages)
#   START_TIMEOUT      by `service_timeout SETTING DEFAULT`
#   SERVICE_TITLE      the server in messages ("the MLflow server")
#   SERVICE_DIR        where its state is, called SERVICE_DIR_NAME in messages ("home")
#   PID_FILE LOG_FILE
#   SERVER_CMD         the server's command line (an array)
#   SERVER_MATCH       a part of that command line that tells its process from others
#   HEALTH_URL         `start` waits for HTTP 200 from it with the body HEALTH_BODY (blanks
#   HEALTH_BODY        around it aside), or a body containing it where HEALTH_MATCH=contains;
#   VENV               the python of this virtual environment asks
# and where the service needs them:
#   START_INFO         what `starting on` says besides pid and log (default: the folder)
#   RUNNING_INFO       what `running at` says in parentheses
#   CLIENT_VAR         the lines for clients, `export CLIENT_VAR=URL$CLIENT_PATH`; after a
#   CLIENT_PATH        start they name CLIENT_WHO
#   CLIENT_WHO
#   START_CHECKS       a function `start` runs first (what the server needs, its settings)
#   BEFORE_LAUNCH      a function run once the port is known free, before the server starts
#                      (its folders, its environment)
#   AFTER_HEALTH       a function run with the server's pid once it answers health (checks of
#                      its own, failing with fail_start)
#   STOP_SIGNAL        the signal `stop` sends first (default TERM)
#   WAIT               the function that waits for a server without an HTTP health check,
#                      given its pid (default wait_health); exit status 0 ready, 2 the process
#                      ended, 3 no answer within START_TIMEOUT s
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit
ROOT=$PWD
STOP_WAIT_S=15 # after SIGTERM, then SIGKILL

say() { echo "$SERVICE: $*"; }
die() { echo "$SERVICE: error: $*" >&2; exit 1; }

# Reads the env file $1 (missing: nothing to do). KEY=value lines; blank lines, `# comments`,
# `export KEY=value` and one pair of quotes around a value are understood. Nothing is
# evaluated, and variables already set are left alone.
load_env_file() {
  local file=$1 line key value n=0
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] \
      || die "$file line $n: expected KEY=value"
    key=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
    if [[ $value =~ ^\"(.*)\"[[:space:]]*$ || $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=$(sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//' <<<"$value")
    fi
    [ -n "${!key+x}" ] || export "$key=$value"
  done <"$file"
}

# URL $1 with its password, if any, as ***.
redact_url() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }

# The port in setting $1 (value $2), else a clear error.
check_port() {
  [[ $2 =~ ^[0-9]{1,5}$ ]] && (($2 >= 1 && $2 <= 65535)) \
    || die "$1='$2' is not a port number (1-65535)"
}

# The number of seconds in setting $1 (value $2), else a clear error.
check_seconds() {
  [[ $2 =~ ^[0-9]+$ ]] || die "$1='$2' is not a number of seconds"
}

# True when something accepts connections on port $1 of 127.0.0.1.
port_in_use() { timeout 2 bash -c ": <>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# True when process $1 exists and is not a zombie.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# True while any live process is in process group $1. One read of every /proc/PID/stat (a
# process may end meanwhile, and cat then fails: under pipefail that must not fail the check):
# fields after the command's ") " are state, ppid, pgrp.
group_alive() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } \
    | awk -v g="$1" '{ sub(/.*\) /, "") } $3 == g && $1 != "Z" { found = 1; exit }
                     END { exit !found }'
}

# The pid of the server PID_FILE names if it is running and its command line contains
# SERVER_MATCH; fails otherwise (no file, a stale pid, a pid reused by another program).
service_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(sed -n 1p "$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$SERVER_MATCH" || return 1
  echo "$pid"
}

running_port() { sed -n 2p "$PID_FILE"; }

local_url() { echo "http://127.0.0.1:$1"; }

# PORT from setting $1 (default $2), its URL on 127.0.0.1.
service_port() {
  PORT_VAR=$1 PORT=${!1:-$2}
  check_port "$PORT_VAR" "$PORT"
  URL=$(local_url "$PORT")
}

# START_TIMEOUT from setting $1 (default $2).
service_timeout() {
  START_TIMEOUT=${!1:-$2}
  check_seconds "$1" "$START_TIMEOUT"
}

# The line for the clients of the server at URL $1; $2 says who they are.
say_clients() {
  [ -z "${CLIENT_VAR:-}" ] || say "clients${2:+ ($2)}: export $CLIENT_VAR=$1${CLIENT_PATH:-}"
}

# STOP_SIGNAL (default SIGTERM) to the server's whole process group, SIGKILL after STOP_WAIT_S
# seconds.
stop_group() {
  local pgid=$1 i
  kill -"${STOP_SIGNAL:-TERM}" -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
    group_alive "$pgid" || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  sleep 0.5
  ! group_alive "$pgid" || die "process group $pgid survives SIGKILL"
}

# Stop the server that failed to start, say why (with the end of its log unless $3 is "quiet").
fail_start() {
  local pid=$1 why=$2
  stop_group "$pid"
  rm -f "$PID_FILE"
  if [ "${3:-}" = quiet ]; then
    echo "$SERVICE: error: $why (log: $LOG_FILE)" >&2
  else
    echo "$SERVICE: error: $why; the end of $LOG_FILE:" >&2
    tail -n 30 "$LOG_FILE" | sed 's/^/  | /' >&2
  fi
  exit 1
}

# Waits until `GET HEALTH_URL` answers HTTP 200 with HEALTH_BODY (see the top), while process
# $1 lives. Exits 0 then; 2 when the process ends first; 3 with no such answer within
# START_TIMEOUT seconds (saying so on stderr). No proxy is asked: the URL is a local one.
wait_health() {
  "$VENV/bin/python" - "$1" "$HEALTH_URL" "$HEALTH_BODY" "${HEALTH_MATCH:-exact}" \
    "$START_TIMEOUT" <<'PY'
import sys, time, urllib.request

pid, url, want, match, limit = *sys.argv[1:5], float(sys.argv[5])
deadline = time.monotonic() + limit
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def ended() -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def fits(body: str) -> bool:
    return want in body if match == "contains" else body.strip() == want


while True:
    if ended():
        sys.exit(2)
    try:
        with opener.open(url, timeout=2) as r:
            if r.status == 200 and fits(r.read(1000).decode(errors="replace")):
                sys.exit(0)
    except (OSError, ValueError):
        pass
    if time.monotonic() > deadline:
        print(f"no answer {want!r} from {url} within {limit:g} s", file=sys.stderr)
        sys.exit(3)
    time.sleep(0.2)
PY
}

# The lifecycle (the settings: see the top).

service_start() {
  local pid rc=0
  "${START_CHECKS:-:}"
  if pid=$(service_pid); then
    [ "$(running_port)" = "$PORT" ] \
      || die "already running on port $(running_port) (pid $pid) for $SERVICE_DIR; stop it first"
    say "already running at $URL (pid $pid)"
    say_clients "$URL"
    return 0
  fi
  # Some servers (Label Studio) silently move to the next free port when theirs is taken.
  if port_in_use "$PORT"; then
    die "port $PORT on 127.0.0.1 is already in use; stop what listens there or set $PORT_VAR"
  fi
  "${BEFORE_LAUNCH:-:}"
  mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
  [ ! -f "$LOG_FILE" ] || mv -f "$LOG_FILE" "$LOG_FILE.1"
  export PYTHONUNBUFFERED=1 # the log shows what happened up to a crash

  # setsid: the server leads its own process group, so `stop` ends it and anything it spawned.
  setsid "${SERVER_CMD[@]}" </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  printf '%s\n%s\n' "$pid" "$PORT" >"$PID_FILE"
  say "starting on $URL (pid $pid, ${START_INFO:-$SERVICE_DIR_NAME $SERVICE_DIR}, log $LOG_FILE)"

  "${WAIT:-wait_health}" "$pid" || rc=$?
  case $rc in
    0) ;;
    2) fail_start "$pid" "$SERVICE_TITLE exited during start" ;;
    3) fail_start "$pid" "$SERVICE_TITLE did not answer $HEALTH_URL within $START_TIMEOUT s" ;;
    *) fail_start "$pid" "checking the server failed (status $rc)" ;;
  esac
  "${AFTER_HEALTH:-:}" "$pid"
  say "running at $URL${RUNNING_INFO:+ ($RUNNING_INFO)}"
  say_clients "$URL" "${CLIENT_WHO:-}"
}

service_stop() {
  local pid
  if pid=$(service_pid); then
    stop_group "$pid"
    say "stopped (pid $pid)"
  fi
  rm -f "$PID_FILE"
}

# Exit status 3 when it is not running.
service_status() {
  local pid url
  if pid=$(service_pid); then
    url=$(local_url "$(running_port)")
    say "running at $url (pid $pid, $SERVICE_DIR_NAME $SERVICE_DIR)"
    say_clients "$url"
  else
    say "not running at $URL ($SERVICE_DIR_NAME $SERVICE_DIR)"
    return 3
  fi
}

# Runs the command line "$2"...: start, stop, status (after `config`) or another of the
# commands $1 ("start|stop|status|serve [arguments]"), the script's function of that name,
# given the rest of the arguments.
service_main() {
  local usage=$1 command=${2:-}
  [[ $command =~ ^[a-z][a-z-]*$ && "|${usage%% *}|" == *"|$command|"* ]] \
    || die "usage: scripts/$SERVICE.sh $usage"
  shift 2
  case $command in
    start | stop | status)
      config
      "service_$command"
      ;;
    *) "$command" "$@" ;;
  esac
}
