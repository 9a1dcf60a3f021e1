"""Talking to other machines safely: is a host reachable (asked before any download, with a
bound on DNS and on the connection, so an offline machine or a silent host fails in seconds
instead of waiting on HTTP timeouts); `bounded`, the one deadline helper (a whole call within
a wall-clock time, not only each socket read: a server that sends a byte every few seconds
never trips a read timeout); `redact`, the one URL redactor (no password or token in a message
or a log)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import requests

__all__ = ["PROBE_TIMEOUT_S", "bounded", "probe_target", "reachable", "redact", "redact_text",
           "socket_timeout"]

T = TypeVar("T")

PROBE_TIMEOUT_S = 4.0


def bounded(call: Callable[[], T], timeout: float, what: str) -> T:
    """`call()`'s result, or TimeoutError("<what> took over <timeout> s"), for calls that take
    no timeout of their own. A daemon thread, not an executor: a call that never returns (a
    hung resolver or network file system) must not block the process's exit."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=target, name=f"esgar-bounded {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} took over {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    # getaddrinfo ignores socket timeouts: a broken resolver can block for tens of seconds.
    return bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout,
                   f"DNS lookup of {host}")


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


# Query parameters that carry credentials (lower case): presigned URLs, tokens, keys.
SECRET_PARAMS = ("token", "access_token", "api_key", "apikey", "key", "password", "secret",
                 "signature", "sig", "x-amz-signature", "x-amz-credential",
                 "x-amz-security-token", "auth")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def redact(url: str) -> str:
    """`url` with any `user:password@` and the values of credential query parameters
    (`SECRET_PARAMS`) replaced by `***`; anything that is no URL comes back as it was."""
    try:
        parts = urlparse(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in pairs],
                              safe="*")
    return urlunparse(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """`text` with every URL in it `redact`ed (an error message that quotes a URL)."""
    return _URL.sub(lambda m: redact(m.group(0)), text)
