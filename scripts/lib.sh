# Helpers of the service scripts (scripts/labelstudio.sh, prefect.sh, mlflow.sh); sourced, not
# run. The script sets SERVICE (its name in messages) and ROOT (the repository, its working
# directory) before sourcing it, and PID_FILE, LOG_FILE (in config) and STOP_WAIT_S before using
# the functions that need them. A pid file has two lines: the server's pid (= its process
# group, as `setsid` starts it) and its port.

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

# True while any live process is in process group $1.
group_alive() {
  local f stat fields
  for f in /proc/[0-9]*/stat; do
    stat=$(cat "$f" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }" # state ppid pgrp ...
    [ "${fields[2]}" = "$1" ] && [ "${fields[0]}" != Z ] && return 0
  done
  return 1
}

# The pid of the server PID_FILE names if it is running and its command line contains $1;
# fails otherwise (no file, a stale pid, a pid reused by another program).
pid_file_server() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(sed -n 1p "$PID_FILE")
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1" || return 1
  echo "$pid"
}

running_port() { sed -n 2p "$PID_FILE"; }

# SIGTERM to the server's whole process group, SIGKILL after STOP_WAIT_S seconds.
stop_group() {
  local pgid=$1 i
  kill -TERM -- "-$pgid" 2>/dev/null || true
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

# Waits until `GET $3` answers HTTP 200 with the body $4 (surrounding blanks aside), the
# python $1 asking. Exits 0 then; 2 when process $2 ends first; 3 with no such answer within
# $5 seconds (saying so on stderr). No proxy is asked: the URL is a local one.
wait_http() {
  "$1" - "$2" "$3" "$4" "$5" <<'PY'
import sys, time, urllib.request

pid, url, want, limit = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + limit
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
        with opener.open(url, timeout=2) as r:
            if r.status == 200 and r.read(1000).decode(errors="replace").strip() == want:
                sys.exit(0)
    except (OSError, ValueError):
        pass
    if time.monotonic() > deadline:
        print(f"no answer {want!r} from {url} within {limit:g} s", file=sys.stderr)
        sys.exit(3)
    time.sleep(0.2)
PY
}
