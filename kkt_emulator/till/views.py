"""What a till shows of itself: the drive over its link, the drive in-process, the whole state.

* :meth:`StateViews.drive_state` asks the drive over the till's own link (heartbeats);
* :meth:`StateViews.drive_view` reads the in-process drive directly (no commands, no link), so
  watching a till neither waits on a dead link nor uses up a drive-link fault's strikes;
* :meth:`StateViews.snapshot` is the state the control plane publishes (``kkt/<id>/state``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kkt_emulator.errors import DriveError, TransportError
from kkt_emulator.fn.codes import Command, Phase, WarningFlag
from kkt_emulator.till.cloud_link import CloudLink, Heartbeat
from kkt_emulator.till.context import TillContext, TillSettings
from kkt_emulator.till.fault_control import FaultControl
from kkt_emulator.till.faults import FaultName
from kkt_emulator.till.results import OfdBacklog, QueueState, TillState
from kkt_emulator.till.shifts import Shifts

__all__ = [
    "DEADLINE_NAMES",
    "HEARTBEAT_EVERY",
    "HEARTBEAT_IDLE",
    "DriveCrashes",
    "StateViews",
    "warning_names",
]

DEADLINE_NAMES = ("shift.expires", "ofd.block", "fn.expires", "fn.warning")
HEARTBEAT_EVERY = 5.0
"""Seconds (pacing) after which a poll sends a heartbeat though nothing it reports changed: the
real app's poll interval, so a till polling every 5 s or slower still heartbeats every poll."""
HEARTBEAT_IDLE = 600.0
"""Seconds (pacing) after which a long-polling till whose state did not change at all sends a
heartbeat anyway (D68): its long poll tells the cloud it is alive (D67), so this is only a safety
net for what the heartbeat carries beyond its change signature."""


def warning_names(flags: int) -> list[str]:
    """The names of the drive's warning flags set in ``flags``."""
    return [flag.name or "" for flag in WarningFlag if flags & flag]


@dataclass(frozen=True, slots=True)
class DriveCrashes:
    """Internal errors of the drive's code, each answered as 03h «Отказ ФН» (never hidden).

    Attributes:
        count: how many commands crashed the drive's code since the drive was put in.
        last: the last crash as ``Type: message``, or ``None``.
    """

    count: int
    last: str | None

    def to_json(self) -> dict[str, Any]:
        """As shown under ``drive.crashes`` in the state."""
        return {"count": self.count, "last": self.last}


@dataclass(frozen=True, slots=True)
class PendingHeartbeat:
    """A heartbeat's body and what it was made from, until the cloud has taken it."""

    body: dict[str, Any]
    signature: tuple[Any, ...] | None
    counts: tuple[Any, ...] | None
    power_saving: bool


class StateViews:
    """Builds the views of one till's state.

    Args:
        ctx: the till's shared state.
        shifts: the counter's shift.
        faults: the faults in force.
        link: the cloud link (heartbeats).
    """

    def __init__(
        self, ctx: TillContext, shifts: Shifts, faults: FaultControl, link: CloudLink
    ) -> None:
        self.ctx = ctx
        self.shifts = shifts
        self.faults = faults
        self.link = link
        self._sent_at: float | None = None
        self._sent_signature: tuple[Any, ...] | None = None
        self._sent_counts: tuple[Any, ...] | None = None
        self._sent_power_saving: bool | None = None
        self._carried: Heartbeat | None = None

    async def drive_state(self) -> dict[str, Any]:
        """What the till knows of its drive now (for heartbeats and the control plane)."""
        ctx = self.ctx
        fn = ctx.fn
        try:
            status = await fn.status()
            ofd = await fn.call(Command.OFD_STATUS)
            shift = (
                await fn.call(Command.SHIFT_PARAMS)
                if status.phase in (Phase.FISCAL, Phase.POST_FISCAL)
                else None
            )
            free = await fn.call(Command.FREE_RESOURCES)
            expiry = await fn.call(Command.EXPIRY) if status.phase != Phase.READY else None
        except (DriveError, TransportError) as exc:
            return {"ok": False, "error": str(exc), "serial": ctx.fn_serial}
        oldest = None
        if ofd.unsent and any(ofd.first_time):
            raw = ofd.first_time
            oldest = datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4]).isoformat()  # noqa: DTZ001 - drive wall time
        return {
            "ok": status.phase == Phase.FISCAL,
            "serial": ctx.fn_serial,
            "phase": status.phase,
            "warnings": status.warnings,
            "lastFd": status.last_fd,
            "unsent": ofd.unsent,
            "oldestUnsent": oldest,
            "documentsLeft": free.documents_left,
            "expiry": expiry.expiry.isoformat() if expiry is not None else None,
            "shift": {
                "open": bool(shift.shift_open),
                "number": shift.shift_number,
                "receipts": shift.receipt_number,
                "openedAt": ctx.state.get("shift_opened_at"),
            }
            if shift is not None
            else None,
        }

    def drive_view(self) -> dict[str, Any]:
        """The drive's state read directly from the in-process drive (no commands, no link)."""
        ctx = self.ctx
        drive = ctx.drive
        if drive is None:
            return {"ok": False, "serial": ctx.fn_serial}
        s = drive.state
        now = ctx.clock.now()
        oldest = s.unsent[0].when.isoformat() if s.unsent else None
        fiscal = s.phase in (Phase.FISCAL, Phase.POST_FISCAL)
        return {
            "ok": s.phase == Phase.FISCAL and FaultName.FN_DISCONNECTED not in ctx.faults,
            "serial": ctx.fn_serial,
            "phase": s.phase,
            "warnings": drive.warnings(now),
            "lastFd": s.last_fd,
            "unsent": len(s.unsent),
            "oldestUnsent": oldest,
            "documentsLeft": max(0, drive.config.capacity - s.last_fd),
            "expiry": s.expiry.isoformat() if s.expiry else None,
            "shift": {
                "open": s.shift_open,
                "number": s.shift_number,
                "receipts": s.receipts_in_shift,
                "openedAt": s.shift_opened_at.isoformat() if s.shift_opened_at else None,
            }
            if fiscal
            else None,
        }

    def drive_crashes(self) -> DriveCrashes:
        """The drive's crashes, as its endpoint counted them since the drive was put in."""
        endpoint = self.ctx.endpoint
        if endpoint is None:
            return DriveCrashes(count=0, last=None)
        last = endpoint.last_crash
        return DriveCrashes(
            count=endpoint.crash_count,
            last=None if last is None else f"{last.exc_type}: {last.message}",
        )

    def _signature(self) -> tuple[Any, ...] | None:
        """What a heartbeat tells the cloud beyond counts, read in-process; ``None``: unknown.

        Without an in-process drive (a drive on a serial link) the till cannot tell without
        asking the drive, so every poll heartbeats, as before.
        """
        ctx = self.ctx
        if ctx.drive is None:
            return None
        view = self.drive_view()
        shift = view.get("shift") or {}
        return (
            ctx.fn_serial,
            view.get("ok"),
            view.get("phase"),
            view.get("warnings"),
            view.get("expiry"),
            shift.get("open"),
            shift.get("number"),
            ctx.settings.power_saving,
            ctx.settings.online,
            tuple(sorted(ctx.faults)),
        )

    def _counts(self) -> tuple[Any, ...] | None:
        """The counts a heartbeat carries that move with every receipt; ``None``: unknown."""
        drive = self.ctx.drive
        if drive is None:
            return None
        s = drive.state
        cashdocs = self.shifts.cashdocs
        uploads = (cashdocs.queued_count, cashdocs.uploaded) if cashdocs is not None else None
        return (s.last_fd, len(s.unsent), s.receipts_in_shift, uploads)

    def state_changed(self) -> bool:
        """Whether what a heartbeat tells the cloud changed since the last one (or none was sent).

        Without an in-process drive the till cannot tell; then only power saving counts, so a
        till going quiet still reports it once.
        """
        if self._sent_at is None:
            return True
        signature = self._signature()
        if signature is None:
            return self._sent_power_saving != self.ctx.settings.power_saving
        return signature != self._sent_signature

    def heartbeat_in(self) -> float:
        """Seconds (pacing) until the next poll's heartbeat is due though the state is unchanged.

        A till that polls on its timer (``long_poll`` 0, the real till) heartbeats every
        :data:`HEARTBEAT_EVERY`. A long-polling till (D68) heartbeats on a change of its state;
        counts that moved (a receipt, an OFD acknowledgement) are reported once
        :data:`HEARTBEAT_EVERY` has passed since the last heartbeat, and a till where nothing
        moved at all only every :data:`HEARTBEAT_IDLE`.
        """
        if self._sent_at is None:
            return 0.0
        since = self.ctx.clock.monotonic() - self._sent_at
        if self.ctx.settings.long_poll <= 0:
            return HEARTBEAT_EVERY - since
        counts = self._counts()
        if counts is None or counts != self._sent_counts:
            return HEARTBEAT_EVERY - since
        return HEARTBEAT_IDLE - since

    def heartbeat_due(self) -> bool:
        """Whether the next poll sends a heartbeat (store-api.md D64, D68).

        The first poll does; later ones when what the heartbeat tells the cloud changed (drive
        phase, failure, warnings, shift, power saving, online, faults) or when
        :meth:`heartbeat_in` has run out. Counts that move with every receipt (last FD, unsent
        documents) alone do not make one due at once. A till whose drive is on a serial link
        cannot tell a change and heartbeats every poll.
        """
        if self._sent_at is None or self._signature() is None:
            return True
        if self.state_changed():
            return True
        return self.heartbeat_in() <= 0

    async def heartbeat(self) -> Heartbeat:
        """Send the till's state to the cloud; keeps the retail point's settings it answers."""
        beat = await self.heartbeat_body()
        answer = await self.link.heartbeat(beat.body)
        self.heartbeat_sent(beat, answer)
        return answer

    async def heartbeat_body(self) -> PendingHeartbeat:
        """The till's state as a heartbeat tells it, for :meth:`heartbeat` or a bind (D134)."""
        ctx = self.ctx
        signature, counts = self._signature(), self._counts()
        saving = ctx.settings.power_saving
        drive = await self.drive_state()
        body = {
            "fnState": "READY" if drive.get("ok") else "FAILED",
            "fnSerial": ctx.fn_serial,
            "fn": drive,
            "powerSaving": saving,
            "firmwareProfile": ctx.profile.name,
            "appVersion": ctx.profile.app_version,
            # The names of the faults in force, for the cabinet's till page (D101).
            "faults": [fault.value for fault in sorted(ctx.faults)],
        }
        if self.shifts.cashdocs is not None:
            body["uploadQueue"] = self.shifts.cashdocs.queue_state()
        return PendingHeartbeat(body, signature, counts, saving)

    def heartbeat_sent(
        self, beat: PendingHeartbeat, answer: Heartbeat, *, carried: bool = False
    ) -> None:
        """The cloud took ``beat``: keep the point's settings and what the next one compares.

        ``carried``: the bind carried it (D134); the first poll then takes the answer with
        :meth:`take_carried` instead of sending a heartbeat of its own.
        """
        ctx = self.ctx
        ctx.point_settings = answer.settings
        self._sent_at = ctx.clock.monotonic()
        self._sent_signature = beat.signature
        self._sent_counts = beat.counts
        self._sent_power_saving = beat.power_saving
        self._carried = answer if carried else None

    def take_carried(self) -> Heartbeat | None:
        """The answer to the heartbeat a bind carried (D134), once; ``None`` after."""
        answer, self._carried = self._carried, None
        return answer

    def deadlines(self) -> dict[str, datetime | None]:
        """Business times of the drive's next refusals (shift.expires, ofd.block, fn.expires, fn.warning)."""
        if self.ctx.drive is None:
            return dict.fromkeys(DEADLINE_NAMES)
        return self.ctx.drive.deadlines()

    def snapshot(self) -> TillState:
        """The till's whole state as the control plane publishes it (``kkt/<id>/state``).

        The drive is read in-process, not over the till's link: watching the till must neither
        wait on a dead link nor use up the strikes of a drive-link fault meant for the firmware.
        """
        ctx = self.ctx
        started = ctx.store is not None
        drive = self.drive_view()
        quirks = ctx.profile.quirks
        return TillState(
            device_id=ctx.device_id,
            kkt_serial=ctx.kkt_serial,
            profile=ctx.profile.name,
            settings=TillSettings(**ctx.settings.to_json()),
            polling=ctx.polling_allowed(),
            last_error=ctx.last_error,
            drive={
                **drive,
                "rnm": ctx.rnm,
                "warningNames": warning_names(drive.get("warnings", 0)),
                "crashes": self.drive_crashes().to_json(),
            },
            counter_shift=self.shifts.counter_shift() if started else None,
            ofd_backlog=OfdBacklog(
                unsent=drive.get("unsent"),
                threshold=quirks.ofd_backlog_threshold,
                slowdown_seconds=quirks.ofd_backlog_slowdown_s,
                slowed=ctx.backlog_slowed,
            ),
            queue=QueueState(
                in_flight=len(ctx.state.journal_entries()) if started else 0,
                outbox=ctx.state.outbox_size() if started else 0,
            ),
            counters=dict(ctx.counters),
            faults=tuple(self.faults.active()),
            deadlines=self.deadlines(),
            now=ctx.clock.now(),
            clock_mode=ctx.clock.mode,
            upload_queue=self.shifts.cashdocs.queue_state() if self.shifts.cashdocs else None,
        )
