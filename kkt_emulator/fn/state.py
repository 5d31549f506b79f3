"""The drive's persistent state and archived documents, and the storage port the drive writes through.

:class:`DriveState` is everything a real drive keeps in its non-volatile memory apart from the
documents themselves: phase, registration, counters, the open document, the OFD queue. It
serialises to JSON in three parts, so a store rewrites only what a command changed: the small
:meth:`DriveState.core_json` (counters, flags, the open document), the registration reports
(immutable once signed, appended only) and the OFD queue (:class:`UnsentEntry`, immutable, changed
only at its ends: pushed at the tail when a document is signed, popped at the head when the OFD
acknowledges it). Documents are immutable once signed and live in the store
(:class:`ArchivedDocument`); only their OFD acknowledgement changes later.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode

if TYPE_CHECKING:
    from kkt_emulator.fn.tlv import Tlv

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
    "queue_change",
]


_ISO: dict[datetime, str] = {}


def _dt(value: datetime | None) -> str | None:
    # Every commit serialises the same few times (the last document, the shift opening, the
    # open document's start): each is formatted once. Equal datetimes of different offsets are
    # equal keys with different texts, so the offset is checked before a cached text is used.
    if value is None:
        return None
    text = _ISO.get(value)
    if text is None or value.utcoffset() != _OFFSETS.get(text):
        text = value.isoformat()
        if len(_ISO) >= 256:
            _ISO.clear()
            _OFFSETS.clear()
        _ISO[value] = text
        _OFFSETS[text] = value.utcoffset()
    return text


_OFFSETS: dict[str, timedelta | None] = {}


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
    parsed: tuple[bytes, list[Tlv]] | None = field(default=None, compare=False, repr=False)
    """``(tlv, its top-level TLVs)`` as 07h parsed them, valid while ``tlv`` is that same object (D108).

    Not saved: a restored document parses its data again (``DriveCore._received``).
    """

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


@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    """One registration or re-registration report, as 43h/44h/47h return it (immutable once signed)."""

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
        return {
            "fd": self.fd,
            "fpd": self.fpd,
            "when": _dt(self.when),
            "inn": self.inn,
            "rnm": self.rnm,
            "tax_systems": self.tax_systems,
            "mode": self.mode,
            "ext_flags": self.ext_flags,
            "ofd_inn": self.ofd_inn,
            "ffd": self.ffd,
            "agent": self.agent,
            "excise": self.excise,
            "reason": self.reason,
            "tlv": _b64(self.tlv),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegistrationRecord:
        """Deserialise from the store."""
        values = dict(data)
        values["when"] = _pdt(values["when"])
        values["tlv"] = _pb64(values["tlv"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class UnsentEntry:
    """A document waiting for the OFD's acknowledgement (the drive's 30-day storage)."""

    fd: int
    when: datetime
    size: int

    def to_json(self) -> list[Any]:
        """Serialise for the store: ``[fd, when, size]``."""
        return [self.fd, _dt(self.when), self.size]

    @classmethod
    def from_json(cls, data: list[Any]) -> UnsentEntry:
        """Deserialise from the store."""
        fd, when, size = data
        parsed = _pdt(when)
        assert parsed is not None
        return cls(fd, parsed, size)


@dataclass(slots=True)
class Totals:
    """Counters by operation type 1..4 (приход, возврат прихода, расход, возврат расхода)."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    sums: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def add(self, operation: int, total: int) -> None:
        """Count one receipt of ``operation`` (1..4) with ``total`` kopecks."""
        self.counts[operation - 1] += 1
        self.sums[operation - 1] += total

    def to_json(self) -> dict[str, list[int]]:
        """Serialise for the store (copies, so later counting does not leak into a saved state)."""
        return {"counts": list(self.counts), "sums": list(self.sums)}


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
        # The total before the entry joins: with no cached total yet, unsent_bytes sums the queue,
        # and summing after the append counted the new entry twice.
        total = self.unsent_bytes + entry.size
        self.unsent.append(entry)
        self._unsent_bytes = total

    def pop_unsent(self) -> UnsentEntry:
        """Remove the acknowledged head of the OFD queue."""
        total = self.unsent_bytes  # before the pop, for the same reason as in push_unsent
        entry = self.unsent.pop(0)
        self._unsent_bytes = total - entry.size
        return entry

    @property
    def registration(self) -> RegistrationRecord | None:
        """The registration in force (the latest report)."""
        return self.registrations[-1] if self.registrations else None

    def to_json(self) -> dict[str, Any]:
        """Serialise the whole state (the core, the registrations and the OFD queue) in one dict."""
        return {
            **self.core_json(),
            "registrations": [r.to_json() for r in self.registrations],
            "unsent": [u.to_json() for u in self.unsent],
        }

    def core_json(self) -> dict[str, Any]:
        """Serialise everything but the registrations and the OFD queue (see the module docstring).

        Its size does not grow with the archive or the queue, so a store can write it on every
        command. Lists are copies: a later command never changes a saved dict.
        """
        open_doc = self.open_doc
        return {
            "phase": self.phase,
            "ffd_in_use": self.ffd_in_use,
            "last_fd": self.last_fd,
            "last_doc_time": _dt(self.last_doc_time),
            "activation": _dt(self.activation),
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "shift_open": self.shift_open,
            "shift_number": self.shift_number,
            "shift_opened_at": _dt(self.shift_opened_at),
            "receipts_in_shift": self.receipts_in_shift,
            "fds_in_shift": self.fds_in_shift,
            "shift_totals": self.shift_totals.to_json(),
            "lifetime_totals": self.lifetime_totals.to_json(),
            "open_doc": open_doc.to_json() if open_doc is not None else None,
            "transport": self.transport,
            "reading": self.reading,
            "waiting_ack": self.waiting_ack,
            "ofd_flags": self.ofd_flags,
            "last_errors": list(self.last_errors),
            "doc_cursor": list(self.doc_cursor) if self.doc_cursor is not None else None,
            "reg_cursor": self.reg_cursor,
        }

    @classmethod
    def from_json(
        cls,
        data: dict[str, Any],
        registrations: list[RegistrationRecord] | None = None,
        unsent: list[UnsentEntry] | None = None,
    ) -> DriveState:
        """Deserialise from the store.

        ``data`` is a whole :meth:`to_json` dict, or a :meth:`core_json` dict with the
        registrations and the OFD queue given apart.
        """
        state = cls()
        state.phase = data["phase"]
        state.ffd_in_use = data["ffd_in_use"]
        state.registrations = (
            list(registrations)
            if registrations is not None
            else [RegistrationRecord.from_json(r) for r in data["registrations"]]
        )
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
        state.unsent = (
            list(unsent)
            if unsent is not None
            else [UnsentEntry.from_json(u) for u in data["unsent"]]
        )
        state.ofd_flags = data["ofd_flags"]
        state.last_errors = list(data["last_errors"])
        cursor = data["doc_cursor"]
        state.doc_cursor = list(cursor) if cursor is not None else None
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

        A store may write only what changed since its last commit (:func:`queue_change` finds
        what changed in the OFD queue), and must make a commit that holds documents or
        acknowledgements survive a power loss before it returns; a commit of the state alone
        needs only to survive a process crash (fn-protocol.md §13, item 11).

        Raises:
            DriveError: 03h (drive failure) if the write is refused — a document number already
                archived, an acknowledgement of a document not archived, storage failure — in which
                case nothing of it is saved.
        """

    def wipe(self) -> None:
        """Erase everything (the debug-firmware reset 60h)."""


def queue_change(
    saved: Sequence[UnsentEntry], current: Sequence[UnsentEntry]
) -> tuple[int, Sequence[UnsentEntry]] | None:
    """How the OFD queue changed since a store saved it: ``(popped, pushed)``, or ``None``.

    ``popped`` entries left the head of ``saved`` and ``pushed`` joined the tail: the only ways
    the drive changes its queue (:meth:`DriveState.push_unsent`, :meth:`DriveState.pop_unsent`),
    so a store writes only those instead of the whole 30-day queue on every command. Entries are
    compared by identity (they are immutable); the middle of the queue is taken as unchanged when
    both ends of what was kept are the same objects. ``None`` means the queue changed otherwise
    (a restored state, a test that built one) and the store must rewrite it whole. Costs O(popped
    + pushed), not O(queue).
    """
    if not current or not saved:
        return len(saved), current
    head = current[0]
    popped = 0
    n = len(saved)
    while popped < n and saved[popped] is not head:
        popped += 1
    if popped == n:
        # Nothing saved is still queued: drop it all, write all that is queued now.
        return n, current
    kept = n - popped
    if kept > len(current) or current[kept - 1] is not saved[-1]:
        return None
    return popped, current[kept:]


class MemoryStore:
    """A :class:`DriveStore` in memory, for pure tests and throw-away drives.

    Like the SQLite archive it keeps the state in its three parts (:meth:`DriveState.core_json`,
    the registrations, the OFD queue), so a command costs the same whatever the archive holds.
    """

    def __init__(self) -> None:
        self._core: dict[str, Any] | None = None
        self._registrations: list[RegistrationRecord] = []
        self._unsent: deque[UnsentEntry] = deque()
        self.documents: dict[int, ArchivedDocument] = {}
        self.acks: dict[int, OfdAck] = {}
        self.commits = 0

    @property
    def state(self) -> dict[str, Any] | None:
        """The saved state as one :meth:`DriveState.to_json` dict, or ``None``."""
        if self._core is None:
            return None
        return {
            **self._core,
            "registrations": [r.to_json() for r in self._registrations],
            "unsent": [u.to_json() for u in self._unsent],
        }

    def load_state(self) -> DriveState | None:
        """The saved state, or ``None``."""
        if self._core is None:
            return None
        return DriveState.from_json(self._core, list(self._registrations), list(self._unsent))

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
        """Keep a copy of the state (so later mutations do not leak in) and the new rows.

        Raises:
            DriveError: 03h for a document number already archived or an acknowledgement of a
                document not archived (what the SQLite archive's keys refuse); nothing is saved.
        """
        if documents:
            fds = [doc.fd for doc in documents]
            clash = sorted(fd for fd in fds if fd in self.documents)
            if clash or len(set(fds)) != len(fds):
                raise DriveError(
                    ResultCode.FN_FAILURE, detail=f"archive write failed: documents {fds} exist"
                )
        if acks:
            new = {doc.fd for doc in documents}
            orphans = sorted(a.fd for a in acks if a.fd not in self.documents and a.fd not in new)
            if orphans:
                raise DriveError(
                    ResultCode.FN_FAILURE,
                    detail=f"archive write failed: acknowledgements of unknown documents {orphans}",
                )
        self._core = state.core_json()
        if state.registrations[: len(self._registrations)] != self._registrations:
            self._registrations = []
        self._registrations.extend(state.registrations[len(self._registrations) :])
        change = queue_change(self._unsent, state.unsent)
        if change is None:
            self._unsent = deque(state.unsent)
        else:
            popped, pushed = change
            for _ in range(popped):
                self._unsent.popleft()
            self._unsent.extend(pushed)
        for doc in documents:
            self.documents[doc.fd] = doc
        for ack in acks:
            self.acks[ack.fd] = ack
        self.commits += 1

    def wipe(self) -> None:
        """Erase everything."""
        self._core = None
        self._registrations = []
        self._unsent.clear()
        self.documents.clear()
        self.acks.clear()
