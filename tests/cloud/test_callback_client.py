"""The callback client's own HTTP/1.1 path (D43, D60) against a scripted server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from kkt_emulator.cloud.callback_client import CallbackClient
from kkt_emulator.errors import TransportError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


class Shop:
    """Answers each request with the next scripted reply; records requests and connections."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self.handlers: list[asyncio.Task[None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append(task)
        with contextlib.suppress(
            asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError
        ):
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply == b"HANG":
                    await asyncio.sleep(3600)
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower() or b"CLOSE" in reply:
                    break
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def url(self, path: str = "/cb?id=1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[bytes]], asyncio.Future[Shop]]]:
    servers: list[asyncio.Server] = []

    shops: list[Shop] = []

    async def start(replies: list[bytes]) -> Shop:
        shop = Shop(replies)
        shops.append(shop)
        server = await asyncio.start_server(shop.handle, "127.0.0.1", 0)
        servers.append(server)
        shop.port = server.sockets[0].getsockname()[1]
        return shop

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
    for shop in shops:
        for task in shop.handlers:
            task.cancel()
        await asyncio.gather(*shop.handlers, return_exceptions=True)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"


async def test_get_and_post_reuse_one_connection(
    serve: Callable[..., asyncio.Future[Shop]],
) -> None:
    shop = await serve(
        [OK, b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", OK]
    )
    client = CallbackClient(timeout=5, verify_tls=True)
    try:
        assert await client.send("GET", urlsplit(shop.url("/cb?status=SUCCESS")), None) == 200
        assert await client.send("POST", urlsplit(shop.url()), b'{"a":1}') == 500
        assert await client.send("GET", urlsplit(shop.url()), None) == 200
    finally:
        await client.aclose()
    assert shop.connections == 1
    assert shop.requests[0].startswith(b"GET /cb?status=SUCCESS HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in shop.requests[0]
    assert shop.requests[1].endswith(b'\r\n\r\n{"a":1}')
    assert b"Content-Type: application/json; charset=utf-8" in shop.requests[1]


async def test_a_redirect_is_an_answer_not_followed(
    serve: Callable[..., asyncio.Future[Shop]],
) -> None:
    shop = await serve([b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"])
    client = CallbackClient(timeout=5, verify_tls=True)
    try:
        assert await client.send("GET", urlsplit(shop.url()), None) == 302
    finally:
        await client.aclose()
    assert len(shop.requests) == 1


async def test_a_closed_idle_connection_is_replaced(
    serve: Callable[..., asyncio.Future[Shop]],
) -> None:
    # The first reply keeps the connection, then the server closes it: the next request must
    # notice and go over a fresh connection.
    shop = await serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: CLOSE\r\n\r\n", OK])
    client = CallbackClient(timeout=5, verify_tls=True)
    try:
        assert await client.send("GET", urlsplit(shop.url()), None) == 200
        await asyncio.sleep(0.05)  # let the server's close arrive
        assert await client.send("GET", urlsplit(shop.url()), None) == 200
    finally:
        await client.aclose()
    assert shop.connections == 2


async def test_a_reply_to_the_end_of_the_connection_is_read(
    serve: Callable[..., asyncio.Future[Shop]],
) -> None:
    shop = await serve([b"HTTP/1.0 200 OK\r\n\r\nbody until close CLOSE"])
    client = CallbackClient(timeout=5, verify_tls=True)
    try:
        assert await client.send("GET", urlsplit(shop.url()), None) == 200
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"HANG", "ReadTimeout"),
        (b"SMTP ready\r\n\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort CLOSE", "RemoteProtocolError"),
    ],
)
async def test_no_http_answer_is_a_transport_error(
    serve: Callable[..., asyncio.Future[Shop]], reply: bytes, error: str
) -> None:
    shop = await serve([reply])
    client = CallbackClient(timeout=0.2, verify_tls=True)
    try:
        with pytest.raises(TransportError, match=rf"^{error}: "):
            await client.send("GET", urlsplit(shop.url()), None)
    finally:
        await client.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = CallbackClient(timeout=5, verify_tls=True)
    try:
        with pytest.raises(TransportError, match=r"^ConnectError: "):
            await client.send("GET", urlsplit(f"http://127.0.0.1:{port}/cb"), None)
    finally:
        await client.aclose()


async def test_an_injected_transport_sees_every_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = CallbackClient(timeout=5, verify_tls=True, transport=httpx.MockTransport(handler))
    try:
        assert await client.send("POST", urlsplit("http://shop.test/cb?x=1"), b"{}") == 204
    finally:
        await client.aclose()
    assert str(seen[0].url) == "http://shop.test/cb?x=1"
    assert seen[0].headers["content-type"] == "application/json; charset=utf-8"
