"""A virtual serial port: the drive serves on a pty, the till opens it like a real COM port.

:class:`PtyServer` is the drive's end. It opens a pseudo-terminal pair, puts it in raw mode, and
publishes the slave side under a stable path (a symlink to ``/dev/pts/N``) that a till, ``minicom``
or any serial tool can open. The server itself is the :class:`~kkt_emulator.transport.base.BytePipe`
over the master side, with non-blocking I/O driven by ``loop.add_reader``/``add_writer``.

:func:`open_serial` is the till's end: a pyserial port through ``pyserial-asyncio-fast`` (the
original ``pyserial-asyncio`` blocks the event loop), so the same code drives a real ФН on
``/dev/ttyUSB0``.

What a pty does not model, like a serial line: there is no hang-up towards the drive. The server
keeps its own slave descriptor open (otherwise reads fail with EIO whenever no till has the port
open), so it never notices a till closing or reopening the port; the till does see the server go
away. Baud rate, parity and modem lines are accepted and ignored; bytes written while no till has
the port open wait in the pty and are discarded when pyserial opens it (it flushes input).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path
from typing import TYPE_CHECKING, Self

import serial_asyncio_fast

from kkt_emulator.errors import TransportError
from kkt_emulator.transport.base import Manipulator, PipeBase, StreamPipe, TraceHook
from kkt_emulator.transport.registry import PipeAddress, PipeKind, PipePair, register_pipe_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["DEFAULT_BAUDRATE", "PTY", "PtyServer", "open_serial"]

DEFAULT_BAUDRATE = 115200
"""What the till opens its drive port at unless told otherwise (a pty ignores it anyway)."""


class PtyServer(PipeBase):
    """The drive side of a virtual serial port (a pty in raw mode), itself a byte pipe.

    Use as an async context manager, or call :meth:`close`, which also removes the symlink::

        async with PtyServer("/tmp/kkt/ttyFN0") as port:
            till_pipe = await open_serial(port.path)

    Args:
        link: where to publish the port (a symlink to the slave device, replaced if it exists as a
            symlink); ``None`` publishes nothing and :attr:`path` is the device itself.
        manipulator: applied to what the drive sends.
        trace: called with ``"tx"``/``"rx"`` and the bytes.
        name: label for messages and traces.

    Raises:
        TransportError: the pty or the symlink cannot be created.
    """

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        *,
        manipulator: Manipulator | None = None,
        trace: TraceHook | None = None,
        name: str = "pty",
    ) -> None:
        super().__init__(manipulator=manipulator, trace=trace, name=name)
        try:
            self._master, self._slave = os.openpty()
        except OSError as exc:
            raise TransportError(f"{name}: cannot open a pty: {exc}") from exc
        self._link: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: set[asyncio.Future[None]] = set()
        try:
            # Raw mode on the slave (termios is shared by both sides): no echo, no line editing,
            # no CR/LF translation, no XON/XOFF — drive frames are binary.
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.tty_name = os.ttyname(self._slave)
            if link is not None:
                self._link = Path(link)
                _publish(self._link, self.tty_name)
        except OSError as exc:
            self._release()
            raise TransportError(f"{name}: cannot set up the pty: {exc}") from exc

    @property
    def path(self) -> str:
        """The path a till opens: the symlink if one was requested, else the slave device."""
        return str(self._link) if self._link is not None else self.tty_name

    async def __aenter__(self) -> Self:
        return self

    async def _read(self, max_bytes: int) -> bytes:
        while True:
            if self._closed:
                raise TransportError(f"{self._label}: pipe closed")
            try:
                data = os.read(self._master, max_bytes)
            except BlockingIOError:
                await self._wait(writable=False)
                continue
            except OSError as exc:
                raise TransportError(f"{self._label}: read failed: {exc}") from exc
            if not data:  # cannot happen while our slave descriptor is open; be safe anyway
                raise TransportError(f"{self._label}: the pty hung up")
            return data

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed:
                raise TransportError(f"{self._label}: write to a closed pipe")
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                await self._wait(writable=True)
                continue
            except OSError as exc:
                raise TransportError(f"{self._label}: write failed: {exc}") from exc
            view = view[written:]

    async def _close(self) -> None:
        self._release()

    async def _wait(self, *, writable: bool) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self._waiters.add(future)
        if writable:
            loop.add_writer(self._master, wake)
        else:
            loop.add_reader(self._master, wake)
        try:
            await future
        finally:
            self._waiters.discard(future)
            if not self._closed:
                if writable:
                    loop.remove_writer(self._master)
                else:
                    loop.remove_reader(self._master)

    def _release(self) -> None:
        self._closed = True
        if self._loop is not None and not self._loop.is_closed():
            # Unregister before closing: the descriptor number may be reused at once.
            self._loop.remove_reader(self._master)
            self._loop.remove_writer(self._master)
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):  # EBADF: already closed; a close never fails a close
                os.close(fd)
        if self._link is not None and self._link.is_symlink():
            with contextlib.suppress(OSError):  # gone already, or its folder was removed with it
                self._link.unlink()


def _publish(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically; a stale symlink from a crashed run is replaced."""
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink")
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    temporary.replace(link)


async def open_serial(
    path: str,
    baudrate: int = DEFAULT_BAUDRATE,
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
    name: str = "",
) -> StreamPipe:
    """Open a serial port (real or a :class:`PtyServer`'s path) as a byte pipe.

    Raises:
        TransportError: the port cannot be opened.
    """
    try:
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=path, baudrate=baudrate
        )
    except OSError as exc:  # includes serial.SerialException
        raise TransportError(f"cannot open serial port {path}: {exc}") from exc
    return StreamPipe(reader, writer, manipulator=manipulator, trace=trace, name=name or path)


@contextlib.asynccontextmanager
async def _pair() -> AsyncIterator[PipePair]:
    server = PtyServer()
    try:
        client = await open_serial(server.path)
    except BaseException:
        await server.close()
        raise
    try:
        yield PipePair("pty", server, client)
    finally:
        await client.close()
        await server.close()


async def _open(
    address: PipeAddress,
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
    name: str = "",
) -> PipeBase:
    return await open_serial(
        address.target,
        address.option("baudrate", DEFAULT_BAUDRATE),
        manipulator=manipulator,
        trace=trace,
        name=name,
    )


PTY = register_pipe_kind(
    PipeKind(
        "pty",
        "a virtual serial port (pty) served by the drive, opened by the till with pyserial",
        _pair,
        schemes=("serial", "pty"),
        open=_open,
        hang_up_reaches_server=False,
        close_keeps_unread=False,
    )
)
"""The serial kind: ``serial:/dev/ttyUSB0?baudrate=9600``, ``pty:/tmp/kkt/ttyFN0`` or a bare path."""
