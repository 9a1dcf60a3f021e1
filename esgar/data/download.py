"""Get FS2K.zip (Google Drive, an HTTP(S) mirror, or a local file), check it, unpack it atomically.

FS2K publishes no checksum, so the sha256 and size of what was obtained are recorded beside the
archive (`FS2K.zip.json`) for machines to compare. HTTP downloads go to `FS2K.zip.part` and are
resumed with a Range request when the server honours it, restarted from zero when it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from esgar.data import layout
from esgar.io import replace_dir, write_json

ARCHIVE = "FS2K.zip"
# Where reachability of Google Drive is probed; ESGAR_GDRIVE_PROBE=host:port redirects the probe
# (tests point it at a closed local port to simulate being offline).
_probe = os.environ.get("ESGAR_GDRIVE_PROBE", "drive.google.com:443").rsplit(":", 1)
GDRIVE_HOST = (_probe[0], int(_probe[1]))
PROBE_TIMEOUT_S = 4.0
CHUNK = 1 << 16
ALTERNATIVES = (
    "To run anyway, either\n"
    "  - set data.archive in params.yaml to an FS2K.zip you already have (data.source: local),\n"
    "  - set data.url to an HTTP(S) mirror of FS2K.zip (data.source: url), or\n"
    "  - set data.source: synthetic to generate a synthetic FS2K."
)


class DownloadError(RuntimeError):
    """Getting or checking the archive failed; the message says what to do."""


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to host:port opens within `timeout`, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{host}:{port} unreachable ({e})"


def _probe_target(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)


def fetch_http(url: str, dest: Path, timeout: float = 30.0, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming `dest.part` when the server allows it.

    The part file becomes `dest` only when its size equals the announced length, so an
    interrupted download never leaves a truncated archive under the final name.
    """
    part = dest.with_name(dest.name + ".part")
    reason = reachable(*_probe_target(url))
    if reason:
        raise DownloadError(f"cannot download {url}: {reason}.\n{ALTERNATIVES}")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as r:
            if r.status_code == 416:  # nothing left to fetch or a stale part: start over
                part.unlink(missing_ok=True)
                return fetch_http(url, dest, timeout, progress)
            r.raise_for_status()
            resumed = r.status_code == 206 and have > 0
            if not resumed:
                have = 0  # the server ignored Range: restart cleanly
            length = r.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name,
                disable=not progress,
            ) as bar:
                for block in r.iter_content(CHUNK):
                    f.write(block)
                    bar.update(len(block))
    except requests.RequestException as e:
        raise DownloadError(f"download of {url} broke off ({e}); the partial file {part} is "
                            "kept and the next run resumes it.") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"download of {url} ended at {size} of {total} bytes; the partial "
                            f"file {part} is kept and the next run resumes it.")
    os.replace(part, dest)
    return dest


def fetch_gdrive(file_id: str, dest: Path, progress: bool = True) -> Path:
    """Download a Google Drive file through gdown (which resumes `dest.part` itself)."""
    reason = reachable(*GDRIVE_HOST)
    if reason:
        raise DownloadError(f"cannot reach Google Drive to download FS2K (file id {file_id}): "
                            f"{reason}.\n{ALTERNATIVES}")
    import gdown

    try:
        got = gdown.download(id=file_id, output=str(dest), quiet=not progress, resume=True,
                             timeout=60, retries=2)
    except Exception as e:  # gdown raises many kinds (FileURLRetrievalError, HTTP errors...)
        raise DownloadError(f"Google Drive download of file id {file_id} failed: {e}\n"
                            f"{ALTERNATIVES}") from None
    if not got or not dest.is_file():
        raise DownloadError(f"Google Drive download of file id {file_id} gave no file "
                            f"(quota exceeded or access denied?).\n{ALTERNATIVES}")
    return dest


def check_archive(path: Path) -> str:
    """Test the zip's integrity, member paths and FS2K layout; returns the FS2K folder inside.

    A tolerated wrapping folder (`X/FS2K/...`) is returned as `X/FS2K`.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DownloadError(f"{path}: not a readable zip archive ({e}); delete it to download "
                            "it again") from None
    if bad is not None:
        raise DownloadError(f"{path}: member {bad} is corrupt (CRC mismatch); delete the "
                            "archive to download it again")
    for name in names:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            raise DownloadError(f"{path}: unsafe member path {name!r}; refusing to unpack")
    roots = sorted({str(PurePosixPath(n).parent) for n in names
                    if PurePosixPath(n).name == layout.ANNOTATION_FILES["train"]})
    for root in roots:
        prefix = "" if root == "." else f"{root}/"
        need = [f"{prefix}{d}" for d in ("photo/", "sketch/", *layout.ANNOTATION_FILES.values())]
        if PurePosixPath(root).name == "FS2K" and all(
                any(n == x or n.startswith(x) for n in names) for x in need):
            return root
    top = sorted({n.split("/")[0] for n in names})[:10]
    raise DownloadError(f"{path}: not an FS2K archive: expected a folder FS2K/ holding photo/, "
                        f"sketch/, anno_train.json and anno_test.json; found top-level "
                        f"{', '.join(top) or 'nothing'}")


def record_archive(path: Path, origin: str) -> dict[str, Any]:
    """Write `<archive>.json` (sha256, size, origin, time) beside the archive and return it."""
    info = {"file": path.name, "sha256": sha256sum(path), "size": path.stat().st_size,
            "origin": origin, "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json(path.with_name(path.name + ".json"), info)
    return info


def known_archive(path: Path) -> dict[str, Any] | None:
    """The recorded info of an archive already downloaded, if its size still matches."""
    meta = path.with_name(path.name + ".json")
    if not (path.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text())
    return info if info.get("size") == path.stat().st_size else None


def unpack(archive: Path, inner: str, out: Path) -> None:
    """Extract the archive's FS2K folder `inner` to `out/FS2K`, atomically.

    Other entries of `out` are kept; a failed extraction leaves the previous FS2K untouched.
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=out) as tmp:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.startswith(f"{inner}/")]
            for m in tqdm(members, desc=f"unpacking {archive.name}", unit="file", leave=False):
                zf.extract(m, tmp)
        replace_dir(Path(tmp) / inner, out / "FS2K")


def obtain_archive(source: str, downloads: Path, *, gdrive_id: str = "", url: str = "",
                   archive: str = "", progress: bool = True) -> tuple[Path, dict[str, Any]]:
    """The checked archive for `source` (gdrive | url | local) and its recorded info."""
    downloads.mkdir(parents=True, exist_ok=True)
    if source == "local":
        if not archive:
            raise DownloadError("data.source is 'local' but data.archive is empty: set it to "
                                "the path of your FS2K.zip")
        path = Path(archive).expanduser()
        if not path.is_file():
            raise DownloadError(f"{path}: no such file (data.archive)")
        check_archive(path)  # used in place, never modified
        info = known_archive(path) if os.access(path.parent, os.W_OK) else None
        if info is None:
            info = {"file": path.name, "sha256": sha256sum(path), "size": path.stat().st_size,
                    "origin": str(path)}
        return path, info
    dest = downloads / ARCHIVE
    info = known_archive(dest)
    if info is None:
        if source == "url":
            if not url:
                raise DownloadError("data.source is 'url' but data.url is empty")
            fetch_http(url, dest, progress=progress)
            origin = url
        elif source == "gdrive":
            fetch_gdrive(gdrive_id, dest, progress=progress)
            origin = f"gdrive:{gdrive_id}"
        else:
            raise DownloadError(f"unknown data.source {source!r}; use auto, gdrive, url, local "
                                "or synthetic")
        check_archive(dest)
        info = record_archive(dest, origin)
    return dest, info


def auto_source(gdrive_id: str, url: str, archive: str) -> tuple[str, str]:
    """(source, reason) that `auto` resolves to: synthetic only when nothing can be reached."""
    if archive:
        return "local", f"data.archive is set ({archive})"
    if url:
        reason = reachable(*_probe_target(url))
        return ("url", f"mirror {url} reachable") if reason is None else (
            "synthetic", f"the mirror {url} could not be reached: {reason}")
    reason = reachable(*GDRIVE_HOST)
    if reason is None:
        return "gdrive", "Google Drive reachable"
    return "synthetic", f"Google Drive could not be reached: {reason}"


def synthetic_banner(reason: str) -> str:
    line = "!" * 78
    return (f"{line}\n  FS2K could not be obtained ({reason}).\n"
            "  This run uses SYNTHETIC FS2K: drawn faces in FS2K's layout, not the real data.\n"
            "  Results say nothing about real sketches. To use FS2K, see data.* in params.yaml.\n"
            f"{line}")

