"""A small HTTP/1.1-aware TCP proxy that can SIGKILL a process before it forwards an answer.

The load generator reaches the cloud through one proxy and every till through its own. The proxy
copies bytes both ways and reads just enough of them to know which request an answer belongs to
(clients send one request at a time on a connection, so the answer that starts after a request
head is that request's). When an answer starts, :attr:`KillProxy.on_answer` is asked whether to
drop it: the harness then SIGKILLs the cloud (the store API answered 200, so the document is
committed) or the till (the cloud committed the lease, the till has not journalled it yet), and
the proxy closes both sides without forwarding a byte of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kkt_emulator.logging import get_logger

__all__ = ["Answer", "KillProxy"]

log = get_logger(component="chaos")

_CHUNK = 65536
_MAX_HEAD = 65536


@dataclass(frozen=True, slots=True)
class Answer:
    """The start of an answer the proxy is about to forward."""

    method: str
    path: str
    status: int


def _status(head: bytes) -> int:
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return 0
    return int(parts[1])


class _Requests:
    """Parses the client's byte stream into request heads (method, path), skipping bodies."""

    def __init__(self) -> None:
        self._buffer = b""
        self._body_left = 0
        self.opaque = False  # chunked bodies or garbage: stop interpreting, just forward
        self.pending: list[tuple[str, str]] = []

    def feed(self, data: bytes) -> None:
        if self.opaque:
            return
        self._buffer += data
        while self._buffer:
            if self._body_left:
                taken = min(self._body_left, len(self._buffer))
                self._body_left -= taken
                self._buffer = self._buffer[taken:]
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self.opaque = True
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            lines = head.split(b"\r\n")
            first = lines[0].decode("latin-1").split(" ")
            if len(first) < 2:
                self.opaque = True
                return
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                key = name.strip().lower()
                if key == b"content-length" and value.strip().isdigit():
                    length = int(value.strip())
                elif key == b"transfer-encoding":
                    self.opaque = True
            self.pending.append((first[0], first[1].split("?", 1)[0]))
            self._body_left = length


class KillProxy:
    """Forward ``listen`` → ``upstream``; ask :attr:`on_answer` before forwarding each answer.

    Args:
        upstream_port: the port on 127.0.0.1 to forward to.
        on_answer: called when an answer starts; returns True to drop it (after killing someone).
        name: for logs.
    """

    def __init__(self, upstream_port: int, on_answer: Callable[[Answer], bool], name: str) -> None:
        self.upstream_port = upstream_port
        self.on_answer = on_answer
        self.name = name
        self.port = 0
        self.dropped = 0
        self.answers: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on a free loopback port (read it from :attr:`port`)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):  # the cancel we just asked for
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            return  # close() cut this connection; asyncio would log a cancelled callback
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # the upstream is down (killed): the client sees a closed connection
            writer.close()
            return
        requests = _Requests()
        dropped = asyncio.Event()

        async def client_to_upstream() -> None:
            while data := await reader.read(_CHUNK):
                requests.feed(data)
                up_writer.write(data)
                await up_writer.drain()
            with contextlib.suppress(OSError):  # upstream already gone
                up_writer.write_eof()

        async def upstream_to_client() -> None:
            head = b""
            while data := await up_reader.read(_CHUNK):
                if requests.pending and not requests.opaque:
                    head += data
                    if b"\r\n" not in head and len(head) < _MAX_HEAD:
                        continue  # wait for the whole status line
                    method, path = requests.pending.pop(0)
                    data, head = head, b""
                    answer = Answer(method, path, _status(data))
                    self.answers[f"{method} {path} {answer.status}"] += 1
                    if self.on_answer(answer):
                        self.dropped += 1
                        dropped.set()
                        return
                writer.write(data)
                await writer.drain()

        pumps = [
            asyncio.create_task(client_to_upstream()),
            asyncio.create_task(upstream_to_client()),
        ]
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if not dropped.is_set() and pumps[0] in done and not pumps[1].done():
                await asyncio.wait([pumps[1]])  # the client is done sending: finish the answer
        except (ConnectionError, OSError):
            log.debug("chaos_proxy_connection_error", proxy=self.name, exc_info=True)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    # a pump's own end: cancelled here, or its socket reset by the peer
                    await pump
            for w in (writer, up_writer):
                if dropped.is_set():
                    w.transport.abort()
                else:
                    w.close()
