"""Status and archive reads, 30h–3Fh and 40h–47h, and the debug reset 60h (fn-protocol.md §5–§6.8).

None of these forms a document; the archive reads keep their cursors (45h/46h, 44h/47h) in the
drive state. A read past the end answers 08h and leaves the cursor where it was, so a refused
command changes nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, DocCode
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.core import DriveCore
from kkt_emulator.fn.rules import (
    MAX_REGISTRATIONS,
)
from kkt_emulator.fn.state import (
    ArchivedDocument,
    DriveState,
)
from kkt_emulator.fn.tlv import (
    Tlv,
    parse_tlvs,
)

__all__ = ["ReadCommands"]


class ReadCommands(DriveCore):
    """Status commands, archive reads and the debug reset."""

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
            # The cursor stays at the end: a refused command changes nothing.
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
            # The cursor stays at the end: a refused command changes nothing.
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
