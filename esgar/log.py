"""One logging format for the library and the stages, and progress bars that `-q` silences.

The library only logs (`logging.getLogger(__name__)`); whoever runs it (a stage, the CLI, a
flow) calls `configure` once. Long loops use `progress(...)`, a tqdm bar on stderr that is off
under `configure(quiet=True)`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from tqdm import tqdm

__all__ = ["FORMAT", "configure", "progress", "summarize"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"
T = TypeVar("T")
_quiet = False


_OURS = ("esgar", "pipeline", "flows")
_factory = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """The project's log records, their message formatted now with every URL redacted (no
    password or token reaches a log, whichever handler prints it)."""
    record = _factory(*args, **kwargs)
    if record.name.split(".")[0] in _OURS:
        from esgar.connectivity import redact_text

        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # the handler reports a bad format as it always has
            return record
        record.msg, record.args = redact_text(message), None
    return record


def configure(quiet: bool = False, level: int | None = None, handler: bool = True) -> None:
    """Log to stderr in the project's format: INFO and up, or WARNING and up when `quiet`
    (which also turns progress bars off). `handler=False` sets the levels only, for a process
    whose root logger already prints (Prefect's, in the flows). Either way the project's
    records have their URLs redacted (`esgar.connectivity.redact`)."""
    global _quiet
    _quiet = quiet
    logging.setLogRecordFactory(_redacting_factory)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    for name in _OURS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [stream] if handler else []
        logger.setLevel(level if level is not None else
                        logging.WARNING if quiet else logging.INFO)


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """`tqdm(iterable, **kwargs)` on stderr, disabled when quiet (or when `disable=True`)."""
    kwargs["disable"] = _quiet or kwargs.get("disable", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def _kind(line: str) -> str:
    """What a warning says, without what it names: after its first ': ', quoted values and
    numbers masked."""
    what = line.split(": ", 1)[-1]
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d[\d.:TZ+\-]*", "*", what)


def summarize(lines: Sequence[str], examples: int = 3) -> list[str]:
    """Many warnings as a few lines: up to `examples` of each kind as they are, then one line
    per kind counting the rest (the caller keeps every line in its report)."""
    seen: Counter[str] = Counter()
    out = []
    for line in lines:
        k = _kind(line)
        seen[k] += 1
        if seen[k] <= examples:
            out.append(line)
    out += [f"... and {n - examples} more like: {k}" for k, n in seen.items() if n > examples]
    return out
