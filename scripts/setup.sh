#!/usr/bin/env bash
# Create or update the project's virtual environment in .venv (idempotent).
# Versions are pinned by constraints.txt, so every machine resolves the same set.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ESGAR_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.esgar-setup-stamp"
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# Filter only the noise of pip's "Location ... is ignored" lines, keep its exit status.
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored" >&2); }
pip install -U "pip>=24"
# torch first, on its own: resolving it together with everything else makes pip consider
# other builds of torch than the one pinned.
pip install -c constraints.txt torch==2.14.1 torchvision==0.29.1
pip install -c constraints.txt -e ".[test]"
pip install --no-deps -c constraints.txt "facexlib==0.3.0"

# Exactly one OpenCV distribution may own `cv2`.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
cv = sorted({d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("opencv")})
if cv != ["opencv-python-headless"]:
    raise SystemExit(f"setup: expected only opencv-python-headless, found {cv}; "
                     "uninstall the others (pip uninstall opencv-python)")
import cv2, torch, torchvision, timm, facexlib.parsing, esgar  # noqa: F401
print(f"setup: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"timm {timm.__version__}, cv2 {cv2.__version__}")
PY
echo "$want" > "$stamp"
echo "setup: done ($VENV)"
