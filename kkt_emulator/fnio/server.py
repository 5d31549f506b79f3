"""Serving a drive on a byte pipe: the thin asyncio pump around :class:`DriveEndpoint`.

The endpoint stays pure; this pump reads bytes, hands each complete item to the endpoint with the
clock's business time, optionally waits the firmware profile's per-command time (``realistic``
timing, pacing time), and writes the answer back. It ends when the peer closes the pipe.
"""

from __future__ import annotations

from collections.abc import Callable

from kkt_emulator.clock import Clock
from kkt_emulator.errors import TransportError
from kkt_emulator.fn.endpoint import DriveEndpoint
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
        except TransportError:
            pass
        finally:
            self.endpoint.reset_link()
            self.log.debug("drive_link_closed")
