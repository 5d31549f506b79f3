"""Cash documents and cashier shifts: the till's upload (``POST /api/device/v1/cashdocs``) and reads.

The till uploads the documents it made itself, oldest first (``orders-and-backoffice.md`` §3.3,
B7). :meth:`CashDocOperations.upload_cashdocs` stores each in order, idempotent per document
``id`` (B9); each document is stored in its own transaction together with its shift's update and
whatever the listeners write (B12), so a crash in the middle of a batch keeps a prefix of it and
the till's retry stores the rest.

The reads other parts of the cloud build on (the back-office routes, the orders' receipt lookup,
the feeds): :meth:`CashDocOperations.cash_documents`, :meth:`CashDocOperations.shift_view` /
:meth:`CashDocOperations.recent_shifts` (the B4 shift object with its B5 totals computed from the
uploaded documents only, B11) and :func:`cashdoc_view`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kkt_emulator.cashdocs import DOC_TYPES, MONEY_TYPES, SHIFT_DOC_TYPES, shift_totals
from kkt_emulator.cloud.core import ServiceCore
from kkt_emulator.cloud.db import StorageError
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery, CashDocRecord, CashShiftRecord
from kkt_emulator.cloud.views import JsonObject, format_time, opt_format
from kkt_emulator.errors import CloudError

if TYPE_CHECKING:
    from kkt_emulator.cloud.storage import Device, RetailPoint

__all__ = [
    "EXPIRES_AFTER",
    "MAX_UPLOAD",
    "CashDocIn",
    "CashDocOperations",
    "CashDocsRequest",
    "cashdoc_view",
    "shift_object",
    "upload_state",
]

MAX_UPLOAD: Final = 200
"""The most documents one upload carries (the till sends 50 at most, B9)."""
EXPIRES_AFTER: Final = timedelta(hours=24)
"""An open shift older than this shows as ``EXPIRED`` (B4, the SDK's «over 24 h»)."""


class ShiftRef(BaseModel):
    """``shift {id, shiftNum}`` of a cash document."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=64)
    shiftNum: int = Field(ge=0)  # noqa: N815 - wire field name


class CashDocIn(BaseModel):
    """One uploaded cash document (B9): the keys the cloud indexes are checked, the rest kept."""

    model_config = ConfigDict(extra="allow")

    id: str
    docNum: str = Field(min_length=1, max_length=64)  # noqa: N815 - wire field name
    docType: str  # noqa: N815 - wire field name
    beginDateTime: str  # noqa: N815 - wire field name; kept as sent, checked below
    shift: ShiftRef
    linkedDocId: str | None = Field(default=None, max_length=64)  # noqa: N815 - wire field name

    @field_validator("docNum", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError as exc:
            raise ValueError("id must be a UUID") from exc
        return value

    @field_validator("docType")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in DOC_TYPES:
            raise ValueError(f"docType must be one of {', '.join(sorted(DOC_TYPES))}")
        return value

    @field_validator("beginDateTime")
    @classmethod
    def _aware(cls, value: str) -> str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("beginDateTime must be an ISO 8601 date-time") from exc
        if parsed.tzinfo is None:
            raise ValueError("beginDateTime needs a UTC offset")
        return value

    @property
    def begin_at(self) -> datetime:
        """``beginDateTime`` as a time (checked to parse, with an offset)."""
        return datetime.fromisoformat(self.beginDateTime)


class CashDocsRequest(BaseModel):
    """``POST /api/device/v1/cashdocs``: documents in the till's FIFO order (B9)."""

    model_config = ConfigDict(extra="forbid")

    documents: list[CashDocIn] = Field(min_length=1, max_length=MAX_UPLOAD)


def cashdoc_view(record: CashDocRecord) -> JsonObject:
    """A stored cash document as the back office shows it: the uploaded document, as uploaded."""
    return dict(record.document)


class CashDocOperations(ServiceCore):
    """The upload of cash documents and the reads of documents and shifts."""

    # -- the till's upload (B9) --------------------------------------------------------------------

    def upload_cashdocs(
        self, device: Device, point: RetailPoint, documents: list[CashDocIn]
    ) -> JsonObject:
        """Store the documents in order; answers one ``{id, outcome}`` per document.

        ``outcome`` is ``stored`` or ``duplicate`` (an id the cloud already holds: the till's
        retry after a lost answer). A document of a shift another retail point holds is refused
        with 409 and nothing after it is stored (the till's head blocks, B9).
        """
        now = self.clock.now()
        answers: list[JsonObject] = []
        for item in documents:
            document = item.model_dump(mode="json")
            shift = self.storage.get_shift(item.shift.id)
            if shift is not None and shift.retail_point_id != point.id:
                raise CloudError(409, f"Shift {item.shift.id} belongs to another retail point")
            try:
                outcome = self.storage.store_cashdoc(
                    retail_point_id=point.id,
                    device_id=device.device_id,
                    document=document,
                    begin_at=item.begin_at,
                    received_at=now,
                )
            except StorageError:
                raise
            except Exception as exc:  # a listener failed: rolled back with the document (B12)
                self.log.exception(
                    "cashdoc_listener_failed", device_id=device.device_id, doc_id=item.id
                )
                raise CloudError(
                    503, f"Cash document {item.id} could not be stored now; send it again"
                ) from exc
            answers.append({"id": item.id, "outcome": "stored" if outcome.stored else "duplicate"})
            if outcome.stored:
                self.log.info(
                    "cashdoc_stored",
                    device_id=device.device_id,
                    retail_point_id=point.id,
                    doc_id=item.id,
                    doc_type=item.docType,
                    shift_id=item.shift.id,
                )
        return {"results": answers, "serverTime": format_time(now)}

    # -- reads -------------------------------------------------------------------------------------

    def cash_documents(self, query: CashDocQuery) -> tuple[list[CashDocRecord], int]:
        """The point's cash documents matching ``query`` (B3), and how many match in all."""
        return self.storage.list_cashdocs(query)

    def money_documents(
        self, point_id: str, *, start: int = 0, count: int | None = 100
    ) -> tuple[list[CashDocRecord], int]:
        """The point's cash-in and cash-out documents (``moneydocs``), oldest first."""
        return self.storage.list_cashdocs(
            CashDocQuery(point_id, doc_types=tuple(sorted(MONEY_TYPES)), start=start, count=count)
        )

    def shift_view(self, shift: CashShiftRecord) -> JsonObject:
        """The B4 shift object with its B5 totals, computed from its uploaded documents (B11)."""
        documents = [r.document for r in self.storage.shift_documents(shift.id)]
        return shift_object(shift, documents, self.clock.now())

    def shift_by_id(self, point_id: str, shift_id: str) -> JsonObject:
        """The shift object of ``shift_id`` at the point; 404 if the point has no such shift."""
        shift = self.storage.get_shift(shift_id)
        if shift is None or shift.retail_point_id != point_id:
            raise CloudError(404, f"Shift not found: {shift_id}")
        return self.shift_view(shift)

    def recent_shifts(self, point_id: str, days: float | None = None) -> list[JsonObject]:
        """Shifts opened in the last ``days`` × 24 h plus any still open, newest first (B3).

        ``days`` ``None``: every shift of the point.
        """
        since = None if days is None else self.clock.now() - timedelta(days=days)
        return [self.shift_view(s) for s in self.storage.list_shifts(point_id, opened_since=since)]

    def upload_state(self, device: Device) -> JsonObject:
        """The cabinet's view of a till's upload queue (:func:`upload_state`)."""
        return upload_state(device, self.storage.last_upload(device.device_id))


def upload_state(device: Device, last: tuple[datetime, int] | None) -> JsonObject:
    """``lastUploadAt``, ``uploadedDocuments`` and the ``uploadQueue`` the till last reported."""
    queue = (device.heartbeat or {}).get("uploadQueue")
    return {
        "lastUploadAt": None if last is None else format_time(last[0]),
        "uploadedDocuments": 0 if last is None else last[1],
        "uploadQueue": queue if isinstance(queue, dict) else None,
    }


def shift_status(shift: CashShiftRecord, now: datetime) -> str:
    """``CLOSED`` once its close document arrived; ``EXPIRED`` when open over 24 h (B4)."""
    if shift.complete:
        return "CLOSED"
    return "EXPIRED" if now - shift.open_at > EXPIRES_AFTER else "OPENED"


def shift_object(
    shift: CashShiftRecord, documents: list[dict[str, Any]], now: datetime
) -> JsonObject:
    """The shift object of B4 (``orders-and-backoffice.md`` §4.4) from a shift and its documents.

    Project keys: ``complete`` (false until the close document arrived: the shift is
    "incomplete", B7) and ``documentsCount`` (receipts, corrections and money documents uploaded).
    """
    kkm = dict(shift.kkm_info or {})
    counted = [d for d in documents if d.get("docType") not in SHIFT_DOC_TYPES]
    return {
        "id": shift.id,
        "shiftNum": shift.shift_num,
        "status": shift_status(shift, now),
        "shiftType": "OPERATIONAL",
        "openDate": format_time(shift.open_at),
        "closeDate": opt_format(shift.close_at),
        "lastCheckNum": shift.last_check_num,
        "lastMoneyCheckNum": shift.last_money_check_num,
        "cashier": shift.cashier,
        "kkmInfo": kkm or None,
        "shiftTotals": shift_totals(counted),
        "complete": shift.complete,
        "documentsCount": len(counted),
    }
