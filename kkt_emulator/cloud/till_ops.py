"""The till API's operations (till-protocol.md §1): bind, heartbeat, lease, results, OFD acks.

``report`` takes results and OFD acknowledgements in one transaction (``/outbox``, D63): the
results first, so an acknowledgement of a document reported in the same exchange finds it.

The lease answer (:class:`LeasedDocument`) and the answers to result reports
(:class:`ResultAnswer`) are typed from here to the HTTP edge, which calls their ``to_json()``; the
reports come in as the validated :class:`~kkt_emulator.cloud.schemas.ResultItem` models.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.core import UNAUTHORIZED
from kkt_emulator.cloud.lifecycle import (
    AlreadyFiscalisedError,
    FailureInfo,
    IllegalTransitionError,
    Status,
)
from kkt_emulator.cloud.security import hash_token, new_token, parse_basic, parse_bearer
from kkt_emulator.cloud.storage import Device
from kkt_emulator.cloud.timers import TimerOperations
from kkt_emulator.cloud.views import JsonObject, format_time, point_settings_view
from kkt_emulator.errors import CloudError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from structlog.typing import FilteringBoundLogger

    from kkt_emulator.cloud.records import OfdState, StoreRoute
    from kkt_emulator.cloud.schemas import (
        BindRequest,
        FiscalInfoIn,
        HeartbeatRequest,
        OfdAck,
        ResultItem,
    )
    from kkt_emulator.cloud.storage import DocumentRecord, RetailPoint

__all__ = [
    "SEEN_EVERY",
    "WATCH_SEEN_EVERY",
    "LeasedDocument",
    "OfdAckSummary",
    "OutboxAnswer",
    "ResultAnswer",
    "ResultOutcome",
    "TillOperations",
]

SEEN_EVERY: Final = timedelta(seconds=5)
"""How often at most a long poll moves its till's last-contact time (D67): the real till's
heartbeat interval."""
WATCH_SEEN_EVERY: Final = timedelta(seconds=60)
"""How often at most a fleet watch moves the last-contact time of the tills it names (D69): one
transaction for all of them, about once a minute, so a watch of thousands of tills stays cheap."""

# The order of the OFD delivery states: an acknowledgement never goes back to "sent".
_OFD_RANK: dict[OfdState, int] = {"not_sent": 0, "sent": 1, "acknowledged": 2}


@dataclass(frozen=True)
class LeasedDocument:
    """One document handed to a till under a lease (D39, T2)."""

    doc_id: str
    lease_id: str
    lease_expires_at: datetime
    accepted_at: datetime
    route: StoreRoute
    document: dict[str, Any]

    def to_json(self) -> JsonObject:
        """The item of the ``/lease`` answer's ``documents`` list."""
        return {
            "docId": self.doc_id,
            "leaseId": self.lease_id,
            "leaseExpiresAt": format_time(self.lease_expires_at),
            "acceptedAt": format_time(self.accepted_at),
            "route": self.route,
            "document": self.document,
        }


class ResultOutcome(StrEnum):
    """What the cloud made of one reported result (T3, T4, T13, D36)."""

    ACCEPTED = "accepted"
    LATE_ACCEPTED = "late_accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    IGNORED_ALREADY_FISCALISED = "ignored_already_fiscalised"
    UNKNOWN_DOCUMENT = "unknown_document"


@dataclass(frozen=True)
class ResultAnswer:
    """The answer to one reported result: the outcome and the document's status after it."""

    doc_id: str
    outcome: ResultOutcome
    status: Status | None

    def to_json(self) -> JsonObject:
        """The item of the ``/results`` answer's ``results`` list."""
        return {
            "docId": self.doc_id,
            "outcome": self.outcome.value,
            "status": None if self.status is None else self.status.value,
        }


@dataclass(frozen=True)
class OfdAckSummary:
    """The answer to ``/ofd-acks``: how many documents moved, which numbers no document has yet.

    An unknown number is kept and applied when the result that names it arrives, so an
    acknowledgement that overtook its result is never lost (till-protocol.md §1).
    """

    updated: int
    unknown: tuple[int, ...]

    def to_json(self) -> JsonObject:
        """The ``/ofd-acks`` answer."""
        return {"updated": self.updated, "unknown": list(self.unknown)}


@dataclass(frozen=True)
class OutboxAnswer:
    """The answer to ``/outbox``: one answer per result, and the OFD summary (D63)."""

    results: tuple[ResultAnswer, ...]
    ofd: OfdAckSummary

    def to_json(self) -> JsonObject:
        """The ``/outbox`` answer."""
        return {"results": [a.to_json() for a in self.results], "ofd": self.ofd.to_json()}


class TillOperations(TimerOperations):
    """``/api/device/v1``: what a till calls. Every lease and result report sweeps timers first."""

    def bind(self, header: str | None, body: BindRequest) -> JsonObject:
        """``POST /api/device/v1/bind`` (till-protocol.md §1): service credentials → token.

        A bind that carries the till's first heartbeat (D134) stores it in the same transaction
        and answers it under ``heartbeat`` as ``/heartbeat`` would.
        """
        cred = self._check_master(parse_basic(header))
        point_id = body.retailPointId or cred.retail_point_id
        if not point_id:
            raise ValidationError("retailPointId", "required field is missing")
        point = self._point(point_id)
        if point.account_id != cred.account_id:
            raise CloudError(403, f"No rights for retail point {point.id}")
        till_serial = body.tillSerial
        token = new_token()
        now = self.clock.now()
        with self.storage.transaction():
            self.storage.lock_point(point.id)  # one cloud process at a time per point (D75)
            existing = self.storage.get_device_by_serial(till_serial)
            device_id = existing.device_id if existing is not None else str(uuid.uuid4())
            self.storage.upsert_device(
                Device(
                    device_id=device_id,
                    till_serial=till_serial,
                    retail_point_id=point.id,
                    fn_serial=body.fnSerial or "",
                    model=body.model or "",
                    firmware_profile=body.firmwareProfile or "",
                    token_hash=hash_token(token),
                    bound_at=now,
                    last_heartbeat_at=None,
                    fn_ok=None,
                    heartbeat=None,
                )
            )
            if body.heartbeat is not None:
                self._record_heartbeat(device_id, now, body.heartbeat)
        self.log.info("till_bound", device_id=device_id, retail_point_id=point.id)
        answer: JsonObject = {"deviceId": device_id, "token": token, "retailPointId": point.id}
        if body.heartbeat is not None:
            answer["heartbeat"] = self._heartbeat_answer(device_id, point, now)
        return answer

    def authenticate_device(self, header: str | None) -> tuple[Device, RetailPoint]:
        """Check a till's bearer token: 401 if unknown, 403 if its retail point is gone."""
        token = parse_bearer(header)
        device = self.storage.get_device_by_token(hash_token(token)) if token else None
        if device is None:
            raise CloudError(401, UNAUTHORIZED)
        point = self.storage.get_point(device.retail_point_id)
        if point is None or point.deleted:
            raise CloudError(403, f"No rights for retail point {device.retail_point_id}")
        return device, point

    def point_settings(self, point: RetailPoint) -> JsonObject:
        """The retail point's settings in the till API's camelCase (store-api.md §11)."""
        return point_settings_view(point)

    def heartbeat(self, device: Device, point: RetailPoint, body: HeartbeatRequest) -> JsonObject:
        """``POST /heartbeat``: stores the till's state; feeds ``fnState`` (D40)."""
        now = self.clock.now()
        with self.storage.transaction():
            self._record_heartbeat(device.device_id, now, body)
        return self._heartbeat_answer(device.device_id, point, now)

    def _record_heartbeat(self, device_id: str, now: datetime, body: HeartbeatRequest) -> None:
        self.storage.record_heartbeat(
            device_id,
            now,
            fn_ok=body.fnState == "READY",
            body=body.model_dump(mode="json"),
            fn_serial=body.fnSerial or "",
        )

    def _heartbeat_answer(self, device_id: str, point: RetailPoint, now: datetime) -> JsonObject:
        return {
            "serverTime": format_time(now),
            "deviceId": device_id,
            "retailPointId": point.id,
            "settings": self.point_settings(point),
            "catalogRevision": self.storage.catalog_revision(point.id),  # B16
        }

    def mark_seen(self, devices: Iterable[Device], every: timedelta = SEEN_EVERY) -> int:
        """Long polls or a fleet watch held or renewed: the tills are alive (D67, D69).

        The time ``/v1/status`` and the cabinet show (D40) is a till's last contact: a heartbeat,
        or the start or the end of a long poll or of a fleet watch naming it. The stored heartbeat
        stays as the till sent it; only its time moves, at most once per ``every``: an idle
        long-polling till writes one row per long poll, and its time is at most one long-poll
        wait old. A till that never sent a heartbeat stays ``ASSOCIATED`` (D40). Returns how
        many times were written (in one transaction).
        """
        now = self.clock.now()
        due: list[Device] = []
        for device in devices:
            current = self.storage.get_device_by_token(device.token_hash)
            if current is None or current.heartbeat is None:
                continue
            last = current.last_heartbeat_at
            if last is None or now - last >= every:
                due.append(current)
        if due:
            with self.storage.transaction():
                for current in due:
                    self.storage.record_heartbeat(
                        current.device_id,
                        now,
                        fn_ok=bool(current.fn_ok),
                        body=current.heartbeat or {},
                        fn_serial="",
                    )
        return len(due)

    def watched(
        self, tokens: Sequence[str]
    ) -> tuple[list[tuple[int, Device, RetailPoint]], list[int]]:
        """The tills a fleet watch names by their bearer tokens (D69), and the refused positions.

        A token no till holds, or whose retail point is gone, is refused by its position in the
        list; that till's own next call gets the 401 or 403 it would get anyway.
        """
        found: list[tuple[int, Device, RetailPoint]] = []
        refused: list[int] = []
        for index, token in enumerate(tokens):
            device = self.storage.get_device_by_token(hash_token(token)) if token else None
            point = None if device is None else self.storage.get_point(device.retail_point_id)
            if device is None or point is None or point.deleted:
                refused.append(index)
            else:
                found.append((index, device, point))
        return found, refused

    def has_eligible(self, point_id: str) -> bool:
        """Whether a till of the point would get a document now."""
        return bool(self.storage.eligible_for_lease(point_id, 1))

    def eligible_count(self, point_id: str, cap: int) -> int:
        """How many documents a till of the point would get now, counted up to ``cap``."""
        return len(self.storage.eligible_for_lease(point_id, cap)) if cap > 0 else 0

    def lease(
        self, device: Device, point: RetailPoint, limit: int, *, resume: bool = False
    ) -> list[LeasedDocument]:
        """Lease up to ``limit`` documents, oldest first (D39, T2); each to exactly one till.

        With ``resume`` (a till that has just started) the documents still PENDING under this
        till's own leases come first, with their lease unchanged: the till may have lost the
        answer that gave them to it. No other till ever gets them (till-protocol.md §1).
        """
        self.sweep(self.clock.now())
        now = self.clock.now()
        items = []
        with self.storage.transaction():
            if resume:
                for record in self.storage.leased_to(device.device_id, point.id, limit):
                    self.storage.add_history(
                        record.seq,
                        now,
                        record.state.status,
                        "lease_resumed",
                        {"deviceId": device.device_id, "leaseId": record.state.lease_id},
                    )
                    items.append(self._lease_item(record, point))
            for record in self.storage.eligible_for_lease(point.id, limit - len(items)):
                lease_id = uuid.uuid4().hex
                leased = self._apply(
                    record,
                    lc.Lease(lease_id),
                    now,
                    {"deviceId": device.device_id, "leaseId": lease_id},
                    lease_device_id=device.device_id,
                )
                items.append(self._lease_item(leased, point))
        if items:
            self.log.info("documents_leased", device_id=device.device_id, count=len(items))
            self.on_change(point.id)
        return items

    @staticmethod
    def _lease_item(record: DocumentRecord, point: RetailPoint) -> LeasedDocument:
        document = dict(record.document)
        if "taxMode" not in document:
            document["taxMode"] = point.default_tax_mode.value  # D21
        lease_id, expires = record.state.lease_id, record.state.lease_expires_at
        assert lease_id is not None
        assert expires is not None
        return LeasedDocument(
            doc_id=record.doc_id,
            lease_id=lease_id,
            lease_expires_at=expires,
            accepted_at=record.created_at,
            route=record.route,
            document=document,
        )

    def results(
        self, device: Device, point: RetailPoint, items: Sequence[ResultItem]
    ) -> list[ResultAnswer]:
        """``POST /results``: apply a batch of till outcomes (T3, T4, T13; D36); idempotent."""
        self.sweep(self.clock.now())
        answers: list[ResultAnswer] = []
        with self.storage.transaction():
            answers.extend(self._result(device, point, item) for item in items)
        self.on_change(point.id)
        return answers

    def _result(self, device: Device, point: RetailPoint, item: ResultItem) -> ResultAnswer:
        doc_id = item.docId
        record = self.storage.get_document(point.id, doc_id)
        if record is None:
            return ResultAnswer(doc_id, ResultOutcome.UNKNOWN_DOCUMENT, None)
        log = self.log.bind(doc_id=doc_id, device_id=device.device_id)
        if item.outcome == "fiscalized":
            assert item.fiscalInfo is not None  # ResultItem's validator
            return self._fiscalised(device, record, item.leaseId, item.fiscalInfo, log)
        return self._failed(device, point, record, item, log)

    def _fiscalised(
        self,
        device: Device,
        record: DocumentRecord,
        lease_id: str | None,
        fiscal_info: FiscalInfoIn,
        log: FilteringBoundLogger,
    ) -> ResultAnswer:
        now = self.clock.now()
        doc_id = record.doc_id
        info = fiscal_info.model_dump(mode="json")
        fn_number, fd = str(info["fnNumber"]), int(info["fnDocNumber"])
        if record.state.fiscalised:
            if (record.fn_number, record.fn_doc_number) == (fn_number, fd):
                return ResultAnswer(doc_id, ResultOutcome.DUPLICATE, record.state.status)
            log.error("double_fiscalisation_alarm", fn_number=fn_number, fn_doc_number=fd)
            self.storage.update_document(
                dataclasses.replace(
                    record,
                    warnings=(
                        *record.warnings,
                        f"double fiscalisation: also reported as ФД {fd} on ФН {fn_number}",
                    ),
                )
            )
            self.storage.add_history(
                record.seq,
                now,
                record.state.status,
                "double_fiscalisation_alarm",
                {"fnNumber": fn_number, "fnDocNumber": fd, "deviceId": device.device_id},
            )
            return ResultAnswer(
                doc_id, ResultOutcome.IGNORED_ALREADY_FISCALISED, record.state.status
            )
        late = not (record.state.status is Status.PENDING and lease_id == record.state.lease_id)
        try:
            updated = self._apply(
                record,
                lc.Success(lease_id, self.settings.callback_dispatch_delay),
                now,
                {"deviceId": device.device_id, "leaseId": lease_id, "late": late},
                fiscal_info=info,
                fn_number=fn_number,
                fn_doc_number=fd,
                ofd_state="not_sent",
                write=False,  # D125: stored once below, with the parked OFD report and dispatch
            )
        except AlreadyFiscalisedError:  # pragma: no cover - checked above
            return ResultAnswer(doc_id, ResultOutcome.DUPLICATE, record.state.status)
        except IllegalTransitionError as exc:
            log.warning("till_result_ignored", reason=str(exc))
            return ResultAnswer(doc_id, ResultOutcome.IGNORED, record.state.status)
        if late:
            log.warning("late_result", previous_status=record.state.status.value)
        updated = self._apply_parked_ofd_ack(updated, now)
        updated = self._dispatch_if_due(updated, now, write=False)
        self.storage.update_document(updated, record)  # D125: one write for the whole report
        outcome = ResultOutcome.LATE_ACCEPTED if late else ResultOutcome.ACCEPTED
        return ResultAnswer(doc_id, outcome, updated.state.status)

    def _failed(
        self,
        device: Device,
        point: RetailPoint,
        record: DocumentRecord,
        item: ResultItem,
        log: FilteringBoundLogger,
    ) -> ResultAnswer:
        failure = item.failureInfo
        assert failure is not None  # ResultItem's validator
        lease_id = item.leaseId
        if (
            record.state.status is Status.FAILED
            and record.failure_detail is not None
            and record.failure_detail.get("leaseId") == lease_id
        ):
            return ResultAnswer(record.doc_id, ResultOutcome.DUPLICATE, record.state.status)
        detail = {
            "leaseId": lease_id,
            "deviceId": device.device_id,
            "resultCode": item.resultCode,
            "detail": item.detail,
        }
        try:
            updated = self._apply(
                record,
                lc.Failure(
                    lease_id,
                    FailureInfo(failure.type, failure.message),
                    stop_on_errors=point.stop_on_errors,
                ),
                self.clock.now(),
                detail,
                failure_detail=detail,
            )
        except IllegalTransitionError as exc:
            # D36: a failure for a document no longer PENDING under that lease changes nothing.
            log.warning("late_failure_ignored", reason=str(exc))
            return ResultAnswer(record.doc_id, ResultOutcome.IGNORED, record.state.status)
        return ResultAnswer(record.doc_id, ResultOutcome.ACCEPTED, updated.state.status)

    def _apply_parked_ofd_ack(self, record: DocumentRecord, now: datetime) -> DocumentRecord:
        """An OFD report that came before this result: apply it now (the caller stores the row)."""
        assert record.fn_number is not None
        assert record.fn_doc_number is not None
        parked = self.storage.take_parked_ofd_ack(record.fn_number, record.fn_doc_number)
        if parked is None:
            return record
        state, at = parked
        updated = lc.replace(record, ofd_state=state, ofd_changed_at=at or now)
        self.storage.add_history(
            record.seq,
            now,
            record.state.status,
            f"ofd_{state}",
            {"fnDocNumber": record.fn_doc_number, "parked": True},
        )
        return updated

    def report(
        self,
        device: Device,
        point: RetailPoint,
        results: Sequence[ResultItem],
        acks: Sequence[OfdAck],
    ) -> OutboxAnswer:
        """``POST /outbox`` (D63): results, then OFD acknowledgements, in one transaction."""
        if results:
            self.sweep(self.clock.now())
        with self.storage.transaction():
            answers = tuple(self._result(device, point, item) for item in results)
            summary = self._ofd_acks(device, acks)
        if results:
            self.on_change(point.id)
        return OutboxAnswer(answers, summary)

    def ofd_acks(self, device: Device, items: Sequence[OfdAck]) -> OfdAckSummary:
        """``POST /ofd-acks``: OFD delivery per fiscal document, kept apart from COMPLETED."""
        with self.storage.transaction():
            return self._ofd_acks(device, items)

    def _ofd_acks(self, device: Device, items: Sequence[OfdAck]) -> OfdAckSummary:
        now = self.clock.now()
        updated = 0
        unknown: list[int] = []
        for item in items:
            fn_number = item.fnNumber or device.fn_serial
            fd = item.fnDocNumber
            record = self.storage.find_by_fiscal_number(fn_number, fd)
            if record is None:
                # Its result has not arrived yet (or it is no shop document): keep it.
                self.storage.park_ofd_ack(fn_number, fd, item.state, item.at)
                unknown.append(fd)
                continue
            state = item.state
            if _OFD_RANK[state] <= _OFD_RANK.get(record.ofd_state, 0):
                continue
            self.storage.update_document(
                lc.replace(record, ofd_state=state, ofd_changed_at=item.at or now), record
            )
            self.storage.add_history(
                record.seq, now, record.state.status, f"ofd_{state}", {"fnDocNumber": fd}
            )
            updated += 1
        return OfdAckSummary(updated, tuple(unknown))
