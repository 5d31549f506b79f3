"""An in-process pair of connected byte pipes: the fake serial cable for tests and single-process runs.

Like pymodbus's ``NullModem`` or python-can's ``VirtualBus``: what one end writes, the other end
reads, in order. Each end has its own manipulator (applied to what it *sends*) and trace hooks.

What it does NOT model: baud-rate timing (bytes arrive as fast as the event loop runs; use a
manipulator's ``delay_s`` and ``split`` for pacing), modem lines (DTR/RTS/CTS/DSR, break),
flow control and back-pressure (buffers are unbounded), and the loss of bytes written while
nobody is reading (they wait in the peer's buffer).

The direct path. An end can be given a :data:`Responder` (:meth:`MemoryPipe.answer_with`; the
drive's server does it for its end): a synchronous function that takes the bytes the peer wrote
and returns the bytes it answers, or ``None`` when it cannot answer at once. A ``write`` then
skips the buffer, the wake-up of the reading task and its reply: the answer lands in the
writer's own read buffer before ``write`` returns, exactly as if the responder's end had read the
bytes and written its answer back. It is taken only while the line is plain — both ends open,
no trace hooks on either end, both manipulators idle (:func:`~kkt_emulator.transport.base.is_idle`),
nothing still waiting in the responder's buffer — and the responder is asked every time, so the
first fault switched on, trace added or busy responder sends the bytes the ordinary way again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kkt_emulator.errors import TransportError
from kkt_emulator.transport.base import ByteManipulator, Manipulator, PipeBase, TraceHook, is_idle
from kkt_emulator.transport.registry import PipeKind, PipePair, register_pipe_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kkt_emulator.clock import Clock

__all__ = ["MEMORY", "MemoryPipe", "Responder", "Settle", "memory_pipe_pair"]

Responder = Callable[[bytes], bytes | None]
Settle = Callable[[], Awaitable[None] | None]
"""Answers the bytes the peer wrote at once (``b""``: nothing to answer yet), or ``None``: not now,
send them the ordinary way."""


class MemoryPipe(PipeBase):
    """One end of an in-memory pair; create pairs with :func:`memory_pipe_pair`."""

    def __init__(
        self,
        *,
        manipulator: Manipulator | None = None,
        trace: TraceHook | None = None,
        name: str = "",
    ) -> None:
        super().__init__(manipulator=manipulator, trace=trace, name=name)
        self._buffer = bytearray()
        self._readable = asyncio.Event()
        self._peer: MemoryPipe | None = None
        self._peer_closed = False
        self._responder: Responder | None = None
        self._settle: Settle | None = None

    def answer_with(self, responder: Responder | None, settle: Settle | None = None) -> None:
        """Answer what the peer writes with ``responder`` when the line is plain; ``None`` stops it.

        ``settle``, when given, is asked after each answer for an awaitable to wait on before the
        answer reaches the peer (``None``: nothing to wait for); the drive's server waits there
        for its deferred sync (D114). See the module docstring (the direct path).
        """
        self._responder = responder
        self._settle = settle

    def _connect(self, peer: MemoryPipe) -> None:
        self._peer = peer

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        self._readable.set()

    def _hang_up(self) -> None:
        self._peer_closed = True
        self._readable.set()

    async def _read(self, max_bytes: int) -> bytes:
        while True:
            if self._closed:
                raise TransportError(f"{self._label}: pipe closed")
            if self._buffer:
                data = bytes(self._buffer[:max_bytes])
                del self._buffer[:max_bytes]
                return data
            if self._peer_closed:
                raise TransportError(f"{self._label}: the peer closed the pipe")
            self._readable.clear()
            await self._readable.wait()

    def _read_nowait(self, max_bytes: int) -> bytes:
        buffer = self._buffer
        if not buffer:
            return b""
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
            return data
        data = bytes(buffer[:max_bytes])
        del buffer[:max_bytes]
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data``: straight to the peer's responder when the line is plain, else as bytes."""
        peer = self._peer
        if (
            peer is not None
            and peer._responder is not None  # noqa: SLF001 - the two ends of one pair
            and data
            and not self._closed
            and not self._peer_closed
            and not peer._buffer  # noqa: SLF001 - the two ends of one pair
            and not self._traces
            and not peer._traces  # noqa: SLF001 - the two ends of one pair
            and is_idle(self.manipulator)
            and is_idle(peer.manipulator)
        ):
            request = data if type(data) is bytes else bytes(data)  # no copy of what is immutable
            answer = peer._responder(request)  # noqa: SLF001 - the two ends of one pair
            if answer is not None:
                settle = peer._settle  # noqa: SLF001 - the two ends of one pair
                if settle is not None and (pending := settle()) is not None:
                    await pending  # the answer exists only once its commit is durable (D114)
                if answer:
                    self._feed(answer)
                return
        await super().write(data)

    async def _write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self._label}: write to a closed pipe")
        if self._peer_closed or self._peer is None:
            raise TransportError(f"{self._label}: the peer closed the pipe")
        self._peer._feed(data)  # noqa: SLF001 - the two ends of one pair

    async def _close(self) -> None:
        self._buffer.clear()
        self._readable.set()
        if self._peer is not None:
            self._peer._hang_up()  # noqa: SLF001 - the two ends of one pair


def memory_pipe_pair(
    clock: Clock | None = None,
    *,
    manipulators: tuple[Manipulator | None, Manipulator | None] | None = None,
    traces: tuple[TraceHook | None, TraceHook | None] = (None, None),
    names: tuple[str, str] = ("memory-a", "memory-b"),
) -> tuple[MemoryPipe, MemoryPipe]:
    """Create two connected ends.

    Args:
        clock: paces the default manipulators' ``delay_s`` (real time via ``clock.pace``).
        manipulators: one per end, applied to what that end sends. By default each end gets an
            idle :class:`~kkt_emulator.transport.base.ByteManipulator` (no faults) so faults can be
            switched on later by setting its attributes.
        traces: one trace hook per end (more can be added with ``add_trace``).
        names: labels of the two ends for messages and traces.
    """
    if manipulators is None:
        manipulators = (ByteManipulator(clock=clock), ByteManipulator(clock=clock))
    a = MemoryPipe(manipulator=manipulators[0], trace=traces[0], name=names[0])
    b = MemoryPipe(manipulator=manipulators[1], trace=traces[1], name=names[1])
    a._connect(b)  # noqa: SLF001 - wiring the pair is this factory's job
    b._connect(a)  # noqa: SLF001 - wiring the pair is this factory's job
    return a, b


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[PipePair]:
    a, b = memory_pipe_pair()
    try:
        yield PipePair("memory", a, b)
    finally:
        await a.close()
        await b.close()


MEMORY = register_pipe_kind(
    PipeKind("memory", "an in-process pair: what one end writes, the other reads", _pair)
)
"""The in-memory kind: pairs only (there is nothing to open by URL outside one process)."""
