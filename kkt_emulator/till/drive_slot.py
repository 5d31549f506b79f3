"""The till's drive slot: bring the drive and its link up, take them down, reopen after a crash.

The drive (:class:`~kkt_emulator.fn.drive.FiscalDrive` over its SQLite archive) is served by a
:class:`~kkt_emulator.fnio.server.DriveServer` on an in-memory pipe, or on a pty when the till
talks to it through a real serial device (``--serial-link``); the till reaches it only through
:class:`~kkt_emulator.fnio.client.FnClient`.

On the in-memory pipe the drive answers on the direct path (``transport/memory.py``) while no
fault is in force at all; the moment one is armed, every byte goes through the drive link's
manipulator (:class:`~kkt_emulator.till.faults.FaultyLink`) and the drive's pump again.
"""

from __future__ import annotations

import asyncio

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.endpoint import DriveEndpoint
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.logging import get_logger
from kkt_emulator.sqlite import IDLE_SECONDS
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.fault_control import FaultControl
from kkt_emulator.till.faults import ActiveFault, FaultName, FaultyLink
from kkt_emulator.till.store import TillStore
from kkt_emulator.transport.base import ByteManipulator, BytePipe, Deliver
from kkt_emulator.transport.memory import memory_pipe_pair

__all__ = ["DriveSlot"]

_log = get_logger(__name__)


class _DriveLinkFaults:
    """The drive link's manipulator in the memory pipe: idle while no fault is in force.

    Any fault, not only the link's own, turns the direct path off: the till then runs exactly as
    it did before there was one, and a new link fault needs no change here.
    """

    def __init__(self, link: FaultyLink, faults: dict[FaultName, ActiveFault]) -> None:
        self.link = link
        self._faults = faults

    @property
    def idle(self) -> bool:
        """Whether no fault is in force on the till."""
        return not self._faults

    async def apply(self, data: bytes, deliver: Deliver) -> None:
        """The drive-link faults (:meth:`FaultyLink.apply`)."""
        await self.link.apply(data, deliver)


class DriveSlot:
    """Starts and stops one till's drive, its server task and the till's client.

    Args:
        ctx: the till's shared state (``drive``, ``endpoint`` and ``client`` are set here).
        faults: the till's faults (the drive's forced results and the link's manipulator).
    """

    def __init__(self, ctx: TillContext, faults: FaultControl) -> None:
        self.ctx = ctx
        self.faults = faults
        self._tasks: list[asyncio.Task[None]] = []
        self._pipes: list[BytePipe] = []
        self._archive: SqliteStore | None = None
        """The drive's archive opened with the till's store, not yet claimed by :meth:`start`."""

    async def start(self) -> None:
        """Open the drive's archive, serve the drive and connect the till's client to it."""
        ctx = self.ctx
        # Opened in a worker thread (D118): a new archive's file is written and synced, and its
        # first commit is durable; a fleet starting opened a thousand of them on the loop.
        # The archive opened with the store (:meth:`reopen_store`, D130) is named here, on the
        # loop: that writes nothing until the drive's first commit.
        hold = ctx.holds_stores_open()
        archive, self._archive = self._archive, None
        if archive is not None:
            try:
                archive.claim(ctx.fn_serial, ctx.profile.name)
            except ConfigError:
                archive.close()
                raise
        else:
            archive = await asyncio.to_thread(self._open_archive, hold)
        if hold:
            ctx.hold_open(archive.connection)
        ctx.drive = FiscalDrive(
            DriveConfig.from_profile(ctx.profile, ctx.fn_serial, utc_offset=ctx.config.utc_offset),
            archive,
        )
        ctx.drive.forced_result = self.faults.drive_fault
        self.faults.apply_warning_faults()
        ctx.endpoint = DriveEndpoint(ctx.drive)
        delay = ctx.profile.command_delay if ctx.config.timing == "realistic" else None
        server = DriveServer(ctx.endpoint, ctx.clock, delay)
        if ctx.config.serial_link is not None:
            from kkt_emulator.transport.pty import PtyServer, open_serial  # noqa: PLC0415 - only for --serial-link

            pty = PtyServer(link=ctx.config.serial_link, manipulator=self.faults.faulty_link())
            self._tasks.append(asyncio.create_task(server.serve(pty)))
            till_end: BytePipe = await open_serial(str(ctx.config.serial_link))
            self._pipes += [pty, till_end]
        else:
            till_end, drive_end = memory_pipe_pair(
                ctx.clock,
                manipulators=(
                    ByteManipulator(clock=ctx.clock),
                    _DriveLinkFaults(self.faults.faulty_link(), ctx.faults),
                ),
                names=("till", "drive"),
            )
            self._tasks.append(asyncio.create_task(server.serve(drive_end)))
            self._pipes += [till_end, drive_end]
        # A noisy UART is normal on cheap tills: ask again with ENQ up to 10 times per answer.
        ctx.client = FnClient(
            till_end,
            timeout=ctx.config.drive_timeout,
            retries=10,
            max_data=ctx.profile.drive.max_frame_data,
        )

    def _open_archive(self, hold: bool, serial: str | None = "") -> SqliteStore:
        """Open the drive's archive (in a worker thread); ``serial`` ``None``: name it later.

        ``NORMAL``: the drive's server defers its syncs (D114) and commits with it throughout,
        so the connection starts in the mode it writes with (D130).
        """
        ctx = self.ctx
        return SqliteStore(
            ctx.drive_path,
            serial=ctx.fn_serial if serial == "" else serial,
            profile=ctx.profile.name,
            idle=None if hold else IDLE_SECONDS,
            synchronous="NORMAL",
        )

    async def stop(self) -> None:
        """Close the link, stop the drive's server and close the drive's archive."""
        if self._archive is not None:  # opened with the store and never started
            self._archive.close()
            self._archive = None
        for pipe in self._pipes:
            try:
                await pipe.close()
            except Exception:  # noqa: BLE001 - closing must go on to the drive; logged
                # Closing a link that already broke loses nothing, but say so.
                _log.warning(
                    "drive_link_close_failed",
                    device_id=self.ctx.device_id,
                    fn_serial=self.ctx.fn_serial,
                    exc_info=True,
                )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass  # we cancelled it just now
            except Exception:  # noqa: BLE001 - the drive server died earlier; logged, close goes on
                _log.exception(
                    "drive_server_failed",
                    device_id=self.ctx.device_id,
                    fn_serial=self.ctx.fn_serial,
                )
        self._pipes = []
        self._tasks = []
        if self.ctx.drive is not None:
            store = self.ctx.drive.store
            if isinstance(store, SqliteStore):
                store.close()

    async def reopen_store(self) -> None:
        """Close and reopen the till's own store (after a crash or a restored snapshot)."""
        if self.ctx.store is not None:
            self.ctx.store.close()
        self.ctx.store = None
        if self._archive is not None:
            self._archive.close()
            self._archive = None
        # In a worker thread (D118): a new store's file is written and synced from its template,
        # and so is the drive's archive, in the same hop (D130): :meth:`start` names it.
        hold = self.ctx.holds_stores_open()
        store, self._archive = await asyncio.to_thread(self._open_stores, hold)
        if hold:
            self.ctx.hold_open(store.connection)
        self.ctx.store = store

    def _open_stores(self, hold: bool) -> tuple[TillStore, SqliteStore | None]:
        """The till's store and, if it opens, the drive's archive (in a worker thread)."""
        store = TillStore(self.ctx.db_path, idle=None if hold else IDLE_SECONDS)
        try:
            archive = self._open_archive(hold, serial=None)
        except ConfigError:  # not a drive archive: :meth:`start` opens it again and says so
            archive = None
        return store, archive
