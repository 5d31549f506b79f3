"""What every part of a till shares: its configuration, settings, identity and live resources.

:class:`TillContext` is the one mutable record the till's collaborators (faults, shifts,
fiscalisation, loops, views, drive keeping) are built on: the store and the drive client change
when the drive is replaced, a snapshot is loaded or the till restarts after a crash, and every part
must see the new ones. It holds no behaviour beyond the accessors that say «not started».
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kkt_emulator.errors import ConfigError, EmulatorError
from kkt_emulator.logging import get_logger
from kkt_emulator.sqlite import IDLE_SECONDS
from kkt_emulator.till.faults import ActiveFault, FaultName

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from kkt_emulator.clock import Clock
    from kkt_emulator.fn.drive import FiscalDrive
    from kkt_emulator.fn.endpoint import DriveEndpoint
    from kkt_emulator.fnio.client import FnClient
    from kkt_emulator.profiles import FirmwareProfile
    from kkt_emulator.sqlite import IdleConnection
    from kkt_emulator.till.ports import OfdFaults
    from kkt_emulator.till.store import TillStore

__all__ = ["Listener", "SimulatedCrash", "TillConfig", "TillContext", "TillSettings"]

Listener = Callable[[str, dict[str, Any]], None]
"""Called as ``listener(event, data)`` for every event of a till."""

_log = get_logger(__name__)


class SimulatedCrash(EmulatorError):  # noqa: N818 - it is an event, not an error of the caller
    """Raised at a crash point in-process (``till.crash`` fault); the till drops its state."""


@dataclass(slots=True)
class TillSettings:
    """Settings a till keeps with its drive (``kkt-emulator set …``)."""

    power_saving: bool = False
    online: bool = True
    poll_interval: float = 5.0
    long_poll: float = 0.0
    shift_mode: str = "shared"
    max_docs: int = 10
    orders: bool = False  # sync the point's orders (orders-and-backoffice.md O7, D90)

    def update(self, **values: Any) -> None:
        """Change settings, validating each one.

        Raises:
            ConfigError: an unknown setting or a bad value.
        """
        for key, raw in values.items():
            value = raw
            if key in ("power_saving", "online", "orders"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be true or false")
            elif key in ("poll_interval", "long_poll"):
                if (
                    not isinstance(value, int | float)
                    or isinstance(value, bool)
                    or value < 0
                    or value > 3600
                ):
                    raise ConfigError(f"{key} must be seconds between 0 and 3600")
                if key == "long_poll" and value > 30:
                    raise ConfigError("long_poll must be at most 30 seconds")
                value = float(value)
            elif key == "shift_mode":
                if value not in ("shared", "separate"):
                    raise ConfigError("shift_mode must be shared or separate")
            elif key == "max_docs":
                if not isinstance(value, int) or not 1 <= value <= 100:
                    raise ConfigError("max_docs must be 1..100")
            else:
                raise ConfigError(f"unknown setting {key!r}")
            setattr(self, key, value)

    def to_json(self) -> dict[str, Any]:
        """The settings as the state and the ``set`` command's answer show them."""
        return asdict(self)


@dataclass(slots=True)
class TillConfig:
    """How to run one till.

    ``ofd`` is the OFD stand-in of the same process, when there is one: OFD faults act on it
    (see :class:`~kkt_emulator.till.ports.OfdFaults`); ``ofd_address`` is where the till sends
    its documents. ``fleet_watch`` lets a long-polling till wait on its process's fleet watch
    (D69); off, it holds its own long poll, which answers a document one exchange sooner (D109).
    ``ofd_gate``, when given, holds the OFD loop until it is set: a fleet opens it once every
    till has started (D119), so the drives' first documents do not queue behind start-up. While
    it holds, the till's two databases stay open (:meth:`TillContext.holds_stores_open`) until
    the first OFD round, which would otherwise reopen both.
    """

    profile: FirmwareProfile
    state_dir: Path
    server: str
    login: str
    password: str
    retail_point_id: str | None = None
    ofd_address: str | None = None
    serial_link: Path | None = None
    timing: str = "fast"
    utc_offset: timedelta = timedelta(hours=3)
    settings: dict[str, Any] = field(default_factory=dict)
    drive_timeout: float = 5.0
    ofd: OfdFaults | None = None
    fleet_watch: bool = True
    ofd_gate: asyncio.Event | None = None


def _release_idle(connection: IdleConnection) -> None:
    if connection.idle is None:
        connection.idle = IDLE_SECONDS
        connection.connection()  # arms the idle timer


class TillContext:
    """The shared, mutable part of one till.

    Args:
        config: how to run the till.
        clock: the clock of its process.
    """

    def __init__(self, config: TillConfig, clock: Clock) -> None:
        self.config = config
        self.profile = config.profile
        self.clock = clock
        self.state_dir = config.state_dir
        self.db_path = self.state_dir / "till.sqlite3"
        self.drive_path = self.state_dir / "drive.sqlite3"
        self.store: TillStore | None = None
        self.drive: FiscalDrive | None = None
        self.endpoint: DriveEndpoint | None = None
        self.client: FnClient | None = None
        self.settings = TillSettings()
        self.point_settings: dict[str, Any] = {}
        self.kkt_serial = ""
        self.fn_serial = ""
        self.rnm = ""
        self.device_id = ""
        self.faults: dict[FaultName, ActiveFault] = {}
        self.listeners: list[Listener] = []
        self.log: FilteringBoundLogger = get_logger()
        self.wake = asyncio.Event()
        """Set to cut the poll and outbox loops' pause short."""
        self.held_open: list[IdleConnection] = []
        """Databases kept open until the first OFD round (:meth:`release_stores`, D119)."""
        self.ofd_wake = asyncio.Event()
        """Set to cut the OFD loop's pause short (a new signed document)."""
        self.outbox_wake = asyncio.Event()
        """Set to cut the outbox loop's pause short (a report was queued)."""
        self.upload_wake = asyncio.Event()
        """Set to wake the upload loop: a cash document was queued, a fault or setting changed."""
        self.stopping = asyncio.Event()
        self.last_error: str | None = None
        self.counters = {"fiscalized": 0, "failed": 0, "polls": 0, "backlogPaced": 0}
        self.backlog_slowed = False
        """Whether documents wait for the OFD backlog now (``support-cases.md`` §4)."""

    @property
    def fn(self) -> FnClient:
        """The drive client (only while started)."""
        if self.client is None:
            raise ConfigError("the till is not started")
        return self.client

    @property
    def state(self) -> TillStore:
        """The till's store (only while started)."""
        if self.store is None:
            raise ConfigError("the till is not started")
        return self.store

    def local_now(self) -> datetime:
        """The drive's wall-clock time for DATE_TIME fields (minute resolution on the wire)."""
        return (self.clock.now().astimezone(UTC) + self.config.utc_offset).replace(
            tzinfo=None, microsecond=0
        )

    def has_fault(self, name: FaultName) -> bool:
        """Whether ``name`` is in force."""
        return name in self.faults

    def holds_stores_open(self) -> bool:
        """Whether databases opened now stay open until the first OFD round (D119)."""
        gate = self.config.ofd_gate
        return bool(self.config.ofd_address) and gate is not None and not gate.is_set()

    def hold_open(self, connection: IdleConnection) -> None:
        """Keep ``connection`` (opened with ``idle=None``) open until :meth:`release_stores`."""
        self.held_open.append(connection)

    def trim_held(self) -> None:
        """Free the page caches of the databases held open (D133); they stay open (D119).

        A held till has made its start-up writes and reads nothing more until its first OFD
        round: the cache SQLite filled meanwhile would sit unused in each of a fleet's 2,000
        connections, and the round reads the few pages it needs again.
        """
        for connection in self.held_open:
            if connection.is_open:
                connection.connection().execute("PRAGMA shrink_memory")

    def release_stores(self) -> None:
        """Let the databases held open close when idle again (D71, D119)."""
        held, self.held_open = self.held_open, []
        for connection in held:
            _release_idle(connection)

    def polling_allowed(self) -> bool:
        """Whether the till polls now: online, not in power saving, no fault stopping it."""
        return (
            self.settings.online
            and not self.settings.power_saving
            and FaultName.TILL_OFFLINE not in self.faults
            and FaultName.TILL_POWER_SAVING not in self.faults
        )

    def online(self) -> bool:
        """Whether the till has a network: the setting, and no ``till.offline`` fault."""
        return self.settings.online and FaultName.TILL_OFFLINE not in self.faults

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Publish an event to every listener (the MQTT agent subscribes).

        A listener that raises is logged with its traceback and the event; the others still hear
        the event and the till goes on.
        """
        payload = dict(data)
        for listener in list(self.listeners):
            try:
                listener(event, payload)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop the till: logged
                _log.warning(
                    "till_listener_failed",
                    event_name=event,
                    listener=repr(listener),
                    device_id=self.device_id,
                    fn_serial=self.fn_serial,
                    exc_info=True,
                )

    def wake_all(self) -> None:
        """Wake every loop (a setting or a fault changed what they may do)."""
        self.wake.set()
        self.ofd_wake.set()
        self.outbox_wake.set()
        self.upload_wake.set()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` (pacing) or until :attr:`wake` is set."""
        self.wake.clear()
        with contextlib.suppress(TimeoutError):  # the pause simply ran out
            async with asyncio.timeout(max(seconds, 0.0)):  # not wait_for: see ofd_pause
                await self.wake.wait()

    async def outbox_pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (pacing) or until :attr:`outbox_wake` is set; returns whether woken.

        The event is not cleared here: the outbox loop clears it before each flush, so a report
        queued while a flush runs is not missed.
        """
        try:
            async with asyncio.timeout(max(seconds, 0.0)):  # not wait_for: see ofd_pause
                await self.outbox_wake.wait()
        except TimeoutError:
            return False
        return True

    async def ofd_pause(self, seconds: float) -> None:
        """Wait ``seconds`` (pacing) or until :attr:`ofd_wake` is set.

        The event is not cleared here: the OFD loop clears it before each round, so a wake-up
        that comes during a round (a new document, a cleared ``ofd.down``) is not lost to a long
        back-off.

        ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` swallows a
        cancellation that arrives as the event is set, so a stopping till slept out the pause.
        """
        with contextlib.suppress(TimeoutError):  # the pause simply ran out
            async with asyncio.timeout(max(seconds, 0.0)):
                await self.ofd_wake.wait()
