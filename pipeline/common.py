"""What every stage script shares: its command line, logging, and turning errors into one line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from esgar import log as esgar_log
from esgar.connectivity import redact_text
from esgar.errors import ConfigError, EsgarError

log = logging.getLogger("pipeline")


def stage_args(description: str | None) -> argparse.Namespace:
    """`--params FILE` (default params.yaml) and `-q` (warnings only, no progress bars)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print warnings and errors only, no progress bars")
    args = parser.parse_args()
    esgar_log.configure(quiet=args.quiet)
    return args


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage: a user's mistake (`EsgarError`) prints one `error:` line and exits 1, an
    interrupt exits 130; anything else is a bug and keeps its traceback."""
    try:
        main()
    except EsgarError as e:
        print(f"error: {redact_text(str(e))}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def dataset_kind(fs2k_dir: str | Path) -> dict[str, Any]:
    """What the download stage recorded about the data (`source.json`), or 'unknown'."""
    src = Path(fs2k_dir) / "source.json"
    try:
        return json.loads(src.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"dataset": "unknown", "reason": f"{src} not found (data placed by hand?)"}


def must_exist(snapshot: Path, setting: str) -> Path:
    """The relabel snapshot a stage reads, which must be there: a mistyped path would silently
    read as "no human decision yet" (and ask again what was answered)."""
    if not Path(snapshot).is_file():
        raise ConfigError(f"{setting}: {snapshot} does not exist; pull writes it and a fresh "
                          "clone has it in git (data/relabels/snapshot.csv): is the path right?")
    return Path(snapshot)
