"""The fiscal drive (ФН) state machine: a pure transition system, time passed in.

``FiscalDrive.execute(now, command, data)`` takes the current business time (timezone-aware) and a
request payload, changes the state or refuses with :class:`~kkt_emulator.errors.DriveError`, and
returns the answer data. Every command first checks all its preconditions and only then changes
state, so a refused command leaves the drive exactly as it was. A successful command that changed
anything is committed to the :class:`~kkt_emulator.fn.state.DriveStore` before its answer exists,
as a real drive writes its flash before it answers.

Rules enforced here (FN spec §4–§9, §14): phases 1 → 3 → 7 → 15 and the command table of §4.2; one
open document; registration and re-registration (tax-system mask, mode byte with the internet
flag, agent and excise flags); shifts; receipts and corrections; the settlement report; closing
the drive; counters; time never backwards (07h); receipts only within 24 h of the shift opening
(16h); the drive timer (17h); the 30-day OFD rule (14h + warning bit 3, or 15h, per profile);
expiry (12h) with the 3-day/30-day warnings; archive capacity and the memory warning; the 30-day
OFD storage; TLV volume (10h); item count (0Eh); tags the drive forms itself (0Bh + tag);
duplicates (0Ch + tag); malformed values (18h + tag); a tax system not registered, agent data
without the agent flag, excise goods without the excise flag (19h + tag); missing mandatory tags
such as 1008 in internet mode (3Ch + tag); the OFD queue (20h–26h) and the archive (40h–47h).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from kkt_emulator.errors import DriveError, ValidationError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, CurrentDocument, DocCode, OfdRejectReason, Phase
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.codes import WarningFlag as W
from kkt_emulator.fn.container import Container, build_container
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
from kkt_emulator.fn.tags import is_drive_formed
from kkt_emulator.fn.tlv import (
    Tlv,
    TlvError,
    encode_tlv,
    parse_tlvs,
    tlv_byte,
    tlv_fixed_string,
    tlv_u32,
    tlv_unixtime,
    tlv_vln,
    validate_value,
)
from kkt_emulator.profiles import TLV_LIMITS, FirmwareProfile

__all__ = ["DriveConfig", "FiscalDrive"]

# Tags the drive reads or writes by number (FN spec §10.5).
T_BUYER_CONTACT = 1008
T_DATETIME = 1012
T_OFD_INN = 1017
T_USER_INN = 1018
T_TOTAL = 1020
T_OFD_CODE = 1022
T_RNM = 1037
T_SHIFT = 1038
T_FD = 1040
T_FN = 1041
T_RECEIPT_NO = 1042
T_RESOURCE = 1050
T_URGENT = 1051
T_MEMORY = 1052
T_OFD_TIMEOUT = 1053
T_OPERATION = 1054
T_TAX_SYSTEM = 1055
T_ENCRYPTION = 1056
T_AGENT = 1057
T_ITEM = 1059
T_TAX_SYSTEMS = 1062
T_OFD_MESSAGE = 1068
T_FPD = 1077
T_OPERATOR_SIGN = 1078
T_CASH = 1031
T_CARD = 1081
T_PREPAID = 1215
T_POSTPAID = 1216
T_COUNTER = 1217
T_UNSENT_COUNT = 1097
T_UNSENT_DATE = 1098
T_REREG_REASON = 1101
T_INTERNET = 1108
T_SERVICES = 1109
T_BSO = 1110
T_FDS_IN_SHIFT = 1111
T_FIRST_UNSENT = 1116
T_RECEIPTS_IN_SHIFT = 1118
T_FFD_FN = 1190
T_REASON_CODES = 1205
T_OPERATOR_FLAGS = 1206
T_EXCISE_FLAG = 1207
T_FFD = 1209
T_SUBJECT = 1212
T_KEY_RESOURCE = 1213
T_ITEM_AGENT = 1222
T_AGENT_DATA = 1223
T_SUPPLIER_DATA = 1224
T_SUPPLIER_INN = 1226
T_CONDITIONS = 1290
T_AUTONOMOUS = 1002
T_AUTOMATIC = 1001

PAYMENT_TAGS = (T_CASH, T_CARD, T_PREPAID, T_POSTPAID, T_COUNTER)
AGENT_TAGS = frozenset({T_AGENT, T_ITEM_AGENT, T_AGENT_DATA, T_SUPPLIER_DATA, T_SUPPLIER_INN})
REPEATABLE_TAGS = frozenset({T_ITEM, 1084, 1192})
ITEM_MANDATORY = (1030, 1079, 1023, 1199, 1043)
EXCISE_SUBJECT = 2

FFD_NAMES = {1: "1.05", 2: "1.05", 3: "1.1", 4: "1.2"}
MAX_REGISTRATIONS = 30
OFD_WAIT = timedelta(days=30)
SHIFT_LENGTH = timedelta(hours=24)
TIMER_TOLERANCE = timedelta(minutes=5)
OPEN_SHIFT_ALLOWANCE = timedelta(hours=1)

# Mode byte bits (FN spec §6.3) and the tags the drive forms from them in FFD 1.05.
MODE_TAGS_105 = (
    (0, T_ENCRYPTION),
    (1, T_AUTONOMOUS),
    (2, T_AUTOMATIC),
    (3, T_SERVICES),
    (4, T_BSO),
    (5, T_INTERNET),
)
# FFD 1.2: mode bits 3..7 and extended-flag bits 0..7 map to bits of tag 1290 (FN spec §6.3).
MODE_TO_1290 = {3: 9, 4: 2, 5: 5, 6: 15, 7: 16}
EXT_TO_1290 = {0: 6, 1: 10, 2: 11, 3: 1, 4: 8, 5: 12, 6: 13, 7: 14}

# Which open-document status each start command creates, and the TLV-volume kind it uses.
_TLV_KIND = {
    CurrentDocument.REGISTRATION: "registration",
    CurrentDocument.REREGISTRATION: "registration",
    CurrentDocument.REREGISTRATION_FN_CHANGE: "registration",
    CurrentDocument.OPEN_SHIFT: "open_shift",
    CurrentDocument.CLOSE_SHIFT: "close_shift",
    CurrentDocument.RECEIPT: "receipt",
    CurrentDocument.CORRECTION: "correction",
    CurrentDocument.SETTLEMENT_REPORT: "report",
    CurrentDocument.CLOSE_FN: "close_fn",
}

_FISCAL_PHASES = (Phase.FISCAL, Phase.POST_FISCAL)


@dataclass(frozen=True, slots=True)
class DriveConfig:
    """What a drive is: serial number, model limits and firmware quirks (from a profile)."""

    serial: str
    protocol: str = "fn-1.2"
    max_data: int = 1536
    lifetime_days: int = 1110
    capacity: int = 250_000
    ofd_storage_bytes: int = 1024 * 1024
    ofd_block_code: int = R.STORAGE_EXHAUSTED
    memory_warning_percent: int = 99
    max_items: int = 100
    tlv_limits: dict[str, int] = field(default_factory=lambda: dict(TLV_LIMITS["fn-1.2"]))
    firmware_version: str = "fn-emu 1.2.0"
    debug_firmware: bool = True
    seed: str = "kkt-emulator"
    utc_offset: timedelta = timedelta(hours=3)
    check_timer: bool = True

    def __post_init__(self) -> None:
        if len(self.serial) != 16 or not self.serial.isdigit():
            raise ValidationError("serial", f"a drive serial is 16 digits, got {self.serial!r}")

    @property
    def ffd_max(self) -> int:
        """The highest FFD the drive supports (3Ah): 4 for ФН-1.2, 1 for ФН-2016 drives."""
        return 4 if self.protocol == "fn-1.2" else 1

    @classmethod
    def from_profile(cls, profile: FirmwareProfile, serial: str, **overrides: Any) -> DriveConfig:
        """A drive of the profile's model with the given serial number."""
        d = profile.drive
        values: dict[str, Any] = {
            "serial": serial,
            "protocol": d.protocol,
            "max_data": d.max_frame_data,
            "lifetime_days": d.lifetime_days,
            "capacity": d.document_capacity,
            "ofd_storage_bytes": d.ofd_storage_kb * 1024,
            "ofd_block_code": d.ofd_block_code,
            "memory_warning_percent": d.memory_warning_percent,
            "max_items": d.max_items,
            "tlv_limits": dict(d.tlv_limits),
            "firmware_version": d.firmware_version,
            "debug_firmware": d.debug_firmware,
            "seed": d.seed,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(slots=True)
class _Pending:
    """What a successful command wants committed."""

    documents: list[ArchivedDocument] = field(default_factory=list)
    acks: list[OfdAck] = field(default_factory=list)
    changed: bool = False


class FiscalDrive:
    """The fiscal drive (ФН) state machine.

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
        self._pending = _Pending()
        self._message: bytes | None = None  # the container being read by 22h/23h
        self.forced_result: Callable[[int], DriveError | None] | None = None
        self.forced_warnings = 0
        self.last_crash: Exception | None = None
        self._handlers: dict[int, Callable[[datetime, Any], bytes]] = {
            Command.START_REGISTRATION: self._start_registration,
            Command.FINISH_REGISTRATION: self._finish_registration,
            Command.START_REGISTRATION_12: self._start_registration_12,
            Command.FINISH_REGISTRATION_12: self._finish_registration_12,
            Command.START_CLOSE_FN: self._start_close_fn,
            Command.CLOSE_FN: self._close_fn,
            Command.CANCEL_DOCUMENT: self._cancel_document,
            Command.SEND_DOCUMENT_DATA: self._send_document_data,
            Command.SHIFT_PARAMS: self._shift_params,
            Command.START_OPEN_SHIFT: self._start_open_shift,
            Command.OPEN_SHIFT: self._open_shift,
            Command.START_CLOSE_SHIFT: self._start_close_shift,
            Command.CLOSE_SHIFT: self._close_shift,
            Command.START_RECEIPT: self._start_receipt,
            Command.START_CORRECTION: self._start_correction,
            Command.FINISH_RECEIPT: self._finish_receipt,
            Command.START_SETTLEMENT_REPORT: self._start_settlement_report,
            Command.FINISH_SETTLEMENT_REPORT: self._finish_settlement_report,
            Command.OFD_STATUS: self._ofd_status,
            Command.OFD_TRANSPORT: self._ofd_transport,
            Command.OFD_START_READ: self._ofd_start_read,
            Command.OFD_READ_BLOCK: self._ofd_read_block,
            Command.OFD_CANCEL_READ: self._ofd_cancel_read,
            Command.OFD_FINISH_READ: self._ofd_finish_read,
            Command.OFD_RECEIPT: self._ofd_receipt,
            Command.STATUS: self._status,
            Command.SERIAL: self._serial,
            Command.EXPIRY: self._expiry,
            Command.VERSION: self._version,
            Command.LAST_ERRORS: self._last_errors,
            Command.FORMAT: self._format,
            Command.DAYS_LEFT: self._days_left,
            Command.FREE_RESOURCES: self._free_resources,
            Command.FIND_DOCUMENT: self._find_document,
            Command.OFD_ACK_BY_NUMBER: self._ofd_ack_by_number,
            Command.UNCONFIRMED_COUNT: self._unconfirmed_count,
            Command.REGISTRATION_RESULTS: self._registration_results,
            Command.REGISTRATION_PARAMETER: self._registration_parameter,
            Command.READ_DOCUMENT_TLV: self._read_document_tlv,
            Command.READ_DOCUMENT_TLV_NEXT: self._read_document_tlv_next,
            Command.READ_REGISTRATION_TLV_NEXT: self._read_registration_tlv_next,
            Command.RESET: self._reset,
        }

    # ------------------------------------------------------------------ entry points

    def execute(self, now: datetime, code: int, data: bytes = b"") -> bytes:
        """Run one command at business time ``now`` and return the answer data.

        Raises:
            DriveError: the drive refused; its ``code`` is the result code of the answer and its
                ``data`` the answer data that goes with it.
        """
        if now.tzinfo is None:
            raise ValueError("the drive needs timezone-aware business time")
        handler = self._handlers.get(code)
        if handler is None:
            raise self._remember(
                DriveError(R.UNKNOWN_COMMAND, detail=f"unknown command {code:02X}h")
            )
        if self.config.protocol == "fn-2016" and code in (
            Command.START_REGISTRATION_12,
            Command.FINISH_REGISTRATION_12,
        ):
            raise self._remember(
                DriveError(R.UNKNOWN_COMMAND, detail="a ФН-2016 drive has no A2h/A3h")
            )
        if self.forced_result is not None:
            forced = self.forced_result(code)
            if forced is not None:
                raise self._remember(forced)
        self._pending = _Pending()
        try:
            request = cmd.parse_request(code, data)
            answer = handler(self._local(now), request)
        except DriveError as exc:
            self._pending = _Pending()
            raise self._remember(exc) from None
        if self._pending.changed or self._pending.documents or self._pending.acks:
            self.store.commit(self.state, tuple(self._pending.documents), tuple(self._pending.acks))
        self._pending = _Pending()
        return answer

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
        return (now.astimezone(UTC) + self.config.utc_offset).replace(tzinfo=None)

    def _remember(self, exc: DriveError) -> DriveError:
        self.state.last_errors = ([*self.state.last_errors, exc.code])[-16:]
        return exc

    def _changed(self) -> None:
        self._pending.changed = True

    def _ffd_name(self) -> str:
        return FFD_NAMES.get(self.state.ffd_in_use, "1.05")

    def _warnings(self, local: datetime) -> int:
        s = self.state
        flags = self.forced_warnings
        if s.phase in _FISCAL_PHASES and s.expiry is not None:
            days_left = (s.expiry - local.date()).days
            if days_left <= 3:
                flags |= W.URGENT_REPLACEMENT
            if days_left <= 30:
                flags |= W.RESOURCE_EXHAUSTION
        if s.last_fd * 100 >= self.config.capacity * self.config.memory_warning_percent:
            flags |= W.MEMORY_OVERFLOW
        if s.unsent and local - s.unsent[0].when > OFD_WAIT:
            flags |= W.OFD_TIMEOUT
        return flags | s.ofd_flags

    def _require_phase(self, *phases: int) -> None:
        if self.state.phase not in phases:
            names = "/".join(f"{p:X}h" for p in phases)
            raise DriveError(
                R.WRONG_STATE,
                detail=f"command needs phase {names}, drive is in {self.state.phase:X}h",
            )

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
        """Resource rules for every command that starts a fiscal document (FN spec §7, §9).

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
        for bit, tag in (
            (W.RESOURCE_EXHAUSTION, T_RESOURCE),
            (W.URGENT_REPLACEMENT, T_URGENT),
            (W.MEMORY_OVERFLOW, T_MEMORY),
            (W.OFD_TIMEOUT, T_OFD_TIMEOUT),
        ):
            if flags & bit:
                out.append(tlv_byte(tag, 1))
        return out

    def _unsent_tlvs(self) -> list[bytes]:
        s = self.state
        out = [tlv_u32(T_UNSENT_COUNT, len(s.unsent))]
        if s.unsent:
            out.append(tlv_unixtime(T_UNSENT_DATE, s.unsent[0].when.replace(tzinfo=UTC)))
            out.append(tlv_u32(T_FIRST_UNSENT, s.unsent[0].fd))
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
        prefix = [
            tlv_fixed_string(T_FN, self.config.serial, 16),
            tlv_fixed_string(T_RNM, reg.rnm, 20),
            tlv_fixed_string(T_USER_INN, reg.inn, 12),
            tlv_u32(T_FD, fd),
            tlv_unixtime(T_DATETIME, when.replace(tzinfo=UTC)),
        ]
        unsigned = b"".join(prefix) + b"".join(head) + body
        fpd = fiscal_sign(self.secret, self.config.serial, fd, unsigned)
        signed = b"".join(prefix) + encode_tlv(T_FPD, tag1077_value(fpd)) + b"".join(head) + body
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
        try:
            return parse_tlvs(doc.tlv)
        except TlvError as exc:  # pragma: no cover - 07h only stores well-formed TLVs
            raise DriveError(
                R.FN_FAILURE, detail=f"stored document data is corrupt: {exc}"
            ) from exc

    # ------------------------------------------------------------------ registration

    def _start_registration(self, local: datetime, req: Any) -> bytes:
        report_type = req.report_type or 0
        self._begin_registration(local, report_type, ffd=1)
        return b""

    def _start_registration_12(self, local: datetime, req: Any) -> bytes:
        ffd = 3 if req.ffd is None else req.ffd
        if ffd not in (3, 4):
            raise DriveError(R.BAD_COMMAND, detail=f"FFD version {ffd} is not 3 (1.1) or 4 (1.2)")
        self._begin_registration(local, req.report_type, ffd=ffd)
        return b""

    def _begin_registration(self, local: datetime, report_type: int, ffd: int) -> None:
        s = self.state
        if report_type not in (0, 1, 2):
            raise DriveError(R.BAD_PARAMETERS, detail=f"report type {report_type} is not 0, 1 or 2")
        if report_type in (0, 1):
            self._require_phase(Phase.READY)
        else:
            self._require_phase(Phase.FISCAL)
            if s.shift_open:
                raise DriveError(R.WRONG_STATE, detail="close the shift before re-registration")
            self._check_can_form(local)
            if (
                s.ffd_in_use
                and ffd != s.ffd_in_use
                and not (ffd in (3, 4) and s.ffd_in_use in (3, 4))
            ):
                raise DriveError(R.BAD_COMMAND, detail="re-registration must keep the FFD family")
        self._require_no_open()
        if len(s.registrations) >= MAX_REGISTRATIONS:
            raise DriveError(R.RESOURCE_EXHAUSTED, detail="no registrations left")
        kind = {
            0: CurrentDocument.REGISTRATION,
            1: CurrentDocument.REREGISTRATION_FN_CHANGE,
            2: CurrentDocument.REREGISTRATION,
        }[report_type]
        self._open(kind, local, report_type=report_type, ffd=ffd)

    def _finish_registration(self, local: datetime, req: Any) -> bytes:
        doc = self._require_open(
            CurrentDocument.REGISTRATION,
            CurrentDocument.REREGISTRATION,
            CurrentDocument.REREGISTRATION_FN_CHANGE,
        )
        if doc.ffd != 1:
            raise DriveError(R.BAD_COMMAND, detail="in FFD 1.1/1.2 mode registration ends with A3h")
        reason = req.reason if req.reason is not None else (1 if doc.report_type == 1 else 0)
        fd, fpd = self._register(
            local,
            doc,
            when=req.when,
            inn=req.inn,
            rnm=req.rnm,
            tax_systems=req.tax_systems,
            mode=req.mode,
            ext_flags=0,
            ofd_inn=self.state.registration.ofd_inn if self.state.registration else "",
            reason=reason,
        )
        return cmd.build_answer(Command.FINISH_REGISTRATION, fd=fd, fpd=fpd)

    def _finish_registration_12(self, local: datetime, req: Any) -> bytes:
        doc = self._require_open(
            CurrentDocument.REGISTRATION,
            CurrentDocument.REREGISTRATION,
            CurrentDocument.REREGISTRATION_FN_CHANGE,
        )
        if doc.ffd == 1:
            raise DriveError(R.BAD_COMMAND, detail="in FFD 1.05 mode registration ends with 03h")
        if doc.report_type != 0 and req.reason is None:
            raise DriveError(
                R.BAD_PARAMETERS, detail="re-registration needs the reason code (Uint32)"
            )
        fd, fpd = self._register(
            local,
            doc,
            when=req.when,
            inn=req.inn,
            rnm=req.rnm,
            tax_systems=req.tax_systems,
            mode=req.mode,
            ext_flags=req.ext_flags,
            ofd_inn=req.ofd_inn,
            reason=req.reason or 0,
        )
        return cmd.build_answer(Command.FINISH_REGISTRATION_12, fd=fd, fpd=fpd)

    def _register(
        self,
        local: datetime,
        doc: OpenDocument,
        *,
        when: datetime,
        inn: str,
        rnm: str,
        tax_systems: int,
        mode: int,
        ext_flags: int,
        ofd_inn: str,
        reason: int,
    ) -> tuple[int, int]:
        s = self.state
        self._check_time(local, when)
        if not inn.isdigit() or len(inn) not in (10, 12):
            raise DriveError(R.BAD_PARAMETERS, detail=f"ИНН {inn!r} is not 10 or 12 digits")
        if not rnm.isdigit() or len(rnm) > 20:
            raise DriveError(R.BAD_PARAMETERS, detail=f"РНМ {rnm!r} is not digits")
        if tax_systems == 0 or tax_systems & 0xC0:
            raise DriveError(
                R.BAD_PARAMETERS, detail=f"tax-system mask {tax_systems:02X}h is invalid"
            )
        autonomous = bool(mode & 0x02)
        ofd_inn = "000000000000" if autonomous and doc.ffd != 1 else ofd_inn
        received = self._received(doc)
        tags = {t.tag: t.value for t in received}
        if not autonomous and doc.ffd == 1 and not ofd_inn:
            ofd_raw = tags.get(T_OFD_INN)
            ofd_inn = ofd_raw.decode("cp866").strip() if ofd_raw else ""
        agent = bool(tags.get(T_AGENT, b"\x00").strip(b"\x00"))
        excise = (
            bool(ext_flags & 0x01) if doc.ffd != 1 else tags.get(T_EXCISE_FLAG, b"\x00") == b"\x01"
        )
        ffd = doc.ffd
        rnm = rnm.zfill(16) if doc.ffd != 1 else rnm
        reg = RegistrationRecord(
            fd=s.last_fd + 1,
            fpd=0,
            when=when,
            inn=inn,
            rnm=rnm,
            tax_systems=tax_systems,
            mode=mode,
            ext_flags=ext_flags,
            ofd_inn=ofd_inn,
            ffd=ffd,
            agent=agent,
            excise=excise,
            reason=reason,
            tlv=doc.tlv,
        )
        head: list[bytes] = []
        if ffd == 1:
            head += [tlv_byte(tag, (mode >> bit) & 1) for bit, tag in MODE_TAGS_105]
            head.append(tlv_byte(T_TAX_SYSTEMS, tax_systems))
            if doc.report_type != 0:
                head.append(tlv_byte(T_REREG_REASON, reason & 0xFF))
            if not autonomous and ofd_inn and T_OFD_INN not in tags:
                head.append(tlv_fixed_string(T_OFD_INN, ofd_inn, 12))
        else:
            conditions = 0
            for bit, target in MODE_TO_1290.items():
                if mode & (1 << bit):
                    conditions |= 1 << target
            for bit, target in EXT_TO_1290.items():
                if ext_flags & (1 << bit):
                    conditions |= 1 << target
            head += [
                tlv_byte(T_ENCRYPTION, mode & 1),
                tlv_byte(T_AUTONOMOUS, (mode >> 1) & 1),
                tlv_byte(T_AUTOMATIC, (mode >> 2) & 1),
                tlv_byte(T_TAX_SYSTEMS, tax_systems),
                tlv_u32(T_CONDITIONS, conditions),
                tlv_fixed_string(T_OFD_INN, ofd_inn, 12),
                tlv_byte(T_FFD, ffd),
                tlv_byte(T_FFD_FN, 4),
                tlv_u32(T_KEY_RESOURCE, self.config.lifetime_days),
            ]
            if doc.report_type != 0:
                head.append(tlv_u32(T_REASON_CODES, reason))
        head += self._warning_tlvs(local)
        doc_code = DocCode.REGISTRATION if doc.report_type == 0 else DocCode.REREGISTRATION
        details = {
            "inn": inn,
            "rnm": rnm,
            "tax_systems": tax_systems,
            "mode": mode,
            "ext_flags": ext_flags,
            "ofd_inn": ofd_inn,
            "reason": reason,
        }
        fd, fpd = self._sign(
            doc_code, when, head=head, body=doc.tlv, details=details, registration=reg
        )
        reg.fpd = fpd
        s.registrations.append(reg)
        s.ffd_in_use = ffd
        if doc.report_type in (0, 1):
            s.phase = Phase.FISCAL
            s.activation = when
            s.expiry = (when + timedelta(days=self.config.lifetime_days)).date()
        return fd, fpd

    # ------------------------------------------------------------------ closing the drive

    def _start_close_fn(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        self._require_phase(Phase.FISCAL)
        self._require_no_open()
        if s.shift_open:
            raise DriveError(R.WRONG_STATE, detail="close the shift before closing the drive")
        reg = s.registration
        if reg is not None and not reg.autonomous and s.unsent:
            raise DriveError(
                R.BAD_PARAMETERS, detail=f"{len(s.unsent)} documents still wait for the OFD"
            )
        self._open(CurrentDocument.CLOSE_FN, local)
        return b""

    def _close_fn(self, local: datetime, req: Any) -> bytes:
        s = self.state
        doc = self._require_open(CurrentDocument.CLOSE_FN)
        self._check_time(local, req.when)
        reg = s.registration
        assert reg is not None
        if req.rnm.zfill(16) != reg.rnm.zfill(16):
            raise DriveError(R.BAD_PARAMETERS, detail=f"РНМ {req.rnm!r} is not the registered one")
        head = [*self._warning_tlvs(local), *self._unsent_tlvs()]
        details = {"inn": reg.inn, "rnm": reg.rnm}
        fd, fpd = self._sign(DocCode.CLOSE_FN, req.when, head=head, body=doc.tlv, details=details)
        s.phase = Phase.ARCHIVE if reg.autonomous else Phase.POST_FISCAL
        return cmd.build_answer(Command.CLOSE_FN, fd=fd, fpd=fpd)

    # ------------------------------------------------------------------ documents in general

    def _cancel_document(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        if self.state.open_doc is not None:
            self.state.open_doc = None
            self._changed()
        return b""

    def _send_document_data(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - time is not checked here
        s = self.state
        doc = s.open_doc
        if doc is None:
            raise DriveError(R.WRONG_STATE, detail="no open document: send «Начать…» first")
        data: bytes = req.tlv
        if not data:
            raise DriveError(R.BAD_PARAMETERS, detail="07h without data")
        try:
            new = parse_tlvs(data)
        except TlvError as exc:
            raise DriveError(R.BAD_TAG, detail=f"TLV data is not whole objects: {exc}") from exc
        limit = self.config.tlv_limits[_TLV_KIND[CurrentDocument(doc.kind)]]
        if len(doc.tlv) + len(data) > limit:
            raise DriveError(
                R.TLV_TOO_LARGE,
                detail=f"document data would be {len(doc.tlv) + len(data)} bytes, limit {limit}",
            )
        ffd = FFD_NAMES.get(doc.ffd or s.ffd_in_use, "1.05")
        seen = set(doc.tags)
        items = doc.items
        reg = s.registration
        for tlv in new:
            tag_bytes = tlv.tag.to_bytes(2, "little")
            if is_drive_formed(tlv.tag, ffd):
                raise DriveError(
                    R.FORBIDDEN_TAG, tag_bytes, detail=f"tag {tlv.tag} is formed by the drive"
                )
            if tlv.tag in seen and tlv.tag not in REPEATABLE_TAGS:
                raise DriveError(R.DUPLICATE_DATA, tag_bytes, detail=f"tag {tlv.tag} sent twice")
            seen.add(tlv.tag)
            try:
                validate_value(tlv.tag, tlv.value)
            except ValidationError as exc:
                raise DriveError(R.BAD_TAG, tag_bytes, detail=str(exc)) from exc
            if tlv.tag == T_ITEM:
                items += 1
                if items > self.config.max_items:
                    raise DriveError(
                        R.TOO_MANY_ITEMS, detail=f"more than {self.config.max_items} items"
                    )
            if (
                doc.kind in (CurrentDocument.RECEIPT, CurrentDocument.CORRECTION)
                and reg is not None
            ):
                self._check_registered(tlv, reg, ffd)
        doc.tlv = doc.tlv + data
        doc.tags = seen
        doc.items = items
        self._changed()
        return b""

    def _check_registered(self, tlv: Tlv, reg: RegistrationRecord, ffd: str) -> None:
        """19h rules: the document may only use what the registration allows."""
        tag_bytes = tlv.tag.to_bytes(2, "little")
        if tlv.tag == T_TAX_SYSTEM:
            value = tlv.value[0] if len(tlv.value) == 1 else 0
            if value == 0 or value & (value - 1) or not value & reg.tax_systems:
                raise DriveError(
                    R.TAG_NOT_REGISTERED,
                    tag_bytes,
                    detail=f"tax system {value:02X}h is not in the registration mask {reg.tax_systems:02X}h",
                )
        if tlv.tag in AGENT_TAGS and not reg.agent:
            raise DriveError(
                R.TAG_NOT_REGISTERED,
                tag_bytes,
                detail=f"agent tag {tlv.tag} on a drive registered without the agent flag",
            )
        if tlv.tag == T_ITEM:
            try:
                inner = parse_tlvs(tlv.value)
            except TlvError as exc:
                raise DriveError(R.BAD_TAG, tag_bytes, detail=f"item STLV: {exc}") from exc
            inner_tags = {t.tag for t in inner}
            for sub in inner:
                if sub.tag in AGENT_TAGS and not reg.agent:
                    raise DriveError(
                        R.TAG_NOT_REGISTERED,
                        sub.tag.to_bytes(2, "little"),
                        detail=f"agent tag {sub.tag} in an item on a drive registered without the agent flag",
                    )
                if (
                    sub.tag == T_SUBJECT
                    and sub.value == bytes((EXCISE_SUBJECT,))
                    and not reg.excise
                ):
                    raise DriveError(
                        R.TAG_NOT_REGISTERED,
                        sub.tag.to_bytes(2, "little"),
                        detail="excise goods on a drive registered without the excise flag",
                    )
                try:
                    validate_value(sub.tag, sub.value)
                except ValidationError as exc:
                    raise DriveError(
                        R.BAD_TAG, sub.tag.to_bytes(2, "little"), detail=str(exc)
                    ) from exc
            if ffd in ("1.1", "1.2"):
                for needed in ITEM_MANDATORY:
                    if needed not in inner_tags:
                        raise DriveError(
                            R.MISSING_TAGS,
                            needed.to_bytes(2, "little"),
                            detail=f"item without mandatory tag {needed}",
                        )
                if (T_ITEM_AGENT in inner_tags) != (T_SUPPLIER_INN in inner_tags):
                    raise DriveError(
                        R.MISSING_TAGS,
                        T_SUPPLIER_INN.to_bytes(2, "little"),
                        detail="1222 and 1226 go together",
                    )

    # ------------------------------------------------------------------ shifts

    def _shift_params(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        self._require_phase(*_FISCAL_PHASES)
        return cmd.build_answer(
            Command.SHIFT_PARAMS,
            shift_open=int(s.shift_open),
            shift_number=s.shift_number,
            receipt_number=s.receipts_in_shift,
        )

    def _start_open_shift(self, local: datetime, req: Any) -> bytes:
        s = self.state
        self._require_phase(Phase.FISCAL)
        self._require_no_open()
        if s.shift_open:
            raise DriveError(R.WRONG_STATE, detail=f"shift {s.shift_number} is already open")
        self._check_can_form(local)
        # FN-2016 11h: the shift may open up to one hour before the previous document.
        self._check_time(local, req.when, OPEN_SHIFT_ALLOWANCE)
        self._open(CurrentDocument.OPEN_SHIFT, req.when)
        return b""

    def _open_shift(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        doc = self._require_open(CurrentDocument.OPEN_SHIFT)
        number = s.shift_number + 1
        head = [tlv_u32(T_SHIFT, number), *self._warning_tlvs(local)]
        if s.ffd_in_use != 1:
            head.append(tlv_byte(T_FFD, s.ffd_in_use))
        when = max(doc.started, s.last_doc_time) if s.last_doc_time else doc.started
        s.fds_in_shift = 0
        fd, fpd = self._sign(
            DocCode.OPEN_SHIFT, when, head=head, body=doc.tlv, details={"shift_number": number}
        )
        s.shift_open = True
        s.shift_number = number
        s.shift_opened_at = doc.started
        s.receipts_in_shift = 0
        s.shift_totals.counts = [0, 0, 0, 0]
        s.shift_totals.sums = [0, 0, 0, 0]
        warnings = self._warnings(local) if s.ffd_in_use != 1 else None
        return cmd.build_answer(
            Command.OPEN_SHIFT, shift_number=number, fd=fd, fpd=fpd, warnings=warnings
        )

    def _start_close_shift(self, local: datetime, req: Any) -> bytes:
        s = self.state
        self._require_phase(Phase.FISCAL)
        self._require_no_open()
        if not s.shift_open:
            raise DriveError(R.WRONG_STATE, detail="no open shift")
        self._check_can_form(local, closing_shift=True)
        self._check_time(local, req.when)
        self._open(CurrentDocument.CLOSE_SHIFT, req.when)
        return b""

    def _close_shift(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        doc = self._require_open(CurrentDocument.CLOSE_SHIFT)
        number = s.shift_number
        head = [
            tlv_u32(T_SHIFT, number),
            tlv_u32(T_RECEIPTS_IN_SHIFT, s.receipts_in_shift),
            tlv_u32(T_FDS_IN_SHIFT, s.fds_in_shift + 1),
            *self._unsent_tlvs(),
            *self._warning_tlvs(local),
        ]
        fd, fpd = self._sign(
            DocCode.CLOSE_SHIFT,
            doc.started,
            head=head,
            body=doc.tlv,
            details={"shift_number": number},
        )
        s.shift_open = False
        s.shift_opened_at = None
        warnings = self._warnings(local) if s.ffd_in_use != 1 else None
        return cmd.build_answer(
            Command.CLOSE_SHIFT, shift_number=number, fd=fd, fpd=fpd, warnings=warnings
        )

    # ------------------------------------------------------------------ receipts

    def _start_receipt(self, local: datetime, req: Any) -> bytes:
        self._begin_receipt(local, req.when, CurrentDocument.RECEIPT)
        return b""

    def _start_correction(self, local: datetime, req: Any) -> bytes:
        self._begin_receipt(local, req.when, CurrentDocument.CORRECTION)
        return b""

    def _begin_receipt(self, local: datetime, when: datetime, kind: int) -> None:
        s = self.state
        self._require_phase(Phase.FISCAL)
        self._require_no_open()
        if not s.shift_open:
            raise DriveError(R.WRONG_STATE, detail="no open shift")
        self._check_can_form(local)
        self._check_time(local, when)
        if self._shift_expired(when):
            raise DriveError(
                R.SHIFT_TOO_LONG, detail=f"shift {s.shift_number} opened more than 24 hours ago"
            )
        self._open(kind, when)

    def _finish_receipt(self, local: datetime, req: Any) -> bytes:
        s = self.state
        doc = self._require_open(CurrentDocument.RECEIPT, CurrentDocument.CORRECTION)
        reg = s.registration
        assert reg is not None
        self._check_time(local, req.when)
        if req.when < doc.started:
            raise DriveError(R.BAD_DATETIME, detail="the receipt date is before its start")
        if self._shift_expired(req.when):
            raise DriveError(
                R.SHIFT_TOO_LONG, detail=f"shift {s.shift_number} opened more than 24 hours ago"
            )
        if req.operation not in (1, 2, 3, 4):
            raise DriveError(R.BAD_PARAMETERS, detail=f"operation type {req.operation} is not 1..4")
        received = self._received(doc)
        tags = {t.tag: t.value for t in received}
        ffd = FFD_NAMES.get(s.ffd_in_use, "1.05")
        is_receipt = doc.kind == CurrentDocument.RECEIPT
        if is_receipt and T_ITEM not in tags:
            raise DriveError(
                R.MISSING_TAGS,
                T_ITEM.to_bytes(2, "little"),
                detail="a receipt needs at least one item (1059)",
            )
        if is_receipt and reg.internet and T_BUYER_CONTACT not in tags:
            raise DriveError(
                R.MISSING_TAGS,
                T_BUYER_CONTACT.to_bytes(2, "little"),
                detail="internet mode: the buyer's phone or e-mail (1008) is mandatory",
            )
        if T_TAX_SYSTEM not in tags and reg.tax_systems & (reg.tax_systems - 1):
            raise DriveError(
                R.MISSING_TAGS,
                T_TAX_SYSTEM.to_bytes(2, "little"),
                detail="several tax systems registered: the receipt must name one (1055)",
            )
        present = [tag for tag in PAYMENT_TAGS if tag in tags]
        if ffd in ("1.1", "1.2") and len(present) < len(PAYMENT_TAGS):
            mask = sum(1 << i for i, tag in enumerate(PAYMENT_TAGS) if tag in tags)
            raise DriveError(
                R.MISSING_ACCOUNTING_DATA,
                bytes((mask,)),
                detail="FFD 1.2 needs all five payment sums (1031, 1081, 1215, 1216, 1217)",
            )
        if present:
            from kkt_emulator.fn.tlv import decode_vln  # noqa: PLC0415 - local to the one rule that needs it

            paid = sum(decode_vln(tags[tag]) for tag in present)
            if paid != req.total:
                raise DriveError(
                    R.BAD_PARAMETERS,
                    detail=f"payments {paid} kopecks do not equal the total {req.total}",
                )
        head = [
            tlv_u32(T_SHIFT, s.shift_number),
            tlv_u32(T_RECEIPT_NO, s.receipts_in_shift + 1),
            tlv_byte(T_OPERATION, req.operation),
            tlv_vln(T_TOTAL, req.total),
            *self._warning_tlvs(local),
        ]
        if s.ffd_in_use != 1:
            head.append(tlv_byte(T_FFD, s.ffd_in_use))
        if T_TAX_SYSTEM not in tags:
            head.append(tlv_byte(T_TAX_SYSTEM, reg.tax_systems))
        code = DocCode.RECEIPT if is_receipt else DocCode.CORRECTION
        details = {
            "operation": req.operation,
            "total": req.total,
            "receipt_number": s.receipts_in_shift + 1,
        }
        fd, fpd = self._sign(code, req.when, head=head, body=doc.tlv, details=details)
        s.receipts_in_shift += 1
        s.shift_totals.add(req.operation, req.total)
        s.lifetime_totals.add(req.operation, req.total)
        return cmd.build_answer(
            Command.FINISH_RECEIPT, receipt_number=s.receipts_in_shift, fd=fd, fpd=fpd
        )

    # ------------------------------------------------------------------ settlement report

    def _start_settlement_report(self, local: datetime, req: Any) -> bytes:
        self._require_phase(Phase.FISCAL)
        self._require_no_open()
        self._check_can_form(local)
        self._check_time(local, req.when)
        self._open(CurrentDocument.SETTLEMENT_REPORT, req.when)
        return b""

    def _finish_settlement_report(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        doc = self._require_open(CurrentDocument.SETTLEMENT_REPORT)
        unconfirmed = len(s.unsent)
        first = s.unsent[0].when.date() if s.unsent else date(1999, 1, 1)
        head = [*self._unsent_tlvs(), *self._warning_tlvs(local)]
        if s.shift_open:
            head.insert(0, tlv_u32(T_SHIFT, s.shift_number))
        details = {"unconfirmed": unconfirmed, "first_unconfirmed": first.isoformat()}
        fd, fpd = self._sign(
            DocCode.SETTLEMENT_REPORT, doc.started, head=head, body=doc.tlv, details=details
        )
        return cmd.build_answer(
            Command.FINISH_SETTLEMENT_REPORT,
            fd=fd,
            fpd=fpd,
            unconfirmed=unconfirmed,
            first_unconfirmed=first,
        )

    # ------------------------------------------------------------------ OFD exchange

    def _ofd_status(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        status = 0
        if s.transport:
            status |= 0x01
        if s.unsent:
            status |= 0x02
        if s.waiting_ack:
            status |= 0x04
        first = s.unsent[0] if s.unsent else None
        return cmd.build_answer(
            Command.OFD_STATUS,
            status=status,
            reading=int(s.reading),
            unsent=min(len(s.unsent), 0xFFFF),
            first_fd=first.fd if first else 0,
            first_time=cmd.encode_datetime(first.when) if first else bytes(5),
        )

    def _ofd_transport(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        self._require_phase(*_FISCAL_PHASES)
        if req.connected not in (0, 1):
            raise DriveError(
                R.BAD_PARAMETERS, detail=f"transport state {req.connected} is not 0 or 1"
            )
        self.state.transport = bool(req.connected)
        if not self.state.transport:
            self.state.reading = False
            self._message = None
        self._changed()
        return b""

    def _ofd_message(self) -> bytes:
        s = self.state
        head = s.unsent[0]
        if self._message is None:
            document = self.store.get_document(head.fd)
            if document is None:
                raise DriveError(
                    R.FN_FAILURE, detail=f"document {head.fd} is missing from the archive"
                )
            stlv = encode_tlv(document.doc_code, document.tlv)
            self._message = build_container(
                document.doc_code, self.config.serial, head.fd, stlv, self.secret
            )
        return self._message

    def _ofd_start_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        self._require_phase(*_FISCAL_PHASES)
        if not s.transport:
            raise DriveError(R.NO_TRANSPORT, detail="send 21h(1) first")
        if not s.unsent:
            raise DriveError(R.NO_DATA, detail="nothing to send to the OFD")
        self._message = None
        message = self._ofd_message()
        s.reading = True
        self._changed()
        return cmd.build_answer(Command.OFD_START_READ, length=len(message))

    def _ofd_read_block(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        s = self.state
        if not s.reading or not s.unsent:
            raise DriveError(R.WRONG_STATE, detail="no OFD message is being read (22h first)")
        message = self._ofd_message()
        if req.offset > len(message):
            raise DriveError(
                R.UNKNOWN_COMMAND,
                detail=f"offset {req.offset} is past the message length {len(message)}",
            )
        length = min(req.length, self.config.max_data)
        return message[req.offset : req.offset + length]

    def _ofd_cancel_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        if self.state.reading:
            self.state.reading = False
            self._changed()
        return b""

    def _ofd_finish_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if not s.reading:
            raise DriveError(R.WRONG_STATE, detail="no OFD message is being read")
        s.reading = False
        s.waiting_ack = True
        self._changed()
        return b""

    def _ofd_receipt(self, local: datetime, req: Any) -> bytes:
        s = self.state
        self._require_phase(*_FISCAL_PHASES)
        if not s.unsent:
            raise DriveError(R.WRONG_STATE, detail="no document waits for an acknowledgement")
        message: bytes = req.message
        try:
            container = Container.parse(message, check_crc=False)
        except Exception as exc:
            raise DriveError(
                R.OFD_MESSAGE_REJECTED,
                bytes((OfdRejectReason.BAD_FORMAT,)),
                detail=f"not a container: {exc}",
            ) from exc
        try:
            Container.parse(message, check_crc=True)
        except Exception as exc:
            raise DriveError(
                R.OFD_MESSAGE_REJECTED, bytes((OfdRejectReason.BAD_CRC,)), detail=str(exc)
            ) from exc
        reject = self._check_ack(container)
        if reject is not None:
            reason, detail = reject
            raise DriveError(R.OFD_MESSAGE_REJECTED, bytes((reason,)), detail=detail)
        body = {t.tag: t.value for t in parse_tlvs(container.body[4:])}
        fd = s.unsent[0].fd
        ofd_code = 0
        message_stlv = b""
        if T_OFD_MESSAGE in body:
            inner = {t.tag: t.value for t in parse_tlvs(body[T_OFD_MESSAGE])}
            ofd_code = inner.get(T_OFD_CODE, b"\x00")[0] if inner.get(T_OFD_CODE) else 0
        if body.get(T_OPERATOR_FLAGS):
            flags = body[T_OPERATOR_FLAGS][0]
            # FFD 1.2 operator message flags → warning bits 4..6 (FN spec §5).
            s.ofd_flags = (
                ((flags >> 1) & 1) << 4 | ((flags >> 2) & 1) << 5 | ((flags >> 3) & 1) << 6
            )
        # 41h keeps the operator's time, which 1012 carries in UTC (FN spec §11.4); without it the
        # drive's own time, converted to UTC, so the archive holds one time base.
        ack_time = self.business_time(local).replace(tzinfo=None)
        if T_DATETIME in body and len(body[T_DATETIME]) == 4:
            ack_time = datetime.fromtimestamp(
                int.from_bytes(body[T_DATETIME], "little"), UTC
            ).replace(tzinfo=None)
        sign = body.get(T_OPERATOR_SIGN, b"")[:18].ljust(18, b"\x00")
        self._pending.acks.append(
            OfdAck(fd=fd, when=ack_time, operator_sign=sign, ofd_code=ofd_code)
        )
        s.pop_unsent()
        s.waiting_ack = False
        s.reading = False
        self._message = None
        if s.phase == Phase.POST_FISCAL and not s.unsent:
            s.phase = Phase.ARCHIVE
        self._changed()
        return bytes((ofd_code,)) + message_stlv

    def _check_ack(self, container: Container) -> tuple[int, str] | None:
        s = self.state
        if container.doc_code != DocCode.OPERATOR_ACK:
            return OfdRejectReason.BAD_FORMAT, f"document code {container.doc_code} is not 7"
        if container.fn_serial.strip() != self.config.serial:
            return (
                OfdRejectReason.BAD_FN_NUMBER,
                f"drive {container.fn_serial!r} is not {self.config.serial}",
            )
        try:
            body = {t.tag: t.value for t in parse_tlvs(container.body[4:])}
        except TlvError as exc:
            return OfdRejectReason.BAD_FORMAT, f"acknowledgement body: {exc}"
        fd = (
            int.from_bytes(body[T_FD], "little")
            if len(body.get(T_FD, b"")) == 4
            else container.fd_number
        )
        if fd != s.unsent[0].fd:
            return (
                OfdRejectReason.BAD_FD_NUMBER,
                f"acknowledges document {fd}, the queue starts at {s.unsent[0].fd}",
            )
        reg = s.registration
        if T_OFD_INN in body and reg is not None and reg.ofd_inn:
            inn = body[T_OFD_INN].decode("cp866").strip()
            if inn != reg.ofd_inn.strip():
                return (
                    OfdRejectReason.BAD_OFD_INN,
                    f"ИНН ОФД {inn} is not the registered {reg.ofd_inn}",
                )
        return None

    # ------------------------------------------------------------------ status commands

    def _status(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        doc = s.open_doc
        return cmd.build_answer(
            Command.STATUS,
            phase=s.phase,
            current_document=doc.kind if doc else 0,
            document_data=int(bool(doc and doc.tlv)),
            shift_open=int(s.shift_open),
            warnings=self._warnings(local),
            last_document_time=s.last_doc_time or datetime(2000, 1, 1),  # noqa: DTZ001 - drive wall time
            serial=self.config.serial,
            last_fd=s.last_fd,
        )

    def _serial(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        return cmd.build_answer(Command.SERIAL, serial=self.config.serial)

    def _expiry(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if s.expiry is None:
            raise DriveError(R.NO_DATA, detail="the drive is not registered yet")
        return cmd.build_answer(
            Command.EXPIRY,
            expiry=s.expiry,
            registrations_left=MAX_REGISTRATIONS - len(s.registrations),
            registrations_done=len(s.registrations),
        )

    def _version(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        return cmd.build_answer(
            Command.VERSION,
            version=self.config.firmware_version[:16],
            serial_firmware=0 if self.config.debug_firmware else 1,
        )

    def _last_errors(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        return cmd.build_answer(Command.LAST_ERRORS, dump=bytes(self.state.last_errors))

    def _format(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        return cmd.build_answer(
            Command.FORMAT, ffd_in_use=self.state.ffd_in_use, ffd_max=self.config.ffd_max
        )

    def _days_left(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - the date comes in the request
        s = self.state
        if s.expiry is None or s.activation is None:
            raise DriveError(R.NO_DATA, detail="the drive is not registered yet")
        if req.when < s.activation:
            raise DriveError(R.BAD_DATETIME, detail="the date is before the activation")
        return cmd.build_answer(Command.DAYS_LEFT, days=max(0, (s.expiry - req.when.date()).days))

    def _free_resources(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        used = s.unsent_bytes
        return cmd.build_answer(
            Command.FREE_RESOURCES,
            documents_left=max(0, self.config.capacity - s.last_fd),
            ofd_free_kb=max(0, self.config.ofd_storage_bytes - used) // 1024,
            marking_percent=0 if s.ffd_in_use == 4 else None,
        )

    # ------------------------------------------------------------------ archive

    def _document(self, fd: int) -> ArchivedDocument:
        document = self.store.get_document(fd) if 1 <= fd <= self.state.last_fd else None
        if document is None:
            raise DriveError(R.NO_DATA, detail=f"no fiscal document {fd}")
        return document

    def _find_document(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        document = self._document(req.fd)
        acked = self.store.get_ack(req.fd) is not None
        schema = cmd.FIND_DOCUMENT_DETAILS[document.doc_code]
        fields = dict(document.details)
        if "first_unconfirmed" in fields:
            fields["first_unconfirmed"] = date.fromisoformat(fields["first_unconfirmed"])
        fields.pop("receipt_number", None)
        fields.pop("ofd_inn", None)
        fields.pop("reason", None)
        fields.pop("ext_flags", None)
        if document.doc_code in (DocCode.REGISTRATION, DocCode.REREGISTRATION):
            fields["rest"] = self._registration_rest(document.details)
        details = schema.build(
            {"when": document.when, "fd": document.fd, "fpd": document.fpd, **fields}
        )
        return cmd.build_answer(
            Command.FIND_DOCUMENT,
            doc_type=document.doc_code,
            acknowledged=int(acked),
            details=details,
        )

    def _registration_rest(self, details: dict[str, Any]) -> bytes:
        if self.state.ffd_in_use in (3, 4):
            ofd_inn: str = details["ofd_inn"]
            rest = bytes((details["ext_flags"],)) + ofd_inn.encode("cp866").ljust(12, b" ")
            if details.get("reason"):
                rest += int(details["reason"]).to_bytes(4, "little")
            return rest
        return bytes((details["reason"],)) if details.get("reason") else b""

    def _ofd_ack_by_number(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        self._document(req.fd)
        ack = self.store.get_ack(req.fd)
        if ack is None:
            raise DriveError(R.NO_DATA, detail=f"document {req.fd} has no OFD acknowledgement")
        return cmd.build_answer(
            Command.OFD_ACK_BY_NUMBER, when=ack.when, operator_sign=ack.operator_sign, fd=ack.fd
        )

    def _unconfirmed_count(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        return cmd.build_answer(
            Command.UNCONFIRMED_COUNT, count=min(len(self.state.unsent), 0xFFFF)
        )

    def _registration_results(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        s = self.state
        if not s.registrations:
            raise DriveError(R.NO_DATA, detail="the drive is not registered")
        if req.ordinal is None:
            reg = s.registrations[-1]
        elif 1 <= req.ordinal <= len(s.registrations):
            reg = s.registrations[req.ordinal - 1]
        else:
            raise DriveError(R.NO_DATA, detail=f"no registration number {req.ordinal}")
        rest = b""
        if reg.ffd in (3, 4):
            rest += bytes((reg.ext_flags,)) + reg.ofd_inn.encode("cp866").ljust(12, b" ")
        rest += reg.fd.to_bytes(4, "little") + reg.fpd.to_bytes(4, "little")
        if req.ordinal is not None:
            rest += reg.reason.to_bytes(4 if reg.ffd in (3, 4) else 1, "little")
        return cmd.build_answer(
            Command.REGISTRATION_RESULTS,
            when=reg.when,
            inn=reg.inn,
            rnm=reg.rnm,
            tax_systems=reg.tax_systems,
            mode=reg.mode,
            rest=rest,
        )

    def _registration_tlvs(self) -> list[Tlv]:
        reg = self.state.registration
        if reg is None:
            raise DriveError(R.NO_DATA, detail="the drive is not registered")
        document = self._document(reg.fd)
        return parse_tlvs(document.tlv)

    def _registration_parameter(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        tlvs = self._registration_tlvs()
        if req.tag == 0xFFFF:
            self.state.reg_cursor = 0
            self._changed()
            return b""
        for tlv in tlvs:
            if tlv.tag == req.tag:
                return tlv.encode()
        raise DriveError(R.NO_DATA, detail=f"the registration has no tag {req.tag}")

    def _read_registration_tlv_next(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if s.reg_cursor is None:
            raise DriveError(R.WRONG_STATE, detail="send 44h(FFFFh) first")
        tlvs = self._registration_tlvs()
        if s.reg_cursor >= len(tlvs):
            s.reg_cursor = None
            self._changed()
            raise DriveError(R.NO_DATA, detail="end of registration data")
        tlv = tlvs[s.reg_cursor]
        s.reg_cursor += 1
        self._changed()
        return tlv.encode()

    def _read_document_tlv(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        document = self._document(req.fd)
        self.state.doc_cursor = [req.fd, 0]
        self._changed()
        return cmd.build_answer(
            Command.READ_DOCUMENT_TLV, doc_type=document.doc_code, length=len(document.tlv)
        )

    def _read_document_tlv_next(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if s.doc_cursor is None:
            raise DriveError(R.WRONG_STATE, detail="send 45h first")
        fd, index = s.doc_cursor
        tlvs = parse_tlvs(self._document(fd).tlv)
        if index >= len(tlvs):
            s.doc_cursor = None
            self._changed()
            raise DriveError(R.NO_DATA, detail="end of document")
        s.doc_cursor = [fd, index + 1]
        self._changed()
        return tlvs[index].encode()

    # ------------------------------------------------------------------ debug

    def _reset(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        if not self.config.debug_firmware or not self.config.serial.startswith("9999"):
            raise DriveError(R.UNKNOWN_COMMAND, detail="60h works only on debug (МГМ) drives")
        if req.code != 0x16:
            raise DriveError(R.BAD_PARAMETERS, detail=f"reset code {req.code:02X}h is not 16h")
        self.store.wipe()
        self.state = DriveState()
        self._message = None
        self._changed()
        return b""
