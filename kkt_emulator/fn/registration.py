"""Registration, re-registration and closing the drive (fn-protocol.md §6.3): 02h–05h, A2h/A3h.

The registration report fixes what the drive will accept later: the tax-system mask, the mode byte
(with the internet and autonomous flags), the agent and excise flags and the FFD version. Closing
the drive (04h/05h) needs a closed shift and, unless autonomous, an empty OFD queue.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, CurrentDocument, DocCode, Phase
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.core import DriveCore
from kkt_emulator.fn.rules import (
    EXT_TO_1290,
    MAX_REGISTRATIONS,
    MODE_TAGS_105,
    MODE_TO_1290,
    REGISTRATION_PHASES,
    check_phase,
)
from kkt_emulator.fn.state import (
    OpenDocument,
    RegistrationRecord,
)
from kkt_emulator.fn.tags import Tag
from kkt_emulator.fn.tlv import (
    tlv_byte,
    tlv_fixed_string,
    tlv_u32,
)

__all__ = ["RegistrationCommands"]


class RegistrationCommands(DriveCore):
    """Registration, re-registration and closing the drive."""

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
        check_phase(s.phase, REGISTRATION_PHASES[report_type])
        if report_type == 2:
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
            ofd_raw = tags.get(Tag.OFD_INN)
            ofd_inn = ofd_raw.decode("cp866").strip() if ofd_raw else ""
        agent = bool(tags.get(Tag.AGENT, b"\x00").strip(b"\x00"))
        excise = (
            bool(ext_flags & 0x01)
            if doc.ffd != 1
            else tags.get(Tag.EXCISE_FLAG, b"\x00") == b"\x01"
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
            head.append(tlv_byte(Tag.TAX_SYSTEMS, tax_systems))
            if doc.report_type != 0:
                head.append(tlv_byte(Tag.REREG_REASON, reason & 0xFF))
            if not autonomous and ofd_inn and Tag.OFD_INN not in tags:
                head.append(tlv_fixed_string(Tag.OFD_INN, ofd_inn, 12))
        else:
            conditions = 0
            for bit, target in MODE_TO_1290.items():
                if mode & (1 << bit):
                    conditions |= 1 << target
            for bit, target in EXT_TO_1290.items():
                if ext_flags & (1 << bit):
                    conditions |= 1 << target
            head += [
                tlv_byte(Tag.ENCRYPTION, mode & 1),
                tlv_byte(Tag.AUTONOMOUS, (mode >> 1) & 1),
                tlv_byte(Tag.AUTOMATIC, (mode >> 2) & 1),
                tlv_byte(Tag.TAX_SYSTEMS, tax_systems),
                tlv_u32(Tag.CONDITIONS, conditions),
                tlv_fixed_string(Tag.OFD_INN, ofd_inn, 12),
                tlv_byte(Tag.FFD, ffd),
                tlv_byte(Tag.FFD_FN, 4),
                tlv_u32(Tag.KEY_RESOURCE, self.config.lifetime_days),
            ]
            if doc.report_type != 0:
                head.append(tlv_u32(Tag.REASON_CODES, reason))
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
        s.registrations.append(replace(reg, fpd=fpd))
        s.ffd_in_use = ffd
        if doc.report_type in (0, 1):
            s.phase = Phase.FISCAL
            s.activation = when
            s.expiry = (when + timedelta(days=self.config.lifetime_days)).date()
        return fd, fpd

    # ------------------------------------------------------------------ closing the drive

    def _start_close_fn(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
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
