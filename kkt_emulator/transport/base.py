"""The byte-pipe contract, the manipulator hook and trace hooks shared by every transport.

A :class:`BytePipe` is one end of a bidirectional, ordered, reliable byte stream (reliable unless a
manipulator is told otherwise): the till's drive client at one end, the drive's endpoint at the
other. Implementations: :mod:`~kkt_emulator.transport.memory` (in-process pair),
:mod:`~kkt_emulator.transport.pty` (virtual serial port), :mod:`~kkt_emulator.transport.tcp`.

Contract, checked by ``tests/transport/test_pipe_contract.py`` against every implementation:

* ``read(max_bytes)`` returns 1 to ``max_bytes`` bytes as soon as some are available; it never
  returns ``b""`` while the pipe is open. Once the pipe is closed locally, or the peer closed and
  everything it sent has been read, it raises :class:`~kkt_emulator.errors.TransportError`.
  Cancelling a pending read loses no bytes. One reader at a time.
* ``write(data)`` returns when the data is handed to the transport (and has drained below the
  transport's buffer limit); after ``close()`` it raises ``TransportError``.
* ``close()`` is idempotent and wakes this end's pending reads with ``TransportError``.
* Every foreign error (``OSError``, ``serial.SerialException``) is translated once into
  ``TransportError`` with ``raise … from``.

Fault injection sits in the sending path: a :class:`Manipulator` decides how the bytes of one
``write`` reach the peer (delayed, split, corrupted, dropped). Trace hooks see ``"tx"`` bytes as the
caller wrote them (before manipulation) and ``"rx"`` bytes as ``read`` returns them.

A manipulator may say it is *idle* (an ``idle`` attribute that is ``True``: it would pass every
byte on at once, unchanged); :func:`is_idle` asks. The in-memory pair uses that to hand a whole
request to an in-process drive and take its answer in one step (see
:mod:`~kkt_emulator.transport.memory`), and takes the byte path again the moment a manipulator
stops being idle.
"""

from __future__ import annotations

import contextlib
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol, Self, runtime_checkable

from kkt_emulator.clock import Clock, RealClock
from kkt_emulator.errors import ConfigError, TransportError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "RX",
    "TX",
    "ByteManipulator",
    "BytePipe",
    "Deliver",
    "Manipulator",
    "PipeBase",
    "StreamPipe",
    "TraceHook",
    "is_idle",
]

TX: Final = "tx"
"""Trace direction of bytes an end writes."""
RX: Final = "rx"
"""Trace direction of bytes an end reads."""

TraceHook = Callable[[str, bytes], None]
"""Called with a direction (:data:`TX` or :data:`RX`) and the bytes."""

Deliver = Callable[[bytes], Awaitable[None]]
"""Hands one chunk of bytes to the underlying transport."""


@runtime_checkable
class BytePipe(Protocol):
    """One end of a bidirectional byte stream (see the module docstring for the contract)."""

    async def read(self, max_bytes: int = 4096) -> bytes:
        """Return 1 to ``max_bytes`` bytes; raise ``TransportError`` once closed."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data``; raise ``TransportError`` if the pipe is closed or broken."""
        ...

    async def close(self) -> None:
        """Close this end; idempotent."""
        ...

    def is_closed(self) -> bool:
        """Whether this end has been closed (locally)."""
        ...


class Manipulator(Protocol):
    """Decides how the bytes of one ``write`` reach the transport (fault injection)."""

    async def apply(self, data: bytes, deliver: Deliver) -> None:
        """Pass ``data`` to ``deliver``, possibly delayed, split, corrupted or not at all."""
        ...


def is_idle(manipulator: Manipulator | None) -> bool:
    """Whether ``manipulator`` passes bytes on at once and unchanged (``None`` always does).

    A manipulator that has no ``idle`` attribute is never idle: only one that says so is bypassed.
    """
    return manipulator is None or getattr(manipulator, "idle", False) is True


class ByteManipulator:
    """The standard manipulator: pacing, splitting, dropping and corrupting, reproducibly.

    Each ``write`` is cut into chunks of ``split`` bytes (one chunk if ``split`` is ``None``). For
    every chunk, in order: wait ``delay_s`` of real time (``clock.pace``, so a manual clock does not
    stall it), drop it with ``drop_probability``, otherwise flip one random bit in it with
    ``corrupt_probability``, then deliver it. All knobs can be changed while the pipe is in use.

    Randomness comes from ``rng``, a :class:`random.Random` seeded with ``seed``: the same seed and
    the same writes give the same drops and the same flipped bits. Every chunk draws the same number
    of values whatever the knobs, so turning one fault on does not reshuffle another's choices.

    Attributes:
        rng: the random source; replace it or call :meth:`reseed` to restart a sequence.
        chunks: chunks seen; ``dropped`` and ``corrupted`` count what happened to them.
    """

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        drop_probability: float = 0.0,
        corrupt_probability: float = 0.0,
        split: int | None = None,
        seed: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.drop_probability = drop_probability
        self.corrupt_probability = corrupt_probability
        self.split = split
        self.clock: Clock = clock if clock is not None else RealClock()
        self.rng = random.Random(seed)  # noqa: S311 - reproducible fault injection, not security
        self.chunks = 0
        self.dropped = 0
        self.corrupted = 0

    @property
    def delay_s(self) -> float:
        """Real seconds to wait before each chunk."""
        return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"delay_s: expected a non-negative number of seconds, got {value}")
        self._delay_s = float(value)

    @property
    def drop_probability(self) -> float:
        """Probability that a chunk is lost."""
        return self._drop

    @drop_probability.setter
    def drop_probability(self, value: float) -> None:
        self._drop = _probability("drop_probability", value)

    @property
    def corrupt_probability(self) -> float:
        """Probability that one bit of a (not dropped) chunk is flipped."""
        return self._corrupt

    @corrupt_probability.setter
    def corrupt_probability(self, value: float) -> None:
        self._corrupt = _probability("corrupt_probability", value)

    @property
    def split(self) -> int | None:
        """Chunk size in bytes, or ``None`` to keep each write whole."""
        return self._split

    @split.setter
    def split(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ConfigError(f"split: expected a chunk size of at least 1 byte, got {value}")
        self._split = value

    @property
    def idle(self) -> bool:
        """Whether every knob is off: no delay, no drop, no corruption, no split.

        A pipe may then deliver without calling :meth:`apply` (the in-memory pair's direct path),
        so those writes draw nothing from ``rng`` and do not count in ``chunks``.
        """
        return (
            self._delay_s == 0.0
            and self._drop == 0.0
            and self._corrupt == 0.0
            and self._split is None
        )

    def reseed(self, seed: int | None) -> None:
        """Restart the random sequence from ``seed``."""
        self.rng.seed(seed)

    async def apply(self, data: bytes, deliver: Deliver) -> None:
        """Deliver ``data`` chunk by chunk with the configured faults."""
        size = self._split or len(data) or 1
        for start in range(0, len(data), size):
            chunk = data[start : start + size]
            self.chunks += 1
            drop_roll = self.rng.random()
            corrupt_roll = self.rng.random()
            index = self.rng.randrange(len(chunk))
            bit = self.rng.randrange(8)
            if self._delay_s > 0:
                await self.clock.pace(self._delay_s)
            if drop_roll < self._drop:
                self.dropped += 1
                continue
            if corrupt_roll < self._corrupt:
                self.corrupted += 1
                flipped = bytearray(chunk)
                flipped[index] ^= 1 << bit
                chunk = bytes(flipped)
            await deliver(chunk)


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ConfigError(f"{name}: expected a probability in 0..1, got {value}")
    return float(value)


class PipeBase(ABC):
    """Shared plumbing of every pipe: closed state, the manipulator and trace hooks.

    Subclasses implement ``_read`` (raise ``TransportError`` at end of stream), ``_write`` (one
    chunk) and ``_close`` (release resources, wake pending reads).

    Attributes:
        manipulator: applied to what this end sends; ``None`` sends bytes as written.
        name: a label for logs and traces.
    """

    def __init__(
        self,
        *,
        manipulator: Manipulator | None = None,
        trace: TraceHook | None = None,
        name: str = "",
    ) -> None:
        self.manipulator = manipulator
        self.name = name
        self._traces: list[TraceHook] = [trace] if trace is not None else []
        self._closed = False

    def add_trace(self, hook: TraceHook) -> None:
        """Call ``hook(direction, data)`` for every write and read of this end."""
        self._traces.append(hook)

    def remove_trace(self, hook: TraceHook) -> None:
        """Stop calling ``hook``; no error if it was not added."""
        if hook in self._traces:
            self._traces.remove(hook)

    async def read(self, max_bytes: int = 4096) -> bytes:
        """Return 1 to ``max_bytes`` bytes; raise ``TransportError`` once closed or at peer EOF."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if self._closed:
            raise TransportError(f"{self._label}: read from a closed pipe")
        data = await self._read(max_bytes)
        for hook in self._traces:
            hook(RX, data)
        return data

    def read_nowait(self, max_bytes: int = 4096) -> bytes:
        """Up to ``max_bytes`` bytes that can be read without waiting, or ``b""`` (never raises).

        A shortcut for a reader that would otherwise wait: ``b""`` means "call :meth:`read`". The
        base class has nothing buffered of its own and always returns ``b""``; trace hooks see
        what it returns as they see what ``read`` returns.
        """
        data = self._read_nowait(max_bytes) if not self._closed else b""
        if data:
            for hook in self._traces:
                hook(RX, data)
        return data

    def _read_nowait(self, max_bytes: int) -> bytes:
        """What a subclass can return at once (see :meth:`read_nowait`)."""
        del max_bytes
        return b""

    async def write(self, data: bytes) -> None:
        """Send ``data`` through the manipulator; raise ``TransportError`` if closed or broken."""
        if self._closed:
            raise TransportError(f"{self._label}: write to a closed pipe")
        data = bytes(data)
        if not data:
            return
        for hook in self._traces:
            hook(TX, data)
        if self.manipulator is None:
            await self._write(data)
        else:
            await self.manipulator.apply(data, self._write)

    async def close(self) -> None:
        """Close this end; pending reads raise ``TransportError``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._close()

    def is_closed(self) -> bool:
        """Whether this end has been closed locally."""
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def _label(self) -> str:
        return self.name or type(self).__name__

    @abstractmethod
    async def _read(self, max_bytes: int) -> bytes: ...

    @abstractmethod
    async def _write(self, data: bytes) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...


class StreamPipe(PipeBase):
    """A pipe over an asyncio ``StreamReader``/``StreamWriter`` pair (TCP, serial client)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        manipulator: Manipulator | None = None,
        trace: TraceHook | None = None,
        name: str = "",
    ) -> None:
        super().__init__(manipulator=manipulator, trace=trace, name=name)
        self._reader = reader
        self._writer = writer

    async def _read(self, max_bytes: int) -> bytes:
        try:
            data = await self._reader.read(max_bytes)
        except OSError as exc:  # includes serial.SerialException
            raise TransportError(f"{self._label}: read failed: {exc}") from exc
        if not data:
            if self._closed:
                raise TransportError(f"{self._label}: pipe closed")
            raise TransportError(f"{self._label}: the peer closed the connection")
        return data

    async def _write(self, data: bytes) -> None:
        if self._closed:
            raise TransportError(f"{self._label}: write to a closed pipe")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:  # ConnectionResetError, BrokenPipeError, SerialException …
            raise TransportError(f"{self._label}: write failed: {exc}") from exc

    async def _close(self) -> None:
        self._writer.close()
        # A connection that was already broken has nothing left to flush: closing is enough.
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
