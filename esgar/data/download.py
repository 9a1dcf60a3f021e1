"""Get FS2K.zip (Google Drive, an HTTP(S) mirror, or a local file), check it, unpack it atomically.

FS2K publishes no checksum, so the sha256 and size of what was obtained are recorded beside the
archive (`FS2K.zip.json`); a recorded archive is reused, after checking it still matches.
HTTP downloads go to `FS2K.zip.part` (with `FS2K.zip.part.json`: URL, validator, total size) and
are resumed with a Range request when the server honours it, restarted from zero when it does not
or when the file on the server changed. Network use is probed first (DNS + TCP, a few seconds),
so an offline machine fails fast instead of waiting on HTTP timeouts.
Before anything is decompressed, an archive's members are checked (no symbolic links, no paths
leaving the target folder, no two members on one path) and their declared sizes are held to
ArchiveLimits (`data.max_unpacked_mb`, `data.max_compression_ratio` in params.yaml).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import requests

from esgar.data import layout
from esgar.errors import EsgarError
from esgar.io import sha256sum, write_json
from esgar.log import progress as progress_bar
from esgar.connectivity import probe_target, reachable, redact

ARCHIVE = "FS2K.zip"
SOURCES = ("auto", "gdrive", "url", "local", "synthetic")
GDRIVE_URL = "https://drive.google.com/"
# host:port to probe instead of Google Drive (tests point it at a closed local port).
PROBE_ENV = "ESGAR_GDRIVE_PROBE"
HTTP_TIMEOUT_S = (10.0, 60.0)  # (connect, read between bytes)
CHUNK = 1 << 20  # for unpacking
NET_CHUNK = 1 << 16  # what an interrupted read can lose
REQUIRED = ("photo/", "sketch/", *layout.ANNOTATION_FILES.values())
ALTERNATIVES = (
    "To run anyway, either\n"
    "  - set data.archive in params.yaml to an FS2K.zip you already have (data.source: local),\n"
    "  - set data.url to an HTTP(S) mirror of FS2K.zip (data.source: url), or\n"
    "  - set data.source: synthetic to generate a synthetic FS2K."
)


class DownloadError(EsgarError):
    """Getting or checking the archive failed; the message is the user-facing explanation."""


@dataclass(frozen=True)
class Archive:
    """A checked FS2K archive: where it is, its FS2K folder inside, and its recorded info."""

    path: Path
    inner: str
    info: dict[str, Any]



# ---- reachability -----------------------------------------------------------------------------

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
        with open(part, "ab" if have else "wb") as f, progress_bar(
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

MB = 1 << 20  # the unit of data.max_unpacked_mb
# Members of at most this many (declared) bytes may compress at any ratio: small text files such
# as the annotation JSON compress far better than images, and however many small members there
# are, their sum is still bounded by the total-size limit.
RATIO_EXEMPT_BYTES = 1 << 20
UNPACKED_PARAM = "data.max_unpacked_mb"
RATIO_PARAM = "data.max_compression_ratio"
HINT = "delete it to download it again"


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may unpack to, judged on the sizes its central directory declares.

    max_unpacked_bytes: the most the declared uncompressed sizes of all members may add up to.
    max_compression_ratio: the most a member's declared uncompressed size may be over its
    compressed size; members of at most RATIO_EXEMPT_BYTES are exempt.
    """

    max_unpacked_bytes: int
    max_compression_ratio: float



def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _parts(name: str) -> tuple[str, ...]:
    """The path components a member name unpacks to (empty and `.` components dropped)."""
    return tuple(part for part in name.split("/") if part not in ("", "."))


def _key(parts: tuple[str, ...]) -> str:
    # casefolded: names that differ only in case clash on case-insensitive file systems
    return "/".join(parts).casefold()


def _check_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a member that would land outside the target folder, is a symbolic link or another
    special file, or is encrypted."""
    name, parts = info.filename, _parts(info.filename)
    if (name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name)
            or not (parts or info.is_dir())):
        raise DownloadError(f"{path}: unsafe member path {name!r}; refusing to unpack it")
    mode = info.external_attr >> 16  # Unix mode, where the archiver recorded one
    if stat.S_ISLNK(mode):
        raise DownloadError(f"{path}: member {name!r} is a symbolic link; refusing to unpack it")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DownloadError(f"{path}: member {name!r} is a special file (mode {mode:o}); "
                            "refusing to unpack it")
    if info.flag_bits & 0x1:
        raise DownloadError(f"{path}: member {name!r} is encrypted; FS2K.zip is not, {HINT}")


def _check_tree(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse two members unpacking to one path (the later would overwrite the earlier) and a
    member whose path goes through a member that is a file."""
    seen: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        first = seen.setdefault(_key(_parts(info.filename)), info)
        if first is not info and not (first.is_dir() and info.is_dir()):
            clash = ("appears twice" if first.filename == info.filename
                     else f"and {first.filename!r} unpack to the same path")
            raise DownloadError(f"{path}: member {info.filename!r} {clash}; refusing to unpack "
                                "it (one would overwrite the other)")
    for info in infos:
        parts = _parts(info.filename)
        for i in range(1, len(parts)):
            above = seen.get(_key(parts[:i]))
            if above is not None and not above.is_dir():
                raise DownloadError(f"{path}: member {info.filename!r} lies inside "
                                    f"{above.filename!r}, which is a file; refusing to unpack it")


def _check_structure(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse members that cannot be unpacked safely (see _check_member and _check_tree)."""
    for info in infos:
        _check_member(path, info)
    _check_tree(path, infos)


def _check_sizes(path: Path, infos: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    """Refuse an archive whose declared sizes exceed `limits` (see ArchiveLimits)."""
    total = sum(info.file_size for info in infos)
    if total > limits.max_unpacked_bytes:
        raise DownloadError(
            f"{path}: unpacks to {_mb(total)}, over the limit of "
            f"{_mb(limits.max_unpacked_bytes)}; if you trust this archive, raise "
            f"{UNPACKED_PARAM} in params.yaml")
    for info in infos:
        size, packed = info.file_size, info.compress_size
        if size > RATIO_EXEMPT_BYTES and size > limits.max_compression_ratio * packed:
            ratio = f"{size / packed:.0f}-fold" if packed else "from nothing"
            raise DownloadError(
                f"{path}: member {info.filename} expands {ratio} ({_mb(size)} from {packed:,} "
                f"bytes), over the limit of {limits.max_compression_ratio:g}-fold; if you trust "
                f"this archive, raise {RATIO_PARAM} in params.yaml")


def _checked_names(path: Path, limits: ArchiveLimits) -> list[str]:
    """The member names of a zip whose members, declared sizes and CRCs are all sound."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_structure(path, infos)
            _check_sizes(path, infos, limits)  # before testzip, which decompresses everything
            bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise DownloadError(f"{path}: not a readable zip archive ({e}); {HINT}") from None
    except NotImplementedError as e:
        raise DownloadError(f"{path}: {e}; re-pack it with plain deflate compression") from None
    if bad is not None:
        raise DownloadError(f"{path}: member {bad} is corrupt (CRC mismatch); {HINT}")
    return [info.filename for info in infos]


def _missing(names: list[str], root: str) -> list[str]:
    return [need for need in REQUIRED if not any(n.startswith(f"{root}/{need}") for n in names)]


def _fs2k_root(path: Path, names: list[str]) -> str:
    """The FS2K folder among the member `names`: `FS2K` or `X/FS2K`; DownloadError if none."""
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


def check_archive(path: Path, *, limits: ArchiveLimits) -> str:
    """Check the zip at `path` and return its FS2K folder inside: `FS2K`, or `X/FS2K` for an
    archive with one extra wrapping folder.

    In order: member paths and kinds (no links, no escaping paths, no clashing names), declared
    sizes against `limits`, CRCs (which decompresses every member), FS2K layout. Raises
    DownloadError at the first failure, naming the archive.
    """
    return _fs2k_root(path, _checked_names(path, limits))


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


def _local_archive(archive: str, limits: ArchiveLimits) -> Archive:
    """A user's archive, checked and used in place: never copied, moved or written beside."""
    if not archive:
        raise DownloadError("data.source is 'local' but data.archive is empty: set it to the "
                            "path of your FS2K.zip")
    path = Path(archive).expanduser()
    if not path.is_file():
        raise DownloadError(f"{path}: no such file (data.archive)")
    inner = check_archive(path, limits=limits)
    info = {"file": path.name, "sha256": sha256sum(path), "size": path.stat().st_size,
            "origin": str(path.resolve())}
    return Archive(path, inner, info)


def obtain_archive(source: str, downloads: Path, *, limits: ArchiveLimits, gdrive_id: str = "",
                   url: str = "", archive: str = "", progress: bool = True,
                   read_timeout: float = HTTP_TIMEOUT_S[1]) -> Archive:
    """The archive for `source` (gdrive | url | local), downloaded only if needed, checked by
    check_archive against `limits`. `read_timeout`: seconds a mirror may stay silent.

    gdrive and url keep it as `downloads/FS2K.zip` with its record `FS2K.zip.json`; an archive
    found there without a record (placed by hand, or a run stopped before recording) is checked
    and recorded instead of downloaded again. A recorded archive is checked again on every call:
    the limits may have changed since.
    """
    if source == "local":
        return _local_archive(archive, limits)
    if source not in ("gdrive", "url"):
        raise DownloadError(f"unknown archive source {source!r}; use gdrive, url or local")
    if source == "url" and not url:
        raise DownloadError("data.source is 'url' but data.url is empty: set it to an HTTP(S) "
                            "mirror of FS2K.zip")
    downloads.mkdir(parents=True, exist_ok=True)
    dest = downloads / ARCHIVE
    info = known_archive(dest)
    if info is not None:
        return Archive(dest, check_archive(dest, limits=limits), info)
    if dest.is_file():
        origin = f"found in {downloads} (not downloaded by this stage)"
    elif source == "url":
        fetch_http(url, dest, progress=progress, timeout=(HTTP_TIMEOUT_S[0], read_timeout))
        origin = redact(url)  # recorded: no credential of a presigned URL
    else:
        fetch_gdrive(gdrive_id, dest, progress=progress)
        origin = f"gdrive:{gdrive_id}"
    inner = check_archive(dest, limits=limits)
    return Archive(dest, inner, record_archive(dest, origin))


def unpack(archive: Path, inner: str, out: Path) -> None:
    """Extract the archive's FS2K folder `inner` to `out/FS2K`, which must not exist yet.

    Meant for an archive check_archive accepted (which applies the size limits) and a fresh
    folder that replaces the output only once complete (`esgar.io.building_dir`): the member
    checks are repeated here, and no file is written beyond the size the archive declares for it.
    """
    staging = out / ".unpacking"
    try:
        with zipfile.ZipFile(archive) as zf:
            _extract_folder(archive, zf, inner, staging)
        if (out / "FS2K").exists():
            raise DownloadError(f"{out / 'FS2K'}: exists; unpack into a fresh folder")
        os.replace(staging.joinpath(*_parts(inner)), out / "FS2K")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
        raise DownloadError(f"{archive}: unpacking failed ({e})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_folder(archive: Path, zf: zipfile.ZipFile, inner: str, root: Path) -> None:
    """Extract the members under `inner/` of the open archive into `root`."""
    infos = zf.infolist()
    _check_structure(archive, infos)
    members = [info for info in infos if info.filename.startswith(f"{inner}/")]
    if not members:
        raise DownloadError(f"{archive}: no folder {inner}/ to unpack")
    for info in progress_bar(members, desc=f"unpacking {archive.name}", unit="file", leave=False):
        _extract(archive, zf, info, root)


def _extract(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    """Write one checked member under `root`: a folder, or a file of at most its declared size."""
    target = root.joinpath(*_parts(info.filename))
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(info) as src, open(target, "xb") as dst:
        while block := src.read(CHUNK):
            written += len(block)
            # zipfile itself stops at the declared size; this keeps the bound if that changes
            if written > info.file_size:
                raise DownloadError(f"{archive}: member {info.filename} holds more than its "
                                    f"declared {info.file_size:,} bytes; {HINT}")
            dst.write(block)


# ---- choosing the source ----------------------------------------------------------------------

def choose_source(requested: str, url: str, archive: str) -> tuple[str, str]:
    """(source, reason) for `data.source` = `requested`; `auto` probes what can be reached and
    comes back `synthetic` only when nothing can (the reason then says so)."""
    if requested not in SOURCES:
        raise DownloadError(f"data.source is {requested!r}; use one of {', '.join(SOURCES)}")
    if requested != "auto":
        return requested, f"data.source is {requested!r}"
    source, why = auto_source(url, archive)
    if source == "synthetic":
        return source, f"data.source is 'auto' and FS2K could not be reached ({why})"
    return source, f"data.source is 'auto': {why}"


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
            return "url", f"data.url is set and {redact(url)} is reachable"
        return "synthetic", f"the mirror {redact(url)}, {reason}"
    reason = reachable(*gdrive_probe_target())
    if reason is None:
        return "gdrive", "Google Drive is reachable"
    return "synthetic", f"Google Drive, {reason}"


def synthetic_banner(why: str, dataset: str = "FS2K") -> str:
    """The multi-line warning printed when `auto` falls back to synthetic data."""
    line = "!" * 78
    if dataset != "FS2K":
        return (f"{line}\n  {why}:\n"
                f"  this run uses a SYNTHETIC {dataset}: drawn faces in {dataset}'s layout, NOT\n"
                "  the real dataset. Its metrics say nothing about real faces. For the real set\n"
                "  (licensed for research, never downloaded here) set data.source: local and\n"
                "  data.archive: its folder.\n"
                f"{line}")
    return (f"{line}\n"
            f"  FS2K could not be reached ({why});\n"
            "  this run uses SYNTHETIC FS2K: drawn faces in FS2K's layout, NOT the real dataset.\n"
            "  Its metrics say nothing about real sketches. For the real FS2K set data.archive\n"
            "  (a local FS2K.zip) or data.url (a mirror) in params.yaml, or run where Google\n"
            "  Drive is reachable; data.source: synthetic asks for synthetic data explicitly.\n"
            f"{line}")
