"""The drive's shared core: state, store, time and the rule helpers every command family uses.

:class:`DriveCore` holds what a drive is (its :class:`~kkt_emulator.fn.config.DriveConfig`), what it
remembers (its :class:`~kkt_emulator.fn.state.DriveState` and :class:`DriveStore`) and the
document machinery shared by the command families (checking time and resources, opening, signing
and archiving a document). The command families are mix-ins over it
(:mod:`~kkt_emulator.fn.registration`, :mod:`~kkt_emulator.fn.documents`,
:mod:`~kkt_emulator.fn.ofd`, :mod:`~kkt_emulator.fn.reads`), put together by
:class:`~kkt_emulator.fn.drive.FiscalDrive`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.codes import WarningFlag as W
from kkt_emulator.fn.config import DriveConfig
from kkt_emulator.fn.crash import DriveCrash
from kkt_emulator.fn.rules import FFD_NAMES, FISCAL_PHASES, OFD_WAIT, SHIFT_LENGTH, TIMER_TOLERANCE
from kkt_emulator.fn.signing import drive_secret, fiscal_sign, tag1077_value
from kkt_emulator.fn.state import (
    ArchivedDocument,
    DriveState,
    DriveStore,
    MemoryStore,
    OfdAck,
    OpenDocument,
    RegistrationRecord,
    UnsentEntry,
)
from kkt_emulator.fn.tags import Tag
from kkt_emulator.fn.tlv import (
    Tlv,
    TlvError,
    encode_tlv,
    parse_tlvs,
    tlv_byte,
    tlv_fixed_string,
    tlv_u32,
    tlv_unixtime,
)

__all__ = ["DriveCore", "Handler"]

# The warning bits as plain ints: IntFlag arithmetic costs microseconds, and every answer asks.
_URGENT = int(W.URGENT_REPLACEMENT)
_EXHAUSTION = int(W.RESOURCE_EXHAUSTION)
_MEMORY = int(W.MEMORY_OVERFLOW)
_OFD_TIMEOUT = int(W.OFD_TIMEOUT)
_WARNING_TLVS = (
    (_EXHAUSTION, int(Tag.RESOURCE)),
    (_URGENT, int(Tag.URGENT)),
    (_MEMORY, int(Tag.MEMORY)),
    (_OFD_TIMEOUT, int(Tag.OFD_TIMEOUT)),
)
_WARNING_TLV_BITS = _EXHAUSTION | _URGENT | _MEMORY | _OFD_TIMEOUT

Handler = Callable[[datetime, Any], bytes]
"""A command handler: (drive wall-clock time, parsed request) → answer data."""


class Pending:
    """What a successful command wants committed (a fresh one per command, so kept cheap)."""

    __slots__ = ("acks", "changed", "documents")

    def __init__(self) -> None:
        self.documents: list[ArchivedDocument] = []
        self.acks: list[OfdAck] = []
        self.changed = False


class DriveCore:
    """State, store and shared rule helpers of a drive; the command families build on it.

    Args:
        config: serial number and model limits.
        store: where state and archive live; a fresh :class:`MemoryStore` if omitted. A store that
            already holds a state restores the drive exactly as it was.
    """

    def __init__(self, config: DriveConfig, store: DriveStore | None = None) -> None:
        self.config = config
        self.store: DriveStore = store if store is not None else MemoryStore()
        self.state = self.store.load_state() or DriveState()
        self.secret = drive_secret(config.serial, config.seed)
        self._pending = Pending()
        self._message: bytes | None = None  # the container being read by 22h/23h
        self.forced_result: Callable[[int], DriveError | None] | None = None
        self.forced_warnings = 0
        self.last_crash: DriveCrash | None = None  # set by the endpoint (fn/endpoint.py)
        # The drive's wall-clock time of the last business time asked for: a command asks for it
        # at least twice (execute, then the warning bit of the answer) with the same object.
        self._local_of: tuple[datetime, timedelta, datetime] | None = None
        # The 1041/1037/1018 TLVs that open every document, per (drive, РНМ, ИНН).
        self._heads: dict[tuple[str, str, str], bytes] = {}

    # ------------------------------------------------------------------ entry points

    def warnings(self, now: datetime) -> int:
        """The warning flags byte of 30h at business time ``now``."""
        return self._warnings(self._local(now))

    def local_time(self, now: datetime) -> datetime:
        """The drive's wall-clock time (naive) for business time ``now``."""
        return self._local(now)

    def business_time(self, local: datetime) -> datetime:
        """The business time (aware UTC) for a drive wall-clock time."""
        return (local - self.config.utc_offset).replace(tzinfo=UTC)

    @property
    def ffd_version(self) -> str:
        """The FFD in use ("1.05", "1.1", "1.2"), or the newest supported before registration."""
        code = self.state.ffd_in_use or (4 if self.config.protocol == "fn-1.2" else 1)
        return FFD_NAMES[code]

    def deadlines(self) -> dict[str, datetime | None]:
        """Business times of the drive's next refusals: shift expiry, OFD block, drive expiry."""
        s = self.state
        shift = (
            self.business_time(s.shift_opened_at + SHIFT_LENGTH)
            if s.shift_open and s.shift_opened_at
            else None
        )
        ofd = self.business_time(s.unsent[0].when + OFD_WAIT) if s.unsent else None
        expiry = (
            self.business_time(datetime.combine(s.expiry, datetime.min.time()))
            if s.expiry is not None
            else None
        )
        warning = expiry - timedelta(days=30) if expiry is not None else None
        return {
            "shift.expires": shift,
            "ofd.block": ofd,
            "fn.expires": expiry,
            "fn.warning": warning,
        }

    # ------------------------------------------------------------------ helpers

    def _local(self, now: datetime) -> datetime:
        offset = self.config.utc_offset
        cached = self._local_of
        if cached is not None and cached[0] is now and cached[1] == offset:
            return cached[2]
        local = (now.astimezone(UTC) + offset).replace(tzinfo=None)
        self._local_of = (now, offset, local)
        return local

    def _remember(self, exc: DriveError) -> DriveError:
        self.state.last_errors = ([*self.state.last_errors, exc.code])[-16:]
        return exc

    def _changed(self) -> None:
        self._pending.changed = True

    def _ffd_name(self) -> str:
        return FFD_NAMES.get(self.state.ffd_in_use, "1.05")

    def _warnings(self, local: datetime) -> int:
        s = self.state
        flags = int(self.forced_warnings)
        if s.phase in FISCAL_PHASES and s.expiry is not None:
            days_left = (s.expiry - local.date()).days
            if days_left <= 3:
                flags |= _URGENT
            if days_left <= 30:
                flags |= _EXHAUSTION
        if s.last_fd * 100 >= self.config.capacity * self.config.memory_warning_percent:
            flags |= _MEMORY
        if s.unsent and local - s.unsent[0].when > OFD_WAIT:
            flags |= _OFD_TIMEOUT
        return flags | s.ofd_flags

    def _require_open(self, *kinds: int) -> OpenDocument:
        doc = self.state.open_doc
        if doc is None or doc.kind not in kinds:
            current = f"{doc.kind:02X}h" if doc else "none"
            raise DriveError(R.WRONG_STATE, detail=f"no matching open document (open: {current})")
        return doc

    def _require_no_open(self) -> None:
        if self.state.open_doc is not None:
            raise DriveError(
                R.WRONG_STATE, detail=f"document {self.state.open_doc.kind:02X}h is already open"
            )

    def _check_time(
        self, local: datetime, when: datetime, allowance: timedelta = timedelta(0)
    ) -> None:
        last = self.state.last_doc_time
        if last is not None and when < last - allowance:
            raise DriveError(
                R.BAD_DATETIME,
                detail=f"date {when:%Y-%m-%d %H:%M} is before the last document {last:%Y-%m-%d %H:%M}",
            )
        if self.config.check_timer and abs(when - local) > TIMER_TOLERANCE:
            raise DriveError(
                R.BAD_TIME_DIFFERENCE,
                detail=f"date {when:%Y-%m-%d %H:%M} differs from the drive timer {local:%Y-%m-%d %H:%M} by more than 5 minutes",
            )

    def _check_can_form(self, local: datetime, closing_shift: bool = False) -> None:
        """Resource rules for every command that starts a fiscal document (fn-protocol.md §7, §9).

        An expired drive still closes its shift, since closing the drive needs a closed shift.
        """
        s = self.state
        if not closing_shift and s.expiry is not None and local.date() >= s.expiry:
            raise DriveError(R.RESOURCE_EXHAUSTED, detail=f"the drive expired on {s.expiry}")
        if s.last_fd >= self.config.capacity:
            code = R.ARCHIVE_FULL if self.config.protocol == "fn-2016" else R.STORAGE_EXHAUSTED
            raise DriveError(code, detail=f"archive full ({s.last_fd} documents)")
        registration = s.registration
        autonomous = registration is not None and registration.autonomous
        if not autonomous and s.unsent and local - s.unsent[0].when > OFD_WAIT:
            raise DriveError(
                self.config.ofd_block_code,
                detail=f"document {s.unsent[0].fd} has waited for the OFD since {s.unsent[0].when:%Y-%m-%d %H:%M}",
            )
        if not autonomous and s.unsent_bytes >= self.config.ofd_storage_bytes:
            raise DriveError(R.STORAGE_EXHAUSTED, detail="the 30-day OFD storage is full")

    def _open(self, kind: int, when: datetime, report_type: int = 0, ffd: int = 0) -> None:
        self.state.open_doc = OpenDocument(
            kind=kind, started=when, report_type=report_type, ffd=ffd
        )
        self.state.doc_cursor = None
        self._changed()

    def _shift_expired(self, when: datetime) -> bool:
        s = self.state
        return bool(s.shift_open and s.shift_opened_at and when > s.shift_opened_at + SHIFT_LENGTH)

    def _warning_tlvs(self, local: datetime) -> list[bytes]:
        flags = self._warnings(local)
        out = []
        if flags & _WARNING_TLV_BITS:
            for bit, tag in _WARNING_TLVS:
                if flags & bit:
                    out.append(tlv_byte(tag, 1))
        return out

    def _unsent_tlvs(self) -> list[bytes]:
        s = self.state
        out = [tlv_u32(Tag.UNSENT_COUNT, len(s.unsent))]
        if s.unsent:
            out.append(tlv_unixtime(Tag.UNSENT_DATE, s.unsent[0].when.replace(tzinfo=UTC)))
            out.append(tlv_u32(Tag.FIRST_UNSENT, s.unsent[0].fd))
        return out

    def _sign(
        self,
        doc_code: int,
        when: datetime,
        *,
        head: list[bytes],
        body: bytes,
        details: dict[str, Any],
        registration: RegistrationRecord | None = None,
    ) -> tuple[int, int]:
        """Form, sign and archive a document; returns (fd, fpd). ``head`` goes before 1077."""
        s = self.state
        reg = registration or s.registration
        assert reg is not None
        fd = s.last_fd + 1
        key = (self.config.serial, reg.rnm, reg.inn)
        fixed = self._heads.get(key)
        if fixed is None:
            fixed = (
                tlv_fixed_string(Tag.FN, self.config.serial, 16)
                + tlv_fixed_string(Tag.RNM, reg.rnm, 20)
                + tlv_fixed_string(Tag.USER_INN, reg.inn, 12)
            )
            self._heads[key] = fixed
        prefix = fixed + tlv_u32(Tag.FD, fd) + tlv_unixtime(Tag.DATETIME, when.replace(tzinfo=UTC))
        rest = b"".join(head) + body
        fpd = fiscal_sign(self.secret, self.config.serial, fd, prefix + rest)
        signed = prefix + encode_tlv(Tag.FPD, tag1077_value(fpd)) + rest
        doc = ArchivedDocument(
            fd=fd, doc_code=doc_code, when=when, fpd=fpd, tlv=signed, details=details
        )
        s.last_fd = fd
        s.last_doc_time = when
        s.fds_in_shift += 1
        if not reg.autonomous:
            size = len(signed) + 4 + 32 + 10  # STLV header + container header + trailer
            s.push_unsent(UnsentEntry(fd=fd, when=when, size=size))
        s.open_doc = None
        self._pending.documents.append(doc)
        self._changed()
        return fd, fpd

    def _received(self, doc: OpenDocument) -> list[Tlv]:
        parsed = doc.parsed
        if parsed is not None and parsed[0] is doc.tlv:
            return list(parsed[1])  # what 07h parsed from exactly these bytes
        try:
            return parse_tlvs(doc.tlv)
        except TlvError as exc:  # pragma: no cover - 07h only stores well-formed TLVs
            raise DriveError(
                R.FN_FAILURE, detail=f"stored document data is corrupt: {exc}"
            ) from exc
