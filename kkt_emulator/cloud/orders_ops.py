"""The orders desk: orders from shops, their lifecycle, the tills' side and the shop's callback.

``orders-and-backoffice.md`` §2: the orders API (O1–O6), the v1 ``:external`` façade (O10), the
device calls of the courier's till (O7) and the ``responseURL`` callback when the order's first
receipt reaches the cloud (O9). States (O5)::

    NEW ──(a till synced it)──▶ ON_TILL ──(claim)──▶ IN_PAYMENT ──(receipt stored)──▶ FISCALIZED
     │                            ▲  │                   │
     │                            └──┼──(release)────────┘
     └──────────────(DELETE)─────────┴─────────────▶ DELETED   (from any live state)

Every change a till must see (create, PUT, claim, release, delete, receipt) takes the point's next
order revision (O14), and tills sync by revision (``GET /orders?since=REV``). The callback reuses
the document callbacks' machinery (:mod:`~kkt_emulator.cloud.callbacks`): the timer task asks
:meth:`OrderOperations.due_callbacks`, which adds the due order callbacks (keyed by ``-seq`` so
they never collide with a document's ``seq``) to the documents', and records each outcome in
:meth:`OrderOperations.callback_finished`. The callback is scheduled in the same transaction that
stores the receipt, so it is made once per order whatever crashes (O15).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cashdocs import RECEIPT_TYPES
from kkt_emulator.cloud.callbacks import CallbackOperations, CallbackRequest, callback_url
from kkt_emulator.cloud.lifecycle import CALLBACK_WINDOW, CallbackKind, callback_offset
from kkt_emulator.cloud.orders_model import ORDER_KEYS, parse_external_cashdoc, parse_order
from kkt_emulator.cloud.orders_tables import OrderRecord
from kkt_emulator.cloud.service_auth import (
    ORDERS_POINT_NOT_FOUND,
    POINT_NOT_FOUND,
    ServiceCredentialOperations,
)
from kkt_emulator.cloud.timers import TimerOperations
from kkt_emulator.cloud.views import format_time
from kkt_emulator.errors import CloudError, ServiceApiError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kkt_emulator.cloud.orders_model import ParsedOrder
    from kkt_emulator.cloud.service_auth import Principal
    from kkt_emulator.cloud.storage import Device, RetailPoint
    from kkt_emulator.cloud.tables_cashdocs import CashDocRecord

__all__ = ["EXTERNAL_SHIFT", "IN_PAYMENT_TEXT", "OrderOperations", "order_view", "orders_key"]

EXTERNAL_SHIFT: Final = ":external"
IN_PAYMENT_TEXT: Final = "Заказ уже проводится или проведён на кассе"  # O6
CONFLICT: Final = "object-already-exists"  # O3
LIVE_STATES: Final = ("NEW", "ON_TILL", "IN_PAYMENT", "FISCALIZED")
MAX_COUNT: Final = 1000


def orders_key(point_id: str) -> str:
    """What an order write announces (``ServiceCore.on_change``): the point's orders alone.

    Order long polls wait on this key, not on the point's, so a document's every step does not wake
    each till's order poll, and an order write wakes no document long poll; the timer task wakes on
    every announcement, as it must for the order callbacks (O9).
    """
    return f"orders:{point_id}"


def order_view(order: OrderRecord) -> dict[str, Any]:
    """The vendor's Order: every key, ``null`` when empty, no project keys (O4)."""
    body = {key: order.body.get(key) for key in ORDER_KEYS}
    body["id"] = order.id
    return body


def _device_view(order: OrderRecord, device_id: str) -> dict[str, Any]:
    """An order as a till syncs it (O7): the Order plus what the till needs beside it."""
    if not order.live:
        return {"id": order.id, "rev": order.rev, "state": "DELETED"}
    return {
        "id": order.id,
        "rev": order.rev,
        "state": order.state,
        "claimedBy": order.claimed_by,
        "claimedByMe": order.claimed_by == device_id,
        "prepaid": order.prepaid,
        "order": order_view(order),
    }


def _external_view(order: OrderRecord) -> dict[str, Any]:
    """An order as the v1 façade shows it: a cash document of the ``:external`` shift (O10)."""
    body = order.body
    positions = [
        {
            "posNum": index + 1,
            "inventCode": p.get("inventCode"),
            "name": p.get("name"),
            "quantity": p.get("quantity"),
            "price": p.get("price"),
            "posSum": p.get("posSum"),
            "measure": p.get("measure"),
            "vatTag": None if p.get("vatTag") is None else str(p["vatTag"]),
            "type": "MAIN",
        }
        for index, p in enumerate(body.get("inventPositions") or [])
    ]
    return {
        "id": order.id,
        "docNum": order.document_number,
        "docType": body.get("documentType"),
        "status": "CLOSED" if order.state == "FISCALIZED" else "OPENED",
        "beginDateTime": body.get("documentDateTime"),
        "description": body.get("description"),
        "baseSum": body.get("totalSum"),
        "actualSum": body.get("totalSum"),
        "linkedDocId": None,
        "shift": {"id": EXTERNAL_SHIFT},
        "inventPositions": positions,
        "moneyPositions": [],
    }


def _page(start: int | None, count: int | None) -> tuple[int, int]:
    start = 0 if start is None else start
    count = 100 if count is None else count
    if start < 0:
        raise ServiceApiError(400, "start: must be 0 or more")
    if not 1 <= count <= MAX_COUNT:
        raise ServiceApiError(400, f"count: must be 1..{MAX_COUNT}")
    return start, count


class OrderOperations(CallbackOperations, TimerOperations, ServiceCredentialOperations):
    """The orders API, the v1 façade, the tills' order calls and the order callbacks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # O9: an uploaded receipt naming an order (linkedDocId) fiscalises it, in its transaction
        self.storage.on_cashdoc_stored(self._cashdoc_stored)

    def _cashdoc_stored(self, record: CashDocRecord) -> None:
        """The "cash document stored" listener (B12): a receipt of an order fiscalises it."""
        if record.linked_doc_id is None or record.doc_type not in RECEIPT_TYPES:
            return
        info = record.document.get("fiscalInfo")
        self.order_receipt_stored(
            record.retail_point_id,
            record.linked_doc_id,
            dict(info) if isinstance(info, dict) else {},
            receipt_id=record.doc_id,
        )

    # -- the orders API (O1–O6) --------------------------------------------------------------------

    def _point_of(self, who: Principal, point_id: str) -> RetailPoint:
        return self.authorized_point(who, point_id, POINT_NOT_FOUND)

    def _live_order(self, point: RetailPoint, order_id: str) -> OrderRecord:
        order = self.storage.get_order(order_id)
        if order is None or not order.live or order.retail_point_id != point.id:
            raise ServiceApiError(404, ORDERS_POINT_NOT_FOUND)
        return order

    def _next_rev(self, point_id: str) -> int:
        return int(self.storage.orders_rev(point_id)) + 1

    def create_order(
        self, who: Principal, point_id: str, body: bytes, *, source: str = "v2"
    ) -> OrderRecord:
        """``POST …/order`` (or the façade's cashdoc): a new order, 409 for a live number (O6)."""
        point = self._point_of(who, point_id)
        parsed: ParsedOrder = (
            parse_order(body)[0] if source == "v2" else parse_external_cashdoc(body)
        )
        now = self.clock.now()
        with self.storage.transaction():
            self.storage.lock_point(point.id)  # two processes: one number, one order (D75)
            if self.storage.live_order_by_number(point.id, parsed.document_number) is not None:
                raise ServiceApiError(409, CONFLICT)
            order = self.storage.insert_order(
                OrderRecord(
                    seq=0,
                    id=str(uuid.uuid4()),
                    retail_point_id=point.id,
                    document_number=parsed.document_number,
                    body=parsed.body,
                    prepaid=parsed.prepaid,
                    state="NEW",
                    rev=self._next_rev(point.id),
                    claimed_by=None,
                    source=source,
                    created_at=now,
                    changed_at=now,
                )
            )
        self.log.info(
            "order_created",
            order_id=order.id,
            retail_point_id=point.id,
            document_number=order.document_number,
            source=source,
        )
        self.on_change(orders_key(point.id))
        return order

    def update_order(self, who: Principal, point_id: str, body: bytes) -> OrderRecord:
        """``PUT …/order``: replace the client fields of the order the body's ``id`` names (O6)."""
        point = self._point_of(who, point_id)
        parsed, order_id = parse_order(body)
        if order_id is None:
            raise ServiceApiError(
                400,
                "Validation failed for object='orderDto'. Error count: 1",
                [
                    {
                        "defaultMessage": "не должно равняться null",
                        "rejectedValue": None,
                        "code": "NotNull",
                        "objectName": "orderDto",
                        "field": "id",
                    }
                ],
            )
        with self.storage.transaction():
            self.storage.lock_point(point.id)
            order = self._live_order(point, order_id)
            if order.state not in ("NEW", "ON_TILL"):
                raise ServiceApiError(400, IN_PAYMENT_TEXT)
            twin = self.storage.live_order_by_number(point.id, parsed.document_number)
            if twin is not None and twin.id != order.id:
                raise ServiceApiError(409, CONFLICT)
            new_body = dict(parsed.body)
            old_comment = order.body.get("checkComment")
            new_body["checkCommentChanged"] = bool(
                order.body.get("checkCommentChanged") or new_body.get("checkComment") != old_comment
            )
            order = order.replace(
                body=new_body,
                document_number=parsed.document_number,
                prepaid=parsed.prepaid,
                rev=self._next_rev(point.id),
                changed_at=self.clock.now(),
            )
            self.storage.update_order(order)
        self.log.info("order_updated", order_id=order.id, retail_point_id=point.id)
        self.on_change(orders_key(point.id))
        return order

    def find_order(self, who: Principal, point_id: str, order_id: str) -> OrderRecord:
        """``GET …/order/{id}``: a live order of the point (404 otherwise)."""
        return self._live_order(self._point_of(who, point_id), order_id)

    def list_orders(
        self,
        who: Principal,
        point_id: str,
        start: int | None = None,
        count: int | None = None,
        *,
        source: str | None = None,
    ) -> tuple[list[OrderRecord], int, int]:
        """``GET …/order``: live orders oldest first; the page, its ``pos`` and the total (O6)."""
        point = self._point_of(who, point_id)
        first, size = _page(start, count)
        orders, total = self.storage.live_orders(point.id, first, size, source)
        return orders, first, total

    def delete_order(self, who: Principal, point_id: str, order_id: str) -> None:
        """``DELETE …/order/{id}``: withdraw a live order from every till (O6)."""
        point = self._point_of(who, point_id)
        with self.storage.transaction():
            self.storage.lock_point(point.id)
            order = self._live_order(point, order_id)
            self.storage.update_order(
                order.replace(
                    state="DELETED", rev=self._next_rev(point.id), changed_at=self.clock.now()
                )
            )
        self.log.info("order_deleted", order_id=order_id, retail_point_id=point.id, was=order.state)
        self.on_change(orders_key(point.id))

    # -- the v1 façade (O10) -----------------------------------------------------------------------

    def external_view(self, order: OrderRecord) -> dict[str, Any]:
        """The v1 cash document of an order (``shift.id`` ``:external``)."""
        return _external_view(order)

    def external_cashdocs(
        self, who: Principal, point_id: str, start: int | None = None, count: int | None = None
    ) -> dict[str, Any]:
        """Live orders as v1 cash documents, ``{data, pos, total_count}`` (O10).

        Every live order of the point shows here, whichever API created it: the cabinet's
        «Документы → Заказы» lists them together (O16).
        """
        orders, pos, total = self.list_orders(who, point_id, start, count)
        return {"data": [_external_view(o) for o in orders], "pos": pos, "total_count": total}

    def next_extdoc_docnum(self, who: Principal, point_id: str) -> int:
        """The largest numeric ``documentNumber`` of the point + 1 (1 if none, O10)."""
        point = self._point_of(who, point_id)
        return int(self.storage.max_numeric_order_number(point.id)) + 1

    # -- the till (O7) -----------------------------------------------------------------------------

    def device_orders(self, device: Device, point: RetailPoint, since: int) -> dict[str, Any]:
        """Orders of the till's point changed after revision ``since``; ``None`` if none changed.

        ``since`` 0 lists the live orders only. The first sync of a NEW order moves it to
        ON_TILL (O5) without a new revision: it changes nothing a till shows.
        """
        changed = self.storage.orders_changed_since(point.id, since)
        if since <= 0:
            changed = [o for o in changed if o.live]
        fresh = [o for o in changed if o.state == "NEW"]
        if fresh:
            with self.storage.transaction():
                for order in fresh:
                    current = self.storage.get_order(order.id)
                    if current is not None and current.state == "NEW":
                        self.storage.update_order(current.replace(state="ON_TILL"))
            changed = [o.replace(state="ON_TILL") if o.state == "NEW" else o for o in changed]
        rev = max((o.rev for o in changed), default=since)
        return {
            "rev": max(rev, since),
            "orders": [_device_view(o, device.device_id) for o in changed],
        }

    def orders_rev(self, point: RetailPoint) -> int:
        """The point's latest order revision (a till's long poll waits for it to move)."""
        return int(self.storage.orders_rev(point.id))

    def _device_order(self, point: RetailPoint, order_id: str) -> OrderRecord:
        order = self.storage.get_order(order_id)
        if order is None or order.retail_point_id != point.id or not order.live:
            raise CloudError(404, f"Order not found: {order_id}")
        return order

    def claim_order(self, device: Device, point: RetailPoint, order_id: str) -> dict[str, Any]:
        """``POST /orders/{id}/claim``: the first till wins, the others get 409 (O7)."""
        with self.storage.transaction():
            self.storage.lock_point(point.id)
            order = self._device_order(point, order_id)
            if order.claimed_by == device.device_id and order.state == "IN_PAYMENT":
                return _device_view(order, device.device_id)  # repeated after a lost answer
            if order.state not in ("NEW", "ON_TILL"):
                raise CloudError(409, f"Order {order_id} is {order.state} at another till")
            order = order.replace(
                state="IN_PAYMENT",
                claimed_by=device.device_id,
                rev=self._next_rev(point.id),
                changed_at=self.clock.now(),
            )
            self.storage.update_order(order)
        self.log.info("order_claimed", order_id=order_id, device_id=device.device_id)
        self.on_change(orders_key(point.id))
        return _device_view(order, device.device_id)

    def release_order(self, device: Device, point: RetailPoint, order_id: str) -> dict[str, Any]:
        """``POST /orders/{id}/release``: the claiming till gives the order back (O5)."""
        with self.storage.transaction():
            self.storage.lock_point(point.id)
            order = self._device_order(point, order_id)
            if order.state in ("NEW", "ON_TILL"):
                return _device_view(order, device.device_id)  # released already
            if order.state != "IN_PAYMENT" or order.claimed_by != device.device_id:
                raise CloudError(
                    409, f"Order {order_id} is {order.state}, not claimed by this till"
                )
            order = order.replace(
                state="ON_TILL",
                claimed_by=None,
                rev=self._next_rev(point.id),
                changed_at=self.clock.now(),
            )
            self.storage.update_order(order)
        self.log.info("order_released", order_id=order_id, device_id=device.device_id)
        self.on_change(orders_key(point.id))
        return _device_view(order, device.device_id)

    def unlock_order(self, point_id: str, order_id: str) -> dict[str, Any]:
        """The cabinet's «снять блокировку»: an IN_PAYMENT order back to ON_TILL (O5)."""
        point = self._point(point_id)
        with self.storage.transaction():
            self.storage.lock_point(point.id)
            order = self._device_order(point, order_id)
            if order.state != "IN_PAYMENT":
                raise CloudError(400, f"Order {order_id} is {order.state}, not IN_PAYMENT")
            order = order.replace(
                state="ON_TILL",
                claimed_by=None,
                rev=self._next_rev(point.id),
                changed_at=self.clock.now(),
            )
            self.storage.update_order(order)
        self.on_change(orders_key(point.id))
        return self.cabinet_order_view(order)

    def cabinet_orders(self, point_id: str) -> list[dict[str, Any]]:
        """«Документы → Заказы»: the point's live orders with their internal state (O5)."""
        point = self._point(point_id)
        orders, _ = self.storage.live_orders(point.id, 0, MAX_COUNT)
        return [self.cabinet_order_view(o) for o in orders]

    @staticmethod
    def cabinet_order_view(order: OrderRecord) -> dict[str, Any]:
        """An order for the cabinet: the Order, its state, claim, receipt and callback."""
        return {
            "order": order_view(order),
            "state": order.state,
            "claimedBy": order.claimed_by,
            "prepaid": order.prepaid,
            "source": order.source,
            "receipt": order.receipt,
            "fiscalizedAt": None
            if order.fiscalized_at is None
            else format_time(order.fiscalized_at),
            "callback": {
                "attempts": order.callback_attempts,
                "nextAt": None
                if order.callback_next_at is None
                else format_time(order.callback_next_at),
                "lastError": order.callback_last_error,
            },
        }

    # -- the receipt arrives (O9) ------------------------------------------------------------------

    def order_receipt_stored(
        self,
        point_id: str,
        order_id: str,
        fiscal_info: dict[str, Any],
        *,
        receipt_id: str | None = None,
    ) -> bool:
        """The cloud stored a receipt whose ``linkedDocId`` is ``order_id``; whether it was the first.

        The "cash document stored" listener calls it in the transaction that stores the receipt,
        so the order's FISCALIZED state and its callback are kept exactly when the receipt is.
        The first receipt wins; later ones (a repeated upload) change nothing. A deleted order
        keeps its receipt and still calls back (O6, O15): the courier took the money.
        """
        with self.storage.transaction():
            order = self.storage.get_order(order_id)
            if order is None or order.retail_point_id != point_id or order.receipt is not None:
                return False
            now = self.clock.now()
            url = order.body.get("responseURL")
            order = order.replace(
                state="FISCALIZED" if order.live else order.state,
                receipt={"id": receipt_id, "fiscalInfo": dict(fiscal_info)},
                fiscalized_at=now,
                rev=self._next_rev(point_id),
                changed_at=now,
                callback_first_at=now if url else None,
                callback_next_at=now if url else None,
                callback_attempts=0,
            )
            self.storage.update_order(order)
        self.log.info("order_fiscalized", order_id=order_id, retail_point_id=point_id)
        self.on_change(orders_key(point_id))
        return True

    # -- callbacks, beside the documents' (O9) -----------------------------------------------------

    def due_callbacks(self, now: datetime, in_flight: Sequence[int] = ()) -> list[CallbackRequest]:
        """Due document callbacks, then due order callbacks (``seq`` = ``-order seq``)."""
        documents = super().due_callbacks(now, tuple(k for k in in_flight if k >= 0))
        busy = tuple(-k for k in in_flight if k < 0)
        requests = list(documents)
        for order in self.storage.due_order_callbacks(now, busy):
            url = order.body.get("responseURL")
            if not url or order.callback_next_at is None:  # pragma: no cover - not scheduled
                self.storage.release_order_callback(order.seq)
                continue
            qr = ((order.receipt or {}).get("fiscalInfo") or {}).get("qr")
            requests.append(
                CallbackRequest(
                    seq=-order.seq,
                    doc_id=order.id,
                    kind=CallbackKind.SUCCESS,
                    method="GET",  # O9: GET whatever D42's setting says for documents
                    url=callback_url(str(url), CallbackKind.SUCCESS, qr),
                    body=None,
                    due_at=order.callback_next_at,
                )
            )
        return requests

    def callback_finished(self, request: CallbackRequest, *, delivered: bool, error: str) -> None:
        """Record an attempt: an order's here (D44 schedule), a document's as before."""
        if request.seq >= 0:
            super().callback_finished(request, delivered=delivered, error=error)
            return
        seq = -request.seq
        try:
            point_id = self._record_order_callback(seq, delivered=delivered, error=error)
        finally:
            self.storage.release_order_callback(seq)
        if point_id is not None:
            self.on_change(orders_key(point_id))

    def _record_order_callback(self, seq: int, *, delivered: bool, error: str) -> str | None:
        with self.storage.transaction():
            order = self.storage.get_order_by_seq(seq)
            if order is None or order.callback_next_at is None or order.callback_first_at is None:
                return None
            attempts = order.callback_attempts + 1
            next_at: datetime | None = None
            if not delivered:
                offset = callback_offset(attempts)
                if offset <= CALLBACK_WINDOW:  # D44, D45: then no more attempts
                    next_at = order.callback_first_at + offset
            self.storage.update_order(
                order.replace(
                    callback_attempts=attempts,
                    callback_next_at=next_at,
                    callback_last_error=error or None,
                )
            )
        self.log.info(
            "order_callback_attempt",
            order_id=order.id,
            attempt=attempts,
            delivered=delivered,
            error=error or None,
        )
        return order.retail_point_id

    def next_deadline(self, in_flight: Sequence[int] = ()) -> datetime | None:
        """The documents' earliest deadline or the earliest order callback, whichever is first."""
        deadline = super().next_deadline(tuple(k for k in in_flight if k >= 0))
        order_due = self.storage.next_order_callback(tuple(-k for k in in_flight if k < 0))
        if order_due is None:
            return deadline
        return order_due if deadline is None else min(deadline, order_due)
