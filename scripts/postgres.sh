#!/usr/bin/env bash
# A local PostgreSQL server for the services' stores (MLflow, Prefect, Label Studio), optional:
# sqlite stays every service's default. It uses the machine's PostgreSQL (Debian's package:
# `apt-get install postgresql`), which gets the distribution's security updates.
#
#   scripts/postgres.sh start    initialise its folder on first use, start it on 127.0.0.1 in
#                                the background, wait until it accepts connections, create the
#                                databases mlflow, prefect and labelstudio where missing
#   scripts/postgres.sh stop     stop it (fast shutdown; quiet when it is not running)
#   scripts/postgres.sh status   running or not (exit status 3: not running)
#   scripts/postgres.sh urls     the settings each service takes to use it (.env.example)
#
# Its data, a password made at initialisation (mode 600), the pid file and the log are in
# POSTGRES_DIR (default .postgres in the repository). The superuser is `esgar`; only TCP on
# 127.0.0.1 with that password is accepted (no Unix socket). As root, the server runs as the
# `postgres` account, as PostgreSQL refuses root, and that account owns the data folder.
# Settings come from the environment, then .env (POSTGRES_ENV_FILE names another file).
set -euo pipefail
SERVICE=postgres
. "$(dirname "$0")/lib.sh"

DATABASES=(mlflow prefect labelstudio)
local_url() { echo "postgresql://127.0.0.1:$1"; }
SUPERUSER=esgar

# The folder of PostgreSQL's programs: POSTGRES_BIN, else that of `postgres` on PATH, else the
# newest of Debian's.
find_bin() {
  local found
  if [ -n "${POSTGRES_BIN:-}" ]; then
    [ -x "$POSTGRES_BIN/postgres" ] || die "POSTGRES_BIN=$POSTGRES_BIN holds no postgres program"
    echo "$POSTGRES_BIN"
  elif found=$(command -v postgres 2>/dev/null); then
    dirname "$(readlink -f "$found")"
  elif found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) \
    && [ -n "$found" ]; then
    echo "$found"
  else
    die "no PostgreSQL server on this machine; install Debian's: apt-get install postgresql" \
      "(or set POSTGRES_BIN to the folder of its programs)"
  fi
}

# Runs "$@" as the account that owns the data (postgres when this runs as root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

config() {
  service_port POSTGRES_PORT 5432
  service_timeout POSTGRES_START_TIMEOUT 60
  VENV=$(abspath "${ESGAR_VENV:-.venv}")
  PGDIR=$(abspath "${POSTGRES_DIR:-.postgres}")
  DATA=$PGDIR/data PASSWORD_FILE=$PGDIR/password
  SERVICE_TITLE="the PostgreSQL server" SERVICE_DIR=$PGDIR SERVICE_DIR_NAME=folder
  PID_FILE=$PGDIR/postgres.pid LOG_FILE=$PGDIR/postgres.log
  BIN=$(find_bin)
  SERVER_CMD=("$BIN/postgres" -D "$DATA" -c listen_addresses=127.0.0.1 -p "$PORT"
    -c unix_socket_directories=)
  [ "$(id -u)" != 0 ] || SERVER_CMD=(runuser -u postgres -- "${SERVER_CMD[@]}")
  SERVER_MATCH="postgres -D $DATA"
  START_CHECKS=check_account BEFORE_LAUNCH=initialise WAIT=wait_ready AFTER_HEALTH=create_databases
  STOP_SIGNAL=INT # PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave
}

check_account() {
  [ "$(id -u)" != 0 ] || getent passwd postgres >/dev/null \
    || die "running as root needs the postgres account (Debian's postgresql package makes it)"
}

# The data folder and the password, on first use.
initialise() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  [ ! -e "$DATA" ] || [ -z "$(ls -A "$DATA")" ] \
    || die "$DATA is not empty and holds no PostgreSQL data; move it away or set POSTGRES_DIR"
  mkdir -p "$DATA"
  chmod 755 "$PGDIR"
  (umask 077 && "$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(24))" \
    >"$PASSWORD_FILE")
  local pwfile=$PGDIR/.initdb-password
  (umask 077 && cp "$PASSWORD_FILE" "$pwfile")
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DATA" "$pwfile"; fi
  chmod 700 "$DATA"
  say "initialising $DATA (superuser $SUPERUSER, password in $PASSWORD_FILE)"
  as_owner "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --pwfile="$pwfile" --auth-local=reject \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 \
    || { rm -f "$pwfile"; die "initdb failed; see $PGDIR/initdb.log"; }
  rm -f "$pwfile"
}

psql_do() {
  PGPASSWORD=$(cat "$PASSWORD_FILE") PGCONNECT_TIMEOUT=5 psql -X -q -t -A -h 127.0.0.1 \
    -p "$PORT" -U "$SUPERUSER" -d postgres -v ON_ERROR_STOP=1 "$@"
}

# Until it accepts connections (pg_isready), while process $1 lives; statuses as wait_health's.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS <= deadline)); do
    alive "$1" || return 2
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 && return 0
    sleep 0.2
  done
  return 3
}

create_databases() {
  local db
  for db in "${DATABASES[@]}"; do
    if [ -z "$(psql_do -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql_do -c "CREATE DATABASE $db" || fail_start "$1" "creating database $db failed"
      say "created database $db"
    fi
  done
}

# The settings each service takes (a password in them: keep them in .env, never committed).
urls() {
  config
  local pid pw
  pid=$(service_pid) || die "not running for $PGDIR; start it (scripts/postgres.sh start)"
  pw=$(cat "$PASSWORD_FILE")
  PORT=$(running_port)
  echo "MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://$SUPERUSER:$pw@127.0.0.1:$PORT/mlflow"
  echo "PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://$SUPERUSER:$pw@127.0.0.1:$PORT/prefect"
  echo "DJANGO_DB=default"
  echo "POSTGRE_NAME=labelstudio"
  echo "POSTGRE_USER=$SUPERUSER"
  echo "POSTGRE_PASSWORD=$pw"
  echo "POSTGRE_HOST=127.0.0.1"
  echo "POSTGRE_PORT=$PORT"
}

load_env_file "${POSTGRES_ENV_FILE:-.env}"
service_main "start|stop|status|urls" "$@"
