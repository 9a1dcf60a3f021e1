"""The download stage against a local HTTP server, a local archive, and no network."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import run
from esgar.data import download as dl
from fs2k_fixtures import make_fs2k, record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fs2k_zip(tmp: Path, wrap: str = "") -> Path:
    src = make_fs2k(tmp / "src" / "FS2K", [record(f"photo1/image{i:04d}") for i in range(1, 9)],
                    [record("photo3/image0001")])
    path = tmp / "FS2K.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(src.rglob("*")):
            zf.write(f, f"{wrap}{f.relative_to(src.parent).as_posix()}")
    # pad with an incompressible member so the archive is big enough to cut in the middle
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{wrap}FS2K/padding.bin", bytes(range(256)) * 4096)
    return path


class Server:
    """Serves one file; modes: 'range' (honours Range), 'norange', 'drop' (cuts the first GET)."""

    def __init__(self, payload: bytes, mode: str = "range"):
        self.payload, self.mode, self.requests = payload, mode, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                data, status = outer.payload, 200
                if rng and outer.mode != "norange":
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    data, status = outer.payload[start:], 206
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if outer.mode == "drop" and len(outer.requests) == 1:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/FS2K.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(tmp_path):
    return fs2k_zip(tmp_path)


@pytest.fixture
def server(archive):
    servers = []

    def start(mode="range"):
        servers.append(Server(archive.read_bytes(), mode))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fresh_download_records_checksum(tmp_path, archive, server):
    srv = server()
    dest, info = dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert sha(dest) == sha(archive) == info["sha256"]
    recorded = json.loads((tmp_path / "dl/FS2K.zip.json").read_text())
    assert recorded["size"] == archive.stat().st_size and recorded["origin"] == srv.url
    again, _ = dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert again == dest and len(srv.requests) == 1  # reused, not downloaded twice


def test_resume_from_partial(tmp_path, archive, server):
    srv = server("range")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/FS2K.zip.part").write_bytes(archive.read_bytes()[:1000])
    dest, _ = dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert srv.requests == ["bytes=1000-"]
    assert sha(dest) == sha(archive)


def test_server_ignoring_range_restarts_cleanly(tmp_path, archive, server):
    srv = server("norange")
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/FS2K.zip.part").write_bytes(b"garbage that is not the start of the file")
    dest, _ = dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert sha(dest) == sha(archive)


def test_broken_download_keeps_part_and_resumes(tmp_path, archive, server):
    srv = server("drop")
    with pytest.raises(dl.DownloadError, match="next run resumes it"):
        dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert not (tmp_path / "dl/FS2K.zip").exists()
    assert 0 < (tmp_path / "dl/FS2K.zip.part").stat().st_size < archive.stat().st_size
    dest, _ = dl.obtain_archive("url", tmp_path / "dl", url=srv.url, progress=False)
    assert srv.requests[-1].startswith("bytes=")
    assert sha(dest) == sha(archive)


def test_local_archive_used_in_place(tmp_path, archive):
    before = sha(archive)
    path, info = dl.obtain_archive("local", tmp_path / "dl", archive=str(archive), progress=False)
    assert path == archive and info["sha256"] == before == sha(archive)
    dl.unpack(path, dl.check_archive(path), tmp_path / "out")
    assert (tmp_path / "out/FS2K/anno_train.json").is_file()


def test_wrapped_archive_is_accepted(tmp_path):
    path = fs2k_zip(tmp_path, wrap="release/")
    assert dl.check_archive(path) == "release/FS2K"
    dl.unpack(path, "release/FS2K", tmp_path / "out")
    assert (tmp_path / "out/FS2K/photo/photo1/image0001.jpg").is_file()


def test_corrupt_and_foreign_archives(tmp_path, archive):
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(archive.read_bytes()[:-500])
    with pytest.raises(dl.DownloadError, match="cut.zip: not a readable zip.*delete it"):
        dl.check_archive(truncated)
    crc = tmp_path / "crc.zip"
    data = bytearray(archive.read_bytes())
    at = data.find(bytes(range(256)))
    data[at + 10] ^= 0xFF
    crc.write_bytes(bytes(data))
    with pytest.raises(dl.DownloadError, match="crc.zip: member FS2K/padding.bin is corrupt"):
        dl.check_archive(crc)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("photos/a.jpg", b"x")
    with pytest.raises(dl.DownloadError, match="other.zip: not an FS2K archive.*photos"):
        dl.check_archive(other)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.txt", b"x")
    with pytest.raises(dl.DownloadError, match="unsafe member path"):
        dl.check_archive(evil)


def test_failed_unpack_keeps_previous_data(tmp_path, archive):
    out = tmp_path / "out"
    dl.unpack(archive, "FS2K", out)
    before = sorted(p.name for p in (out / "FS2K").iterdir())
    with pytest.raises(FileNotFoundError):
        dl.unpack(archive, "NOPE", out)  # nothing extracted: nothing may replace FS2K
    assert sorted(p.name for p in (out / "FS2K").iterdir()) == before


def test_offline_gdrive_fails_fast_naming_alternatives(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "GDRIVE_HOST", ("127.0.0.1", free_port()))
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.obtain_archive("gdrive", tmp_path / "dl", gdrive_id="abc", progress=False)
    assert time.monotonic() - start < 10
    for alternative in ("data.archive", "data.url", "data.source: synthetic"):
        assert alternative in str(err.value)


def write_params(repo: Path, **data) -> None:
    params = {"data": {"source": "auto", "gdrive_id": "x", "url": "", "archive": "",
                       "downloads": "data/downloads", "out": "data/fs2k",
                       "synthetic": {"pairs": 24, "seed": 0, "noise": {},
                                     "label_orders": ["bisenet"]}, **data}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def test_stage_url_and_local(tmp_path, archive, server):
    srv = server()
    write_params(tmp_path, source="url", url=srv.url)
    run(["python", "-m", "pipeline.download"], tmp_path)
    src = json.loads((tmp_path / "data/fs2k/source.json").read_text())
    assert src["dataset"] == "fs2k" and src["archive"]["sha256"] == sha(archive)
    assert (tmp_path / "data/fs2k/FS2K/anno_test.json").is_file()
    write_params(tmp_path, source="local", archive=str(archive))
    run(["python", "-m", "pipeline.download"], tmp_path)
    assert json.loads((tmp_path / "data/fs2k/source.json").read_text())["source"] == "local"


def test_stage_auto_offline_falls_back_loudly(tmp_path, monkeypatch):
    monkeypatch.setenv("ESGAR_GDRIVE_PROBE", f"127.0.0.1:{free_port()}")
    write_params(tmp_path, source="auto")
    proc = run(["python", "-m", "pipeline.download"], tmp_path)
    assert "SYNTHETIC FS2K" in proc.stderr
    src = json.loads((tmp_path / "data/fs2k/source.json").read_text())
    assert src["dataset"] == "synthetic" and "could not be reached" in src["reason"]
    assert (tmp_path / "data/fs2k/parsing/bisenet").is_dir()


def test_stage_gdrive_offline_exits_with_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ESGAR_GDRIVE_PROBE", f"127.0.0.1:{free_port()}")
    write_params(tmp_path, source="gdrive")
    proc = run(["python", "-m", "pipeline.download"], tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "data.source: synthetic" in proc.stderr
    assert not (tmp_path / "data/fs2k").exists()
