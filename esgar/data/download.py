"""Get FS2K.zip (Google Drive, an HTTP(S) mirror, or a local file), check it, unpack it atomically.

FS2K publishes no checksum, so the sha256 and size of what was obtained are recorded beside the
archive (`FS2K.zip.json`); a recorded archive is reused, after checking it still matches.
HTTP downloads go to `FS2K.zip.part` (with `FS2K.zip.part.json`: URL, validator, total size) and
are resumed with a Range request when the server honours it, restarted from zero when it does not
or when the file on the server changed. Network use is probed first (DNS + TCP, a few seconds),
so an offline machine fails fast instead of waiting on HTTP timeouts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from esgar.data import layout
from esgar.io import replace_dir, write_json

ARCHIVE = "FS2K.zip"
SOURCES = ("auto", "gdrive", "url", "local", "synthetic")
GDRIVE_URL = "https://drive.google.com/"
# host:port to probe instead of Google Drive (tests point it at a closed local port).
PROBE_ENV = "ESGAR_GDRIVE_PROBE"
PROBE_TIMEOUT_S = 4.0
HTTP_TIMEOUT_S = (10.0, 60.0)  # (connect, read between bytes)
CHUNK = 1 << 20  # for hashing
NET_CHUNK = 1 << 16  # what an interrupted read can lose
REQUIRED = ("photo/", "sketch/", *layout.ANNOTATION_FILES.values())
ALTERNATIVES = (
    "To run anyway, either\n"
    "  - set data.archive in params.yaml to an FS2K.zip you already have (data.source: local),\n"
    "  - set data.url to an HTTP(S) mirror of FS2K.zip (data.source: url), or\n"
    "  - set data.source: synthetic to generate a synthetic FS2K."
)


class DownloadError(RuntimeError):
    """Getting or checking the archive failed; the message is the user-facing explanation."""


@dataclass(frozen=True)
class Archive:
    """A checked FS2K archive: where it is, its FS2K folder inside, and its recorded info."""

    path: Path
    inner: str
    info: dict[str, Any]


def sha256sum(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


# ---- reachability -----------------------------------------------------------------------------

def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    # getaddrinfo ignores socket timeouts: a broken resolver can block for tens of seconds.
    result: dict[str, Any] = {}

    def lookup() -> None:
        try:
            result["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            result["error"] = e

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"DNS lookup of {host} took over {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result["addrs"]


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if a TCP connection to host:port opens within `timeout` seconds, else the reason."""
    deadline = time.monotonic() + timeout
    try:
        error: OSError = OSError("no address")
        for family, kind, proto, _, addr in _resolve(host, port, timeout):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no connection within {timeout:g} s")
            try:
                with socket.socket(family, kind, proto) as s:
                    s.settimeout(left)
                    s.connect(addr)
                    return None
            except OSError as e:
                error = e
        raise error
    except OSError as e:
        return f"{host}:{port} unreachable ({str(e) or type(e).__name__})"


def probe_target(url: str) -> tuple[str, int]:
    """The host:port a request for `url` connects to first: its proxy if one applies, else its
    own host."""
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if proxy and "://" not in proxy:
        proxy = f"http://{proxy}"
    u = urlparse(proxy or url)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)


def gdrive_probe_target() -> tuple[str, int]:
    """Where Google Drive's reachability is probed; `$ESGAR_GDRIVE_PROBE=host:port` overrides."""
    override = os.environ.get(PROBE_ENV, "")
    if override:
        host, _, port = override.rpartition(":")
        return host, int(port)
    return probe_target(GDRIVE_URL)


# ---- HTTP mirror ------------------------------------------------------------------------------

def _content_range(value: str | None) -> tuple[int, int | None]:
    """`bytes 100-999/1000` -> (100, 1000); total None for `*`."""
    m = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    if not m:
        return -1, None
    return int(m[1]), None if m[2] == "*" else int(m[2])


def _resume_state(part: Path, meta: Path, url: str) -> dict[str, Any] | None:
    """What is known about a partial download of `url`; None (and no part) if nothing usable."""
    state = json.loads(meta.read_text()) if meta.is_file() and part.is_file() else None
    if state is None or state.get("url") != url or (
            state.get("total") is not None and part.stat().st_size > state["total"]):
        part.unlink(missing_ok=True)  # of unknown origin: cannot be trusted to continue
        return None
    return state


def _transfer(session: requests.Session, url: str, part: Path, meta: Path,
              state: dict[str, Any] | None, timeout: tuple[float, float], progress: bool) -> bool:
    """One GET into `part`; False when the partial data must be dropped and the GET repeated."""
    have = part.stat().st_size if state else 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets must be those of the file itself
    if have:
        headers["Range"] = f"bytes={have}-"
        etag = state.get("etag") or ""
        validator = etag if etag and not etag.startswith("W/") else state.get("last_modified")
        if validator:
            headers["If-Range"] = validator  # a changed file comes back whole, with 200
    with session.get(url, headers=headers, stream=True, timeout=timeout) as r:
        if r.status_code == 416 and have:
            return have == state.get("total")  # complete already, or stale: start over
        r.raise_for_status()
        if r.status_code == 206 and have:
            start, total = _content_range(r.headers.get("Content-Range"))
            if start != have or total != state.get("total", total):
                return False  # the file on the server changed size, or a bad range came back
        else:
            have = 0  # a full answer (200): the server ignored Range or the file changed
            length = r.headers.get("Content-Length")
            total = int(length) if length is not None else None
            write_json(meta, {"url": url, "etag": r.headers.get("ETag"),
                              "last_modified": r.headers.get("Last-Modified"), "total": total})
        with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name, disable=not progress) as bar:
            for block in r.iter_content(NET_CHUNK):
                f.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"download of {url} ended at {size} of {total} bytes; the partial "
                            f"file {part} is kept and the next run resumes it.")
    return True


def fetch_http(url: str, dest: Path, *, timeout: tuple[float, float] = HTTP_TIMEOUT_S,
               progress: bool = True) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming a partial download when possible.

    `dest` appears only once the announced length arrived in full, so an interrupted download
    never leaves a truncated archive under the final name.
    """
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    reason = reachable(*probe_target(url))
    if reason:
        raise DownloadError(f"cannot download {url}: {reason}.\n{ALTERNATIVES}")
    state = _resume_state(part, meta, url)
    try:
        with requests.Session() as session:
            if not _transfer(session, url, part, meta, state, timeout, progress):
                part.unlink(missing_ok=True)
                _transfer(session, url, part, meta, None, timeout, progress)  # from zero
    except requests.HTTPError as e:
        raise DownloadError(f"the mirror refused the download: {e}.\n{ALTERNATIVES}") from None
    except requests.RequestException as e:
        raise DownloadError(f"download of {url} broke off ({e}); the partial file {part} is "
                            "kept and the next run resumes it.") from None
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return dest


# ---- Google Drive -----------------------------------------------------------------------------

def fetch_gdrive(file_id: str, dest: Path, *, progress: bool = True) -> Path:
    """Download a Google Drive file through gdown, which resumes its own `FS2K.zip*.part`."""
    reason = reachable(*gdrive_probe_target())
    if reason:
        raise DownloadError(f"cannot reach Google Drive to download FS2K (file id {file_id}): "
                            f"{reason}.\n{ALTERNATIVES}")
    import gdown

    try:
        got = gdown.download(id=file_id, output=str(dest), quiet=not progress, resume=True,
                             timeout=HTTP_TIMEOUT_S, retries=2)
    except gdown.exceptions.FileURLRetrievalError as e:
        raise DownloadError(f"Google Drive would not serve file id {file_id} (download quota "
                            f"exceeded, or no access?): {e}\n{ALTERNATIVES}") from None
    except Exception as e:  # gdown's DownloadError, requests' errors, OSError...
        raise DownloadError(f"Google Drive download of file id {file_id} failed "
                            f"({type(e).__name__}: {e}); run again to resume it.\n"
                            f"{ALTERNATIVES}") from None
    if not got or not dest.is_file():
        raise DownloadError(f"Google Drive download of file id {file_id} gave no file.\n"
                            f"{ALTERNATIVES}")
    return dest


# ---- checking, recording, unpacking -----------------------------------------------------------

def _missing(names: list[str], root: str) -> list[str]:
    return [need for need in REQUIRED if not any(n.startswith(f"{root}/{need}") for n in names)]


def check_archive(path: Path) -> str:
    """Test the zip's integrity, member paths and FS2K layout; return its FS2K folder inside.

    The folder is `FS2K`, or `X/FS2K` for an archive with one extra wrapping folder.
    """
    hint = "delete it to download it again"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise DownloadError(f"{path}: not a readable zip archive ({e}); {hint}") from None
    except NotImplementedError as e:
        raise DownloadError(f"{path}: {e}; re-pack it with plain deflate compression") from None
    if bad is not None:
        raise DownloadError(f"{path}: member {bad} is corrupt (CRC mismatch); {hint}")
    for name in names:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
            raise DownloadError(f"{path}: unsafe member path {name!r}; refusing to unpack it")
    roots = sorted({"/".join(PurePosixPath(n).parts[:i + 1]) for n in names
                    for i, part in enumerate(PurePosixPath(n).parts[:2]) if part == "FS2K"})
    for root in roots:
        if not _missing(names, root):
            return root
    if roots:
        lacks = ", ".join(_missing(names, roots[0]))
        raise DownloadError(f"{path}: not a complete FS2K archive: {roots[0]}/ lacks {lacks}")
    top = sorted({n.split("/")[0] for n in names})
    found = ", ".join(top[:10]) + (" ..." if len(top) > 10 else "") or "nothing"
    raise DownloadError(f"{path}: not an FS2K archive: expected a folder FS2K/ (at the top or "
                        f"inside one folder) holding {', '.join(REQUIRED)}; found {found}")


def record_archive(path: Path, origin: str) -> dict[str, Any]:
    """Write `<archive>.json` (sha256, size, origin, time) beside the archive and return it."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info = {"file": path.name, "sha256": sha256sum(path), "size": path.stat().st_size,
            "origin": origin, "recorded_at": now}
    write_json(path.with_name(path.name + ".json"), info)
    return info


def known_archive(path: Path) -> dict[str, Any] | None:
    """The recorded info of an archive already there; None if it was never recorded.

    Raises DownloadError when the archive no longer matches its record (size or sha256).
    """
    meta = path.with_name(path.name + ".json")
    if not (path.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text())
    size = path.stat().st_size
    if size != info.get("size"):
        changed = f"size {size}, recorded {info.get('size')}"
    elif sha256sum(path) != info.get("sha256"):
        changed = "same size, different sha256"
    else:
        return info
    raise DownloadError(f"{path} changed since {meta.name} recorded it ({changed}). Delete both "
                        f"to download it again, or only {meta.name} to accept the file as it is.")


def _local_archive(archive: str) -> Archive:
    """A user's archive, checked and used in place: never copied, moved or written beside."""
    if not archive:
        raise DownloadError("data.source is 'local' but data.archive is empty: set it to the "
                            "path of your FS2K.zip")
    path = Path(archive).expanduser()
    if not path.is_file():
        raise DownloadError(f"{path}: no such file (data.archive)")
    inner = check_archive(path)
    info = {"file": path.name, "sha256": sha256sum(path), "size": path.stat().st_size,
            "origin": str(path.resolve())}
    return Archive(path, inner, info)


def obtain_archive(source: str, downloads: Path, *, gdrive_id: str = "", url: str = "",
                   archive: str = "", progress: bool = True) -> Archive:
    """The checked archive for `source` (gdrive | url | local), downloaded only if needed.

    gdrive and url keep it as `downloads/FS2K.zip` with its record `FS2K.zip.json`; an archive
    found there without a record (placed by hand, or a run stopped before recording) is checked
    and recorded instead of downloaded again.
    """
    if source == "local":
        return _local_archive(archive)
    if source not in ("gdrive", "url"):
        raise DownloadError(f"unknown archive source {source!r}; use gdrive, url or local")
    if source == "url" and not url:
        raise DownloadError("data.source is 'url' but data.url is empty: set it to an HTTP(S) "
                            "mirror of FS2K.zip")
    downloads.mkdir(parents=True, exist_ok=True)
    dest = downloads / ARCHIVE
    info = known_archive(dest)
    if info is not None:
        return Archive(dest, check_archive(dest), info)
    if dest.is_file():
        origin = f"found in {downloads} (not downloaded by this stage)"
    elif source == "url":
        fetch_http(url, dest, progress=progress)
        origin = url
    else:
        fetch_gdrive(gdrive_id, dest, progress=progress)
        origin = f"gdrive:{gdrive_id}"
    inner = check_archive(dest)
    return Archive(dest, inner, record_archive(dest, origin))


def unpack(archive: Path, inner: str, out: Path) -> None:
    """Extract the archive's FS2K folder `inner` to `out/FS2K`, atomically.

    Other entries of `out` are kept; a failed extraction leaves the previous `out/FS2K` as it was.
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".unpack-", dir=out) as tmp:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.startswith(f"{inner}/")]
            if not members:
                raise DownloadError(f"{archive}: no folder {inner}/ to unpack")
            for m in tqdm(members, desc=f"unpacking {archive.name}", unit="file", leave=False):
                zf.extract(m, tmp)
        replace_dir(Path(tmp) / inner, out / "FS2K")


# ---- choosing the source ----------------------------------------------------------------------

def auto_source(url: str, archive: str) -> tuple[str, str]:
    """(source, why) that `auto` resolves to: synthetic only when nothing can be reached.

    For synthetic, `why` names what could not be reached (`Google Drive, host:port unreachable
    (...)`), to be shown as `FS2K could not be reached (<why>)`.
    """
    if archive:
        return "local", f"data.archive is set ({archive})"
    if url:
        reason = reachable(*probe_target(url))
        if reason is None:
            return "url", f"data.url is set and {url} is reachable"
        return "synthetic", f"the mirror {url}, {reason}"
    reason = reachable(*gdrive_probe_target())
    if reason is None:
        return "gdrive", "Google Drive is reachable"
    return "synthetic", f"Google Drive, {reason}"


def synthetic_banner(why: str) -> str:
    """The multi-line warning printed when `auto` falls back to synthetic data."""
    line = "!" * 78
    return (f"{line}\n"
            f"  FS2K could not be reached ({why});\n"
            "  this run uses SYNTHETIC FS2K: drawn faces in FS2K's layout, NOT the real dataset.\n"
            "  Its metrics say nothing about real sketches. For the real FS2K set data.archive\n"
            "  (a local FS2K.zip) or data.url (a mirror) in params.yaml, or run where Google\n"
            "  Drive is reachable; data.source: synthetic asks for synthetic data explicitly.\n"
            f"{line}")
