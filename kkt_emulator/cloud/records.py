"""The cloud database's rows as frozen dataclasses, and their mapping to and from database rows.

Times are stored as UTC ISO-8601 text with microseconds, so that text order is time order. JSON
columns (the accepted document, fiscal data, details) are written compactly with sorted keys.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeVar

import orjson

from kkt_emulator.cloud.lifecycle import CallbackKind, DocState, FailureInfo, FailureType, Status
from kkt_emulator.cloud.settings import DuplicatePolicy, PickupWindow
from kkt_emulator.taxes import TaxSystem

if TYPE_CHECKING:
    from kkt_emulator.cloud.db import Row

__all__ = [
    "STATE_COLUMNS",
    "Account",
    "Association",
    "CredentialKind",
    "Device",
    "DocumentFilter",
    "DocumentRecord",
    "DueTimer",
    "HistoryEntry",
    "MasterCredential",
    "OfdState",
    "RetailPoint",
    "StoreRoute",
    "TimerKind",
    "association_from_row",
    "device_from_row",
    "document_from_row",
    "dumps",
    "from_db_time",
    "loads",
    "opt_db_time",
    "opt_time",
    "point_from_row",
    "state_values",
    "to_db_time",
]


StoreRoute = Literal["v1", "v2"]
"""The store-API route a document came in by (D14)."""

OfdState = Literal["not_sent", "sent", "acknowledged"]
"""How far the OFD has got a fiscalised document, as the till reports it (``/ofd-acks``)."""

CredentialKind = Literal["account", "service"]
"""A master login: an ЛК e-mail/password, or «Сгенерировать логин и пароль» service credentials."""


_DB_TIMES: dict[datetime, str] = {}  # aware time -> its text (D128)
_DB_TIMES_KEPT: Final = 1024


def to_db_time(value: datetime) -> str:
    """Serialise a timezone-aware time as sortable UTC text.

    The texts of recent times are remembered (D128): a document's step writes the same business
    time several times (the status change, the history line, the deadlines it sets). Aware times
    that compare equal are the same instant, so they have the same text; a naive time is
    converted each time (its meaning follows the local zone).
    """
    text = _DB_TIMES.get(value)  # a naive time never equals the aware times kept
    if text is None:
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
        if value.utcoffset() is not None:
            if len(_DB_TIMES) >= _DB_TIMES_KEPT:
                _DB_TIMES.clear()
            _DB_TIMES[value] = text
    return text


def from_db_time(value: str) -> datetime:
    """Parse a time written by :func:`to_db_time`."""
    return datetime.fromisoformat(value)


def opt_time(value: str | None) -> datetime | None:
    """:func:`from_db_time` of a nullable column."""
    return None if value is None else from_db_time(value)


def opt_db_time(value: datetime | None) -> str | None:
    """:func:`to_db_time` of a nullable value."""
    return None if value is None else to_db_time(value)


@dataclass(frozen=True)
class Account:
    """An account of the personal cabinet (ЛК): it owns retail points and master credentials."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class MasterCredential:
    """A master login: service credentials («Сгенерировать логин и пароль») or an ЛК login."""

    login: str
    account_id: str
    retail_point_id: str | None
    kind: CredentialKind
    salt: bytes
    hash: bytes


@dataclass(frozen=True)
class RetailPoint:
    """A retail point (точка продаж) with its cabinet settings (``store-api.md`` §11)."""

    id: str
    account_id: str
    name: str
    address: str
    inn: str
    internet_docs_enabled: bool
    stop_on_errors: bool
    pickup_window: PickupWindow
    default_tax_mode: TaxSystem
    duplicate_policy: DuplicatePolicy
    deleted: bool
    created_at: datetime


@dataclass(frozen=True)
class Association:
    """Association credentials bound to ``(retail_point_id, client_id)`` (D6)."""

    user_name: str
    retail_point_id: str
    client_id: str
    account_id: str
    salt: bytes
    hash: bytes
    created_at: datetime
    rotated_at: datetime


@dataclass(frozen=True)
class Device:
    """A till bound to a retail point, with its last heartbeat."""

    device_id: str
    till_serial: str
    retail_point_id: str
    fn_serial: str
    model: str
    firmware_profile: str
    token_hash: str
    bound_at: datetime
    last_heartbeat_at: datetime | None
    fn_ok: bool | None
    heartbeat: dict[str, Any] | None


@dataclass(frozen=True)
class DocumentRecord:
    """A stored document: the accepted body, its lifecycle state and the cabinet's extra facts."""

    seq: int
    retail_point_id: str
    doc_id: str
    client_id: str
    route: StoreRoute
    document: dict[str, Any]
    content_key: str
    doc_num: str
    total: str
    response_url: str | None
    created_at: datetime
    state: DocState
    fiscal_info: dict[str, Any] | None = None
    failure_detail: dict[str, Any] | None = None
    lease_device_id: str | None = None
    callback_last_error: str | None = None
    fn_number: str | None = None
    fn_doc_number: int | None = None
    ofd_state: OfdState = "not_sent"
    ofd_changed_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    possible_duplicate_of: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a document's history: a status reached, or a notable event."""

    at: datetime
    status: Status
    event: str
    detail: dict[str, Any] | None


STATE_COLUMNS: Final = (  # the lifecycle state's columns of ``documents``
    "status",
    "changed_at",
    "has_callback",
    "failure_type",
    "failure_message",
    "lease_id",
    "lease_expires_at",
    "leases",
    "pickup_deadline",
    "dispatch_at",
    "callback",
    "callback_first_at",
    "callback_attempts",
    "callback_next_at",
    "blocking",
    "completed_with_callback",
    "redrives",
    "marked_done",
)


def state_values(state: DocState) -> tuple[object, ...]:
    """The values of :data:`STATE_COLUMNS` for ``state``, in that order."""
    return (
        state.status.value,
        to_db_time(state.changed_at),
        int(state.has_callback),
        state.failure.type.value if state.failure else None,
        state.failure.message if state.failure else None,
        state.lease_id,
        opt_db_time(state.lease_expires_at),
        state.leases,
        opt_db_time(state.pickup_deadline),
        opt_db_time(state.dispatch_at),
        state.callback.value if state.callback else None,
        opt_db_time(state.callback_first_at),
        state.callback_attempts,
        opt_db_time(state.callback_next_at),
        int(state.blocking),
        int(state.completed_with_callback),
        state.redrives,
        int(state.marked_done),
    )


_T = TypeVar("_T")


def build(cls: type[_T], /, **values: Any) -> _T:
    """An instance of a frozen record class from every one of its fields, without ``__init__`` (D127).

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; a row's
    record is made from all of its fields, so they are put into the instance's dictionary at once.
    For the classes :func:`~kkt_emulator.cloud.lifecycle.replace` serves; a missing or unknown
    field is refused with :class:`TypeError`, as ``__init__`` refuses it.
    """
    if values.keys() != _field_names(cls):
        missing = sorted(_field_names(cls) - values.keys())
        unknown = sorted(values.keys() - _field_names(cls))
        raise TypeError(f"{cls.__name__}: missing fields {missing}, unknown fields {unknown}")
    made = object.__new__(cls)
    made.__dict__.update(values)
    return made


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = frozenset(f.name for f in dataclasses.fields(cls))
        _FIELD_NAMES[cls] = names
    return names


def state_from_row(row: Row) -> DocState:
    """The lifecycle state kept in a ``documents`` row."""
    failure = (
        FailureInfo(FailureType(row["failure_type"]), row["failure_message"])
        if row["failure_type"] is not None
        else None
    )
    return build(
        DocState,
        status=Status(row["status"]),
        changed_at=from_db_time(row["changed_at"]),
        has_callback=bool(row["has_callback"]),
        fiscalised=row["fiscal_info"] is not None,
        failure=failure,
        lease_id=row["lease_id"],
        lease_expires_at=opt_time(row["lease_expires_at"]),
        leases=row["leases"],
        pickup_deadline=opt_time(row["pickup_deadline"]),
        dispatch_at=opt_time(row["dispatch_at"]),
        callback=CallbackKind(row["callback"]) if row["callback"] else None,
        callback_first_at=opt_time(row["callback_first_at"]),
        callback_attempts=row["callback_attempts"],
        callback_next_at=opt_time(row["callback_next_at"]),
        blocking=bool(row["blocking"]),
        completed_with_callback=bool(row["completed_with_callback"]),
        redrives=row["redrives"],
        marked_done=bool(row["marked_done"]),
    )


# orjson reads an integer beyond 64 bits as a float; text with such a run of digits goes to json.
# ASCII digits only (a number in JSON has no others), found by a lookahead: in a profile of the
# cloud under load ``\d{19}`` cost twice the parse itself.
_LONG_DIGITS: Final = re.compile(r"[0-9](?=[0-9]{18})")


def loads(text: str | None) -> Any:
    """Parse a nullable JSON column: orjson, or the standard library where orjson would differ.

    orjson would turn an integer beyond 64 bits into a float and refuses ``NaN`` and out-of-range
    exponents; such text is read by the standard library, so a value reads back as it was written.
    """
    if text is None:
        return None
    if _LONG_DIGITS.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN or an exponent beyond a float, which json reads as before
    return json.loads(text)


def dumps(value: object) -> str:
    """Serialise a value for a JSON column: compact, sorted keys, UTF-8 text.

    orjson writes what the standard library writes for these values (D60); what orjson refuses (a
    non-string key, an integer beyond 64 bits) is written by the standard library instead. A
    non-finite float, which no validated input holds, is written as ``null``.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def document_from_row(row: Row) -> DocumentRecord:
    """A ``documents`` row as a record."""
    return build(
        DocumentRecord,
        seq=row["seq"],
        retail_point_id=row["retail_point_id"],
        doc_id=row["doc_id"],
        client_id=row["client_id"],
        route=row["route"],
        document=loads(row["document"]),
        content_key=row["content_key"],
        doc_num=row["doc_num"],
        total=row["total"],
        response_url=row["response_url"],
        created_at=from_db_time(row["created_at"]),
        state=state_from_row(row),
        fiscal_info=loads(row["fiscal_info"]),
        failure_detail=loads(row["failure_detail"]),
        lease_device_id=row["lease_device_id"],
        callback_last_error=row["callback_last_error"],
        fn_number=row["fn_number"],
        fn_doc_number=row["fn_doc_number"],
        ofd_state=row["ofd_state"],
        ofd_changed_at=opt_time(row["ofd_changed_at"]),
        warnings=tuple(loads(row["warnings"])),
        possible_duplicate_of=row["possible_duplicate_of"],
    )


def point_from_row(row: Row) -> RetailPoint:
    """A ``retail_points`` row as a record."""
    return RetailPoint(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        address=row["address"],
        inn=row["inn"],
        internet_docs_enabled=bool(row["internet_docs_enabled"]),
        stop_on_errors=bool(row["stop_on_errors"]),
        pickup_window=PickupWindow(row["pickup_window"]),
        default_tax_mode=TaxSystem(row["default_tax_mode"]),
        duplicate_policy=DuplicatePolicy(row["duplicate_policy"]),
        deleted=bool(row["deleted"]),
        created_at=from_db_time(row["created_at"]),
    )


def device_from_row(row: Row) -> Device:
    """A ``devices`` row as a record."""
    return Device(
        device_id=row["device_id"],
        till_serial=row["till_serial"],
        retail_point_id=row["retail_point_id"],
        fn_serial=row["fn_serial"],
        model=row["model"],
        firmware_profile=row["firmware_profile"],
        token_hash=row["token_hash"],
        bound_at=from_db_time(row["bound_at"]),
        last_heartbeat_at=opt_time(row["last_heartbeat_at"]),
        fn_ok=None if row["fn_ok"] is None else bool(row["fn_ok"]),
        heartbeat=loads(row["heartbeat"]),
    )


def association_from_row(row: Row) -> Association:
    """An ``associations`` row as a record."""
    return Association(
        user_name=row["user_name"],
        retail_point_id=row["retail_point_id"],
        client_id=row["client_id"],
        account_id=row["account_id"],
        salt=row["salt"],
        hash=row["hash"],
        created_at=from_db_time(row["created_at"]),
        rotated_at=from_db_time(row["rotated_at"]),
    )


@dataclass(frozen=True)
class DocumentFilter:
    """Filters of the cabinet's document list."""

    retail_point_id: str | None = None
    statuses: tuple[str, ...] = ()
    doc_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


class TimerKind(StrEnum):
    """A lifecycle deadline kept in a document row."""

    LEASE = "lease"  # the 15-minute rule (PENDING without a result)
    PICKUP = "pickup"  # the 235-second rule of a «За 5 минут» point (D37)
    DISPATCH = "dispatch"  # the D31 hold of a fiscalised document before its callback


class DueTimer(NamedTuple):
    """One due lifecycle deadline: when it fell due, which rule, which document."""

    deadline: datetime
    kind: TimerKind
    seq: int
