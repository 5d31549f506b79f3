"""The till's upload queue: cash documents to the cloud, in order, none lost (``orders-and-backoffice.md`` B7).

Every document the till makes itself — counter sales and returns, corrections, cash in and out,
the cashier shift's open and close (B10, B13), and the receipts of courier orders — is a v1 cash
document (``orders-and-backoffice.md`` §3.2) queued in the till's store (``till_cashdocs``) in the
same transaction as the rest of what the till writes about it (:func:`enqueue_cashdoc`). The
upload loop (:meth:`CashDocs.upload_loop`) sends the head of the queue to
``POST /api/device/v1/cashdocs`` (B9):

* FIFO, and the head blocks: a refused or failed upload is tried again with back-off
  (:data:`BACKOFF_MIN` doubling to :data:`BACKOFF_MAX`), alone until it is taken, and everything
  behind it waits; nothing is ever dropped (the cloud is idempotent per document ``id``);
* idle costs nothing: with the queue empty (or uploads blocked, or the till offline) the loop
  waits for :attr:`~kkt_emulator.till.context.TillContext.upload_wake` only — no timer fires.
  Queueing a document, clearing a fault or a setting change wakes it (D87);
* uploaded documents stay in the store until the cashier shift after theirs opens, so the
  ``shift.closed`` event's totals come from the same documents the cloud got (B11).

Other till code queues its own documents through :func:`enqueue_cashdoc` inside its store
transaction (``TillStore.transaction()``), then calls :meth:`CashDocs.queued` after the commit to
wake the loop; :meth:`CashDocs.receipt_document` builds a receipt's cash document.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cashdocs import SHIFT_CLOSE, SHIFT_OPEN, shift_totals
from kkt_emulator.errors import CloudError, ConfigError, TransportError
from kkt_emulator.fn.signing import receipt_qr
from kkt_emulator.till.faults import FaultName

if TYPE_CHECKING:
    from kkt_emulator.till.cloud_link import CloudLink
    from kkt_emulator.till.context import TillContext
    from kkt_emulator.till.fault_control import FaultControl

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "BATCH",
    "CashDocs",
    "CashShift",
    "enqueue_cashdoc",
    "fiscal_info",
]

BATCH: Final = 50
"""The most documents one upload carries."""
BACKOFF_MIN: Final = 1.0
"""Real seconds before the first retry of a failed upload."""
BACKOFF_MAX: Final = 60.0
"""Real seconds between retries at most (doubling from :data:`BACKOFF_MIN`)."""
_SHIFT_KEY: Final = "cash_shift"


@dataclass(frozen=True, slots=True)
class CashShift:
    """The till's open cashier shift as its cash documents name it (B4, B10)."""

    id: str
    number: int
    opened_at: str
    check_num: int = 0
    money_num: int = 0

    def to_json(self) -> dict[str, Any]:
        """As kept in the store."""
        return {
            "id": self.id,
            "shiftNum": self.number,
            "openedAt": self.opened_at,
            "checkNum": self.check_num,
            "moneyNum": self.money_num,
        }

    @classmethod
    def parse(cls, value: Any) -> CashShift | None:
        """From the store; ``None`` when no cashier shift is open."""
        if not isinstance(value, dict):
            return None
        return cls(
            str(value["id"]),
            int(value["shiftNum"]),
            str(value["openedAt"]),
            int(value.get("checkNum") or 0),
            int(value.get("moneyNum") or 0),
        )

    @property
    def ref(self) -> dict[str, Any]:
        """``shift {id, shiftNum}`` of its documents."""
        return {"id": self.id, "shiftNum": self.number}


def enqueue_cashdoc(db: sqlite3.Connection, document: dict[str, Any], *, at: str) -> None:
    """Queue a cash document for upload, inside the caller's store transaction (B7).

    ``db`` is the connection :meth:`~kkt_emulator.till.store.TillStore.transaction` yields;
    ``document`` a v1 cash document with ``id`` and ``shift.id``; ``at`` when it was made (ISO,
    ``uploadQueue.oldestAt``). A document whose ``id`` is queued already is left as it is. Call
    :meth:`CashDocs.queued` after the commit to wake the upload loop.
    """
    db.execute(
        "INSERT OR IGNORE INTO till_cashdocs (doc_id, shift_id, doc_type, document, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            str(document["id"]),
            str(document["shift"]["id"]),
            str(document["docType"]),
            json.dumps(document, ensure_ascii=False),
            at,
        ),
    )


def fiscal_info(
    ctx: TillContext,
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
    """The fiscal data of a signed receipt, as the store API's ``fiscalInfo`` (store-api.md §7.3)."""
    utc = (local - ctx.config.utc_offset).replace(tzinfo=UTC)
    return {
        "shiftNumber": shift,
        "checkNumber": receipt,
        "kktNumber": ctx.kkt_serial,
        "fnNumber": ctx.fn_serial,
        "fnDocNumber": fd,
        "fnDocMark": fpd,
        "date": utc.isoformat(),
        "sum": total / 100,
        "checkType": check_type,
        "qr": receipt_qr(
            local, total, ctx.fn_serial, fd, fpd, operation, seconds=True, fd_digits=10
        ),
        "ecrRegistrationNumber": ctx.rnm,
    }


def _money(value: Decimal) -> float:
    return float(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


class CashDocs:
    """The cashier shift's documents and their upload (B7, B9, B10, B13).

    Args:
        ctx: the till's shared state.
        link: the cloud link.
        faults: the faults in force (``upload.block``, ``upload.reject``).
    """

    def __init__(self, ctx: TillContext, link: CloudLink, faults: FaultControl) -> None:
        self.ctx = ctx
        self.link = link
        self.faults = faults
        self.last_error: str | None = None
        self.uploaded = 0
        """Documents the cloud took since the till started."""
        self.queued_count = 0
        """Documents queued since the till started (with :attr:`uploaded`: a change signal
        for the heartbeat that needs no read of the store)."""
        self._head_failed = False
        self.passes = 0
        """Turns of the upload loop (an idle queue makes none, D87)."""

    # ------------------------------------------------------------------ the cashier shift

    def current_shift(self) -> CashShift | None:
        """The open cashier shift, if a document opened one."""
        return CashShift.parse(self.ctx.state.get(_SHIFT_KEY))

    def _utc_now(self) -> str:
        return self.ctx.clock.now().astimezone(UTC).isoformat()

    def _kkm_info(self, drive_shift: int) -> dict[str, Any]:
        ctx = self.ctx
        info: dict[str, Any] = {
            "serialNo": ctx.kkt_serial,
            "modelName": ctx.profile.model,
            "shiftNum": drive_shift,
            "fiscalInfo": {"fnNo": ctx.fn_serial, "regNo": ctx.rnm},
        }
        drive = ctx.drive
        if drive is not None:
            unsent = drive.state.unsent
            first = unsent[0].when if unsent else None
            if first is not None and first.tzinfo is None:  # the drive's wall time
                first = (first - ctx.config.utc_offset).replace(tzinfo=UTC)
            info["fiscalInfo"]["stalledDocCnt"] = len(unsent)
            info["fiscalInfo"]["firstStalledDocDate"] = first.isoformat() if first else None
        return info

    def _base(self, shift: CashShift, doc_type: str, num: int, cashier: str) -> dict[str, Any]:
        now = self._utc_now()
        return {
            "id": str(uuid.uuid4()),
            "docNum": str(num),
            "docType": doc_type,
            "status": "CLOSED",
            "beginDateTime": now,
            "endDateTime": now,
            "shift": shift.ref,
            "cashier": {"name": cashier},
            "inventPositions": [],
            "moneyPositions": [],
            "baseSum": 0.0,
            "actualSum": 0.0,
            "change": 0.0,
            "linkedDocId": None,
            "fiscalInfo": None,
        }

    def open_shift_in(
        self, db: sqlite3.Connection, number: int, drive_shift: int, cashier: str
    ) -> CashShift:
        """The open cashier shift; opens one (and queues its ``SHIFT_OPEN``) if none is, in ``db``."""
        shift = self.current_shift()
        if shift is not None:
            return shift
        now = self._utc_now()
        shift = CashShift(str(uuid.uuid4()), number, now)
        # The documents of earlier shifts were uploaded; they are not needed any more.
        db.execute(
            "DELETE FROM till_cashdocs WHERE uploaded_at IS NOT NULL AND shift_id != ?", (shift.id,)
        )
        document = self._base(shift, SHIFT_OPEN, number, cashier)
        document["kkmInfo"] = self._kkm_info(drive_shift)
        enqueue_cashdoc(db, document, at=now)
        self._put(db, shift)
        return shift

    def _put(self, db: sqlite3.Connection, shift: CashShift | None) -> None:
        db.execute(
            "INSERT OR REPLACE INTO till_meta (key, value) VALUES (?, ?)",
            (_SHIFT_KEY, json.dumps(None if shift is None else shift.to_json())),
        )

    def close_shift(self, drive_shift: int, cashier: str) -> dict[str, Any] | None:
        """Close the open cashier shift: queue its ``SHIFT_CLOSE``; its totals (B5), or ``None``.

        ``None`` when no cashier shift is open (a shop-only shift: nothing was sold at the till).
        """
        shift = self.current_shift()
        if shift is None:
            return None
        store = self.ctx.state
        totals = shift_totals(store.shift_cashdocs(shift.id))
        document = self._base(shift, SHIFT_CLOSE, shift.number, cashier)
        document["kkmInfo"] = self._kkm_info(drive_shift)
        document["shiftTotals"] = totals
        with store.transaction() as db:
            enqueue_cashdoc(db, document, at=document["beginDateTime"])
            self._put(db, None)
        self.queued()
        return {"cashShiftId": shift.id, "appShiftNumber": shift.number, "shiftTotals": totals}

    # ------------------------------------------------------------------ documents

    def receipt_document(
        self,
        db: sqlite3.Connection,
        shift: CashShift,
        *,
        doc_type: str,
        positions: list[dict[str, Any]],
        payments: list[dict[str, Any]],
        change: Decimal,
        info: dict[str, Any] | None,
        cashier: str,
        linked_doc_id: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """A receipt's (or money document's) cash document, numbered in ``shift``; not queued.

        ``positions`` are store-API positions (``name``, ``price``, ``quantity``, ``vatTag``,
        optional ``inventCode``, ``measure``, ``discSum``); ``payments`` ``{paymentType, sum}`` as
        tendered (cash may exceed the sum by ``change``). Receipts take the shift's next check
        number, cash in and out its next money number (B13); the new numbers are written in ``db``.
        """
        money = doc_type in ("CASH_IN", "CASH_OUT")
        numbered = CashShift(
            shift.id,
            shift.number,
            shift.opened_at,
            shift.check_num + (0 if money else 1),
            shift.money_num + (1 if money else 0),
        )
        self._put(db, numbered)
        document = self._base(
            numbered, doc_type, numbered.money_num if money else numbered.check_num, cashier
        )
        lines = []
        base = actual = Decimal(0)
        for index, position in enumerate(positions):
            price = Decimal(str(position["price"]))
            quantity = Decimal(str(position["quantity"]))
            full = price * quantity
            pos_sum = full - Decimal(str(position.get("discSum") or 0))
            base += full
            actual += pos_sum
            lines.append(
                {
                    "posNum": index + 1,
                    "inventCode": position.get("inventCode"),
                    "barcode": position.get("barcode"),
                    "name": position["name"],
                    "measure": position.get("measure") or "pcs",
                    "price": _money(price),
                    "quantity": float(quantity),
                    "baseSum": _money(full),
                    "discSum": _money(full - pos_sum),
                    "posSum": _money(pos_sum),
                    "vatTag": str(position["vatTag"]),
                    "type": "MAIN",
                }
            )
        if money:
            actual = base = sum((Decimal(str(p["sum"])) for p in payments), Decimal(0))
        document.update(
            inventPositions=lines,
            moneyPositions=[
                {
                    "paymentType": str(p["paymentType"]),
                    "sum": _money(Decimal(str(p["sum"]))),
                    "createDateTime": document["beginDateTime"],
                }
                for p in payments
            ],
            baseSum=_money(base),
            actualSum=_money(actual),
            acceptedSum=_money(sum((Decimal(str(p["sum"])) for p in payments), Decimal(0))),
            change=_money(change),
            linkedDocId=linked_doc_id,
            fiscalInfo=info,
        )
        if description:
            document["description"] = description
        return document

    def queued(self) -> None:
        """A document was queued (and committed): wake the upload loop and tell listeners."""
        self.queued_count += 1
        self.ctx.upload_wake.set()
        self.ctx.emit("state.changed", {"reason": "cashdoc.queued"})

    # ------------------------------------------------------------------ the queue's state

    def queue_state(self) -> dict[str, Any]:
        """``uploadQueue {size, oldestAt, lastError}`` of the till's state and heartbeat (B7)."""
        store = self.ctx.store
        if store is None:
            return {"size": 0, "oldestAt": None, "lastError": self.last_error}
        try:
            size, oldest = store.cashdoc_queue_state()
        except (sqlite3.Error, ConfigError):
            return {"size": None, "oldestAt": None, "lastError": self.last_error}
        error = self.last_error
        if size and self.ctx.has_fault(FaultName.UPLOAD_BLOCK):
            error = "upload blocked (fault upload.block)"
        return {"size": size, "oldestAt": oldest, "lastError": error}

    # ------------------------------------------------------------------ the upload loop

    async def upload_once(self) -> int:
        """Upload the head of the queue; how many documents the cloud took (0: nothing to do).

        Raises:
            CloudError, TransportError: the upload failed or was refused (the head stays).
        """
        ctx = self.ctx
        if not ctx.online() or ctx.has_fault(FaultName.UPLOAD_BLOCK):
            return 0
        batch = ctx.state.cashdoc_queue(1 if self._head_failed else BATCH)
        if not batch:
            return 0
        reject = ctx.faults.get(FaultName.UPLOAD_REJECT)
        if reject is not None and reject.roll():
            self.faults.struck(FaultName.UPLOAD_REJECT)
            raise CloudError(400, f"document {batch[0].doc_id} refused (fault upload.reject)")
        await self.link.cashdocs([entry.document for entry in batch])
        ctx.state.cashdocs_uploaded([entry.seq for entry in batch], self._utc_now())
        self.uploaded += len(batch)
        self._head_failed = False
        if self.last_error is not None:
            self.last_error = None
        ctx.log.info("cashdocs_uploaded", count=len(batch), head=batch[0].doc_id)
        ctx.emit(
            "cashdocs.uploaded", {"count": len(batch), "ids": [entry.doc_id for entry in batch]}
        )
        return len(batch)

    async def upload_loop(self) -> None:
        """Upload until the till stops; wait for a wake-up only when there is nothing to send."""
        ctx = self.ctx
        backoff = BACKOFF_MIN
        while not ctx.stopping.is_set():
            ctx.upload_wake.clear()  # a document queued during the upload wakes the next turn
            self.passes += 1
            try:
                sent = await self.upload_once()
            except (CloudError, TransportError) as exc:
                self._failed(str(exc), backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except (sqlite3.Error, ConfigError) as exc:  # the store reopened (a restart, a restore)
                self._failed(f"till store: {exc}", backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            if not sent:
                await ctx.upload_wake.wait()  # no timer: idle costs nothing (D87)

    def _failed(self, error: str, backoff: float) -> None:
        self._head_failed = True
        changed = error != self.last_error
        self.last_error = error
        self.ctx.log.warning("cashdocs_upload_failed", error=error, retry_s=backoff)
        if changed:
            self.ctx.emit("state.changed", {"reason": "upload.failed"})

    async def _pause(self, seconds: float) -> None:
        """Back off ``seconds`` (pacing), cut short by a wake-up (a fault cleared, a setting)."""
        self.ctx.upload_wake.clear()
        with contextlib.suppress(TimeoutError):  # the back-off simply ran out
            async with asyncio.timeout(seconds):
                await self.ctx.upload_wake.wait()
