"""The base of every error a user can cause and fix: bad data, bad settings, unreachable services.

Each module raises its own subclass (`FS2KError`, `MaskError`, `ConfigError`...), whose message
names the file, setting or service and says what to do. Stages turn any `EsgarError` into one
line and exit status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EsgarError", "OutputError"]


class EsgarError(Exception):
    """A problem the user can fix; the message says what and where."""


class ConfigError(EsgarError, ValueError):
    """A setting is missing, mistyped, out of range or names something that does not exist."""


class OutputError(EsgarError):
    """An output path cannot be written without destroying something that is not ours."""
