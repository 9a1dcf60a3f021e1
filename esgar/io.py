"""Files and folders written atomically, with the user's permissions, never over foreign data.

A reader never sees a half-written file; a failed write loses nothing. A stage's output folder
carries a marker (`.esgar-output`, naming the stage), and a folder is replaced only when it is
absent, empty, or carries the same stage's marker: pointing an output at a folder of your own
stops the stage instead of emptying the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from esgar.errors import EsgarError, OutputError

__all__ = ["FORMULA_PREFIXES", "MARKER", "InputError", "atomic_path", "building_dir",
           "check_owned", "claim_dir", "read_parquet", "replace_dir", "sha256sum",
           "spreadsheet_safe", "write_bytes", "write_json", "write_text", "write_with"]

MARKER = ".esgar-output"
_CHUNK = 1 << 20


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


def _publish(path: Path, mode: int) -> None:
    """Give a temporary file or folder (created 0600 / 0700) the mode a plain create would."""
    os.chmod(path, mode & ~_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    Works for any writer that takes a file name (`df.to_parquet`, `fig.savefig`, `np.save`...).
    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(Path(tmp), 0o666)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    """Pretty, key-sorted JSON (stable diffs for DVC metrics), written atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp_path)` and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


class InputError(EsgarError):
    """An input a stage needs is missing or unreadable; the message names the stage making it."""


def read_parquet(path: str | Path, made_by: str) -> Any:
    """The DataFrame in the parquet file `path`; InputError naming the stage `made_by` when the
    file is missing or unreadable."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"{path}: missing (run the {made_by} stage)") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable parquet file ({e}); run the {made_by} stage "
                         "again") from None


def sha256sum(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ---- output folders ---------------------------------------------------------------------------

def _owner(folder: Path) -> str | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8")).get("stage")
    except (OSError, ValueError, AttributeError):
        return None


def check_owned(folder: str | Path, owner: str, own_files: Iterable[str] = ()) -> None:
    """OutputError unless `folder` may be overwritten by `owner`.

    It may when it does not exist, is empty, carries `owner`'s marker, or holds nothing but
    `own_files` (names `owner` writes: an output made before markers existed).
    """
    folder = Path(folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not the {owner} stage's output folder; "
                          "move it away or point the setting elsewhere")
    entries = {p.name for p in folder.iterdir()}
    found = _owner(folder)
    if not entries or found == owner or (not found and entries <= set(own_files)):
        return
    what = f"the output of '{found}'" if found else "not written by this project"
    shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
    raise OutputError(f"{folder}: exists and is {what} (holds {shown}); the {owner} stage "
                      "replaces only a folder it wrote: remove it or point the setting elsewhere")


def claim_dir(folder: str | Path, owner: str, own_files: Iterable[str] = ()) -> Path:
    """Create `folder` (or check it is `owner`'s, see `check_owned`) and mark it as `owner`'s."""
    folder = Path(folder)
    check_owned(folder, owner, own_files)
    folder.mkdir(parents=True, exist_ok=True)
    if _owner(folder) != owner:
        write_json(folder / MARKER, {"stage": owner})
    return folder


def replace_dir(new: str | Path, dest: str | Path) -> None:
    """Move the finished directory `new` onto `dest`, replacing what was there.

    The old directory is renamed away first and removed only after the new one is in place,
    so an interrupted replace leaves either the old or the new tree, never a mix.
    """
    new, dest = Path(new), Path(dest)
    if not new.is_dir():
        raise FileNotFoundError(f"{new}: no such directory to move onto {dest}")
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except BaseException:
        if old.exists():
            os.replace(old, dest)
        raise
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def building_dir(dest: str | Path, owner: str, own_files: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty folder beside `dest`; when the block succeeds it replaces `dest` whole.

    `dest` must be `owner`'s to replace (`check_owned`, checked before the block runs). The
    new folder gets `owner`'s marker. On an exception `dest` is left exactly as it was.
    """
    dest = Path(dest)
    check_owned(dest, owner, own_files)
    dest.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{dest.name}.new-"
    for stale in dest.parent.glob(f"{prefix}*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent))
    try:
        _publish(tmp, 0o777)
        yield tmp
        write_json(tmp / MARKER, {"stage": owner})
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: Any, columns: Iterable[str]) -> Any:
    """A copy of DataFrame `frame` whose text cells in `columns` cannot run as a formula in a
    spreadsheet that opens the CSV: a cell starting with = + - @ tab or carriage return gets a
    leading apostrophe (OWASP's advice for CSV injection)."""
    out = frame.copy()
    for c in columns:
        out[c] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
                  for v in out[c]]
    return out
