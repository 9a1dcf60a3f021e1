"""Is a host reachable? Asked before any download, with a bound on DNS and on the connection,
so an offline machine or a silent host fails in seconds instead of waiting on HTTP timeouts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import requests

__all__ = ["PROBE_TIMEOUT_S", "probe_target", "reachable", "socket_timeout"]

PROBE_TIMEOUT_S = 4.0


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


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation of code that sets no timeout of its own (urllib downloads
    in third-party libraries) to `seconds`, for the duration of the block."""
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)
