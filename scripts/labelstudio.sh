#!/usr/bin/env bash
# Label Studio as a local service, in its own virtual environment (its pins clash with Prefect's).
#
#   scripts/labelstudio.sh install   create or update .labelstudio/venv (idempotent; the set of
#                                    packages is pinned by scripts/labelstudio-constraints.txt)
#   scripts/labelstudio.sh start     start it on 127.0.0.1 in the background, wait for /health
#                                    (installing it first when .labelstudio/venv is missing or
#                                    out of date)
#   scripts/labelstudio.sh stop      stop it (quiet when it is not running)
#   scripts/labelstudio.sh status    running or not, with its URL (exit status 3: not running)
#   scripts/labelstudio.sh add-annotators
#                                    create (or update) the annotator accounts listed in
#                                    LABEL_STUDIO_ANNOTATORS: "email:password:token ..." (.env),
#                                    in the data dir's organisation; they log in to the web UI
#                                    with that password, and clients use that token
#
# Settings come from the environment, then from .env at the repository root (LABEL_STUDIO_ENV_FILE
# names another file); a variable set in the environment wins. .env.example documents them all.
set -euo pipefail
SERVICE=labelstudio
. "$(dirname "$0")/lib.sh"

LS_VERSION=1.23.2
VENV=.labelstudio/venv
STAMP=$VENV/.esgar-labelstudio-stamp
CONSTRAINTS=scripts/labelstudio-constraints.txt

config() {
  service_port LABEL_STUDIO_PORT 8080
  service_timeout LABEL_STUDIO_START_TIMEOUT 180
  DATA_DIR=$(abspath "${LABEL_STUDIO_DATA_DIR:-.labelstudio/data}")
  SERVICE_TITLE="Label Studio"
  SERVICE_DIR=$DATA_DIR SERVICE_DIR_NAME="data dir"
  PID_FILE=$DATA_DIR/labelstudio.pid
  LOG_FILE=$DATA_DIR/labelstudio.log
  SERVER_CMD=("$VENV/bin/label-studio" start --internal-host 127.0.0.1 --port "$PORT"
    --no-browser --data-dir "$DATA_DIR")
  SERVER_MATCH=label-studio
  HEALTH_URL=$URL/health HEALTH_BODY=UP HEALTH_MATCH=contains # {"status": "UP"}
  START_CHECKS=check_settings BEFORE_LAUNCH=prepare AFTER_HEALTH=check_server
}

# The stamp of an install of this version with these constraints.
wanted_stamp() {
  { echo "label-studio==$LS_VERSION"; cat "$CONSTRAINTS"; } | sha256sum | cut -d' ' -f1
}

up_to_date() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(wanted_stamp)" ]; }

install() {
  if up_to_date; then
    say "$VENV is up to date"
    return 0
  fi
  mkdir -p "$(dirname "$VENV")"
  exec 9>"$(dirname "$VENV")/install.lock"
  flock 9 # two installs at once (parallel test runs) would corrupt the venv
  if up_to_date; then
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
  wanted_stamp >"$STAMP"
  say "done ($VENV)"
}

require() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] \
      || die "$name is not set; set it in the environment or in .env (see .env.example)"
  done
}

check_settings() {
  require LABEL_STUDIO_USERNAME LABEL_STUDIO_PASSWORD LABEL_STUDIO_USER_TOKEN
  ((${#LABEL_STUDIO_USER_TOKEN} >= 6)) || die "LABEL_STUDIO_USER_TOKEN must have at least 6" \
    "characters (Label Studio ignores shorter ones)"
}

# `install`, when the venv is missing or out of date, in a process of its own (its lock would
# otherwise stay open in the server).
ensure_venv() {
  local why
  if [ ! -x "$VENV/bin/label-studio" ]; then
    why="no Label Studio in $VENV"
  elif ! up_to_date; then
    why="$VENV is out of date"
  else
    return 0
  fi
  say "$why: running scripts/labelstudio.sh install first"
  scripts/labelstudio.sh install || die "scripts/labelstudio.sh install failed"
}

# The venv, the document root, and Label Studio's environment.
prepare() {
  ensure_venv
  local docroot
  docroot=$(abspath "${LABEL_STUDIO_DOCUMENT_ROOT:-.}")
  [ -d "$docroot" ] || die "LABEL_STUDIO_DOCUMENT_ROOT=$docroot is not a folder"
  docroot=$(cd "$docroot" && pwd)
  RUNNING_INFO="admin $LABEL_STUDIO_USERNAME; document root $docroot"

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
  export LABEL_STUDIO_SENTRY_DSN='' LABEL_STUDIO_FRONTEND_SENTRY_DSN=''
  export LABEL_STUDIO_HOST=${LABEL_STUDIO_HOST:-} # a stray HOST variable would become its URL
  export XDG_CONFIG_HOME=$DATA_DIR/config # its anonymous server id, not in the user's home
}

# Exits 0 when the server accepts LABEL_STUDIO_USER_TOKEN; 4 when it refuses it (saying so).
token_accepted() {
  "$VENV/bin/python" - "$URL/api/current-user/whoami" <<'PY'
import os, sys, urllib.error, urllib.request

url = sys.argv[1]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
who = urllib.request.Request(
    url, headers={"Authorization": f"Token {os.environ['LABEL_STUDIO_USER_TOKEN']}"})
try:
    opener.open(who, timeout=10).close()
except urllib.error.HTTPError as e:
    print(f"HTTP {e.code} from {url} with LABEL_STUDIO_USER_TOKEN", file=sys.stderr)
    sys.exit(4)
PY
}

# Once it answers /health: it takes the token, and it serves PORT (which was free a moment ago;
# make sure it did not move to another one meanwhile).
check_server() {
  local pid=$1 rc=0 refused
  refused="Label Studio refuses LABEL_STUDIO_USER_TOKEN: it sets the admin's token only"
  refused+=" when it creates the account (and legacy tokens only with a new organisation),"
  refused+=" so $DATA_DIR keeps those of its first start; use that token, or a fresh"
  refused+=" LABEL_STUDIO_DATA_DIR"
  token_accepted || rc=$?
  case $rc in
    0) ;;
    4) fail_start "$pid" "$refused" quiet ;;
    *) fail_start "$pid" "checking the server failed (status $rc)" ;;
  esac
  grep -q "127.0.0.1:$PORT/" "$LOG_FILE" \
    || fail_start "$pid" "Label Studio does not say it serves 127.0.0.1:$PORT"
}

# The accounts of LABEL_STUDIO_ANNOTATORS, created or updated (password, token) directly in
# the data dir's database by Label Studio's own models, as its `label-studio init` makes the
# admin; the server may be running. Not admins: they annotate.
add-annotators() {
  config
  require LABEL_STUDIO_ANNOTATORS
  [ -x "$VENV/bin/python" ] || die "no Label Studio in $VENV; run: scripts/labelstudio.sh install"
  [ -f "$DATA_DIR/label_studio.sqlite3" ] \
    || die "no Label Studio database in $DATA_DIR yet; start the server once first"
  LABEL_STUDIO_BASE_DATA_DIR=$DATA_DIR LABEL_STUDIO_LATEST_VERSION_CHECK=false \
    LABEL_STUDIO_COLLECT_ANALYTICS=false XDG_CONFIG_HOME=$DATA_DIR/config \
    "$VENV/bin/python" - <<'PY' 2> >(grep -v -E "^=> |Read environment|casted as|RuntimeWarning|warnings.warn" >&2)
import os
import re
import sys

entries = os.environ["LABEL_STUDIO_ANNOTATORS"].split()
accounts = []
for n, entry in enumerate(entries, 1):
    parts = entry.split(":")
    if len(parts) != 3:
        sys.exit(f"labelstudio: error: LABEL_STUDIO_ANNOTATORS entry {n}: expected "
                 "email:password:token")
    email, password, token = parts
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        sys.exit(f"labelstudio: error: LABEL_STUDIO_ANNOTATORS entry {n}: {email!r} is not an "
                 "email address")
    if len(password) < 8 or len(token) < 6:
        sys.exit(f"labelstudio: error: LABEL_STUDIO_ANNOTATORS entry {n} ({email}): the "
                 "password needs 8 characters and the token 6")
    accounts.append((email, password, token))

from label_studio.server import _setup_env  # noqa: E402

_setup_env()
from django.db import transaction  # noqa: E402
from organizations.models import Organization  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from users.models import User  # noqa: E402

org = Organization.objects.first()
if org is None:
    sys.exit("labelstudio: error: the data dir has no organisation yet; start the server once")
for email, password, token in accounts:
    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        made = user is None
        if made:
            user = User.objects.create_user(email=email, password=password,
                                            username=email.split("@")[0])
        else:
            user.set_password(password)
        if not org.has_user(user):
            org.add_user(user)
        user.active_organization = org
        user.save()
        taken = Token.objects.filter(key=token).exclude(user=user).exists()
        if taken:
            sys.exit(f"labelstudio: error: {email}: the token is another account's")
        Token.objects.filter(user=user).delete()
        Token.objects.create(user=user, key=token)
    print(f"labelstudio: {'created' if made else 'updated'} annotator {email}")
PY
}

load_env_file "${LABEL_STUDIO_ENV_FILE:-.env}"
service_main "install|start|stop|status|add-annotators" "$@"
