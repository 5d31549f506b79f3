"""What the till answers to the control plane, as typed values with a ``to_json()`` at the edge.

The JSON views are exactly what ``kkt/<id>/state`` and the command answers carry
(``till-protocol.md`` §3); the key names are the wire's, the attributes are Python's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kkt_emulator.till.context import TillSettings
from kkt_emulator.till.faults import ActiveFault

__all__ = [
    "CashDocResult",
    "CorrectionResult",
    "CounterShift",
    "DriveReplaced",
    "OfdBacklog",
    "QueueState",
    "SaleResult",
    "ShiftClosed",
    "SnapshotInfo",
    "TillState",
]


@dataclass(frozen=True, slots=True)
class SaleResult:
    """A counter sale: the drive's shift, the app's shift and the receipt's fiscal data."""

    shift_number: int
    app_shift_number: int
    check_number: int
    fn_doc_number: int
    fn_doc_mark: int

    def to_json(self) -> dict[str, Any]:
        """As the ``sell`` command answers."""
        return {
            "shiftNumber": self.shift_number,
            "appShiftNumber": self.app_shift_number,
            "checkNumber": self.check_number,
            "fnDocNumber": self.fn_doc_number,
            "fnDocMark": self.fn_doc_mark,
        }


@dataclass(frozen=True, slots=True)
class CashDocResult:
    """A document made at the till and queued for upload (``orders-and-backoffice.md`` B13).

    ``sale`` and ``fiscal_info`` are ``None`` for cash in and out (no drive document).
    """

    doc_id: str
    doc_type: str
    sale: SaleResult | None
    fiscal_info: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """As the ``sell``, ``cash.in`` and ``cash.out`` commands answer."""
        return {
            **(self.sale.to_json() if self.sale is not None else {}),
            "id": self.doc_id,
            "docType": self.doc_type,
            "fiscalInfo": self.fiscal_info,
        }


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    """A correction receipt (17h) and its fiscal data."""

    shift_number: int
    check_number: int
    fn_doc_number: int
    fn_doc_mark: int
    total: int
    operation: int

    def to_json(self) -> dict[str, Any]:
        """As the ``correction`` command answers."""
        return {
            "shiftNumber": self.shift_number,
            "checkNumber": self.check_number,
            "fnDocNumber": self.fn_doc_number,
            "fnDocMark": self.fn_doc_mark,
            "total": self.total,
            "operation": self.operation,
        }


@dataclass(frozen=True, slots=True)
class ShiftClosed:
    """A closed shift: the drive's number, the app's Z-report number, the report's FD."""

    shift_number: int
    app_shift_number: int
    fn_doc_number: int

    def to_json(self) -> dict[str, Any]:
        """As the ``shift.close`` command answers (besides ``closed``)."""
        return {
            "shiftNumber": self.shift_number,
            "appShiftNumber": self.app_shift_number,
            "fnDocNumber": self.fn_doc_number,
        }


@dataclass(frozen=True, slots=True)
class DriveReplaced:
    """A drive replacement: the old and new drive serials and the re-registration's FD."""

    old_fn_serial: str
    fn_serial: str
    registration_fd: int

    def to_json(self) -> dict[str, Any]:
        """As the ``fn.replace`` command answers."""
        return {
            "oldFnSerial": self.old_fn_serial,
            "fnSerial": self.fn_serial,
            "registrationFd": self.registration_fd,
        }


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """A snapshot saved or restored: where, and the manifest it carries."""

    path: str
    manifest: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """As the ``snapshot`` and ``restore`` commands answer."""
        return {"path": self.path, **self.manifest}


@dataclass(frozen=True, slots=True)
class CounterShift:
    """The till app's own shift of counter sales (``shift_mode = separate``)."""

    number: int
    open: bool

    def to_json(self) -> dict[str, Any]:
        """As shown under ``counterShift``."""
        return {"number": self.number, "open": self.open}


@dataclass(frozen=True, slots=True)
class OfdBacklog:
    """The OFD backlog and whether it slows the shop's documents (``support-cases.md`` §4)."""

    unsent: int | None
    threshold: int
    slowdown_seconds: float
    slowed: bool

    def to_json(self) -> dict[str, Any]:
        """As shown under ``ofdBacklog``."""
        return {
            "unsent": self.unsent,
            "threshold": self.threshold,
            "slowdownSeconds": self.slowdown_seconds,
            "slowed": self.slowed,
        }


@dataclass(frozen=True, slots=True)
class QueueState:
    """Documents in flight (journal) and reports waiting for the cloud (outbox)."""

    in_flight: int
    outbox: int

    def to_json(self) -> dict[str, Any]:
        """As shown under ``queue``."""
        return {"inFlight": self.in_flight, "outbox": self.outbox}


@dataclass(frozen=True, slots=True)
class TillState:
    """The till's whole state as the control plane publishes it (``kkt/<id>/state``).

    ``drive`` is the in-process drive's view (``StateViews.drive_view``) with the registration
    number, the warning flags' names and the drive's crashes added.
    """

    device_id: str
    kkt_serial: str
    profile: str
    settings: TillSettings
    polling: bool
    last_error: str | None
    drive: dict[str, Any]
    counter_shift: CounterShift | None
    ofd_backlog: OfdBacklog
    queue: QueueState
    counters: dict[str, int]
    faults: tuple[ActiveFault, ...]
    deadlines: dict[str, datetime | None]
    now: datetime
    clock_mode: str
    upload_queue: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON of ``kkt/<id>/state`` (before the agent adds ``fnSerial``)."""
        return {
            "deviceId": self.device_id,
            "kktSerial": self.kkt_serial,
            "profile": self.profile,
            "settings": self.settings.to_json(),
            "polling": self.polling,
            "lastError": self.last_error,
            "drive": self.drive,
            "shift": self.drive.get("shift"),
            "counterShift": self.counter_shift.to_json() if self.counter_shift else None,
            "ofdBacklog": self.ofd_backlog.to_json(),
            "queue": self.queue.to_json(),
            "counters": dict(self.counters),
            "faults": [f.to_json() for f in self.faults],
            "deadlines": {k: v.isoformat() if v else None for k, v in self.deadlines.items()},
            "clock": {"now": self.now.isoformat(), "mode": self.clock_mode},
            "uploadQueue": self.upload_queue,
        }
