"""The download stage against a local HTTP server, local archives and no network."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import stat
import struct
import threading
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import gdown
import pytest
import yaml

from esgar.data import download as dl
from esgar.io import MARKER
from tests.fs2k_fixtures import make_fs2k, record
from tests.helpers import free_port, run

# Far above the test archives' sizes, far below the bomb's.
LIMITS = dl.ArchiveLimits(max_unpacked_bytes=64 * dl.MB, max_compression_ratio=100)
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    """Requests to the local test server must not go through a proxy of the machine."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")



def fs2k_zip(tmp: Path, wrap: str = "", variant: int = 0) -> Path:
    """A small FS2K.zip (tiny images, both JSON files) padded to ~1 MB so it can be cut."""
    src = make_fs2k(tmp / f"src{variant}" / "FS2K",
                    [record(f"photo1/image{i:04d}") for i in range(1, 9)],
                    [record("photo3/image0001")])
    path = tmp / f"FS2K-{variant}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f"{wrap}{f.relative_to(src.parent).as_posix()}")
        # incompressible padding, stored: the archive is big enough to cut in the middle
        padding = bytes(range(256)) * (4096 + variant)
        zf.writestr(zipfile.ZipInfo(f"{wrap}FS2K/padding.bin"), padding, zipfile.ZIP_STORED)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Server:
    """Serves `payload` over HTTP on 127.0.0.1 and records each request's Range and If-Range.

    range: answer Range with 206 (else always 200 with the whole file); if_range: honour
    If-Range; validators: send ETag and Last-Modified; drop_first: cut the first answer halfway;
    status: answer every request with this error status instead.
    """

    def __init__(self, payload: bytes, *, range: bool = True, if_range: bool = True,
                 validators: bool = True, drop_first: bool = False, status: int = 200):
        self.payload, self.requests = payload, []
        self.range, self.if_range, self.validators = range, if_range, validators
        self.drop_first, self.status = drop_first, status
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/FS2K.zip"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.payload).hexdigest()[:16] + '"'

    def _handler(self) -> type:
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                srv.requests.append({k: self.headers.get(k) for k in ("Range", "If-Range")})
                if srv.status != 200:
                    self.send_error(srv.status)
                    return
                data, start, status = srv.payload, 0, 200
                rng, validator = self.headers.get("Range"), self.headers.get("If-Range")
                unchanged = not (srv.if_range and validator) or validator == srv.etag
                if rng and srv.range and unchanged:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                if srv.validators:
                    self.send_header("ETag", srv.etag)
                    self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
                self.end_headers()
                body = data[start:]
                if srv.drop_first and len(srv.requests) == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(tmp_path):
    return fs2k_zip(tmp_path)


@pytest.fixture
def server(archive):
    servers = []

    def start(**kw) -> Server:
        servers.append(Server(archive.read_bytes(), **kw))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def get(srv: Server, downloads: Path) -> dl.Archive:
    return dl.obtain_archive("url", downloads, limits=LIMITS, url=srv.url, progress=False)


def interrupted(srv: Server, downloads: Path) -> int:
    """Run a download that the server cuts; returns the size of the partial file left."""
    with pytest.raises(dl.DownloadError, match="next run resumes it"):
        get(srv, downloads)
    assert not (downloads / "FS2K.zip").exists()
    return (downloads / "FS2K.zip.part").stat().st_size


# ---- HTTP mirror ------------------------------------------------------------------------------

def test_fresh_download_is_recorded_and_reused(tmp_path, archive, server):
    srv = server()
    got = get(srv, tmp_path / "dl")
    assert got.path == tmp_path / "dl/FS2K.zip" and got.inner == "FS2K"
    assert sha(got.path) == sha(archive) == got.info["sha256"]
    recorded = json.loads((tmp_path / "dl/FS2K.zip.json").read_text())
    assert recorded["size"] == archive.stat().st_size and recorded["origin"] == srv.url
    assert recorded["sha256"] == sha(archive) and recorded["recorded_at"]
    assert not list((tmp_path / "dl").glob("*.part*"))
    again = get(srv, tmp_path / "dl")
    assert again.path == got.path and len(srv.requests) == 1  # reused, not downloaded twice


@pytest.mark.bad_input(stage="download", kind="service")
def test_truncated_download_leaves_no_archive_then_resumes(tmp_path, archive, server):
    srv = server(drop_first=True)
    have = interrupted(srv, tmp_path / "dl")
    assert 0 < have < archive.stat().st_size
    got = get(srv, tmp_path / "dl")
    assert srv.requests[-1] == {"Range": f"bytes={have}-", "If-Range": srv.etag}
    assert sha(got.path) == sha(archive)


def test_server_ignoring_range_restarts_cleanly(tmp_path, archive, server):
    srv = server(range=False, drop_first=True)
    interrupted(srv, tmp_path / "dl")
    got = get(srv, tmp_path / "dl")
    assert srv.requests[-1]["Range"]  # asked to resume, got the whole file: written from zero
    assert sha(got.path) == sha(archive)


def test_changed_file_on_server_restarts(tmp_path, server):
    srv = server(drop_first=True)
    interrupted(srv, tmp_path / "dl")
    newer = fs2k_zip(tmp_path, variant=1)
    srv.payload = newer.read_bytes()  # new ETag: If-Range makes the server send it whole
    got = get(srv, tmp_path / "dl")
    assert srv.requests[-1]["If-Range"] != srv.etag
    assert sha(got.path) == sha(newer)


def test_changed_size_without_validators_restarts(tmp_path, server):
    srv = server(drop_first=True, validators=False, if_range=False)
    interrupted(srv, tmp_path / "dl")
    newer = fs2k_zip(tmp_path, variant=3)
    srv.payload = newer.read_bytes()  # the 206 announces another total size: start over
    got = get(srv, tmp_path / "dl")
    assert srv.requests[-2]["Range"] and srv.requests[-1]["Range"] is None
    assert sha(got.path) == sha(newer)


def test_partial_file_of_unknown_origin_is_not_continued(tmp_path, archive, server):
    srv = server()
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/FS2K.zip.part").write_bytes(b"bytes of who knows what")
    got = get(srv, tmp_path / "dl")
    assert srv.requests == [{"Range": None, "If-Range": None}]
    assert sha(got.path) == sha(archive)


def test_complete_partial_file_is_finished_without_data(tmp_path, archive, server):
    srv = server()
    dl_dir = tmp_path / "dl"
    dl_dir.mkdir()
    (dl_dir / "FS2K.zip.part").write_bytes(archive.read_bytes())
    (dl_dir / "FS2K.zip.part.json").write_text(json.dumps(
        {"url": srv.url, "etag": srv.etag, "last_modified": None,
         "total": archive.stat().st_size}))
    got = get(srv, dl_dir)  # the server answers 416: nothing left to send
    assert sha(got.path) == sha(archive) and len(srv.requests) == 1


def test_http_error_status_is_reported(tmp_path, server):
    srv = server(status=404)
    with pytest.raises(dl.DownloadError, match="(?s)404.*data.archive"):
        get(srv, tmp_path / "dl")


# ---- Google Drive (gdown replaced; the probe goes to a local port) -----------------------------

def test_gdrive_download_through_gdown(tmp_path, archive, server, monkeypatch):
    srv = server()  # only as an open port for the reachability probe
    monkeypatch.setenv(dl.PROBE_ENV, srv.url.split("/")[2])
    calls = []

    def fake_download(**kw):
        calls.append(kw)
        Path(kw["output"]).write_bytes(archive.read_bytes())
        return kw["output"]
    monkeypatch.setattr(gdown, "download", fake_download)
    got = dl.obtain_archive("gdrive", tmp_path / "dl", limits=LIMITS, gdrive_id="abc",
                            progress=False)
    assert calls[0]["id"] == "abc" and calls[0]["resume"] is True
    assert got.info["origin"] == "gdrive:abc" and got.info["sha256"] == sha(archive)


def test_gdrive_refusal_names_alternatives(tmp_path, server, monkeypatch):
    srv = server()
    monkeypatch.setenv(dl.PROBE_ENV, srv.url.split("/")[2])

    def refuse(**kw):
        raise gdown.exceptions.FileURLRetrievalError("Too many users have viewed or downloaded")
    monkeypatch.setattr(gdown, "download", refuse)
    with pytest.raises(dl.DownloadError, match="(?s)quota.*data.source: synthetic"):
        dl.obtain_archive("gdrive", tmp_path / "dl", limits=LIMITS, gdrive_id="abc",
                          progress=False)


@pytest.mark.bad_input(stage="download", kind="service")
@pytest.mark.parametrize("source", ["gdrive", "url"])
def test_offline_fails_fast_naming_alternatives(tmp_path, monkeypatch, source):
    port = free_port()
    monkeypatch.setenv(dl.PROBE_ENV, f"127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.obtain_archive(source, tmp_path / "dl", limits=LIMITS, gdrive_id="abc",
                          url=f"http://127.0.0.1:{port}/FS2K.zip", progress=False)
    assert time.monotonic() - start < 10
    for alternative in ("data.archive", "data.url", "data.source: synthetic"):
        assert alternative in str(err.value)


def test_probe_bounds_a_hanging_dns_lookup(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(3))
    start = time.monotonic()
    reason = dl.reachable("fs2k.invalid", 443, timeout=0.3)
    assert time.monotonic() - start < 2 and "DNS lookup" in reason


def test_probe_goes_to_the_proxy_when_one_applies(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("NO_PROXY", "")
    assert dl.probe_target(dl.GDRIVE_URL) == ("127.0.0.1", 3128)
    monkeypatch.setenv("no_proxy", "drive.google.com")
    assert dl.probe_target(dl.GDRIVE_URL) == ("drive.google.com", 443)


# ---- local archives and checks ----------------------------------------------------------------

def test_local_archive_used_in_place(tmp_path, archive):
    before, mtime = sha(archive), archive.stat().st_mtime_ns
    got = dl.obtain_archive("local", tmp_path / "dl", limits=LIMITS, archive=str(archive),
                            progress=False)
    assert got.path == archive and got.info["sha256"] == before
    assert sha(archive) == before and archive.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in archive.parent.iterdir() if p.is_file()) == [archive.name]
    assert not (tmp_path / "dl").exists()
    dl.unpack(got.path, got.inner, tmp_path / "out")
    assert (tmp_path / "out/FS2K/anno_train.json").is_file()


def test_one_wrapping_folder_is_accepted_two_are_not(tmp_path):
    path = fs2k_zip(tmp_path, wrap="release/")
    assert dl.check_archive(path, limits=LIMITS) == "release/FS2K"
    dl.unpack(path, "release/FS2K", tmp_path / "out")
    assert (tmp_path / "out/FS2K/photo/photo1/image0001.jpg").is_file()
    deeper = fs2k_zip(tmp_path, wrap="a/b/", variant=2)
    with pytest.raises(dl.DownloadError, match="not an FS2K archive.*found a$"):
        dl.check_archive(deeper, limits=LIMITS)


@pytest.mark.bad_input(stage="download", kind="archive")
def test_corrupt_archives_name_the_file(tmp_path, archive):
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(archive.read_bytes()[:-500])
    with pytest.raises(dl.DownloadError, match="cut.zip: not a readable zip.*delete it"):
        dl.check_archive(truncated, limits=LIMITS)
    crc = tmp_path / "crc.zip"
    data = bytearray(archive.read_bytes())
    data[data.find(bytes(range(256))) + 10] ^= 0xFF
    crc.write_bytes(bytes(data))
    with pytest.raises(dl.DownloadError, match="crc.zip: member FS2K/padding.bin is corrupt"):
        dl.check_archive(crc, limits=LIMITS)


@pytest.mark.bad_input(stage="download", kind="archive")
def test_wrong_layout_names_what_is_missing(tmp_path):
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("photos/a.jpg", b"x")
    with pytest.raises(dl.DownloadError, match="other.zip: not an FS2K archive.*found photos"):
        dl.check_archive(other, limits=LIMITS)
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(partial, "w") as zf:
        zf.writestr("FS2K/photo/photo1/image0001.jpg", b"x")
        zf.writestr("FS2K/anno_train.json", b"[]")
    with pytest.raises(dl.DownloadError, match="FS2K/ lacks sketch/, anno_test.json$"):
        dl.check_archive(partial, limits=LIMITS)


@pytest.mark.bad_input(stage="download", kind="archive")
@pytest.mark.parametrize("member", ["../escape.txt", "FS2K/../../escape.txt", "/etc/escape"])
def test_unsafe_member_paths_are_rejected(tmp_path, member):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("FS2K/anno_train.json", b"[]")
        zf.writestr(zipfile.ZipInfo(member), b"x")
    with pytest.raises(dl.DownloadError, match="unsafe member path"):
        dl.check_archive(evil, limits=LIMITS)


@pytest.mark.bad_input(stage="download", kind="service")
def test_changed_recorded_archive_is_refused(tmp_path, archive, server):
    srv = server()
    got = get(srv, tmp_path / "dl")
    data = bytearray(got.path.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    got.path.write_bytes(bytes(data))
    with pytest.raises(dl.DownloadError, match="changed since FS2K.zip.json recorded it"):
        get(srv, tmp_path / "dl")


def test_archive_placed_by_hand_is_checked_and_recorded(tmp_path, archive):
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/FS2K.zip").write_bytes(archive.read_bytes())
    got = dl.obtain_archive("url", tmp_path / "dl", limits=LIMITS,
                            url="http://127.0.0.1:9/FS2K.zip",
                            progress=False)  # nothing listens there: must not be needed
    assert "not downloaded by this stage" in got.info["origin"]
    assert (tmp_path / "dl/FS2K.zip.json").is_file()


def test_failed_unpack_keeps_previous_data(tmp_path, archive):
    out = tmp_path / "out"
    dl.unpack(archive, "FS2K", out)
    before = sorted(p.name for p in (out / "FS2K").iterdir())
    with pytest.raises(dl.DownloadError, match="no folder NOPE/"):
        dl.unpack(archive, "NOPE", out)
    assert sorted(p.name for p in (out / "FS2K").iterdir()) == before
    assert sorted(p.name for p in out.iterdir()) == ["FS2K"]


# ---- hostile archives -------------------------------------------------------------------------

BASE = {"FS2K/photo/photo1/image0001.jpg": b"jpg", "FS2K/sketch/sketch1/image0001.jpg": b"jpg",
        "FS2K/anno_train.json": b"[]", "FS2K/anno_test.json": b"[]"}
BOMB = "FS2K/photo/photo1/bomb.jpg"
BOMB_MB = 200


def fs2k_with(path: Path, *extra: tuple[str | zipfile.ZipInfo, bytes]) -> Path:
    """A minimal FS2K-layout zip at `path`, deflated, followed by the `extra` (name, data)."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name" warning
        for name, data in (*BASE.items(), *extra):
            zf.writestr(name, data)
    return path


def special(name: str, kind: int) -> zipfile.ZipInfo:
    """A member recorded by a Unix archiver with file type `kind` (stat.S_IFLNK...)."""
    info = zipfile.ZipInfo(name)
    info.create_system, info.external_attr = 3, (kind | 0o777) << 16
    return info


def patch_member(path: Path, name: str, **fields: int) -> None:
    """Rewrite `fields` (flags, crc, file_size) of member `name` in both of its headers."""
    offsets = {"flags": (8, 6, "<H"), "crc": (16, 14, "<I"), "file_size": (24, 22, "<I")}
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        central, local = zf.start_dir, zf.getinfo(name).header_offset
    while data[central + 46:central + 46 + len(name)] != name.encode():
        central = data.index(b"PK\x01\x02", central + 1)  # the next central directory entry
    for field, value in fields.items():
        in_central, in_local, fmt = offsets[field]
        struct.pack_into(fmt, data, central + in_central, value)
        struct.pack_into(fmt, data, local + in_local, value)
    path.write_bytes(bytes(data))


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its content (None for a folder)."""
    return {p.relative_to(folder).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def unpacked(tmp_path, archive) -> Path:
    """A folder holding a previous run's unpacked FS2K/, which refusals must leave as it is."""
    out = tmp_path / "out"
    dl.unpack(archive, "FS2K", out)
    return out


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """An FS2K-layout zip with one member of 200 MB of zeros (about 200 KB), written in chunks."""
    path = fs2k_with(tmp_path_factory.mktemp("bomb") / "bomb.zip")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf, zf.open(BOMB, "w") as f:
        for _ in range(BOMB_MB):
            f.write(bytes(dl.MB))
    return path


def refused(unpacked: Path, pattern: str, archive: Path, limits: dl.ArchiveLimits = LIMITS,
            ) -> str:
    """Obtain `archive` as a local one: it must be refused with a one-line message matching
    `pattern`, the previous output in `unpacked` untouched. Returns the message."""
    before = tree(unpacked)
    with pytest.raises(dl.DownloadError, match=pattern) as err:
        got = dl.obtain_archive("local", unpacked.parent / "dl", limits=limits,
                                archive=str(archive), progress=False)
        dl.unpack(got.path, got.inner, unpacked)
    assert "\n" not in str(err.value)
    assert tree(unpacked) == before
    return str(err.value)


@pytest.mark.bad_input(stage="download", kind="archive")
def test_zip_bomb_is_refused_by_its_total_size(unpacked, bomb):
    limits = dl.ArchiveLimits(max_unpacked_bytes=100 * dl.MB, max_compression_ratio=10_000)
    refused(unpacked, r"bomb.zip: unpacks to 200.0 MB, over the limit of 100.0 MB; if you trust "
            r"this archive, raise data.max_unpacked_mb in params.yaml$", bomb, limits)


@pytest.mark.bad_input(stage="download", kind="archive")
def test_zip_bomb_is_refused_by_its_compression_ratio(unpacked, bomb):
    limits = dl.ArchiveLimits(max_unpacked_bytes=1024 * dl.MB, max_compression_ratio=100)
    message = refused(unpacked, rf"bomb.zip: member {BOMB} expands \d+-fold \(200.0 MB from "
                      r"[\d,]+ bytes\), over the limit of 100-fold; if you trust this archive, "
                      r"raise data.max_compression_ratio in params.yaml$", bomb, limits)
    assert int(message.split("expands ")[1].split("-fold")[0]) > 500


def test_sizes_are_judged_before_anything_is_decompressed(tmp_path, bomb):
    corrupt = tmp_path / "corrupt-bomb.zip"
    data = bytearray(bomb.read_bytes())
    with zipfile.ZipFile(bomb) as zf:
        info = zf.getinfo(BOMB)
    data[info.header_offset + info.compress_size // 2] ^= 0xFF  # inside the bomb's data
    corrupt.write_bytes(bytes(data))
    roomy = dl.ArchiveLimits(max_unpacked_bytes=1024 * dl.MB, max_compression_ratio=10_000)
    with pytest.raises(dl.DownloadError, match="corrupt-bomb.zip: (member .* is corrupt|not a "
                       "readable zip)"):
        dl.check_archive(corrupt, limits=roomy)  # decompressing it finds the damage...
    with pytest.raises(dl.DownloadError, match="unpacks to 200.0 MB"):
        dl.check_archive(corrupt, limits=LIMITS)  # ...which the size check never gets to see


def test_limits_are_inclusive_and_accept_the_test_archive(archive):
    with zipfile.ZipFile(archive) as zf:
        total = sum(info.file_size for info in zf.infolist())
    exact = dl.ArchiveLimits(max_unpacked_bytes=total, max_compression_ratio=1)
    assert dl.check_archive(archive, limits=exact) == "FS2K"  # stored padding: ratio exactly 1
    with pytest.raises(dl.DownloadError, match=f"over the limit of {(total - 1) / dl.MB:.1f} MB"):
        dl.check_archive(archive, limits=dl.ArchiveLimits(total - 1, 1))


def test_small_members_may_compress_at_any_ratio(tmp_path):
    small = fs2k_with(tmp_path / "small.zip", ("FS2K/extra.json", bytes(dl.RATIO_EXEMPT_BYTES)))
    limits = dl.ArchiveLimits(max_unpacked_bytes=64 * dl.MB, max_compression_ratio=2)
    assert dl.check_archive(small, limits=limits) == "FS2K"
    big = fs2k_with(tmp_path / "big.zip", ("FS2K/extra.json", bytes(dl.RATIO_EXEMPT_BYTES + 1)))
    with pytest.raises(dl.DownloadError, match="member FS2K/extra.json expands"):
        dl.check_archive(big, limits=limits)


@pytest.mark.bad_input(stage="download", kind="archive")
@pytest.mark.parametrize(("members", "message"), [
    ([(special("FS2K/link", stat.S_IFLNK), b"/etc"), ("FS2K/link/x", b"x")],
     "member 'FS2K/link' is a symbolic link"),
    ([(special("FS2K/photo/fifo", stat.S_IFIFO), b"")],
     r"member 'FS2K/photo/fifo' is a special file \(mode 10777\)"),
    ([("FS2K/a", b"file"), ("FS2K/a/b", b"x")], "member 'FS2K/a/b' lies inside 'FS2K/a', "),
    ([("FS2K/a/b", b"x"), ("FS2K/a", b"file")], "member 'FS2K/a/b' lies inside 'FS2K/a', "),
    ([("FS2K/anno_train.json", b"[1]")], "member 'FS2K/anno_train.json' appears twice"),
    ([("FS2K/photo/photo1/IMAGE0001.jpg", b"x")], ("member 'FS2K/photo/photo1/IMAGE0001.jpg' "
     "and 'FS2K/photo/photo1/image0001.jpg' unpack to the same path")),
    ([("FS2K/photo/./photo1/image0001.jpg", b"x")], ("member 'FS2K/photo/./photo1/image0001.jpg'"
     " and 'FS2K/photo/photo1/image0001.jpg' unpack to the same path")),
    ([("FS2K/anno_test.json/", b"")], "member 'FS2K/anno_test.json/' and 'FS2K/anno_test.json'"),
], ids=["symlink", "fifo", "through-file", "file-after", "duplicate", "case", "dot", "dir-file"])
def test_members_that_cannot_be_unpacked_safely_are_refused(tmp_path, unpacked, members,
                                                            message):
    evil = fs2k_with(tmp_path / "evil.zip", *members)
    refused(unpacked, f"evil.zip: {message}.*refusing to unpack it", evil)
    before = tree(unpacked)
    with pytest.raises(dl.DownloadError, match=message):
        dl.unpack(evil, "FS2K", unpacked)  # unpack checks the members again on its own
    assert tree(unpacked) == before


@pytest.mark.bad_input(stage="download", kind="archive")
def test_encrypted_member_is_refused(tmp_path, unpacked):
    evil = fs2k_with(tmp_path / "evil.zip")
    patch_member(evil, "FS2K/anno_test.json", flags=0x1)
    refused(unpacked, "evil.zip: member 'FS2K/anno_test.json' is encrypted", evil)


@pytest.mark.bad_input(stage="download", kind="archive")
def test_understated_size_with_its_crc_fails_the_check(tmp_path, unpacked):
    liar = fs2k_with(tmp_path / "liar.zip", (BOMB, bytes(8 * dl.MB)))
    patch_member(liar, BOMB, file_size=1000)  # CRC still that of all 8 MB
    refused(unpacked, f"liar.zip: member {BOMB} is corrupt", liar)
    before = tree(unpacked)
    with pytest.raises(dl.DownloadError, match=f"unpacking failed .*CRC.*{BOMB}"):
        dl.unpack(liar, "FS2K", unpacked)  # even without the check
    assert tree(unpacked) == before


@pytest.mark.bad_input(stage="download", kind="archive")
def test_understated_size_never_unpacks_beyond_it(tmp_path):
    liar = fs2k_with(tmp_path / "liar.zip", (BOMB, bytes(8 * dl.MB)))
    # the CRC of what the header declares: zipfile stops there and finds the data sound
    patch_member(liar, BOMB, file_size=1000, crc=zlib.crc32(bytes(1000)))
    assert dl.check_archive(liar, limits=LIMITS) == "FS2K"
    dl.unpack(liar, "FS2K", tmp_path / "out")
    assert (tmp_path / "out" / BOMB).stat().st_size == 1000


# ---- the stage script -------------------------------------------------------------------------

def write_params(path: Path, **data) -> None:
    params = {"data": {"dataset": "fs2k", "source": "auto", "gdrive_id": "x", "url": "",
                       "archive": "",
                       "downloads": "data/downloads", "out": "data/fs2k",
                       "max_unpacked_mb": 64, "max_compression_ratio": 100, "read_timeout_s": 60,
                       "synthetic": {"pairs": 24, "seed": 0, "noise": {},
                                     "label_orders": ["bisenet"]}, **data}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params))


def source_json(repo: Path) -> dict:
    return json.loads((repo / "data/fs2k/source.json").read_text())


def test_stage_url_then_local(tmp_path, archive, server):
    srv = server()
    write_params(tmp_path / "params.yaml", source="url", url=srv.url)
    run(["python", "-m", "pipeline.download"], tmp_path)
    src = source_json(tmp_path)
    assert src["dataset"] == "fs2k" and src["source"] == "url" and src["synthetic"] is None
    assert src["archive"]["sha256"] == sha(archive) and src["archive"]["origin"] == srv.url
    assert src["archive"]["size"] == archive.stat().st_size
    listing = sorted(p.name for p in (tmp_path / "data/fs2k").iterdir())
    assert listing == [MARKER, "FS2K", "source.json"]
    assert (tmp_path / "data/fs2k/FS2K/anno_test.json").is_file()

    write_params(tmp_path / "conf/other.yaml", source="local", archive=str(archive))
    run(["python", "-m", "pipeline.download", "--params", "conf/other.yaml"], tmp_path)
    src = source_json(tmp_path)
    assert src["source"] == "local" and "used in place" in src["reason"]
    assert src["archive"]["origin"] == str(archive.resolve())
    assert not list((tmp_path / "data").glob(".fs2k*"))


@pytest.mark.bad_input(stage="download", kind="service")
def test_stage_failure_keeps_previous_output(tmp_path, archive, server):
    write_params(tmp_path / "params.yaml", source="local", archive=str(archive))
    run(["python", "-m", "pipeline.download"], tmp_path)
    before = source_json(tmp_path)
    srv = server(status=404)
    write_params(tmp_path / "params.yaml", source="url", url=srv.url)
    proc = run(["python", "-m", "pipeline.download"], tmp_path, check=False)
    assert proc.returncode == 1 and "404" in proc.stderr and "Traceback" not in proc.stderr
    assert source_json(tmp_path) == before


def test_stage_auto_offline_falls_back_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv(dl.PROBE_ENV, f"127.0.0.1:{free_port()}")
    write_params(tmp_path / "params.yaml", source="auto")
    proc = run(["python", "-m", "pipeline.download"], tmp_path)
    assert "FS2K could not be reached" in proc.stderr
    assert "this run uses SYNTHETIC FS2K" in proc.stderr
    src = source_json(tmp_path)
    assert src["dataset"] == "synthetic" and src["source"] == "synthetic"
    assert "could not be reached" in src["reason"] and src["archive"] is None
    assert src["synthetic"]["pairs"] == 24
    assert (tmp_path / "data/fs2k/FS2K/anno_train.json").is_file()
    assert (tmp_path / "data/fs2k/parsing/bisenet").is_dir()


@pytest.mark.bad_input(stage="download", kind="service")
def test_stage_gdrive_offline_exits_with_message(tmp_path, monkeypatch):
    monkeypatch.setenv(dl.PROBE_ENV, f"127.0.0.1:{free_port()}")
    write_params(tmp_path / "params.yaml", source="gdrive")
    start = time.monotonic()
    proc = run(["python", "-m", "pipeline.download"], tmp_path, check=False)
    assert time.monotonic() - start < 10
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    for alternative in ("data.archive", "data.url", "data.source: synthetic"):
        assert alternative in proc.stderr
    assert not (tmp_path / "data/fs2k").exists()
