"""TCP byte pipes: a drive served on a TCP port (like a ФН behind a network bridge), a till dialing it.

Thin wrappers over asyncio streams; every connection is a
:class:`~kkt_emulator.transport.base.StreamPipe`. Connection errors are translated once into
:class:`~kkt_emulator.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kkt_emulator.errors import TransportError
from kkt_emulator.transport.base import BytePipe, Manipulator, StreamPipe, TraceHook

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["tcp_connect", "tcp_serve"]


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
        except TransportError:
            pass  # the peer went away: the normal end of a connection
        finally:
            await pipe.close()

    try:
        return await asyncio.start_server(on_connect, host, port)
    except OSError as exc:
        raise TransportError(f"cannot listen on {host}:{port}: {exc}") from exc
