"""TCP byte pipes: a drive served on a TCP port (like a ФН behind a network bridge), a till dialing it.

Thin wrappers over asyncio streams; every connection is a
:class:`~kkt_emulator.transport.base.StreamPipe`. Connection errors are translated once into
:class:`~kkt_emulator.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.logging import get_logger
from kkt_emulator.transport.base import BytePipe, Manipulator, PipeBase, StreamPipe, TraceHook
from kkt_emulator.transport.registry import PipeAddress, PipeKind, PipePair, register_pipe_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["TCP", "tcp_connect", "tcp_serve"]

log = get_logger(__name__)

_ACCEPT_TIMEOUT_S = 10.0
"""How long a test pair waits for its own loopback connection to be accepted."""


async def tcp_connect(
    host: str,
    port: int,
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
    name: str = "",
) -> StreamPipe:
    """Connect to ``host:port`` and return the connection as a byte pipe.

    Raises:
        TransportError: the connection cannot be made.
    """
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
    return StreamPipe(
        reader, writer, manipulator=manipulator, trace=trace, name=name or f"tcp:{host}:{port}"
    )


async def tcp_serve(
    host: str,
    port: int,
    handler: Callable[[BytePipe], Awaitable[None]],
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
) -> asyncio.Server:
    """Serve ``handler`` on ``host:port`` (``port`` 0 picks a free one; see ``server.sockets``).

    Each accepted connection is wrapped in a byte pipe and passed to ``handler``; the pipe is
    closed when the handler returns. A ``TransportError`` escaping the handler means the peer left
    and ends the connection quietly; other exceptions reach the event loop's exception handler.
    ``manipulator`` and ``trace`` are shared by every connection.

    Raises:
        TransportError: the address cannot be bound.
    """

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        pipe = StreamPipe(
            reader, writer, manipulator=manipulator, trace=trace, name=f"tcp-peer:{peer}"
        )
        try:
            await handler(pipe)
        except TransportError as exc:
            # The peer went away: the normal end of a connection, worth a line only when debugging.
            log.debug("tcp_peer_left", peer=pipe.name, reason=str(exc))
        finally:
            await pipe.close()

    try:
        return await asyncio.start_server(on_connect, host, port)
    except OSError as exc:
        raise TransportError(f"cannot listen on {host}:{port}: {exc}") from exc


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[PipePair]:
    accepted: asyncio.Queue[BytePipe] = asyncio.Queue()
    done = asyncio.Event()

    async def handler(pipe: BytePipe) -> None:
        accepted.put_nowait(pipe)
        await done.wait()

    listener = await tcp_serve("127.0.0.1", 0, handler)
    try:
        port = listener.sockets[0].getsockname()[1]
        dialer = await tcp_connect("127.0.0.1", port)
        try:
            async with asyncio.timeout(_ACCEPT_TIMEOUT_S):
                served = await accepted.get()
            if not isinstance(served, PipeBase):  # tcp_serve wraps every connection in one
                raise TransportError(f"tcp_serve handed over a {type(served).__name__}")
            try:
                yield PipePair("tcp", served, dialer)
            finally:
                await served.close()
        finally:
            await dialer.close()
    finally:
        done.set()
        listener.close()
        await listener.wait_closed()


async def _open(
    address: PipeAddress,
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
    name: str = "",
) -> PipeBase:
    host, sep, port = address.target.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{address.url}: expected tcp://HOST:PORT")
    return await tcp_connect(
        host.strip("[]"), int(port), manipulator=manipulator, trace=trace, name=name
    )


TCP = register_pipe_kind(
    PipeKind(
        "tcp",
        "a TCP connection: a drive behind a network bridge, dialed by the till",
        _pair,
        schemes=("tcp",),
        open=_open,
    )
)
"""The TCP kind: ``tcp://HOST:PORT`` (IPv6 hosts in brackets)."""
