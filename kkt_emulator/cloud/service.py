"""The operations of the cloud stand-in, shared by the store, till and cabinet APIs.

Every method is synchronous and runs its storage work in one transaction; the HTTP layer is a thin
pump around it, and the timer task of :mod:`kkt_emulator.cloud.app` calls :meth:`CloudService.sweep`
and the callback methods. Errors are raised as :class:`~kkt_emulator.errors.CloudError` (an HTTP
status and a message for ``{"message": …}``) or :class:`~kkt_emulator.errors.ValidationError`
(always 400).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.lifecycle import (
    AlreadyFiscalisedError,
    CallbackKind,
    FailureInfo,
    FailureType,
    IllegalTransitionError,
    Status,
)
from kkt_emulator.cloud.security import (
    BasicCredentials,
    PasswordHasher,
    generate_password,
    hash_token,
    new_token,
    parse_basic,
    parse_bearer,
)
from kkt_emulator.cloud.settings import (
    CallbackMethod,
    CloudSettings,
    DuplicatePolicy,
    FiscalDateFormat,
    FnState,
    PickupWindow,
)
from kkt_emulator.cloud.storage import (
    Account,
    Association,
    Device,
    DocumentFilter,
    DocumentRecord,
    MasterCredential,
    RetailPoint,
    Storage,
)
from kkt_emulator.cloud.texts import (
    MESSAGE_COMPLETED_WITH_CALLBACK,
    MESSAGE_QUEUED,
    PICKUP_SHOP_TEXT,
    PICKUP_TIMEOUT_TEXT,
)
from kkt_emulator.cloud.validation import TAX_MODES, parse_document
from kkt_emulator.errors import CloudError, ValidationError
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kkt_emulator.clock import Clock

__all__ = ["DEFAULT_ACCOUNT", "CallbackRequest", "CloudService", "callback_url", "format_time"]

DEFAULT_ACCOUNT: Final = "default"
UNAUTHORIZED: Final = "Unauthorized"


def format_time(value: datetime) -> str:
    """D10: UTC, seconds precision, offset written ``+00:00``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CallbackRequest:
    """One callback attempt to make (D41, D42)."""

    seq: int
    kind: CallbackKind
    method: str
    url: str
    body: bytes | None
    due_at: datetime


def callback_url(response_url: str, kind: CallbackKind, qr: str | None) -> str:
    """``responseURL`` with ``status=…`` (and ``qr=…`` on success) appended (D41)."""
    params = "status=SUCCESS" if kind is CallbackKind.SUCCESS else "status=FAILED"
    if kind is CallbackKind.SUCCESS and qr is not None:
        params += "&qr=" + quote(qr, safe="")
    if "?" not in response_url:
        separator = "?"
    elif response_url.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return response_url + separator + params


class CloudService:
    """Store, till and cabinet operations over one :class:`Storage` and one clock.

    ``on_change`` is called after every write that may make documents eligible for a lease or move a
    timer deadline; the app uses it to wake long polls and the timer task.
    """

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        settings: CloudSettings | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.settings = settings or CloudSettings()
        self.hasher = PasswordHasher(self.settings.password_iterations)
        self.on_change: Callable[[], None] = on_change or (lambda: None)
        self.log = get_logger(component="cloud")
        with self.storage.transaction():
            if self.storage.get_account(DEFAULT_ACCOUNT) is None:
                self.storage.insert_account(
                    Account(DEFAULT_ACCOUNT, "Default account", self.clock.now())
                )

    # -- lifecycle plumbing ------------------------------------------------------------------------

    def _apply(
        self,
        record: DocumentRecord,
        event: lc.Event,
        at: datetime,
        detail: dict[str, Any] | None = None,
        **changes: Any,
    ) -> DocumentRecord:
        state = lc.step(record.state, event, at)
        updated = dataclasses.replace(record, state=state, **changes)
        self.storage.update_document(updated)
        self.storage.add_history(record.seq, at, state.status, event.kind.value, detail)
        if state.status is not record.state.status:
            self.log.info(
                "document_status_changed",
                doc_id=record.doc_id,
                retail_point_id=record.retail_point_id,
                old=record.state.status.value,
                new=state.status.value,
                cause=event.kind.value,
            )
        return updated

    def _dispatch_if_due(self, record: DocumentRecord, at: datetime) -> DocumentRecord:
        state = record.state
        if (
            state.status is Status.PRINTED
            and state.dispatch_at is not None
            and state.dispatch_at <= at
        ):
            return self._apply(record, lc.Dispatch(), at)
        return record

    def _point(self, point_id: str) -> RetailPoint:
        point = self.storage.get_point(point_id)
        if point is None or point.deleted:
            raise CloudError(404, f"Retail point not found: {point_id}")
        return point

    @staticmethod
    def _pickup_window(point: RetailPoint) -> timedelta | None:
        return lc.PICKUP_WINDOW_5MIN if point.pickup_window == PickupWindow.FIVE_MINUTES else None

    # -- fnState and rendering ---------------------------------------------------------------------

    def fn_state(self, point: RetailPoint) -> tuple[FnState, datetime | None]:
        """The point's status and the time of its last heartbeat (D40)."""
        heartbeat = self.storage.last_heartbeat(point.id)
        if self.settings.demo_mode:
            return FnState.READY, heartbeat[0] if heartbeat else None  # D4
        if not point.internet_docs_enabled:
            return FnState.DISABLED, heartbeat[0] if heartbeat else None
        if heartbeat is None:
            return FnState.ASSOCIATED, None
        at, fn_ok = heartbeat
        return (FnState.READY if fn_ok else FnState.FAILED), at

    def _fiscal_info_out(self, info: dict[str, Any]) -> dict[str, Any]:
        out = dict(info)
        date = datetime.fromisoformat(str(info["date"]))
        if self.settings.fiscal_date_format is FiscalDateFormat.MILLIS:
            out["date"] = date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        else:
            out["date"] = format_time(date)
        total = Decimal(str(info["sum"]))
        if self.settings.fiscal_sum_as_string:
            out["sum"] = f"{total:.2f}"
        else:
            out["sum"] = int(total) if total == total.to_integral_value() else float(total)
        return out

    def render_status(self, record: DocumentRecord, point: RetailPoint) -> dict[str, Any]:
        """The store API's ``DocumentStatus`` (§7.1, D10, D28, D29): all six keys, always."""
        state = record.state
        # D34: «Отметить как выполненный» keeps failureInfo; D29: its message is null.
        failure = (
            {"type": state.failure.type.value, "message": state.failure.message}
            if state.failure is not None
            else None
        )
        if state.status is Status.QUEUED:
            message: str | None = MESSAGE_QUEUED
        elif state.status is Status.COMPLETED and state.completed_with_callback:
            message = MESSAGE_COMPLETED_WITH_CALLBACK
        elif failure is not None and state.status is Status.FAILED:
            message = failure["message"]
        else:
            message = None
        return {
            "status": state.status.value,
            "fnState": self.fn_state(point)[0].value,
            "fiscalInfo": (
                self._fiscal_info_out(record.fiscal_info)
                if record.fiscal_info is not None
                else None
            ),
            "failureInfo": failure,
            "message": message,
            "timeStatusChanged": format_time(state.changed_at),
        }

    # -- store API: authentication -----------------------------------------------------------------

    def _check_master(self, creds: BasicCredentials | None) -> MasterCredential:
        if creds is None:
            raise CloudError(401, UNAUTHORIZED)
        cred = self.storage.get_master_credential(creds.login)
        if cred is None:
            self.hasher.burn(creds.password)
            raise CloudError(401, UNAUTHORIZED)
        if not self.hasher.verify(creds.password, cred.salt, cred.hash):
            raise CloudError(401, UNAUTHORIZED)
        return cred

    def authenticate_association(self, header: str | None) -> tuple[Association, RetailPoint]:
        """Check association credentials (D5): 401 if wrong, 403 if the point is gone or moved."""
        creds = parse_basic(header)
        if creds is None:
            raise CloudError(401, UNAUTHORIZED)
        assoc = self.storage.get_association(creds.login)
        if assoc is None:
            self.hasher.burn(creds.password)
            raise CloudError(401, UNAUTHORIZED)
        if not self.hasher.verify(creds.password, assoc.salt, assoc.hash):
            raise CloudError(401, UNAUTHORIZED)
        point = self.storage.get_point(assoc.retail_point_id)
        if point is None or point.deleted or point.account_id != assoc.account_id:
            raise CloudError(403, f"No rights for retail point {assoc.retail_point_id}")
        return assoc, point

    # -- store API ---------------------------------------------------------------------------------

    def associate(self, header: str | None, point_id: str, client_id: str | None) -> dict[str, str]:
        """``POST /v1/associate/{retailPointId}`` (§5.1, D5, D6, D11)."""
        cred = self._check_master(parse_basic(header))
        point = self.storage.get_point(point_id) if _is_uuid(point_id) else None
        if point is None or point.deleted:
            raise CloudError(404, "Retail point not found")
        if point.account_id != cred.account_id:
            raise CloudError(403, f"No rights for retail point {point_id}")
        password = generate_password()
        salt, digest = self.hasher.hash(password)
        now = self.clock.now()
        key = client_id or ""
        with self.storage.transaction():
            existing = self.storage.get_association_for(point.id, key)
            user_name = existing.user_name if existing is not None else str(uuid.uuid4())
            self.storage.upsert_association(
                Association(
                    user_name=user_name,
                    retail_point_id=point.id,
                    client_id=key,
                    account_id=point.account_id,
                    salt=salt,
                    hash=digest,
                    created_at=existing.created_at if existing is not None else now,
                    rotated_at=now,
                )
            )
        self.log.info("association_issued", retail_point_id=point.id, client_id=key)
        return {
            "userName": user_name,
            "password": password,
            "name": point.name,
            "address": point.address,
        }

    def delete_association(self, header: str | None) -> None:
        """``DELETE /v1/associate`` (§5.2): removes only the calling association."""
        assoc, _ = self.authenticate_association(header)
        with self.storage.transaction():
            self.storage.delete_association(assoc.user_name)
        self.log.info("association_deleted", retail_point_id=assoc.retail_point_id)

    def service_status(self, header: str | None) -> dict[str, Any]:
        """``GET /v1/status`` (§5.3, D13, D40)."""
        assoc, point = self.authenticate_association(header)
        state, at = self.fn_state(point)
        return {"status": state.value, "dateTime": format_time(at or assoc.created_at)}

    def submit(self, header: str | None, body: bytes, route: str) -> dict[str, Any]:
        """``POST /v1/doc`` and ``POST /v2/doc`` (§5.4, D14, D15, D23, D32)."""
        assoc, point = self.authenticate_association(header)
        parsed = parse_document(body, route="v1" if route == "v1" else "v2")
        now = self.clock.now()
        with self.storage.transaction():
            existing = self.storage.get_document(point.id, parsed.doc_id)
            if existing is not None:
                return self._replay(existing, point, parsed.content_key, assoc.client_id, now)
            warnings: list[str] = []
            twin = self.storage.recent_with_doc_num(
                point.id,
                parsed.doc_num,
                parsed.total,
                now - self.settings.duplicate_window,
                assoc.client_id,
            )
            if twin is not None:
                # support-cases.md §6: two integrations fiscalising the same payment.
                warnings.append(
                    f"possible double integration: document {twin.doc_id} from clientId"
                    f" {twin.client_id or '(default)'} has the same docNum and sum"
                )
            state = lc.new_document(
                now,
                has_callback=parsed.response_url is not None,
                pickup_window=self._pickup_window(point),
            )
            record = DocumentRecord(
                seq=0,
                retail_point_id=point.id,
                doc_id=parsed.doc_id,
                client_id=assoc.client_id,
                route=route,
                document=parsed.document,
                content_key=parsed.content_key,
                doc_num=parsed.doc_num,
                total=parsed.total,
                response_url=parsed.response_url,
                created_at=now,
                state=state,
                warnings=tuple(warnings),
                possible_duplicate_of=twin.doc_id if twin is not None else None,
            )
            seq = self.storage.insert_document(record)
            self.storage.add_history(
                seq, now, Status.QUEUED, "accepted", {"route": route, "clientId": assoc.client_id}
            )
            record = dataclasses.replace(record, seq=seq)
        self.log.info("document_accepted", doc_id=parsed.doc_id, retail_point_id=point.id)
        if warnings:
            self.log.warning("double_integration_suspected", doc_id=parsed.doc_id)
        self.on_change()
        return self.render_status(record, point)

    def _replay(
        self,
        existing: DocumentRecord,
        point: RetailPoint,
        content_key: str,
        client_id: str,
        now: datetime,
    ) -> dict[str, Any]:
        """D32: a re-sent id answers the stored document, whatever the new body says."""
        if existing.content_key != content_key:
            if point.duplicate_policy == DuplicatePolicy.CONFLICT:
                raise CloudError(
                    409, f"Document {existing.doc_id} already exists with different content"
                )
            warning = (
                f"id reused with different content at {format_time(now)}"
                f" (clientId {client_id or '(default)'})"
            )
            self.storage.update_document(
                dataclasses.replace(existing, warnings=(*existing.warnings, warning))
            )
            self.storage.add_history(
                existing.seq, now, existing.state.status, "duplicate_with_different_content"
            )
            self.log.warning("document_id_reused", doc_id=existing.doc_id)
        return self.render_status(existing, point)

    def _own_document(self, point: RetailPoint, doc_id: str) -> DocumentRecord:
        record = self.storage.get_document(point.id, doc_id)
        if record is None:
            raise CloudError(404, f"Document not found: {doc_id}")  # D16
        return record

    def document_status(self, header: str | None, doc_id: str) -> dict[str, Any]:
        """``GET /v1/doc/{id}/status`` (§5.5, D16, D17)."""
        _, point = self.authenticate_association(header)
        return self.render_status(self._own_document(point, doc_id), point)

    def requeue(self, header: str | None, doc_id: str) -> dict[str, Any]:
        """``PUT /v1/doc/{id}/re-queue`` (§5.6, D18, D33)."""
        _, point = self.authenticate_association(header)
        with self.storage.transaction():
            record = self._requeue(point, self._own_document(point, doc_id), "store_api")
        self.on_change()
        return self.render_status(record, point)

    def _requeue(self, point: RetailPoint, record: DocumentRecord, origin: str) -> DocumentRecord:
        if record.state.status is not Status.FAILED:
            raise CloudError(
                400,
                f"Document {record.doc_id} is {record.state.status.value},"
                " only FAILED documents can be re-queued",
            )
        return self._apply(
            record,
            lc.Requeue(self._pickup_window(point)),
            self.clock.now(),
            {"origin": origin},
        )

    # -- till API ----------------------------------------------------------------------------------

    def bind(self, header: str | None, body: dict[str, Any]) -> dict[str, str]:
        """``POST /api/device/v1/bind`` (``till-protocol.md`` §1): service credentials → token."""
        cred = self._check_master(parse_basic(header))
        point_id = body.get("retailPointId") or cred.retail_point_id
        if not point_id:
            raise ValidationError("retailPointId", "required field is missing")
        point = self._point(str(point_id))
        if point.account_id != cred.account_id:
            raise CloudError(403, f"No rights for retail point {point.id}")
        till_serial = str(body["tillSerial"])
        token = new_token()
        now = self.clock.now()
        with self.storage.transaction():
            existing = self.storage.get_device_by_serial(till_serial)
            device_id = existing.device_id if existing is not None else str(uuid.uuid4())
            self.storage.upsert_device(
                Device(
                    device_id=device_id,
                    till_serial=till_serial,
                    retail_point_id=point.id,
                    fn_serial=str(body.get("fnSerial") or ""),
                    model=str(body.get("model") or ""),
                    firmware_profile=str(body.get("firmwareProfile") or ""),
                    token_hash=hash_token(token),
                    bound_at=now,
                    last_heartbeat_at=None,
                    fn_ok=None,
                    heartbeat=None,
                )
            )
        self.log.info("till_bound", device_id=device_id, retail_point_id=point.id)
        return {"deviceId": device_id, "token": token, "retailPointId": point.id}

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

    def point_settings(self, point: RetailPoint) -> dict[str, Any]:
        """The retail point's settings in the till API's camelCase (§11)."""
        return {
            "internetDocsEnabled": point.internet_docs_enabled,
            "stopOnErrors": point.stop_on_errors,
            "pickupWindow": point.pickup_window,
            "defaultTaxMode": point.default_tax_mode,
        }

    def heartbeat(self, device: Device, point: RetailPoint, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /heartbeat``: stores the till's state; feeds ``fnState`` (D40)."""
        now = self.clock.now()
        with self.storage.transaction():
            self.storage.record_heartbeat(
                device.device_id,
                now,
                fn_ok=body.get("fnState") == "READY",
                body=body,
                fn_serial=str(body.get("fnSerial") or ""),
            )
        return {
            "serverTime": format_time(now),
            "deviceId": device.device_id,
            "retailPointId": point.id,
            "settings": self.point_settings(point),
        }

    def has_eligible(self, point_id: str) -> bool:
        """Whether a till of the point would get a document now."""
        return bool(self.storage.eligible_for_lease(point_id, 1))

    def lease(self, device: Device, point: RetailPoint, limit: int) -> list[dict[str, Any]]:
        """Lease up to ``limit`` documents, oldest first (D39, T2); each to exactly one till."""
        self.sweep(self.clock.now())
        now = self.clock.now()
        items = []
        with self.storage.transaction():
            for record in self.storage.eligible_for_lease(point.id, limit):
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
            self.on_change()
        return items

    def _lease_item(self, record: DocumentRecord, point: RetailPoint) -> dict[str, Any]:
        document = dict(record.document)
        if "taxMode" not in document:
            document["taxMode"] = point.default_tax_mode  # D21
        expires = record.state.lease_expires_at
        assert expires is not None
        return {
            "docId": record.doc_id,
            "leaseId": record.state.lease_id,
            "leaseExpiresAt": format_time(expires),
            "acceptedAt": format_time(record.created_at),
            "route": record.route,
            "document": document,
        }

    def results(
        self, device: Device, point: RetailPoint, items: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``POST /results``: apply a batch of till outcomes (T3, T4, T13; D36); idempotent."""
        self.sweep(self.clock.now())
        answers: list[dict[str, Any]] = []
        with self.storage.transaction():
            answers.extend(self._result(device, point, item) for item in items)
        self.on_change()
        return answers

    def _result(self, device: Device, point: RetailPoint, item: dict[str, Any]) -> dict[str, Any]:
        doc_id = str(item["docId"])
        lease_id = item.get("leaseId")
        record = self.storage.get_document(point.id, doc_id)
        if record is None:
            return {"docId": doc_id, "outcome": "unknown_document", "status": None}
        now = self.clock.now()
        log = self.log.bind(doc_id=doc_id, device_id=device.device_id)
        if item["outcome"] == "fiscalized":
            info = item["fiscalInfo"]
            fn_number, fd = str(info["fnNumber"]), int(info["fnDocNumber"])
            if record.state.fiscalised:
                if (record.fn_number, record.fn_doc_number) == (fn_number, fd):
                    outcome = "duplicate"
                else:
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
                    outcome = "ignored_already_fiscalised"
                return {"docId": doc_id, "outcome": outcome, "status": record.state.status.value}
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
                )
            except AlreadyFiscalisedError:  # pragma: no cover - checked above
                return {"docId": doc_id, "outcome": "duplicate", "status": record.state.status}
            except IllegalTransitionError as exc:
                log.warning("till_result_ignored", reason=str(exc))
                return {"docId": doc_id, "outcome": "ignored", "status": record.state.status.value}
            if late:
                log.warning("late_result", previous_status=record.state.status.value)
            updated = self._dispatch_if_due(updated, now)
            return {
                "docId": doc_id,
                "outcome": "late_accepted" if late else "accepted",
                "status": updated.state.status.value,
            }
        failure = item["failureInfo"]
        if (
            record.state.status is Status.FAILED
            and record.failure_detail is not None
            and record.failure_detail.get("leaseId") == lease_id
        ):
            return {"docId": doc_id, "outcome": "duplicate", "status": record.state.status.value}
        detail = {
            "leaseId": lease_id,
            "deviceId": device.device_id,
            "resultCode": item.get("resultCode"),
            "detail": item.get("detail"),
        }
        try:
            updated = self._apply(
                record,
                lc.Failure(
                    lease_id,
                    FailureInfo(FailureType(failure["type"]), str(failure["message"])),
                    stop_on_errors=point.stop_on_errors,
                ),
                now,
                detail,
                failure_detail=detail,
            )
        except IllegalTransitionError as exc:
            # D36: a failure for a document no longer PENDING under that lease changes nothing.
            log.warning("late_failure_ignored", reason=str(exc))
            return {"docId": doc_id, "outcome": "ignored", "status": record.state.status.value}
        return {"docId": doc_id, "outcome": "accepted", "status": updated.state.status.value}

    def ofd_acks(self, device: Device, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``POST /ofd-acks``: OFD delivery per fiscal document, kept apart from COMPLETED."""
        now = self.clock.now()
        updated = 0
        unknown = []
        rank = {"not_sent": 0, "sent": 1, "acknowledged": 2}
        with self.storage.transaction():
            for item in items:
                fn_number = str(item.get("fnNumber") or device.fn_serial)
                fd = int(item["fnDocNumber"])
                record = self.storage.find_by_fiscal_number(fn_number, fd)
                if record is None:
                    unknown.append(fd)
                    continue
                state = str(item.get("state") or "acknowledged")
                if rank[state] <= rank.get(record.ofd_state, 0):
                    continue
                at = item.get("at")
                self.storage.update_document(
                    dataclasses.replace(
                        record,
                        ofd_state=state,
                        ofd_changed_at=at if isinstance(at, datetime) else now,
                    )
                )
                self.storage.add_history(
                    record.seq, now, record.state.status, f"ofd_{state}", {"fnDocNumber": fd}
                )
                updated += 1
        return {"updated": updated, "unknown": unknown}

    # -- timers ------------------------------------------------------------------------------------

    def sweep(self, now: datetime) -> int:
        """Fire every lifecycle deadline due at ``now``, earliest first, each at its own time.

        Returns the number of deadlines processed. Callbacks are not sent here (they need I/O).
        """
        done = 0
        while True:
            due = self.storage.due_timers(now)
            if not due:
                return done
            for deadline, kind, seq in due:
                with self.storage.transaction():
                    self._fire(deadline, kind, seq)
                done += 1
            self.on_change()

    def _fire(self, deadline: datetime, kind: str, seq: int) -> None:
        record = self.storage.get_document_by_seq(seq)
        if record is None:  # pragma: no cover - documents are never deleted
            return
        point = self.storage.get_point(record.retail_point_id)
        block = bool(point is not None and point.stop_on_errors)
        event: lc.Event
        if kind == "lease":
            event = lc.PendingTimeout(stop_on_errors=block)
        elif kind == "pickup":
            event = lc.PickupTimeout(stop_on_errors=block)
        else:
            event = lc.Dispatch()
        try:
            self._apply(record, event, deadline)
        except IllegalTransitionError as exc:
            # A stale deadline: log it and drop it so it cannot fire again.
            self.log.warning("stale_timer_dropped", doc_id=record.doc_id, reason=str(exc))
            if kind == "lease":
                state = dataclasses.replace(record.state, lease_expires_at=None)
            elif kind == "pickup":
                state = dataclasses.replace(record.state, pickup_deadline=None)
            else:
                state = dataclasses.replace(record.state, dispatch_at=None)
            self.storage.update_document(dataclasses.replace(record, state=state))

    def next_deadline(self, in_flight: Sequence[int] = ()) -> datetime | None:
        """The earliest deadline of any timer, ignoring callbacks already in flight."""
        deadline = self.storage.next_deadline(in_flight)
        if self.settings.demo_mode:
            oldest = self.storage.oldest_queued_at()
            if oldest is not None:
                due = oldest + self.settings.demo_latency
                deadline = due if deadline is None else min(deadline, due)
        return deadline

    def demo_pump(self, now: datetime) -> int:
        """D4: the virtual till of demo mode fiscalises every document that is due.

        Returns how many documents it fiscalised.
        """
        if not self.settings.demo_mode:
            return 0
        done = 0
        for record in self.storage.queued_before(now - self.settings.demo_latency):
            at = max(now, record.created_at + self.settings.demo_latency)
            with self.storage.transaction():
                lease_id = f"demo-{uuid.uuid4().hex}"
                leased = self._apply(
                    record, lc.Lease(lease_id), at, {"deviceId": "demo"}, lease_device_id="demo"
                )
                info = self._demo_fiscal_info(leased, at)
                printed = self._apply(
                    leased,
                    lc.Success(lease_id, self.settings.callback_dispatch_delay),
                    at,
                    {"deviceId": "demo", "leaseId": lease_id, "late": False},
                    fiscal_info=info,
                    fn_number=info["fnNumber"],
                    fn_doc_number=info["fnDocNumber"],
                )
                self._dispatch_if_due(printed, at)
            done += 1
        if done:
            self.on_change()
        return done

    def _demo_fiscal_info(self, record: DocumentRecord, at: datetime) -> dict[str, Any]:
        """Fiscal data of the virtual till, shaped as D50 says."""
        number = record.seq
        total = Decimal(record.total)
        doc_type = str(record.document.get("docType", "SALE"))
        check_type = {"BUY": "PURCHASE", "BUY_RETURN": "RETURN_PURCHASE"}.get(doc_type, doc_type)
        sign = {"SALE": 1, "RETURN": 2, "BUY": 3, "BUY_RETURN": 4}.get(doc_type, 1)
        fn_number = "9999078900000000"
        mark = int(uuid.uuid5(uuid.NAMESPACE_OID, f"{record.retail_point_id}/{record.doc_id}")) % (
            2**32
        )
        qr = (
            f"t={at.astimezone(UTC):%Y%m%dT%H%M%S}&s={total:.2f}&fn={fn_number}"
            f"&i={number:010d}&fp={mark}&n={sign}"
        )
        return {
            "shiftNumber": 1,
            "checkNumber": number,
            "kktNumber": "0000000000000000",
            "fnNumber": fn_number,
            "fnDocNumber": number,
            "fnDocMark": mark,
            "date": format_time(at),
            "sum": float(total),
            "checkType": check_type,
            "qr": qr,
            "ecrRegistrationNumber": "0000000000000000",
        }

    def due_callbacks(self, now: datetime, in_flight: Sequence[int] = ()) -> list[CallbackRequest]:
        """Callback attempts due at ``now`` (D41–D44), not counting those in flight."""
        requests = []
        for record in self.storage.due_callbacks(now, in_flight):
            state = record.state
            if state.callback is None or state.callback_next_at is None:  # pragma: no cover
                continue
            qr = record.fiscal_info.get("qr") if record.fiscal_info else None
            url = callback_url(record.response_url or "", state.callback, qr)
            body = None
            if self.settings.callback_method is CallbackMethod.POST:
                point = self.storage.get_point(record.retail_point_id)
                assert point is not None
                body = json.dumps(self.render_status(record, point), ensure_ascii=False).encode()
            requests.append(
                CallbackRequest(
                    seq=record.seq,
                    kind=state.callback,
                    method=self.settings.callback_method.value,
                    url=url,
                    body=body,
                    due_at=state.callback_next_at,
                )
            )
        return requests

    def callback_finished(self, request: CallbackRequest, *, delivered: bool, error: str) -> None:
        """Record one callback attempt's outcome (T7, T8, D45, D46)."""
        now = self.clock.now()
        with self.storage.transaction():
            record = self.storage.get_document_by_seq(request.seq)
            if record is None:  # pragma: no cover - documents are never deleted
                return
            if record.state.callback is not request.kind:
                self.log.info("stale_callback_result", doc_id=record.doc_id)
                return
            detail = {
                "attempt": record.state.callback_attempts + 1,
                "kind": request.kind.value,
                "delivered": delivered,
                "error": error or None,
            }
            try:
                updated = self._apply(
                    record,
                    lc.CallbackResult(delivered=delivered),
                    max(now, request.due_at),
                    detail,
                    callback_last_error=error or None,
                )
            except IllegalTransitionError as exc:
                self.log.info("stale_callback_result", doc_id=record.doc_id, reason=str(exc))
                return
        if updated.state.callback is not None and updated.state.callback_next_at is None:
            self.log.warning("callback_gave_up", doc_id=record.doc_id)
        self.on_change()

    # -- cabinet -----------------------------------------------------------------------------------

    def create_account(self, account_id: str | None, name: str) -> Account:
        """Create an ЛК account."""
        account = Account(account_id or str(uuid.uuid4()), name, self.clock.now())
        with self.storage.transaction():
            if self.storage.get_account(account.id) is not None:
                raise CloudError(409, f"Account {account.id} already exists")
            self.storage.insert_account(account)
        return account

    def set_account_login(self, account_id: str, login: str, password: str) -> None:
        """Give an account an ЛК e-mail/password, also valid as master credentials (D5)."""
        self._account(account_id)
        salt, digest = self.hasher.hash(password)
        with self.storage.transaction():
            self.storage.upsert_master_credential(
                MasterCredential(login, account_id, None, "account", salt, digest),
                self.clock.now(),
            )

    def _account(self, account_id: str) -> Account:
        account = self.storage.get_account(account_id)
        if account is None:
            raise CloudError(404, f"Account not found: {account_id}")
        return account

    def create_point(self, fields: dict[str, Any]) -> RetailPoint:
        """Create a retail point; settings not given take the §11 defaults."""
        account_id = fields.get("accountId") or DEFAULT_ACCOUNT
        self._account(account_id)
        point_id = fields.get("id") or str(uuid.uuid4())
        if not _is_uuid(point_id):
            raise ValidationError("id", "must be a UUID")
        point = RetailPoint(
            id=point_id,
            account_id=account_id,
            name=fields["name"],
            address=fields.get("address") or "",
            inn=fields.get("inn") or "",
            internet_docs_enabled=fields.get("internetDocsEnabled", True),
            stop_on_errors=fields.get("stopOnErrors", False),
            pickup_window=fields.get("pickupWindow") or PickupWindow.THREE_DAYS.value,
            default_tax_mode=fields.get("defaultTaxMode") or TAX_MODES[0],
            duplicate_policy=fields.get("duplicatePolicy") or DuplicatePolicy.REPLAY.value,
            deleted=False,
            created_at=self.clock.now(),
        )
        with self.storage.transaction():
            if self.storage.get_point(point.id) is not None:
                raise CloudError(409, f"Retail point {point.id} already exists")
            self.storage.insert_point(point)
        self.log.info("retail_point_created", retail_point_id=point.id)
        return point

    def get_point(self, point_id: str) -> RetailPoint:
        """A retail point (404 if unknown or deleted)."""
        return self._point(point_id)

    def update_point(self, point_id: str, fields: dict[str, Any]) -> RetailPoint:
        """Change settings of a retail point; switching stop-on-errors off lifts every block."""
        now = self.clock.now()
        with self.storage.transaction():
            point = self._point(point_id)
            if "accountId" in fields and fields["accountId"] is not None:
                self._account(fields["accountId"])
            mapping = {
                "accountId": "account_id",
                "name": "name",
                "address": "address",
                "inn": "inn",
                "internetDocsEnabled": "internet_docs_enabled",
                "stopOnErrors": "stop_on_errors",
                "pickupWindow": "pickup_window",
                "defaultTaxMode": "default_tax_mode",
                "duplicatePolicy": "duplicate_policy",
            }
            changes = {mapping[k]: v for k, v in fields.items() if k in mapping and v is not None}
            updated = dataclasses.replace(point, **changes)
            self.storage.update_point(updated)
            if point.stop_on_errors and not updated.stop_on_errors:
                for record in self.storage.blocking_documents(point.id):  # D48
                    self._apply(record, lc.LiftBlock(), now)
        self.log.info("retail_point_updated", retail_point_id=point_id, changes=sorted(changes))
        self.on_change()
        return updated

    def delete_point(self, point_id: str) -> None:
        """Delete a retail point (its documents stay; its credentials get 403, D5)."""
        with self.storage.transaction():
            point = self._point(point_id)
            self.storage.update_point(dataclasses.replace(point, deleted=True))

    def generate_credentials(self, point_id: str) -> dict[str, str]:
        """«Сгенерировать логин и пароль»: new service credentials for the point's account."""
        point = self._point(point_id)
        login = f"svc-{uuid.uuid4().hex[:12]}"
        password = generate_password()
        salt, digest = self.hasher.hash(password)
        with self.storage.transaction():
            self.storage.upsert_master_credential(
                MasterCredential(login, point.account_id, point.id, "service", salt, digest),
                self.clock.now(),
            )
        self.log.info("service_credentials_generated", retail_point_id=point.id)
        return {"login": login, "password": password, "retailPointId": point.id}

    def list_documents(self, flt: DocumentFilter) -> list[DocumentRecord]:
        """Documents for the cabinet."""
        return self.storage.list_documents(flt)

    def find_document(self, point_id: str, doc_id: str) -> DocumentRecord:
        """A document by retail point and id (404 if unknown)."""
        record = self.storage.get_document(point_id, doc_id)
        if record is None:
            raise CloudError(404, f"Document not found: {doc_id}")
        return record

    def redrive(self, point_id: str, doc_id: str) -> DocumentRecord:
        """«Провести повторно» (T11, D33)."""
        with self.storage.transaction():
            point = self._point(point_id)
            record = self._requeue(point, self.find_document(point_id, doc_id), "cabinet")
        self.on_change()
        return record

    def mark_done(self, point_id: str, doc_id: str) -> DocumentRecord:
        """«Отметить как выполненный» (T12, D34): only FAILED documents."""
        with self.storage.transaction():
            record = self.find_document(point_id, doc_id)
            if record.state.status is not Status.FAILED:
                raise CloudError(
                    400,
                    f"Document {doc_id} is {record.state.status.value},"
                    " only FAILED documents can be marked done",
                )
            record = self._apply(record, lc.MarkDone(), self.clock.now())
        self.on_change()
        return record

    def document_detail(self, record: DocumentRecord) -> dict[str, Any]:
        """The cabinet's document detail: status, history, OFD delivery, error detail, warnings."""
        point = self.storage.get_point(record.retail_point_id)
        assert point is not None
        summary = self.document_summary(record)
        summary.update(
            {
                "storeStatus": self.render_status(record, point),
                "document": record.document,
                "route": record.route,
                "responseURL": record.response_url,
                "errorDetail": record.failure_detail,
                "callback": {
                    "kind": record.state.callback.value if record.state.callback else None,
                    "attempts": record.state.callback_attempts,
                    "nextAttemptAt": _opt_format(record.state.callback_next_at),
                    "lastError": record.callback_last_error,
                },
                "lease": {
                    "leaseId": record.state.lease_id,
                    "deviceId": record.lease_device_id,
                    "expiresAt": _opt_format(record.state.lease_expires_at),
                },
                "history": [
                    {
                        "at": format_time(h.at),
                        "status": h.status.value,
                        "event": h.event,
                        "detail": h.detail,
                    }
                    for h in self.storage.history(record.seq)
                ],
            }
        )
        return summary

    def document_summary(self, record: DocumentRecord) -> dict[str, Any]:
        """One line of the cabinet's document list."""
        state = record.state
        return {
            "number": record.seq,
            "retailPointId": record.retail_point_id,
            "id": record.doc_id,
            "docNum": record.doc_num,
            "clientId": record.client_id,
            "total": record.total,
            "status": state.status.value,
            "timeStatusChanged": format_time(state.changed_at),
            "acceptedAt": format_time(record.created_at),
            "failureInfo": (
                {"type": state.failure.type.value, "message": state.failure.message}
                if state.failure is not None
                else None
            ),
            "blocking": state.blocking,
            "fiscalised": state.fiscalised,
            "fnNumber": record.fn_number,
            "fnDocNumber": record.fn_doc_number,
            "ofd": {"state": record.ofd_state, "changedAt": _opt_format(record.ofd_changed_at)},
            "warnings": list(record.warnings),
            "possibleDuplicateOf": record.possible_duplicate_of,
            # The payment side's text for a document the 235-second rule failed (support-cases §5).
            "shopMessage": (
                PICKUP_SHOP_TEXT
                if state.failure is not None and state.failure.message == PICKUP_TIMEOUT_TEXT
                else None
            ),
            "redrives": state.redrives,
            "markedDone": state.marked_done,
        }

    def devices(self) -> list[dict[str, Any]]:
        """Every till with its last heartbeat (the cabinet's heartbeat view)."""
        return [
            {
                "deviceId": d.device_id,
                "tillSerial": d.till_serial,
                "retailPointId": d.retail_point_id,
                "fnSerial": d.fn_serial,
                "model": d.model,
                "firmwareProfile": d.firmware_profile,
                "boundAt": format_time(d.bound_at),
                "lastHeartbeatAt": _opt_format(d.last_heartbeat_at),
                "fnOk": d.fn_ok,
                "heartbeat": d.heartbeat,
            }
            for d in self.storage.list_devices()
        ]

    def point_view(self, point: RetailPoint) -> dict[str, Any]:
        """A retail point for the cabinet, with its current ``fnState``."""
        state, at = self.fn_state(point)
        return {
            "id": point.id,
            "accountId": point.account_id,
            "name": point.name,
            "address": point.address,
            "inn": point.inn,
            "internetDocsEnabled": point.internet_docs_enabled,
            "stopOnErrors": point.stop_on_errors,
            "pickupWindow": point.pickup_window,
            "defaultTaxMode": point.default_tax_mode,
            "duplicatePolicy": point.duplicate_policy,
            "fnState": state.value,
            "lastHeartbeatAt": _opt_format(at),
            "createdAt": format_time(point.created_at),
        }


def _opt_format(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)
