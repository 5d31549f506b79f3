"""Documents, shifts, receipts, the settlement report: 06h, 07h, 10h–19h (fn-protocol.md §6.4, §6.5).

07h checks every TLV the till sends: whole objects, the volume limit per document kind (10h),
tags the drive forms itself (0Bh), duplicates (0Ch), malformed values (18h), the item count
(0Eh) and, in receipts, what the registration allows (19h). Finishing a receipt checks the
mandatory tags (3Ch) and the payment sums, then signs it and counts it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from kkt_emulator.errors import DriveError, ValidationError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, CurrentDocument, DocCode
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.core import DriveCore
from kkt_emulator.fn.rules import (
    AGENT_TAGS,
    EXCISE_SUBJECT,
    FFD_NAMES,
    ITEM_MANDATORY,
    OPEN_SHIFT_ALLOWANCE,
    PAYMENT_TAGS,
    REPEATABLE_TAGS,
    TLV_KIND,
)
from kkt_emulator.fn.state import (
    RegistrationRecord,
)
from kkt_emulator.fn.tags import Tag, is_drive_formed
from kkt_emulator.fn.tlv import (
    Tlv,
    TlvError,
    decode_vln,
    parse_tlvs,
    tlv_byte,
    tlv_u32,
    tlv_vln,
    validate_tlv,
)

__all__ = ["DocumentCommands"]

_REGISTERED_TAGS = frozenset({int(Tag.TAX_SYSTEM), int(Tag.ITEM), *map(int, AGENT_TAGS)})
"""The top-level tags whose use the registration limits (19h); any other passes at once."""
_CHECKED_KINDS = frozenset({int(CurrentDocument.RECEIPT), int(CurrentDocument.CORRECTION)})
_ITEM = int(Tag.ITEM)
_AGENT_TAGS = frozenset(map(int, AGENT_TAGS))
_SUBJECT = int(Tag.SUBJECT)
_EXCISE = bytes((EXCISE_SUBJECT,))
_ITEM_AGENT = int(Tag.ITEM_AGENT)
_SUPPLIER_INN = int(Tag.SUPPLIER_INN)


class DocumentCommands(DriveCore):
    """Documents in general, shifts, receipts and corrections, the settlement report."""

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
        limit = self.config.tlv_limits[TLV_KIND[CurrentDocument(doc.kind)]]
        if len(doc.tlv) + len(data) > limit:
            raise DriveError(
                R.TLV_TOO_LARGE,
                detail=f"document data would be {len(doc.tlv) + len(data)} bytes, limit {limit}",
            )
        ffd = FFD_NAMES.get(doc.ffd or s.ffd_in_use, "1.05")
        seen = set(doc.tags)
        items = doc.items
        reg = s.registration
        # 19h: only receipts and corrections are held to the registration.
        checked = reg if doc.kind in _CHECKED_KINDS else None
        for tlv in new:
            if is_drive_formed(tlv.tag, ffd):
                raise DriveError(
                    R.FORBIDDEN_TAG,
                    tlv.tag.to_bytes(2, "little"),
                    detail=f"tag {tlv.tag} is formed by the drive",
                )
            if tlv.tag in seen and tlv.tag not in REPEATABLE_TAGS:
                raise DriveError(
                    R.DUPLICATE_DATA,
                    tlv.tag.to_bytes(2, "little"),
                    detail=f"tag {tlv.tag} sent twice",
                )
            seen.add(tlv.tag)
            try:
                children = validate_tlv(tlv.tag, tlv.value)
            except ValidationError as exc:
                raise DriveError(R.BAD_TAG, tlv.tag.to_bytes(2, "little"), detail=str(exc)) from exc
            if tlv.tag == _ITEM:
                items += 1
                if items > self.config.max_items:
                    raise DriveError(
                        R.TOO_MANY_ITEMS, detail=f"more than {self.config.max_items} items"
                    )
            if checked is not None and tlv.tag in _REGISTERED_TAGS:
                self._check_registered(tlv, checked, ffd, children)
        joined = doc.tlv + data
        parsed = doc.parsed
        if parsed is not None and parsed[0] is doc.tlv:
            doc.parsed = (joined, parsed[1] + new)
        elif not doc.tlv:
            doc.parsed = (joined, new)
        else:
            doc.parsed = None
        doc.tlv = joined
        doc.tags = seen
        doc.items = items
        self._changed()
        return b""

    def _check_registered(
        self, tlv: Tlv, reg: RegistrationRecord, ffd: str, children: list[Tlv] | None = None
    ) -> None:
        """19h rules: the document may only use what the registration allows.

        ``children`` are the item's parsed TLVs when the caller has them already.
        """
        if tlv.tag not in _REGISTERED_TAGS:
            return
        tag_bytes = tlv.tag.to_bytes(2, "little")
        if tlv.tag == Tag.TAX_SYSTEM:
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
        if tlv.tag == _ITEM:
            try:
                inner = children if children is not None else parse_tlvs(tlv.value)
            except TlvError as exc:
                raise DriveError(R.BAD_TAG, tag_bytes, detail=f"item STLV: {exc}") from exc
            inner_tags = {t.tag for t in inner}
            # The refusals below name the first offending child, so the children are walked in
            # order, but only when one of them can offend.
            if (not reg.agent and not inner_tags.isdisjoint(_AGENT_TAGS)) or (
                not reg.excise and _SUBJECT in inner_tags
            ):
                for sub in inner:
                    if sub.tag in _AGENT_TAGS and not reg.agent:
                        raise DriveError(
                            R.TAG_NOT_REGISTERED,
                            sub.tag.to_bytes(2, "little"),
                            detail=f"agent tag {sub.tag} in an item on a drive registered without the agent flag",
                        )
                    if sub.tag == _SUBJECT and sub.value == _EXCISE and not reg.excise:
                        raise DriveError(
                            R.TAG_NOT_REGISTERED,
                            sub.tag.to_bytes(2, "little"),
                            detail="excise goods on a drive registered without the excise flag",
                        )
            # The values of the item's tags were checked with the item (validate_tlv checks an
            # STLV's children), before this is called.
            if ffd in ("1.1", "1.2"):
                for needed in ITEM_MANDATORY:
                    if needed not in inner_tags:
                        raise DriveError(
                            R.MISSING_TAGS,
                            needed.to_bytes(2, "little"),
                            detail=f"item without mandatory tag {needed}",
                        )
                if (_ITEM_AGENT in inner_tags) != (_SUPPLIER_INN in inner_tags):
                    raise DriveError(
                        R.MISSING_TAGS,
                        Tag.SUPPLIER_INN.to_bytes(2, "little"),
                        detail="1222 and 1226 go together",
                    )

    # ------------------------------------------------------------------ shifts

    def _shift_params(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        return cmd.build_answer(
            Command.SHIFT_PARAMS,
            shift_open=int(s.shift_open),
            shift_number=s.shift_number,
            receipt_number=s.receipts_in_shift,
        )

    def _start_open_shift(self, local: datetime, req: Any) -> bytes:
        s = self.state
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
        head = [tlv_u32(Tag.SHIFT, number), *self._warning_tlvs(local)]
        if s.ffd_in_use != 1:
            head.append(tlv_byte(Tag.FFD, s.ffd_in_use))
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
            tlv_u32(Tag.SHIFT, number),
            tlv_u32(Tag.RECEIPTS_IN_SHIFT, s.receipts_in_shift),
            tlv_u32(Tag.FDS_IN_SHIFT, s.fds_in_shift + 1),
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
        if is_receipt and Tag.ITEM not in tags:
            raise DriveError(
                R.MISSING_TAGS,
                Tag.ITEM.to_bytes(2, "little"),
                detail="a receipt needs at least one item (1059)",
            )
        if is_receipt and reg.internet and Tag.BUYER_CONTACT not in tags:
            raise DriveError(
                R.MISSING_TAGS,
                Tag.BUYER_CONTACT.to_bytes(2, "little"),
                detail="internet mode: the buyer's phone or e-mail (1008) is mandatory",
            )
        if Tag.TAX_SYSTEM not in tags and reg.tax_systems & (reg.tax_systems - 1):
            raise DriveError(
                R.MISSING_TAGS,
                Tag.TAX_SYSTEM.to_bytes(2, "little"),
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
            paid = sum(decode_vln(tags[tag]) for tag in present)
            if paid != req.total:
                raise DriveError(
                    R.BAD_PARAMETERS,
                    detail=f"payments {paid} kopecks do not equal the total {req.total}",
                )
        head = [
            tlv_u32(Tag.SHIFT, s.shift_number),
            tlv_u32(Tag.RECEIPT_NO, s.receipts_in_shift + 1),
            tlv_byte(Tag.OPERATION, req.operation),
            tlv_vln(Tag.TOTAL, req.total),
            *self._warning_tlvs(local),
        ]
        if s.ffd_in_use != 1:
            head.append(tlv_byte(Tag.FFD, s.ffd_in_use))
        if Tag.TAX_SYSTEM not in tags:
            head.append(tlv_byte(Tag.TAX_SYSTEM, reg.tax_systems))
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
            head.insert(0, tlv_u32(Tag.SHIFT, s.shift_number))
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
