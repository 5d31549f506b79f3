"""The drive's persistent state and archived documents, and the storage port the drive writes through.

:class:`DriveState` is everything a real drive keeps in its non-volatile memory apart from the
documents themselves: phase, registration, counters, the open document, the OFD queue. It
serialises to JSON so a store can keep it in one row. Documents are immutable once signed and live
in the store (:class:`ArchivedDocument`); only their OFD acknowledgement changes later.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode

__all__ = [
    "ArchivedDocument",
    "DriveState",
    "DriveStore",
    "MemoryStore",
    "OfdAck",
    "OpenDocument",
    "RegistrationRecord",
    "Totals",
    "UnsentEntry",
]


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _pdt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _pb64(value: str) -> bytes:
    return base64.b64decode(value.encode("ascii"))


@dataclass(slots=True)
class OpenDocument:
    """The document between its «Начать…» command and its final command."""

    kind: int
    started: datetime
    report_type: int = 0
    ffd: int = 0
    tlv: bytes = b""
    tags: set[int] = field(default_factory=set)
    items: int = 0

    def to_json(self) -> dict[str, Any]:
        """Serialise for the store."""
        return {
            "kind": self.kind,
            "started": _dt(self.started),
            "report_type": self.report_type,
            "ffd": self.ffd,
            "tlv": _b64(self.tlv),
            "tags": sorted(self.tags),
            "items": self.items,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenDocument:
        """Deserialise from the store."""
        started = _pdt(data["started"])
        assert started is not None
        return cls(
            kind=data["kind"],
            started=started,
            report_type=data["report_type"],
            ffd=data["ffd"],
            tlv=_pb64(data["tlv"]),
            tags=set(data["tags"]),
            items=data["items"],
        )


@dataclass(slots=True)
class RegistrationRecord:
    """One registration or re-registration report, as 43h/44h/47h return it."""

    fd: int
    fpd: int
    when: datetime
    inn: str
    rnm: str
    tax_systems: int
    mode: int
    ext_flags: int
    ofd_inn: str
    ffd: int
    agent: bool
    excise: bool
    reason: int
    tlv: bytes

    @property
    def internet(self) -> bool:
        """Mode bit 5: the till is registered for settlements on the Internet (fn-protocol.md §6.3)."""
        return bool(self.mode & 0x20)

    @property
    def autonomous(self) -> bool:
        """Mode bit 1: autonomous mode, no OFD."""
        return bool(self.mode & 0x02)

    def to_json(self) -> dict[str, Any]:
        """Serialise for the store."""
        data = asdict(self)
        data["when"] = _dt(self.when)
        data["tlv"] = _b64(self.tlv)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistrationRecord:
        """Deserialise from the store."""
        values = dict(data)
        values["when"] = _pdt(values["when"])
        values["tlv"] = _pb64(values["tlv"])
        return cls(**values)


@dataclass(slots=True)
class UnsentEntry:
    """A document waiting for the OFD's acknowledgement (the drive's 30-day storage)."""

    fd: int
    when: datetime
    size: int


@dataclass(slots=True)
class Totals:
    """Counters by operation type 1..4 (приход, возврат прихода, расход, возврат расхода)."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    sums: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add(self, operation: int, total: int) -> None:
        """Count one receipt of ``operation`` (1..4) with ``total`` kopecks."""
        self.counts[operation - 1] += 1
        self.sums[operation - 1] += total


@dataclass(slots=True)
class DriveState:
    """Everything the drive keeps between commands, except the archived documents."""

    phase: int = 0x01
    ffd_in_use: int = 0
    registrations: list[RegistrationRecord] = field(default_factory=list)
    last_fd: int = 0
    last_doc_time: datetime | None = None
    activation: datetime | None = None
    expiry: date | None = None
    shift_open: bool = False
    shift_number: int = 0
    shift_opened_at: datetime | None = None
    receipts_in_shift: int = 0
    fds_in_shift: int = 0
    shift_totals: Totals = field(default_factory=Totals)
    lifetime_totals: Totals = field(default_factory=Totals)
    open_doc: OpenDocument | None = None
    transport: bool = False
    reading: bool = False
    waiting_ack: bool = False
    unsent: list[UnsentEntry] = field(default_factory=list)
    ofd_flags: int = 0
    last_errors: list[int] = field(default_factory=list)
    doc_cursor: list[int] | None = None
    reg_cursor: int | None = None

    _unsent_bytes: int | None = field(default=None, repr=False, compare=False)

    @property
    def unsent_bytes(self) -> int:
        """Bytes the unsent documents take in the 30-day OFD storage (cached; O(1) per document)."""
        if self._unsent_bytes is None:
            self._unsent_bytes = sum(u.size for u in self.unsent)
        return self._unsent_bytes

    def push_unsent(self, entry: UnsentEntry) -> None:
        """Queue a signed document for the OFD."""
        self.unsent.append(entry)
        self._unsent_bytes = self.unsent_bytes + entry.size

    def pop_unsent(self) -> UnsentEntry:
        """Remove the acknowledged head of the OFD queue."""
        entry = self.unsent.pop(0)
        self._unsent_bytes = self.unsent_bytes - entry.size
        return entry

    @property
    def registration(self) -> RegistrationRecord | None:
        """The registration in force (the latest report)."""
        return self.registrations[-1] if self.registrations else None

    def to_json(self) -> dict[str, Any]:
        """Serialise for the store."""
        return {
            "phase": self.phase,
            "ffd_in_use": self.ffd_in_use,
            "registrations": [r.to_json() for r in self.registrations],
            "last_fd": self.last_fd,
            "last_doc_time": _dt(self.last_doc_time),
            "activation": _dt(self.activation),
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "shift_open": self.shift_open,
            "shift_number": self.shift_number,
            "shift_opened_at": _dt(self.shift_opened_at),
            "receipts_in_shift": self.receipts_in_shift,
            "fds_in_shift": self.fds_in_shift,
            "shift_totals": asdict(self.shift_totals),
            "lifetime_totals": asdict(self.lifetime_totals),
            "open_doc": self.open_doc.to_json() if self.open_doc else None,
            "transport": self.transport,
            "reading": self.reading,
            "waiting_ack": self.waiting_ack,
            "unsent": [[u.fd, _dt(u.when), u.size] for u in self.unsent],
            "ofd_flags": self.ofd_flags,
            "last_errors": self.last_errors,
            "doc_cursor": self.doc_cursor,
            "reg_cursor": self.reg_cursor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriveState:
        """Deserialise from the store."""
        state = cls()
        state.phase = data["phase"]
        state.ffd_in_use = data["ffd_in_use"]
        state.registrations = [RegistrationRecord.from_json(r) for r in data["registrations"]]
        state.last_fd = data["last_fd"]
        state.last_doc_time = _pdt(data["last_doc_time"])
        state.activation = _pdt(data["activation"])
        state.expiry = date.fromisoformat(data["expiry"]) if data["expiry"] else None
        state.shift_open = data["shift_open"]
        state.shift_number = data["shift_number"]
        state.shift_opened_at = _pdt(data["shift_opened_at"])
        state.receipts_in_shift = data["receipts_in_shift"]
        state.fds_in_shift = data["fds_in_shift"]
        state.shift_totals = Totals(**data["shift_totals"])
        state.lifetime_totals = Totals(**data["lifetime_totals"])
        state.open_doc = OpenDocument.from_json(data["open_doc"]) if data["open_doc"] else None
        state.transport = data["transport"]
        state.reading = data["reading"]
        state.waiting_ack = data["waiting_ack"]
        unsent = []
        for fd, when, size in data["unsent"]:
            parsed = _pdt(when)
            assert parsed is not None
            unsent.append(UnsentEntry(fd, parsed, size))
        state.unsent = unsent
        state.ofd_flags = data["ofd_flags"]
        state.last_errors = list(data["last_errors"])
        state.doc_cursor = data["doc_cursor"]
        state.reg_cursor = data["reg_cursor"]
        return state


@dataclass(frozen=True, slots=True)
class OfdAck:
    """The OFD's acknowledgement of one fiscal document, as 41h returns it."""

    fd: int
    when: datetime
    operator_sign: bytes
    ofd_code: int


@dataclass(frozen=True, slots=True)
class ArchivedDocument:
    """A signed fiscal document in the drive's archive.

    ``tlv`` is the document's top-level TLVs in archive order (1077 included); ``details`` holds
    the type-specific fields of the 40h answer.
    """

    fd: int
    doc_code: int
    when: datetime
    fpd: int
    tlv: bytes
    details: dict[str, Any]

    def to_row(self) -> tuple[int, int, str, int, bytes, dict[str, Any]]:
        """The values a store keeps."""
        return (self.fd, self.doc_code, self.when.isoformat(), self.fpd, self.tlv, self.details)


class DriveStore(Protocol):
    """Where a drive keeps its state and archive: the port between the pure drive and storage."""

    def load_state(self) -> DriveState | None:
        """The saved state, or ``None`` for a new drive."""

    def get_document(self, fd: int) -> ArchivedDocument | None:
        """One archived document."""

    def get_ack(self, fd: int) -> OfdAck | None:
        """The OFD acknowledgement of one document."""

    def document_count(self) -> int:
        """How many documents the archive holds."""

    def commit(
        self,
        state: DriveState,
        documents: tuple[ArchivedDocument, ...] = (),
        acks: tuple[OfdAck, ...] = (),
    ) -> None:
        """Save the state with new documents and acknowledgements, all or nothing.

        Raises:
            DriveError: 03h (drive failure) if the write is refused — a document number already
                archived, an acknowledgement of a document not archived, storage failure — in which
                case nothing of it is saved.
        """

    def wipe(self) -> None:
        """Erase everything (the debug-firmware reset 60h)."""


class MemoryStore:
    """A :class:`DriveStore` in memory, for pure tests and throw-away drives."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None
        self.documents: dict[int, ArchivedDocument] = {}
        self.acks: dict[int, OfdAck] = {}
        self.commits = 0

    def load_state(self) -> DriveState | None:
        """The saved state, or ``None``."""
        return DriveState.from_json(self.state) if self.state is not None else None

    def get_document(self, fd: int) -> ArchivedDocument | None:
        """One archived document."""
        return self.documents.get(fd)

    def get_ack(self, fd: int) -> OfdAck | None:
        """One acknowledgement."""
        return self.acks.get(fd)

    def document_count(self) -> int:
        """How many documents are archived."""
        return len(self.documents)

    def commit(
        self,
        state: DriveState,
        documents: tuple[ArchivedDocument, ...] = (),
        acks: tuple[OfdAck, ...] = (),
    ) -> None:
        """Keep a JSON copy of the state (so later mutations do not leak in) and the new rows.

        Raises:
            DriveError: 03h for a document number already archived or an acknowledgement of a
                document not archived (what the SQLite archive's keys refuse); nothing is saved.
        """
        fds = [doc.fd for doc in documents]
        clash = sorted(fd for fd in fds if fd in self.documents)
        if clash or len(set(fds)) != len(fds):
            raise DriveError(
                ResultCode.FN_FAILURE, detail=f"archive write failed: documents {fds} exist"
            )
        orphans = sorted(a.fd for a in acks if a.fd not in self.documents and a.fd not in fds)
        if orphans:
            raise DriveError(
                ResultCode.FN_FAILURE,
                detail=f"archive write failed: acknowledgements of unknown documents {orphans}",
            )
        self.state = state.to_json()
        for doc in documents:
            self.documents[doc.fd] = doc
        for ack in acks:
            self.acks[ack.fd] = ack
        self.commits += 1

    def wipe(self) -> None:
        """Erase everything."""
        self.state = None
        self.documents.clear()
        self.acks.clear()
