"""A lean HTTP/1.1 client over asyncio streams for the till's calls to the cloud.

The till's exchanges are all alike: a ``POST`` with a small JSON body (or none) to the cloud's
device API on plain HTTP, answered with JSON. A general client builds a request object, runs it
through auth, redirect and cookie layers and a connection pool per call, which cost the till more
CPU than the whole exchange on the server. This client writes the request in one piece on a kept
connection and reads the answer by ``Content-Length`` (or chunks); nothing else.

It keeps idle connections for reuse, opens another one when every connection is busy (the poll
loop's long poll and the outbox loop run at the same time), and, since every call of the till API
is idempotent, repeats a request once on a fresh connection when a kept one turns out to be closed
by the server before any answer came. ``https`` servers and tests with a mock transport use httpx
(:class:`~kkt_emulator.till.cloud_link.CloudLink` chooses).

Foreign errors (``OSError``, a timeout, a garbled answer) become :class:`LeanHttpError` here, and
:class:`~kkt_emulator.errors.TransportError` in ``CloudLink``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["LeanHttp", "LeanHttpError", "LeanResponse"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 64 * 1024 * 1024


class LeanHttpError(Exception):
    """No usable answer: the connection failed, timed out, or the answer was not HTTP/1.1."""


@dataclass(frozen=True, slots=True)
class LeanResponse:
    """An answer: status, headers (lower-case names) and the body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON.

        Raises:
            ValueError: the body is not JSON.
        """
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            raise ValueError(str(exc)) from exc

    @property
    def text(self) -> str:
        """The body as text (UTF-8, bad bytes replaced)."""
        return self.content.decode("utf-8", "replace")


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False
        """Whether it carried an exchange before (a kept connection the server may have closed)."""
        self.kept = 0
        """How many times it was put back to be kept (its idle timer checks it is the same time)."""

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):  # noqa: N818 - an internal signal, caught in LeanHttp.post
    """A kept connection was closed by the server before it answered anything."""


class LeanHttp:
    """HTTP/1.1 ``POST`` to one plain-HTTP server, with kept connections.

    Args:
        base_url: ``http://host:port`` (a path prefix is kept).
        user_agent: sent with every request.
        idle_close: seconds after which a kept connection no request used is closed (``None``:
            kept until the server closes it); an idle till of a fleet holds no socket (D71).

    Raises:
        ValueError: ``base_url`` is not a plain ``http`` URL.
    """

    def __init__(
        self,
        base_url: str,
        user_agent: str = "kkt-emulator-till",
        *,
        idle_close: float | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain http URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if parts.port is None else f"{host}:{parts.port}"
        self._fixed = f"Host: {netloc}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n"
        self._idle: list[_Connection] = []
        self._closed = False
        self.idle_close = idle_close

    @property
    def kept(self) -> int:
        """How many connections are kept open for the next request."""
        return len(self._idle)

    async def aclose(self) -> None:
        """Close every kept connection; later calls fail."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(OSError):  # the peer may have gone already
                await conn.writer.wait_closed()

    async def post(
        self,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float,  # noqa: ASYNC109 - one deadline for connect, send and the whole answer
        method: str = "POST",
    ) -> LeanResponse:
        """``POST`` ``path`` (with its query) and a JSON ``body``; returns the answer.

        ``method`` ``GET`` makes the same request without a body (the catalogue pull, the order sync).

        Raises:
            LeanHttpError: no answer within ``timeout`` seconds, a connection error, or an answer
                that is not HTTP/1.1.
        """
        if self._closed:
            raise LeanHttpError("the client is closed")
        payload = b"" if body is None else orjson.dumps(body)
        head = [f"{method} {self.prefix}{path} HTTP/1.1\r\n", self._fixed]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n")
        if body is not None:
            head.append("Content-Type: application/json\r\n")
        head.append(f"Content-Length: {len(payload)}\r\n\r\n")
        request = "".join(head).encode("latin-1") + payload
        try:
            async with asyncio.timeout(timeout):
                while True:
                    conn = await self._connection()
                    try:
                        response, keep = await self._exchange(conn, request)
                    except _Stale:
                        conn.close()
                        continue  # the server closed a kept connection: once more on a new one
                    except BaseException:
                        conn.close()
                        raise
                    if keep and not self._closed:
                        self._keep(conn)
                    else:
                        conn.close()
                    return response
        except TimeoutError as exc:
            raise LeanHttpError(f"no answer within {timeout:g} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise LeanHttpError(f"{type(exc).__name__}: {exc}") from exc

    def _keep(self, conn: _Connection) -> None:
        conn.used = True
        conn.kept += 1
        self._idle.append(conn)
        if self.idle_close is not None:
            asyncio.get_running_loop().call_later(self.idle_close, self._expire, conn, conn.kept)

    def _expire(self, conn: _Connection, kept: int) -> None:
        """The idle timer: close ``conn`` if it is still the same kept, unused connection."""
        if conn.kept == kept and conn in self._idle:
            self._idle.remove(conn)
            conn.close()

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, request: bytes) -> tuple[LeanResponse, bool]:
        reused = conn.used
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            status_line = await conn.reader.readuntil(b"\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if reused and (
                not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial.strip()
            ):
                raise _Stale from exc
            raise
        status, keep = _status(status_line)
        headers = _headers(await _head_rest(conn.reader), status_line)
        if headers.get("connection", "").lower() == "close":
            keep = False
        if status in (204, 304) or 100 <= status < 200:
            return LeanResponse(status, headers, b""), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            content = await _chunks(conn.reader)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError as exc:
                raise LeanHttpError(f"bad Content-Length {headers['content-length']!r}") from exc
            if not 0 <= length <= _MAX_BODY:
                raise LeanHttpError(f"Content-Length {length} out of range")
            content = await conn.reader.readexactly(length)
        else:  # the body runs to the end of the connection
            content = await conn.reader.read(_MAX_BODY)
            keep = False
        return LeanResponse(status, headers, content), keep


def _status(line: bytes) -> tuple[int, bool]:
    """The status code and whether the version keeps the connection by default."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise LeanHttpError(f"not an HTTP/1.x status line: {line[:80]!r}")
    try:
        status = int(parts[1])
    except ValueError as exc:
        raise LeanHttpError(f"bad status in {line[:80]!r}") from exc
    return status, parts[0] == b"HTTP/1.1"


async def _head_rest(reader: asyncio.StreamReader) -> bytes:
    """The header lines after the status line, up to the blank line."""
    lines = []
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        lines.append(line)
        if len(lines) > 200:
            raise LeanHttpError("too many header lines")
    return b"".join(lines)


def _headers(block: bytes, status_line: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\r\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(b":")
        if not sep:
            raise LeanHttpError(f"bad header line {raw[:80]!r} after {status_line[:40]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise LeanHttpError(f"bad chunk size {size_line[:40]!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers, ignored
            return bytes(out)
        if len(out) + size > _MAX_BODY:
            raise LeanHttpError("chunked body too large")
        out += await reader.readexactly(size)
        await reader.readexactly(2)
