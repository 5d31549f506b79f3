"""Serving a drive on a byte pipe: the thin asyncio pump around :class:`DriveEndpoint`.

The endpoint stays pure; this pump reads bytes, hands each complete item to the endpoint with the
clock's business time, optionally waits the firmware profile's per-command time (``realistic``
timing, pacing time), and writes the answer back. It ends when the peer closes the pipe. A bug
inside the drive (answered 03h by the endpoint) is logged here with its traceback and the drive's
serial number.
"""

from __future__ import annotations

from collections.abc import Callable

from kkt_emulator.clock import Clock
from kkt_emulator.errors import TransportError
from kkt_emulator.fn.endpoint import CrashHook, DriveCrash, DriveEndpoint
from kkt_emulator.fn.frame import Frame
from kkt_emulator.logging import get_logger
from kkt_emulator.transport.base import BytePipe

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

    async def serve(self, pipe: BytePipe) -> None:
        """Answer frames on ``pipe`` until it closes."""
        self.log.debug("drive_link_open")
        try:
            while not pipe.is_closed():
                data = await pipe.read(4096)
                for item in self.endpoint.split(data):
                    answer = self.endpoint.handle(item, self.clock.now())
                    if self.delay is not None and isinstance(item, Frame):
                        await self.clock.pace(self.delay(item.code))
                    await pipe.write(answer)
        except TransportError as exc:
            # The peer closed or the pipe broke: that ends this link, as a real drive's UART does.
            self.log.debug("drive_link_broken", error=str(exc))
        finally:
            self.endpoint.reset_link()
            self.log.debug("drive_link_closed")
