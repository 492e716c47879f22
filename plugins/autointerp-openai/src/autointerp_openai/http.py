"""A lean HTTP/1.1 client for one JSON API origin: POST a body, get the status, headers and body.

Why not the SDK: against a fast server, the SDK's request transforms, response models and
connection pool cost ~2 ms of CPU per call, which caps a client process at a few hundred calls a
second; this costs ~0.1 ms. What it does: keep-alive connections to one origin (no cap of its
own: the scheduler's concurrency limit bounds them), TLS, content-length and chunked bodies, a
timeout for connecting and one for sending the request and reading its whole answer. What it
does not: proxies (the backend uses the SDK when one applies), redirects, compression, HTTP/2.
It never sends a request twice.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

#: idle connections older than this are closed, not reused: servers drop idle keep-alive
#: connections after a few seconds (uvicorn, so vLLM: 5 s), and a request sent on one is lost
KEEPALIVE_S = 4.0
#: longest status line + headers accepted
MAX_HEAD = 64 * 1024


class HTTPTimeout(Exception):
    """No progress within the timeout; ``where``: "connect", "write" or "read"."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


class HTTPConnectionError(Exception):
    """The connection failed, or the server broke the protocol (closed mid-answer ...)."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  #: lower-case names; a repeated header keeps its last value
    body: bytes


def proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY`` ...) sets for
    ``url``, as the SDK would use it; None when the connection is direct."""
    parts = urlsplit(url)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or proxy_bypass(parts.hostname or ""):
        return None
    return proxy


def ssl_context() -> ssl.SSLContext:
    """Verify servers against ``$SSL_CERT_FILE``/``$SSL_CERT_DIR`` when set, else certifi's
    bundle where installed (what the SDK trusts), else the system's."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class Origin:
    """Keep-alive connections to one ``scheme://host:port``, for one event loop."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        """``headers`` go with every request (``Host`` and ``Content-Length`` are added)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.ssl else 80)
        netloc = self.host if ":" not in self.host else f"[{self.host}]"
        host = netloc if default_port else f"{netloc}:{self.port}"
        lines = [f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
        self._head = "".join(f"{line}\r\n" for line in lines).encode("latin-1")
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = deque()

    def __repr__(self) -> str:  # never the headers: they hold the key
        return f"Origin({self.host!r}, {self.port})"

    async def post(self, path: str, body: bytes, *, timeout: float) -> Reply:
        """POST ``body`` to ``path`` (below the URL's own path) and read the whole answer."""
        reader, writer = await self._connection(timeout)
        reusable = False
        try:
            writer.write(
                b"POST %s%s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
                % (self.prefix.encode(), path.encode(), self._head, len(body))
                + body
            )
            phase = "write"
            try:
                async with asyncio.timeout(timeout):  # for the whole answer, not each read
                    await writer.drain()
                    phase = "read"
                    reply, reusable = await _read_reply(reader)
            except TimeoutError:
                raise HTTPTimeout(phase) from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise HTTPConnectionError(_describe(exc)) from None
        finally:
            if reusable:
                self._idle.append((reader, writer, time.monotonic()))
            else:  # cancelled, failed or told to close: its state is unknown
                writer.close()
        return reply

    async def _connection(
        self, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = time.monotonic()
        while self._idle:
            reader, writer, since = self._idle.pop()  # the most recent: the least likely stale
            if now - since < KEEPALIVE_S and not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, limit=MAX_HEAD
                )
        except TimeoutError:
            raise HTTPTimeout("connect") from None
        except OSError as exc:
            raise HTTPConnectionError(_describe(exc)) from None

    async def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _read_reply(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    """The next answer on ``reader``, and whether the connection may carry another request."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise HTTPConnectionError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        status = int(code)
        if status >= 200:
            break
        # 100 Continue and other interim answers: the real one follows
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif (length := headers.get("content-length")) is not None:
        if not length.isdigit():
            raise HTTPConnectionError(f"bad Content-Length {length[:20]!r}")
        body = await reader.readexactly(int(length))
    else:  # the body runs to the end of the connection
        body = await reader.read()
        keep = False
    return Reply(status, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HTTPConnectionError(f"bad chunk size {size_line[:20]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise HTTPConnectionError("chunk not followed by CRLF")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "server closed the connection before the answer was complete"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "answer headers too long"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
