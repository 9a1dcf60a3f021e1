"""What every stage script shares: reading its params.yaml section and reporting failures."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def load_params(section: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """The `section` mapping of params.yaml; a clear error if the file or section is missing."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise SystemExit(f"{path}: no params file (stages run from the repository root)") from None
    except yaml.YAMLError as e:
        raise SystemExit(f"{path}: not valid YAML ({e})") from None
    if section not in params or not isinstance(params[section], dict):
        raise SystemExit(f"{path}: no '{section}:' section")
    return params[section]


def dataset_kind(fs2k_dir: str | Path) -> dict[str, Any]:
    """What the download stage recorded about the data (`source.json`), or 'unknown'."""
    src = Path(fs2k_dir) / "source.json"
    if src.is_file():
        return json.loads(src.read_text(encoding="utf-8"))
    return {"dataset": "unknown", "reason": f"{src} not found (data placed by hand?)"}


def stage_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    return parser.parse_args()


def run_stage(main: Callable[[], None], *errors: type[Exception]) -> None:
    """Run a stage; the expected `errors` print their message and exit 1 without a traceback."""
    try:
        main()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
