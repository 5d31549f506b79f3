"""Every server socket the project makes answers without Nagle's delay (``TCP_NODELAY``).

asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` is ``IPPROTO_TCP``; a listening
socket made with protocol 0 hands that 0 to every connection it accepts, and then an answer
written in two pieces waits ~40 ms for the peer's delayed ACK. These tests fail if a server of the
project (the cloud's uvicorn socket, the OFD stand-in and the drive over TCP, the clients of the
till and the OFD sender) loses the option.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from kkt_emulator.net import listen_socket
from kkt_emulator.transport.base import BytePipe
from kkt_emulator.transport.tcp import tcp_connect, tcp_serve


def _nodelay(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_listen_socket_is_made_as_tcp() -> None:
    with listen_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP


async def test_connections_accepted_on_listen_socket_have_nodelay() -> None:
    """What uvicorn does with the cloud's socket: ``loop.create_server(sock=…)``."""
    accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(_nodelay(sock))
            transport.close()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Probe, sock=listen_socket("127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 10) is True
        assert _nodelay(writer.get_extra_info("socket"))
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_the_tcp_pipes_of_the_ofd_and_the_drive_have_nodelay_on_both_ends() -> None:
    seen: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def handler(pipe: BytePipe) -> None:
        writer = pipe._writer  # type: ignore[attr-defined]
        seen.set_result(_nodelay(writer.get_extra_info("socket")))

    server = await tcp_serve("127.0.0.1", 0, handler)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await tcp_connect("127.0.0.1", port)
        assert await asyncio.wait_for(seen, 10) is True
        assert _nodelay(client._writer.get_extra_info("socket"))
        await client.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("proto", [0, socket.IPPROTO_TCP])
async def test_the_reason_asyncio_sets_nodelay_only_for_a_tcp_proto(proto: int) -> None:
    """The mechanism itself, so a change in asyncio shows here first."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(_nodelay(transport.get_extra_info("socket")))
            transport.close()

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Probe, sock=listener)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", listener.getsockname()[1])
        assert await asyncio.wait_for(accepted, 10) is (proto == socket.IPPROTO_TCP)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_http_clients_share_one_verifying_tls_context() -> None:
    import ssl  # noqa: PLC0415 - only this test

    from kkt_emulator.net import client_tls  # noqa: PLC0415

    context = client_tls()
    assert context is client_tls()  # built once per process, not once per client
    assert context.verify_mode == ssl.CERT_REQUIRED
