"""One fiscal drive on a virtual serial port (``kkt-emulator fn serve``), for driver developers.

:class:`SerialDrive` opens (or creates) the drive archive in a state directory, publishes a pty
under a stable symlink, and answers frames on it until stopped::

    async with SerialDrive(profile, state_dir, Path("/tmp/ttyFN0"), clock) as drive:
        await drive.serve(stop_event)

As a real drive on a UART it never sees the port being opened or closed (``transport/pty.py``), so
clients come and go freely; bytes that are not frames are skipped by the framer, and a frame left
half-sent by a client that went away is dropped after :data:`INTER_BYTE_TIMEOUT` of silence, as a
real drive's receiver does, so the next client's first frame is read cleanly. A bug inside the
drive (answered 03h) is logged with its traceback and the drive's serial number.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Self

from kkt_emulator.clock import Clock
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.endpoint import DriveCrash, DriveEndpoint
from kkt_emulator.fn.frame import BadFrame, Enq, Frame
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.logging import get_logger
from kkt_emulator.profiles import FirmwareProfile
from kkt_emulator.transport.pty import PtyServer

__all__ = ["DRIVE_FILE", "INTER_BYTE_TIMEOUT", "ExchangeTrace", "SerialDrive"]

DRIVE_FILE = "drive.sqlite3"
INTER_BYTE_TIMEOUT = 0.5
"""Seconds of silence after which a half-received frame is dropped."""

ExchangeTrace = Callable[[bytes | None, bytes, datetime], None]
"""Called with (request frame bytes, answer frame bytes, business time) for every answer; the
request is ``None`` for an ENQ, and the raw bytes of a frame whose CRC did not match for 01h."""


class SerialDrive:
    """A drive (archive in ``state_dir``) answering on a pty published at ``link``.

    Args:
        profile: the firmware profile (drive model, limits, frame size).
        state_dir: holds ``drive.sqlite3``; a fresh drive (phase «готовность к фискализации») is
            created when there is none.
        link: where to publish the port (a symlink to ``/dev/pts/N``).
        clock: business time for the drive.
        trace: called for every exchange (``fn serve --trace`` decodes and prints it).

    Raises:
        ConfigError: the archive belongs to a drive of another profile, or cannot be opened.
        TransportError: the pty or the symlink cannot be created.
    """

    def __init__(
        self,
        profile: FirmwareProfile,
        state_dir: Path,
        link: Path,
        clock: Clock,
        trace: ExchangeTrace | None = None,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.trace = trace
        self.log = get_logger(component="fn-serve")
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DRIVE_FILE
        if path.exists():
            self.store = SqliteStore(path)
            serial = self.store.meta.get("serial", "")
            owner = self.store.meta.get("profile", "")
            if owner and owner != profile.name:
                self.store.close()
                raise ConfigError(
                    f"{path} holds a drive of profile {owner!r}, not {profile.name!r}"
                )
        else:
            prefix = profile.drive.serial_prefix
            serial = prefix + "".join(str(secrets.randbelow(10)) for _ in range(16 - len(prefix)))
            self.store = SqliteStore(path, serial=serial, profile=profile.name)
        if not serial:
            self.store.close()
            raise ConfigError(f"{path} names no drive serial")
        self.serial = serial
        self.drive = FiscalDrive(DriveConfig.from_profile(profile, serial), self.store)
        self.endpoint = DriveEndpoint(
            self.drive, trace=self._trace_command if trace else None, on_crash=self._log_crash
        )
        try:
            self.port = PtyServer(link=link, name=f"fn-{serial}")
        except BaseException:
            self.store.close()
            raise

    @property
    def path(self) -> str:
        """The published port (the symlink)."""
        return self.port.path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the port (removing the symlink) and the archive."""
        try:
            await self.port.close()
        except (TransportError, OSError):
            # The archive must be closed all the same; the port's failure is only worth a warning.
            self.log.warning("fn_serve_port_close_failed", fn_serial=self.serial, exc_info=True)
        finally:
            self.store.close()

    def _log_crash(self, crash: DriveCrash, exc: BaseException) -> None:
        self.log.error(
            "drive_crashed",
            fn_serial=self.serial,
            command=f"{crash.command:02X}h",
            exc_type=crash.exc_type,
            crash_count=self.endpoint.crash_count,
            exc_info=exc,
        )

    def _trace_command(self, request: Frame, answer: Frame, now: datetime) -> None:
        if self.trace is not None:
            self.trace(request.encode(), answer.encode(), now)

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer frames until ``stop`` is set."""
        self.log.info(
            "fn_serve_started", serial=self.serial, port=self.path, tty=self.port.tty_name
        )
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                reading = asyncio.create_task(self.port.read(4096))
                done, _ = await asyncio.wait(
                    {reading, stopping},
                    timeout=INTER_BYTE_TIMEOUT,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if reading not in done:
                    reading.cancel()
                    # The read was cancelled just above (or the port closed meanwhile): either is
                    # the expected end of that read, not an error.
                    with contextlib.suppress(asyncio.CancelledError, TransportError):
                        await reading
                    # Silence: a half-received frame will never be finished.
                    self.endpoint.reset_link()
                    continue
                await self._answer(reading.result())
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # cancelled just above, on purpose
                await stopping

    async def _answer(self, data: bytes) -> None:
        for item in self.endpoint.split(data):
            now = self.clock.now()
            answer = self.endpoint.handle(item, now)
            # Commands are traced by the endpoint's hook; ENQ and bad frames are seen only here.
            if self.trace is not None and isinstance(item, Enq):
                self.trace(None, answer, now)
            elif self.trace is not None and isinstance(item, BadFrame):
                self.trace(bytes(item.raw), answer, now)
            await self.port.write(answer)
