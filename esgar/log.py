"""One logging format for the library and the stages, and progress bars that `-q` silences.

The library only logs (`logging.getLogger(__name__)`); whoever runs it (a stage, the CLI, a
flow) calls `configure` once. Long loops use `progress(...)`, a tqdm bar on stderr that is off
under `configure(quiet=True)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["FORMAT", "configure", "progress"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
T = TypeVar("T")
_quiet = False


def configure(quiet: bool = False, level: int | None = None, handler: bool = True) -> None:
    """Log to stderr in the project's format: INFO and up, or WARNING and up when `quiet`
    (which also turns progress bars off). `handler=False` sets the levels only, for a process
    whose root logger already prints (Prefect's, in the flows)."""
    global _quiet
    _quiet = quiet
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    for name in ("esgar", "pipeline", "flows"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [stream] if handler else []
        logger.setLevel(level if level is not None else
                        logging.WARNING if quiet else logging.INFO)


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` on stderr, disabled when quiet (or when `disable=True`)."""
    kwargs["disable"] = _quiet or kwargs.get("disable", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
