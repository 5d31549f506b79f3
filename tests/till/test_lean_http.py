"""The till's lean HTTP/1.1 client: kept connections, a server that closes them, chunks, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from kkt_emulator.errors import TransportError
from kkt_emulator.till.cloud_link import CloudLink
from kkt_emulator.till.lean_http import LeanHttp, LeanHttpError

Handler = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[bool]]
"""Called with the request head and body, the writer and the connection's number; returns
whether to keep the connection."""


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw HTTP server on a free port; yields its URL and the connection of each request."""
    seen: list[int] = []
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        number = count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                seen.append(number)
                if not await handler(head + body, writer, number):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        listening.close()
        await listening.wait_closed()


def _json(writer: asyncio.StreamWriter, body: bytes, status: str = "200 OK") -> None:
    writer.write(
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def test_one_connection_carries_many_exchanges() -> None:
    requests: list[bytes] = []

    async def echo(request: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        requests.append(request)
        _json(writer, b'{"ok": true}')
        return True

    async with server(echo) as (url, seen):
        http = LeanHttp(url + "/api")
        try:
            for _ in range(3):
                answer = await http.post("/x?a=1", body={"k": "в"}, timeout=5.0)
                assert answer.status_code == 200
                assert answer.json() == {"ok": True}
        finally:
            await http.aclose()
    assert seen == [1, 1, 1]
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/x?a=1 HTTP/1.1\r\n")
    assert b"Content-Type: application/json" in head
    assert body == '{"k":"в"}'.encode()


async def test_a_kept_connection_unused_for_idle_close_is_closed() -> None:
    """D71: an idle till of a fleet holds no socket; a later call opens a new connection."""
    closed = asyncio.Event()

    async def keep(_r: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        _json(writer, b"{}")
        return True

    async with server(keep) as (url, seen):
        http = LeanHttp(url, idle_close=0.05)
        try:
            assert (await http.post("/a", timeout=5.0)).status_code == 200
            assert (await http.post("/b", timeout=5.0)).status_code == 200  # reused at once
            [conn] = http._idle
            for _ in range(200):
                if not http._idle and conn.writer.is_closing():
                    closed.set()
                    break
                await asyncio.sleep(0.01)
            assert closed.is_set()
            assert (await http.post("/c", timeout=5.0)).status_code == 200
        finally:
            await http.aclose()
    assert seen == [1, 1, 2]


async def test_without_idle_close_a_kept_connection_stays() -> None:
    async def keep(_r: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        _json(writer, b"{}")
        return True

    async with server(keep) as (url, seen):
        http = LeanHttp(url)
        try:
            assert (await http.post("/a", timeout=5.0)).status_code == 200
            await asyncio.sleep(0.1)
            assert (await http.post("/b", timeout=5.0)).status_code == 200
        finally:
            await http.aclose()
    assert seen == [1, 1]


async def test_a_connection_the_server_closed_is_replaced_once() -> None:
    async def once_per_connection(_r: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        _json(writer, b"{}")
        return False  # answer, then close: the kept connection is dead for the next call

    async with server(once_per_connection) as (url, seen):
        http = LeanHttp(url)
        try:
            assert (await http.post("/a", timeout=5.0)).status_code == 200
            assert (await http.post("/b", timeout=5.0)).status_code == 200
        finally:
            await http.aclose()
    assert seen == [1, 2]


async def test_chunked_no_content_and_close_delimited_answers() -> None:
    async def varied(request: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        if request.startswith(b"POST /chunked"):
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b'3\r\n{"a\r\n5;x=1\r\n": 1}\r\n0\r\n\r\n'
            )
            return True
        if request.startswith(b"POST /empty"):
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            return True
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"end": 1}')
        await writer.drain()
        return False

    async with server(varied) as (url, seen):
        http = LeanHttp(url)
        try:
            assert (await http.post("/chunked", timeout=5.0)).json() == {"a": 1}
            empty = await http.post("/empty", timeout=5.0)
            assert (empty.status_code, empty.content) == (204, b"")
            assert (await http.post("/eof", timeout=5.0)).json() == {"end": 1}
            assert (await http.post("/empty", timeout=5.0)).status_code == 204
        finally:
            await http.aclose()
    assert seen == [1, 1, 1, 2]


async def test_no_answer_and_no_server_are_transport_errors() -> None:
    async def silent(_r: bytes, _w: asyncio.StreamWriter, _n: int) -> bool:
        await asyncio.Event().wait()
        return False

    async with server(silent) as (url, _):
        link = CloudLink(url, timeout=0.2)
        link.token = "t"  # noqa: S105 - a test bearer token
        try:
            with pytest.raises(TransportError, match="no answer within"):
                await link.heartbeat({})
        finally:
            await link.close()
    gone = CloudLink(url, timeout=2.0)
    gone.token = "t"  # noqa: S105 - a test bearer token
    try:
        with pytest.raises(TransportError, match="unreachable"):
            await gone.heartbeat({})
    finally:
        await gone.close()


async def test_an_answer_that_is_not_http_is_refused() -> None:
    async def garbage(_r: bytes, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        return False

    async with server(garbage) as (url, _):
        http = LeanHttp(url)
        try:
            with pytest.raises(LeanHttpError, match="status line"):
                await http.post("/x", timeout=5.0)
        finally:
            await http.aclose()


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="plain http"):
        LeanHttp("https://cloud.example")
