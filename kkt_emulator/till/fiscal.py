"""Fiscalising shop documents and reconciling the ones a crash left in flight.

Crash safety (``till-protocol.md`` §2): the journal entry for a document is committed before its
first drive command; the result is recorded in one transaction after the drive answers; on start
:meth:`Fiscaliser.reconcile` reports a document the drive's archive already holds and re-processes
one it does not. A shop document is never fiscalised twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from kkt_emulator.errors import DriveError, TransportError
from kkt_emulator.fn.codes import Command, DocCode, ResultCode
from kkt_emulator.fn.signing import fpd_from_1077
from kkt_emulator.fn.tlv import decode_uint, decode_unixtime, decode_vln, parse_tlvs
from kkt_emulator.fnio.client import LocalRefusalError, ReceiptAnswer
from kkt_emulator.till.cloud_link import Lease
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.failures import Failure, drive_failure, link_failure, till_failure
from kkt_emulator.till.fault_control import FaultControl
from kkt_emulator.till.faults import CrashPoint
from kkt_emulator.till.outbox import fiscal_info
from kkt_emulator.till.receipts import CHECK_TYPES, ReceiptPlan, TillCheckError, build_receipt
from kkt_emulator.till.shifts import Shifts
from kkt_emulator.till.store import JournalEntry

__all__ = ["Fiscaliser"]


class Fiscaliser:
    """Turns leased shop documents into signed receipts and records every outcome durably.

    Args:
        ctx: the till's shared state.
        shifts: opens the shift a receipt needs, picks the registered address.
        faults: the crash points.
    """

    def __init__(self, ctx: TillContext, shifts: Shifts, faults: FaultControl) -> None:
        self.ctx = ctx
        self.shifts = shifts
        self.faults = faults

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> list[str]:
        """Settle documents the journal says were in flight; returns the doc ids handled.

        The entry that had reached the drive (it has an expected fiscal document number; the
        drive lock allows one at a time) is settled first, against the drive's archive, before any
        other document may take the next number. Documents leased but never started follow.
        """
        ctx = self.ctx
        handled = []
        entries = ctx.state.journal_entries()
        for entry in [e for e in entries if e.expected_fd]:
            if await self.settle_in_flight(entry):
                handled.append(entry.doc_id)
            else:
                ctx.state.journal(
                    entry.doc_id, entry.lease_id, 0, entry.document, ctx.clock.now().isoformat()
                )
                ctx.log.info("reconciled_retry", doc_id=entry.doc_id)
        for entry in ctx.state.journal_entries():
            # Leased (or rolled back above) but not on the drive: process it now.
            await self.fiscalise(Lease(entry.doc_id, entry.lease_id, entry.document))
            handled.append(entry.doc_id)
        if handled:
            ctx.outbox_wake.set()  # reconciled outside a poll's batch: report it now
        return handled

    async def settle_in_flight(self, entry: JournalEntry) -> bool:
        """Settle a document that may have reached the drive, against the drive's archive.

        If the archive holds its receipt under the expected fiscal number, record it fiscalised
        and return True; otherwise cancel any open drive document and return False (it was never
        signed).

        Raises:
            TransportError: the drive cannot tell yet (no answer).
            DriveError: the drive cannot tell yet (it refused the reading).
        """
        ctx = self.ctx
        status = await ctx.fn.status()
        if status.last_fd >= entry.expected_fd:
            archived = await self._read_receipt(entry.expected_fd)
            if archived is not None:
                info = self._fiscal_info_from_archive(archived, entry.document)
                ctx.state.record_result(
                    entry.doc_id,
                    info["fnDocNumber"],
                    _fiscalized(entry.doc_id, entry.lease_id, info),
                )
                ctx.log.info("reconciled_fiscalized", doc_id=entry.doc_id, fd=info["fnDocNumber"])
                ctx.counters["fiscalized"] += 1
                return True
        if status.current_document:
            await ctx.fn.cancel_document()
        return False

    async def _read_receipt(self, fd: int) -> dict[int, bytes] | None:
        fn = self.ctx.fn
        try:
            head = await fn.call(Command.READ_DOCUMENT_TLV, fd=fd)
        except DriveError:
            return None  # the drive has no such document: it was never signed
        if head.doc_type != DocCode.RECEIPT:
            return None
        values: dict[int, bytes] = {}
        while True:
            answer = await fn.request(Command.READ_DOCUMENT_TLV_NEXT)
            if answer.result != ResultCode.OK:
                break
            for tlv in parse_tlvs(answer.data):
                values.setdefault(tlv.tag, tlv.value)
        return values

    def _fiscal_info_from_archive(
        self, values: dict[int, bytes], document: dict[str, Any]
    ) -> dict[str, Any]:
        fd = decode_uint(values[1040], 4)
        when = decode_unixtime(values[1012]).replace(tzinfo=None)
        operation = values[1054][0]
        return self._fiscal_info(
            shift=decode_uint(values[1038], 4),
            receipt=decode_uint(values[1042], 4),
            fd=fd,
            fpd=fpd_from_1077(values[1077]),
            local=when,
            total=decode_vln(values[1020]),
            check_type=CHECK_TYPES.get(operation, str(document.get("docType"))),
            operation=operation,
        )

    # ------------------------------------------------------------------ fiscalisation

    def _fiscal_info(
        self,
        *,
        shift: int,
        receipt: int,
        fd: int,
        fpd: int,
        local: datetime,
        total: int,
        check_type: str,
        operation: int,
    ) -> dict[str, Any]:
        return fiscal_info(
            self.ctx,
            shift=shift,
            receipt=receipt,
            fd=fd,
            fpd=fpd,
            local=local,
            total=total,
            check_type=check_type,
            operation=operation,
        )

    async def fiscalise(self, item: Lease) -> dict[str, Any]:
        """Fiscalise one leased document and record its outcome; returns the result report."""
        ctx = self.ctx
        doc_id = item.doc_id
        lease_id = item.lease_id
        document = item.document
        log = ctx.log.bind(doc_id=doc_id)
        done = ctx.state.processed(doc_id)
        if done is not None and done["outcome"] == "fiscalized":
            # Never twice: report what the drive already signed for this document.
            done = {**done, "leaseId": lease_id}
            ctx.state.record_result(doc_id, done["fiscalInfo"]["fnDocNumber"], done)
            log.warning("document_already_fiscalized", fd=done["fiscalInfo"]["fnDocNumber"])
            return done
        if done is not None and lease_id is not None and done.get("leaseId") == lease_id:
            # The same lease handed back after a restart (a resumed lease): its outcome stands.
            ctx.state.record_result(doc_id, None, done)
            log.info("document_result_repeated", outcome=done["outcome"])
            return done
        try:
            plan = build_receipt(document, ctx.profile)
        except TillCheckError as exc:
            return self._record_failure(doc_id, lease_id, till_failure(exc.text, exc.detail), log)
        fn = ctx.fn
        async with fn.exclusive:
            local = ctx.local_now()
            try:
                if len(ctx.profile.registration.addresses) > 1:
                    plan = build_receipt(document, ctx.profile, self.shifts.address())
                shift_number = await self.shifts.ensure_open(local)
                status = await fn.status()
                if status.current_document:
                    await fn.cancel_document()
                expected = status.last_fd + 1
                await ctx.state.journal_synced(
                    doc_id, lease_id, expected, document, ctx.clock.now().isoformat()
                )
                self.faults.crash_point(CrashPoint.BEFORE_COMMIT)
                answer, shift_number = await self._run_receipt(local, plan, shift_number)
            except (DriveError, LocalRefusalError) as exc:
                # A local refusal is reported in the drive's terms, as the drive would answer.
                refusal = exc.as_drive_error() if isinstance(exc, LocalRefusalError) else exc
                ctx.state.drop_journal(doc_id)
                return self._record_failure(
                    doc_id,
                    lease_id,
                    drive_failure(refusal, ctx.profile, self._explain(refusal, plan)),
                    log,
                )
            except TransportError as exc:
                entry = next(
                    (
                        e
                        for e in ctx.state.journal_entries()
                        if e.doc_id == doc_id and e.expected_fd
                    ),
                    None,
                )
                if entry is not None:
                    # 16h may have reached the drive before the link broke: only its archive can
                    # tell. If it cannot tell yet, keep the journal entry: reconcile settles it
                    # when the link is back, so a signed receipt is never reported as failed.
                    log.warning("drive_link_lost_mid_receipt", error=str(exc))
                    try:
                        if await self.settle_in_flight(entry):
                            return ctx.state.processed(doc_id) or {}
                    except (TransportError, DriveError) as still:
                        log.info("document_in_doubt", error=str(still))
                        return {"docId": doc_id, "leaseId": lease_id, "outcome": "in_doubt"}
                return self._record_failure(
                    doc_id, lease_id, link_failure(ctx.profile, str(exc)), log
                )
            self.faults.crash_point(CrashPoint.AFTER_COMMIT)
        info = self._fiscal_info(
            shift=shift_number,
            receipt=answer.receipt_number,
            fd=answer.fd,
            fpd=answer.fpd,
            local=local,
            total=plan.total,
            check_type=plan.check_type,
            operation=plan.operation,
        )
        result = _fiscalized(doc_id, lease_id, info)
        ctx.state.record_result(doc_id, answer.fd, result)
        self.shifts.address_used()
        ctx.counters["fiscalized"] += 1
        log.info("document_fiscalized", fd=answer.fd, fpd=answer.fpd, receipt=answer.receipt_number)
        ctx.emit("document.fiscalized", {"docId": doc_id, **info})
        self.faults.crash_point(CrashPoint.AFTER_OUTBOX)
        # The OFD loop sends the new document now; the result goes with the poll's flush after
        # its batch (every path to here ends in one), so the outbox loop is not woken for it.
        ctx.wake.set()
        ctx.ofd_wake.set()
        return result

    async def _run_receipt(
        self, local: datetime, plan: ReceiptPlan, shift_number: int
    ) -> tuple[ReceiptAnswer, int]:
        """The receipt's drive commands; returns the answer and the shift it was signed in."""
        fn = self.ctx.fn
        try:
            return await fn.receipt(local, plan.operation, plan.total, plan.all_tlv), shift_number
        except DriveError as exc:
            if exc.code != ResultCode.SHIFT_TOO_LONG:
                raise
        # The drive says the shift is over 24 hours old: close it, open a new one, try again.
        await self.shifts.close_drive_shift(local)
        shift_number = await self.shifts.ensure_open(local)
        return await fn.receipt(local, plan.operation, plan.total, plan.all_tlv), shift_number

    def _explain(self, exc: DriveError, plan: ReceiptPlan) -> dict[str, Any]:
        """Name the offending positions and the missing registration flag (support's first question)."""
        tag = int.from_bytes(exc.data[:2], "little") if len(exc.data) >= 2 else None
        detail: dict[str, Any] = {}
        if tag in (1057, 1222, 1223, 1224, 1226):
            detail["missingRegistrationFlag"] = "agent"
            detail["positions"] = [
                p["position"] for p in plan.positions if p["agent"] or p["supplier"]
            ]
        elif tag == 1212:
            detail["missingRegistrationFlag"] = "excise"
            detail["positions"] = [p["position"] for p in plan.positions if p["excise"]]
        elif tag == 1055:
            detail["taxSystem"] = plan.tax_system
            detail["registeredTaxSystems"] = self.ctx.profile.registration.tax_mask
        return detail

    def _record_failure(
        self, doc_id: str, lease_id: str | None, failure: Failure, log: FilteringBoundLogger
    ) -> dict[str, Any]:
        ctx = self.ctx
        result = _failed(doc_id, lease_id, failure)
        ctx.state.record_result(doc_id, None, result)
        ctx.counters["failed"] += 1
        log.info("document_failed", message=failure.message, detail=failure.detail)
        ctx.emit(
            "document.failed",
            {"docId": doc_id, "failureInfo": failure.to_json(), "detail": failure.detail},
        )
        ctx.wake.set()
        return result


def _fiscalized(doc_id: str, lease_id: str | None, info: dict[str, Any]) -> dict[str, Any]:
    return {"docId": doc_id, "leaseId": lease_id, "outcome": "fiscalized", "fiscalInfo": info}


def _failed(doc_id: str, lease_id: str | None, failure: Failure) -> dict[str, Any]:
    result: dict[str, Any] = {
        "docId": doc_id,
        "leaseId": lease_id,
        "outcome": "failed",
        "failureInfo": failure.to_json(),
        "detail": failure.detail,
    }
    if failure.result_code is not None:
        result["resultCode"] = failure.result_code
    return result
