"""Serving a drive on a byte pipe: the thin asyncio pump around :class:`DriveEndpoint`.

The endpoint stays pure; this pump reads bytes, hands each complete item to the endpoint with the
clock's business time, optionally waits the firmware profile's per-command time (``realistic``
timing, pacing time), and writes the answer back. It ends when the peer closes the pipe. A bug
inside the drive (answered 03h by the endpoint) is logged here with its traceback and the drive's
serial number.

On an in-memory pipe without realistic timing the server also answers on the direct path
(:meth:`MemoryPipe.answer_with <kkt_emulator.transport.memory.MemoryPipe.answer_with>`): the
till's ``write`` hands its bytes to :meth:`DriveServer.answer_now` and gets the answer back in
the same step, with no wake-up of the pump task. Whenever the line is not plain (a fault, a trace
hook, bytes the pump has yet to handle) the pipe carries bytes as before and the pump answers;
the two never overlap, because the direct path is refused while the pump holds bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kkt_emulator.clock import Clock
from kkt_emulator.errors import DriveError, TransportError
from kkt_emulator.fn.endpoint import CrashHook, DriveCrash, DriveEndpoint
from kkt_emulator.fn.frame import Frame
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.logging import get_logger
from kkt_emulator.transport.base import BytePipe
from kkt_emulator.transport.memory import MemoryPipe

__all__ = ["DriveServer"]


class DriveServer:
    """Answers a till's frames on a pipe.

    Args:
        endpoint: the drive's endpoint.
        clock: gives business time to the drive and paces realistic delays.
        delay: seconds to wait before answering command ``code`` (``None``: answer at once).
    """

    def __init__(
        self,
        endpoint: DriveEndpoint,
        clock: Clock,
        delay: Callable[[int], float] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self.delay = delay
        self.log = get_logger(fn_serial=endpoint.drive.config.serial)
        # Log every crash, and still call whatever hook the endpoint had before.
        self._previous_hook: CrashHook | None = endpoint.on_crash
        endpoint.on_crash = self._log_crash
        # Pumps that took bytes off their pipe and have not yet written all of their answers.
        self._pumping = 0
        # A store that can sync off the loop does (D114): this server waits for it before each
        # answer goes out, so no answer exists before its document is on the disk.
        store = endpoint.drive.store
        self._store = store if isinstance(store, SqliteStore) else None
        if self._store is not None:
            self._store.defer_sync = True

    def _log_crash(self, crash: DriveCrash, exc: BaseException) -> None:
        self.log.error(
            "drive_crashed",
            command=f"{crash.command:02X}h",
            exc_type=crash.exc_type,
            crash_count=self.endpoint.crash_count,
            exc_info=exc,
        )
        if self._previous_hook is not None:
            self._previous_hook(crash, exc)

    def answer_now(self, data: bytes) -> bytes | None:
        """The answers to ``data`` at once (the direct path), or ``None`` while the pump is busy.

        ``b""`` when ``data`` holds no complete request yet (the rest stays in the endpoint's
        framer, as on the byte path).
        """
        if self._pumping or self.delay is not None:
            return None
        return self.endpoint.answer_now(data, self.clock.now)

    def _settle(self) -> Awaitable[None] | None:
        """What to await before an answer leaves: the archive's deferred sync, if one waits."""
        store = self._store
        return self._sync(store) if store is not None and store.unsynced else None

    async def _sync(self, store: SqliteStore) -> None:
        try:
            await store.settle()
        except DriveError as exc:
            # The disk refused the sync: the commit is in the WAL (a process crash keeps it), and
            # the drive has signed; there is no honest answer but this one, so it goes, logged.
            self.log.exception("archive_sync_failed", error=exc.detail)

    async def serve(self, pipe: BytePipe) -> None:
        """Answer frames on ``pipe`` until it closes."""
        self.log.debug("drive_link_open")
        direct = pipe if isinstance(pipe, MemoryPipe) and self.delay is None else None
        if direct is not None:
            direct.answer_with(self.answer_now, self._settle)
        try:
            while not pipe.is_closed():
                data = await pipe.read(4096)
                self._pumping += 1
                try:
                    for item in self.endpoint.split(data):
                        answer = self.endpoint.handle(item, self.clock.now())
                        if (pending := self._settle()) is not None:
                            await pending
                        if self.delay is not None and isinstance(item, Frame):
                            await self.clock.pace(self.delay(item.code))
                        await pipe.write(answer)
                finally:
                    self._pumping -= 1
        except TransportError as exc:
            # The peer closed or the pipe broke: that ends this link, as a real drive's UART does.
            self.log.debug("drive_link_broken", error=str(exc))
        finally:
            if direct is not None:
                direct.answer_with(None)
            self.endpoint.reset_link()
            self.log.debug("drive_link_closed")
