"""The JSON views of the cloud: what the store, till and cabinet APIs answer, built from records.

Pure functions of the stored records (and of the instance settings where the §14 switches change a
format); nothing here reads the database. Every view is a JSON-ready ``dict`` handed straight to
the HTTP layer, so the key order here is the key order on the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kkt_emulator.cloud.lifecycle import FailureInfo, Status
from kkt_emulator.cloud.settings import FiscalDateFormat
from kkt_emulator.cloud.texts import (
    MESSAGE_COMPLETED_WITH_CALLBACK,
    MESSAGE_QUEUED,
    PICKUP_SHOP_TEXT,
    PICKUP_TIMEOUT_TEXT,
    failure_text,
    status_text,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kkt_emulator.cloud.records import (
        Account,
        Device,
        DocumentRecord,
        HistoryEntry,
        RetailPoint,
    )
    from kkt_emulator.cloud.settings import CloudSettings, FnState

__all__ = [
    "JsonObject",
    "account_view",
    "device_view",
    "document_detail",
    "document_summary",
    "failure_view",
    "fiscal_info_view",
    "fn_status_view",
    "format_time",
    "opt_format",
    "point_settings_view",
    "point_view",
    "status_view",
]

JsonObject = dict[str, Any]
"""A JSON object as the HTTP layer serialises it."""


def format_time(value: datetime) -> str:
    """D10: UTC, seconds precision, offset written ``+00:00``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def opt_format(value: datetime | None) -> str | None:
    """:func:`format_time` of an optional time."""
    return None if value is None else format_time(value)


def failure_view(failure: FailureInfo | None) -> JsonObject | None:
    """``FailureInfo`` (store-api.md §7.4)."""
    return None if failure is None else {"type": failure.type.value, "message": failure.message}


def fiscal_info_view(info: JsonObject, settings: CloudSettings) -> JsonObject:
    """``FiscalInfo`` as the store API returns it (D10, D50, the §14 date and sum switches)."""
    out = dict(info)
    date = datetime.fromisoformat(str(info["date"]))
    if settings.fiscal_date_format is FiscalDateFormat.MILLIS:
        out["date"] = date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    else:
        out["date"] = format_time(date)
    total = Decimal(str(info["sum"]))
    if settings.fiscal_sum_as_string:
        out["sum"] = f"{total:.2f}"
    else:
        out["sum"] = int(total) if total == total.to_integral_value() else float(total)
    return out


def status_view(record: DocumentRecord, fn_state: FnState, settings: CloudSettings) -> JsonObject:
    """The store API's ``DocumentStatus`` (§7.1, D10, D28, D29): all six keys, always."""
    state = record.state
    # D34: «Отметить как выполненный» keeps failureInfo; D29: its message is null.
    failure = failure_view(state.failure)
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
        "fnState": fn_state.value,
        "fiscalInfo": (
            fiscal_info_view(record.fiscal_info, settings)
            if record.fiscal_info is not None
            else None
        ),
        "failureInfo": failure,
        "message": message,
        "timeStatusChanged": format_time(state.changed_at),
    }


def fn_status_view(state: FnState, at: datetime) -> JsonObject:
    """``FNStatus`` of ``GET /v1/status`` (store-api.md §5.3, D13, D40)."""
    return {"status": state.value, "dateTime": format_time(at)}


def document_summary(record: DocumentRecord) -> JsonObject:
    """One line of the cabinet's document list.

    ``statusText`` is the status as the cabinet names it in Russian (D83) and ``failureText`` the
    error line of the cabinet's document card (D83); the store API's views carry neither.
    """
    state = record.state
    return {
        "number": record.seq,
        "retailPointId": record.retail_point_id,
        "id": record.doc_id,
        "docNum": record.doc_num,
        "clientId": record.client_id,
        "total": record.total,
        "status": state.status.value,
        "statusText": status_text(state.status.value),
        "timeStatusChanged": format_time(state.changed_at),
        "acceptedAt": format_time(record.created_at),
        "failureInfo": failure_view(state.failure),
        "failureText": failure_text(state.failure.message) if state.failure is not None else None,
        "blocking": state.blocking,
        "fiscalised": state.fiscalised,
        "fnNumber": record.fn_number,
        "fnDocNumber": record.fn_doc_number,
        "ofd": {"state": record.ofd_state, "changedAt": opt_format(record.ofd_changed_at)},
        "warnings": list(record.warnings),
        "possibleDuplicateOf": record.possible_duplicate_of,
        # The payment side's text for a document the 235-second rule failed (support-cases.md §5).
        "shopMessage": (
            PICKUP_SHOP_TEXT
            if state.failure is not None and state.failure.message == PICKUP_TIMEOUT_TEXT
            else None
        ),
        "redrives": state.redrives,
        "markedDone": state.marked_done,
    }


def document_detail(
    record: DocumentRecord, store_status: JsonObject, history: Sequence[HistoryEntry]
) -> JsonObject:
    """The cabinet's document detail: status, history, OFD delivery, error detail, warnings."""
    detail = document_summary(record)
    detail.update(
        {
            "storeStatus": store_status,
            "document": record.document,
            "route": record.route,
            "responseURL": record.response_url,
            "errorDetail": record.failure_detail,
            "callback": {
                "kind": record.state.callback.value if record.state.callback else None,
                "attempts": record.state.callback_attempts,
                "nextAttemptAt": opt_format(record.state.callback_next_at),
                "lastError": record.callback_last_error,
            },
            "lease": {
                "leaseId": record.state.lease_id,
                "deviceId": record.lease_device_id,
                "expiresAt": opt_format(record.state.lease_expires_at),
            },
            "history": [
                {
                    "at": format_time(h.at),
                    "status": h.status.value,
                    "statusText": status_text(h.status.value),
                    "event": h.event,
                    "detail": h.detail,
                }
                for h in history
            ],
        }
    )
    return detail


def device_view(device: Device) -> JsonObject:
    """A till with its last heartbeat (the cabinet's heartbeat view)."""
    return {
        "deviceId": device.device_id,
        "tillSerial": device.till_serial,
        "retailPointId": device.retail_point_id,
        "fnSerial": device.fn_serial,
        "model": device.model,
        "firmwareProfile": device.firmware_profile,
        "boundAt": format_time(device.bound_at),
        "lastHeartbeatAt": opt_format(device.last_heartbeat_at),
        "fnOk": device.fn_ok,
        "heartbeat": device.heartbeat,
    }


def point_view(
    point: RetailPoint, fn_state: FnState, last_heartbeat: datetime | None
) -> JsonObject:
    """A retail point for the cabinet, with its current ``fnState``."""
    return {
        "id": point.id,
        "accountId": point.account_id,
        "name": point.name,
        "address": point.address,
        "inn": point.inn,
        "internetDocsEnabled": point.internet_docs_enabled,
        "stopOnErrors": point.stop_on_errors,
        "pickupWindow": point.pickup_window.value,
        "defaultTaxMode": point.default_tax_mode.value,
        "duplicatePolicy": point.duplicate_policy.value,
        "fnState": fn_state.value,
        "lastHeartbeatAt": opt_format(last_heartbeat),
        "createdAt": format_time(point.created_at),
    }


def point_settings_view(point: RetailPoint) -> JsonObject:
    """The retail point's settings in the till API's camelCase (store-api.md §11)."""
    return {
        "internetDocsEnabled": point.internet_docs_enabled,
        "stopOnErrors": point.stop_on_errors,
        "pickupWindow": point.pickup_window.value,
        "defaultTaxMode": point.default_tax_mode.value,
    }


def account_view(account: Account) -> JsonObject:
    """An ЛК account for the cabinet."""
    return {
        "id": account.id,
        "name": account.name,
        "createdAt": format_time(account.created_at),
    }
