"""The virtual till: a drive on a link, a loop that polls the cloud, and durable bookkeeping.

One :class:`Till` owns its state directory (one SQLite file: the drive's archive plus the till's
journal, outbox and settings), serves its own drive on an in-memory pipe or a pty, and talks to the
drive only through :class:`~kkt_emulator.fnio.client.FnClient`. Each job is one collaborator,
built on the shared :class:`~kkt_emulator.till.context.TillContext`:

==================  ====================================================================
``fault_control``   the faults in force and where each takes effect, the crash points
``drive_slot``      bringing the drive and its link up and down
``shifts``          the drive's shift, the app's counter shift, counter sales, corrections
``fiscal``          fiscalising leased documents, reconciling after a crash
``views``           the drive's state, the whole state for the control plane, heartbeats
``loops``           the poll, outbox and OFD loops
``drive_keeper``    registration, drive replacement, snapshots
==================  ====================================================================

Crash safety (``till-protocol.md`` §2): the journal entry for a document is committed before its
first drive command; the result is recorded in one transaction after the drive answers; on start
:meth:`Till.reconcile` reports a document the drive's archive already holds and re-processes one it
does not. A shop document is never fiscalised twice.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from kkt_emulator.errors import ConfigError
from kkt_emulator.logging import get_logger
from kkt_emulator.till.catalog import TillCatalog
from kkt_emulator.till.cloud_link import CloudLink, Lease
from kkt_emulator.till.context import (
    Listener,
    SimulatedCrash,
    TillConfig,
    TillContext,
    TillSettings,
)
from kkt_emulator.till.control_api import TillControl
from kkt_emulator.till.drive_keeper import DriveKeeper, random_digits
from kkt_emulator.till.drive_slot import DriveSlot
from kkt_emulator.till.fault_control import CRASH_ENV, FaultControl
from kkt_emulator.till.faults import CRASH_POINTS, ActiveFault, CrashPoint, FaultName
from kkt_emulator.till.fiscal import Fiscaliser
from kkt_emulator.till.loops import Loops
from kkt_emulator.till.orders import OrderDesk
from kkt_emulator.till.outbox import CashDocs
from kkt_emulator.till.shifts import Shifts
from kkt_emulator.till.views import StateViews

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from kkt_emulator.clock import Clock
    from kkt_emulator.fn.drive import FiscalDrive
    from kkt_emulator.fn.endpoint import DriveEndpoint
    from kkt_emulator.fnio.client import FnClient
    from kkt_emulator.profiles import FirmwareProfile
    from kkt_emulator.till.ofd_sender import OfdSender
    from kkt_emulator.till.ports import OfdFaults
    from kkt_emulator.till.store import TillStore

__all__ = ["CRASH_ENV", "CRASH_POINTS", "SimulatedCrash", "Till", "TillConfig", "TillSettings"]

_log = get_logger(__name__)
_SSL_CONTEXT: list[ssl.SSLContext] = []


def _cloud_transport() -> httpx.AsyncHTTPTransport:
    """An HTTP transport for the cloud link that shares one TLS context with every other till.

    Building a context per till parses the CA bundle each time (30 ms of CPU and ~0.8 MiB each),
    which made a 200-till start-up crawl.
    """
    if not _SSL_CONTEXT:
        _SSL_CONTEXT.append(ssl.create_default_context())
    return httpx.AsyncHTTPTransport(verify=_SSL_CONTEXT[0])


class Till:
    """One virtual till.

    Use as an async context manager; it serves until :meth:`close` or cancellation.

    Args:
        config: how to run it (``config.ofd`` is the OFD stand-in of this process, if any).
        clock: the clock of its process.
    """

    def __init__(self, config: TillConfig, clock: Clock) -> None:
        self.ctx = ctx = TillContext(config, clock)
        # TLS goes through httpx with the shared context; plain HTTP through the lean client.
        https = config.server.startswith("https:")
        self.link = CloudLink(config.server, transport=_cloud_transport() if https else None)
        self.fault_control = FaultControl(ctx, config.ofd)
        self.link.before_call = self.fault_control.cloud_latency
        self.drive_slot = DriveSlot(ctx, self.fault_control)
        self.cashdocs = CashDocs(ctx, self.link, self.fault_control)
        self.shifts = Shifts(ctx, self.cashdocs)
        self.orders = OrderDesk(ctx, self.link, self.shifts)
        """The courier's orders (orders-and-backoffice.md §2.8)."""
        self.fiscaliser = Fiscaliser(ctx, self.shifts, self.fault_control)
        self.views = StateViews(ctx, self.shifts, self.fault_control, self.link)
        self.catalog = TillCatalog(ctx, self.link)
        """The retail point's catalogue as this till holds it (B16)."""
        self.loops = Loops(
            ctx,
            link=self.link,
            fiscaliser=self.fiscaliser,
            shifts=self.shifts,
            views=self.views,
            faults=self.fault_control,
            restart=self._restart_after_crash,
            catalog=self.catalog,
        )
        self.orders.watched = self.loops.watch_member  # a fleet watch tells orders too (D116)
        self.orders.watch_pending = self.loops.watch_pending
        self.keeper = DriveKeeper(ctx, self.drive_slot, self.shifts, self.fiscaliser)
        self.control = TillControl(self)
        """What the control plane drives (typed answers)."""
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ what others read

    @property
    def config(self) -> TillConfig:
        """How the till runs."""
        return self.ctx.config

    @property
    def profile(self) -> FirmwareProfile:
        """The firmware profile."""
        return self.ctx.profile

    @property
    def clock(self) -> Clock:
        """The clock the till (and the rest of its process) runs on."""
        return self.ctx.clock

    @property
    def state_dir(self) -> Path:
        """The till's state directory."""
        return self.ctx.state_dir

    @property
    def store(self) -> TillStore | None:
        """The till's store, ``None`` while stopped."""
        return self.ctx.store

    @property
    def drive(self) -> FiscalDrive | None:
        """The in-process drive, ``None`` while stopped."""
        return self.ctx.drive

    @property
    def endpoint(self) -> DriveEndpoint | None:
        """The drive's endpoint (what the drive server answers with), ``None`` while stopped."""
        return self.ctx.endpoint

    @property
    def client(self) -> FnClient | None:
        """The drive client, ``None`` while stopped."""
        return self.ctx.client

    @property
    def fn(self) -> FnClient:
        """The drive client (only while started)."""
        return self.ctx.fn

    @property
    def state(self) -> TillStore:
        """The till's store (only while started)."""
        return self.ctx.state

    @property
    def ofd_server(self) -> OfdFaults | None:
        """The OFD stand-in the ``ofd.*`` faults act on (``TillConfig.ofd``)."""
        return self.fault_control.ofd

    @property
    def ofd_sender(self) -> OfdSender | None:
        """The OFD loop's current sender, if the loop has started one."""
        return self.loops.ofd_sender

    @property
    def settings(self) -> TillSettings:
        """The till's settings."""
        return self.ctx.settings

    @property
    def point_settings(self) -> dict[str, Any]:
        """The retail point's settings from the last heartbeat."""
        return self.ctx.point_settings

    @property
    def kkt_serial(self) -> str:
        """The till's serial number."""
        return self.ctx.kkt_serial

    @property
    def fn_serial(self) -> str:
        """The drive's serial number."""
        return self.ctx.fn_serial

    @property
    def rnm(self) -> str:
        """The registration number (РНМ)."""
        return self.ctx.rnm

    @property
    def device_id(self) -> str:
        """The id the cloud gave the till; names its topics."""
        return self.ctx.device_id

    @property
    def faults(self) -> dict[FaultName, ActiveFault]:
        """The faults in force by name."""
        return self.ctx.faults

    @property
    def listeners(self) -> list[Listener]:
        """Called as ``listener(event, data)`` for every event of the till."""
        return self.ctx.listeners

    @property
    def counters(self) -> dict[str, int]:
        """Documents fiscalised and failed, polls, documents slowed by the OFD backlog."""
        return self.ctx.counters

    @property
    def last_error(self) -> str | None:
        """The last poll's error, ``None`` after a good poll."""
        return self.ctx.last_error

    @property
    def log(self) -> FilteringBoundLogger:
        """The till's logger, bound to its serials and device id."""
        return self.ctx.log

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open state, bring up the drive and its link, register, bind, reconcile, start loops."""
        ctx = self.ctx
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        await self.drive_slot.reopen_store()
        store = ctx.state
        ctx.kkt_serial = store.get("kkt_serial") or ""
        ctx.fn_serial = store.get("fn_serial") or ""
        profile = ctx.profile
        first: dict[str, Any] = {}
        if not ctx.kkt_serial:
            prefix = profile.kkt_serial_prefix
            ctx.kkt_serial = prefix + random_digits(12 - len(prefix))
            drive_prefix = profile.drive.serial_prefix
            ctx.fn_serial = drive_prefix + random_digits(16 - len(drive_prefix))
            first = {
                "kkt_serial": ctx.kkt_serial,
                "fn_serial": ctx.fn_serial,
                "profile": profile.name,
            }
        elif store.get("profile") not in (None, profile.name):
            raise ConfigError(
                f"{ctx.state_dir} belongs to a till of profile {store.get('profile')!r}, not {profile.name!r}"
            )
        saved = store.get("settings")
        ctx.settings.update(**{**(saved or {}), **ctx.config.settings})
        settings = ctx.settings.to_json()
        if first or settings != saved:  # identity and settings: one durable commit, or none
            # Committed on the loop, synced off it (D118, D129): the store and the archive were
            # opened in the till's one worker hop, and the till acts on nothing before the sync.
            await store.put_synced(**first, settings=settings)
        ctx.log = get_logger(fn_serial=ctx.fn_serial, kkt_serial=ctx.kkt_serial)
        await self.drive_slot.start()
        registered = await self.keeper.ensure_registered()
        await self._bind()
        self.link.resume_leases()
        await self.reconcile()
        if not registered:  # a drive registered just now has its mark already (D118)
            await self.loops.report_missed_acks()
        self._tasks = [
            asyncio.create_task(self.loops.poll_loop(), name=f"till-poll-{ctx.kkt_serial}"),
            asyncio.create_task(self.loops.outbox_loop(), name=f"till-outbox-{ctx.kkt_serial}"),
            asyncio.create_task(self.shifts.shift_timer(), name=f"till-shift-{ctx.kkt_serial}"),
            asyncio.create_task(self.cashdocs.upload_loop(), name=f"till-upload-{ctx.kkt_serial}"),
            asyncio.create_task(self.orders.sync_loop(), name=f"till-orders-{ctx.kkt_serial}"),
        ]
        if ctx.config.ofd_address:
            self._tasks.append(
                asyncio.create_task(self.loops.ofd_loop(), name=f"till-ofd-{ctx.kkt_serial}")
            )
        self.emit("till.started", {"kktSerial": ctx.kkt_serial, "fnSerial": ctx.fn_serial})

    async def close(self) -> None:
        """Stop loops, close the drive link and the state files."""
        ctx = self.ctx
        ctx.stopping.set()
        ctx.wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass  # cancelled just above
            except Exception:  # noqa: BLE001 - a loop that died must not stop the close; logged
                _log.exception(
                    "till_loop_failed",
                    task=task.get_name(),
                    device_id=ctx.device_id,
                    fn_serial=ctx.fn_serial,
                )
        self._tasks = []
        await self.drive_slot.stop()
        await self.link.close()
        if ctx.store is not None:
            ctx.store.close()
            ctx.store = None

    async def _bind(self) -> None:
        ctx = self.ctx
        token = ctx.state.get("token")
        if token and ctx.state.get("server") == ctx.config.server:
            self.link.token = token
            ctx.device_id = ctx.state.get("device_id") or ""
            return
        # The bind carries the first heartbeat (D134): a fleet's start-up sends one request less
        # a till. A till that may not poll now sends its heartbeat when it does.
        beat = await self.views.heartbeat_body() if ctx.polling_allowed() else None
        answer = await self.link.bind(
            ctx.config.login,
            ctx.config.password,
            till_serial=ctx.kkt_serial,
            fn_serial=ctx.fn_serial,
            model=ctx.profile.model,
            profile=ctx.profile.name,
            retail_point_id=ctx.config.retail_point_id,
            heartbeat=None if beat is None else beat.body,
        )
        if beat is not None and answer.heartbeat is not None:
            self.views.heartbeat_sent(beat, answer.heartbeat, carried=True)
        ctx.device_id = answer.device_id
        await ctx.state.put_synced(
            token=answer.token, device_id=ctx.device_id, server=ctx.config.server
        )
        ctx.log = ctx.log.bind(device_id=ctx.device_id)
        ctx.log.info("till_bound", retail_point_id=answer.retail_point_id)

    async def _restart_after_crash(self, reason: str) -> None:
        """The process state is gone: reopen everything from disk and reconcile, as after a reboot."""
        self.ctx.log.warning("till_crashed", reason=reason)
        self.emit("warning", {"message": f"till crashed ({reason}); restarting"})
        await self.drive_slot.stop()
        await self.drive_slot.reopen_store()
        await self.drive_slot.start()
        self.link.resume_leases()
        await self.reconcile()
        await self.loops.report_missed_acks()

    def local_now(self) -> datetime:
        """The drive's wall-clock time for DATE_TIME fields (minute resolution on the wire)."""
        return self.ctx.local_now()

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Publish an event to every listener (a failing listener is logged, the rest still hear)."""
        self.ctx.emit(event, data)

    def crash_point(self, name: str) -> None:
        """Drop the process state here if a crash is armed for ``name`` (see :data:`CRASH_POINTS`)."""
        self.fault_control.crash_point(CrashPoint(name))

    # ------------------------------------------------------------------ documents

    async def reconcile(self) -> list[str]:
        """Settle documents the journal says were in flight; returns the doc ids handled."""
        return await self.fiscaliser.reconcile()

    async def fiscalise(self, item: dict[str, Any]) -> dict[str, Any]:
        """Fiscalise one leased document and record its outcome; returns the result report."""
        result = await self.fiscaliser.fiscalise(Lease.parse(item))
        self.ctx.outbox_wake.set()  # outside a poll's batch: the outbox loop reports it
        return result

    async def poll_once(self) -> int:
        """One poll cycle: reconcile, heartbeat, lease, fiscalise, report. Returns documents handled."""
        return await self.loops.poll_once()

    async def flush_outbox(self) -> int:
        """Send waiting results and OFD acknowledgements; returns how many the cloud took."""
        return await self.loops.flush_outbox()

    def polling_allowed(self) -> bool:
        """Whether the till polls now: online, not in power saving, no fault stopping it."""
        return self.ctx.polling_allowed()

    # ------------------------------------------------------------------ control actions

    def counter_shift(self) -> dict[str, Any]:
        """The till app's own shift of counter sales (``shift_mode = separate``)."""
        return self.shifts.counter_shift().to_json()

    async def sell(self, total: int, cashier: str = "Кассир") -> dict[str, Any]:
        """A counter sale entered at the till (cash, one item); returns its fiscal data."""
        return (await self.shifts.sell(total, cashier)).to_json()

    async def cash_move(
        self, total: int, cashier: str = "Кассир", *, out: bool = False
    ) -> dict[str, Any]:
        """Cash in (or out, ``out``) at the till: a non-fiscal document for the upload queue."""
        return (await self.shifts.cash_move(total, cashier, out=out)).to_json()

    def upload_queue(self) -> dict[str, Any]:
        """``uploadQueue {size, oldestAt, lastError}`` (``orders-and-backoffice.md`` B7)."""
        return self.cashdocs.queue_state()

    async def correction(
        self, total: int, cashier: str = "Кассир", operation: int = 1
    ) -> dict[str, Any]:
        """A correction receipt (чек коррекции, 17h) for a settlement that was not registered."""
        return (await self.shifts.correction(total, cashier, operation)).to_json()

    async def close_shift(self) -> dict[str, Any] | None:
        """Close the open shift (``shift.close``); ``None`` if none is open."""
        closed = await self.shifts.close()
        return closed.to_json() if closed is not None else None

    async def set_settings(self, **values: Any) -> TillSettings:
        """Change settings (validated), persist them and wake the poll loop."""
        ctx = self.ctx
        ctx.settings.update(**values)
        ctx.state.put(settings=ctx.settings.to_json())
        ctx.wake.set()
        ctx.outbox_wake.set()
        ctx.upload_wake.set()
        return ctx.settings

    async def replace_drive(self, ofd_wait: float = 30.0) -> dict[str, Any]:
        """Close the drive's fiscal mode, put in a new drive and re-register (``fn.replace``)."""
        return (await self.keeper.replace(ofd_wait)).to_json()

    async def save_snapshot(self, path: Path) -> dict[str, Any]:
        """Save the till's whole state (till and drive databases) into directory ``path``."""
        return (await self.keeper.save_snapshot(path)).to_json()

    async def load_snapshot(self, path: Path) -> dict[str, Any]:
        """Replace the till's state with a snapshot taken by :meth:`save_snapshot` and restart."""
        return (await self.keeper.load_snapshot(path)).to_json()

    # ------------------------------------------------------------------ faults

    def inject_fault(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Inject a fault of the catalogue; returns it as listed.

        Raises:
            ConfigError: an unknown fault or a bad parameter; an OFD fault without the OFD
                stand-in in this process.
        """
        return self.fault_control.inject(
            name, count=count, probability=probability, seed=seed, params=params
        ).to_json()

    def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault (or every fault); returns the names cleared."""
        return self.fault_control.clear(name)

    def list_faults(self) -> list[dict[str, Any]]:
        """The faults in force."""
        return [f.to_json() for f in self.fault_control.active()]

    # ------------------------------------------------------------------ state

    async def drive_state(self) -> dict[str, Any]:
        """What the till knows of its drive now, asked over its link (heartbeats)."""
        return await self.views.drive_state()

    def drive_view(self) -> dict[str, Any]:
        """The drive's state read directly from the in-process drive (no commands, no link)."""
        return self.views.drive_view()

    async def heartbeat(self) -> dict[str, Any]:
        """Send the till's state to the cloud; keeps the retail point's settings it answers."""
        return (await self.views.heartbeat()).raw

    def deadlines(self) -> dict[str, datetime | None]:
        """Business times of the drive's next refusals (shift.expires, ofd.block, fn.expires, fn.warning)."""
        return self.views.deadlines()

    async def snapshot_state(self) -> dict[str, Any]:
        """The till's whole state as the control plane publishes it (``kkt/<id>/state``)."""
        return self.views.snapshot().to_json()
