"""The HTTP client of ``responseURL`` callbacks (D43, D60): one request, one status code.

A plain ``http://`` callback goes over a small HTTP/1.1 client with kept-alive connections per
origin: httpx spent about a millisecond of CPU on each callback, more than the rest of a receipt's
way through the cloud. Everything else (``https://``, a URL with user info or a non-ASCII host,
and every test that injects an httpx transport) goes through httpx, configured as D43 says. Both
paths follow no redirects, read and ignore the reply body, and give up after ``timeout`` seconds;
every failure to get an answer is raised as :class:`~kkt_emulator.errors.TransportError` with
the text the cabinet shows (``ConnectError: …``, ``ReadTimeout: …``, ``RemoteProtocolError: …``,
as httpx names them).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

import httpx

from kkt_emulator.errors import TransportError
from kkt_emulator.net import client_tls

if TYPE_CHECKING:
    from urllib.parse import SplitResult

__all__ = ["CallbackClient"]

_MAX_HEAD: Final = 64 * 1024  # status line and headers of a reply
_IDLE_PER_ORIGIN: Final = 16
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _ProtocolError(Exception):
    """The reply is not HTTP/1.x as this client reads it."""


class CallbackClient:
    """Sends callback requests; :meth:`aclose` closes every connection (idempotent)."""

    def __init__(
        self,
        *,
        timeout: float,
        verify_tls: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self._direct = transport is None  # an injected transport sees every request
        self._transport = transport
        self._verify_tls = verify_tls
        # Made at the first request that needs it: building it imports httpcore (and trio where
        # installed) and a TLS context, a third of `up`'s start, for callbacks a run may never send.
        self._httpx: httpx.AsyncClient | None = None
        self._closed = False
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def aclose(self) -> None:
        """Close the kept-alive connections and the httpx client."""
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, writer in connections:
                writer.close()
        self._closed = True
        client, self._httpx = self._httpx, None
        if client is not None:
            await client.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._closed:
            raise RuntimeError("the callback client is closed")  # as httpx says after aclose()
        if self._httpx is None:
            self._httpx = httpx.AsyncClient(
                transport=self._transport,
                timeout=self.timeout,
                follow_redirects=False,  # D43: redirects are not followed
                verify=client_tls() if self._verify_tls else False,
            )
        return self._httpx

    async def send(self, method: str, parts: SplitResult, body: bytes | None) -> int:
        """The status code of ``method`` to the URL ``parts`` with ``body`` (JSON, if any).

        Raises:
            TransportError: no HTTP answer (refused, timed out, not HTTP, a bad URL).
        """
        if self._direct and parts.scheme == "http" and _plain(parts):
            return await self._send_plain(method, parts, body)
        headers = {"Content-Type": "application/json; charset=utf-8"} if body is not None else {}
        try:
            response = await self._client().request(
                method, parts.geturl(), content=body, headers=headers
            )
        except (httpx.HTTPError, ValueError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        return response.status_code

    async def _send_plain(self, method: str, parts: SplitResult, body: bytes | None) -> int:
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise TransportError(f"InvalidURL: {exc}") from exc
        host = parts.hostname or ""
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
        if body is not None:
            lines += [
                "Content-Type: application/json; charset=utf-8",
                f"Content-Length: {len(body)}",
            ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")
        origin = (host, port)
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    idle = self._idle.get(origin)
                    reused = bool(idle)
                    connection = idle.pop() if idle else await self._connect(origin)
                    try:
                        status, keep = await _exchange(connection, request, method)
                    except (asyncio.IncompleteReadError, ConnectionError) as exc:
                        connection[1].close()
                        partial = getattr(exc, "partial", b"")
                        if reused and not partial:
                            continue  # the server closed the idle connection: a fresh one
                        raise TransportError(f"RemoteProtocolError: {exc}") from exc
                    except BaseException:
                        connection[1].close()
                        raise
                    self._keep(origin, connection, keep=keep)
                    return status
        except TimeoutError as exc:
            raise TransportError(f"ReadTimeout: no answer within {self.timeout} s") from exc
        except (_ProtocolError, asyncio.LimitOverrunError) as exc:
            raise TransportError(f"RemoteProtocolError: {exc}") from exc
        except OSError as exc:
            raise TransportError(f"ReadError: {exc}") from exc

    async def _connect(self, origin: tuple[str, int]) -> _Connection:
        try:
            return await asyncio.open_connection(*origin, limit=_MAX_HEAD)
        except OSError as exc:
            raise TransportError(f"ConnectError: {exc}") from exc

    def _keep(self, origin: tuple[str, int], connection: _Connection, *, keep: bool) -> None:
        idle = self._idle.setdefault(origin, [])
        if keep and len(idle) < _IDLE_PER_ORIGIN and not connection[0].at_eof():
            idle.append(connection)
        else:
            connection[1].close()


def _plain(parts: SplitResult) -> bool:
    """Whether this client sends to ``parts`` itself: an ASCII host, no user info."""
    return bool(parts.hostname) and "@" not in parts.netloc and parts.netloc.isascii()


async def _exchange(connection: _Connection, request: bytes, method: str) -> tuple[int, bool]:
    """Write ``request``, read one reply (skipping 1xx); its status and whether to keep the line."""
    reader, writer = connection
    writer.write(request)
    await writer.drain()
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError as exc:
            raise _ProtocolError("reply headers too long") from exc
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise _ProtocolError("the connection closed inside the reply headers") from exc
            raise  # nothing at all: maybe a closed idle connection, retried by the caller
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise _ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise _ProtocolError(f"malformed header line: {line[:60]!r}")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            continue  # an interim answer; the final one follows
        break
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304):
        return status, keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _skip_chunked(reader)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise _ProtocolError(f"bad Content-Length {length[:20]!r}")
        await _skip(reader, int(length))
    else:  # the body runs to the end of the connection
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        keep = False
    return status, keep


async def _skip(reader: asyncio.StreamReader, length: int) -> None:
    while length > 0:
        chunk = await reader.readexactly(min(length, 65536))
        length -= len(chunk)


async def _skip_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2].split(b";")[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as exc:
            raise _ProtocolError(f"bad chunk size {size_line[:20]!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return
        await _skip(reader, size + 2)
