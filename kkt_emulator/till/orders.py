"""The courier's orders at the till: kept in sync with the cloud, claimed, paid, fiscalised.

``orders-and-backoffice.md`` §2.8, O7, O8, O14. The till keeps its point's orders in its store
(so ``order list`` answers offline) and syncs them by revision with ``GET /orders?since=REV``:
while its ``orders`` setting is on and it may poll, :meth:`OrderDesk.sync_loop` long-polls for
``long_poll`` seconds, or polls every ``poll_interval`` seconds as the real till does (D90).

Paying (:meth:`OrderDesk.pay`) claims the order first (the first till wins, O7), then makes the
receipt in the open cashier shift (opening it as a counter sale does): the positions not dropped,
``CASH`` and ``CARD`` sums with the change computed, or one ``PREPAID`` payment for a prepaid
order, a return receipt for a ``RETURN`` order (O8, D91). The receipt is made by the counter's own
receipt path (:meth:`~kkt_emulator.till.shifts.Shifts.counter_receipt`) and goes to the cloud
through the upload queue as a cash document with ``linkedDocId`` = the order's id (B7).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.errors import CloudError, TransportError, ValidationError
from kkt_emulator.till.receipts import build_receipt

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kkt_emulator.till.cloud_link import CloudLink
    from kkt_emulator.till.context import TillContext
    from kkt_emulator.till.fleet_watch import WatchMember
    from kkt_emulator.till.shifts import Shifts

__all__ = ["OrderDesk", "OrderList", "OrderPaid", "parse_sum"]

MIN_POLL: Final = 1.0
"""Real seconds between plain order syncs at least, however short the till's poll (D90)."""
SYNC_RETRY_MAX: Final = 60.0
WATCH_PENDING_LOOK: Final = 1.0
"""Real seconds between the syncs of a till joining a fleet watch, until the watch answers."""
WATCHED_SYNC_EVERY: Final = 300.0
"""Real seconds a watched till (D116) waits for the watch before it syncs its orders anyway."""
"""Real seconds the sync loop waits at most between failed syncs (doubling from 1 s)."""

# O8: inventoryType → the receipt's payment object and method (store API names).
_OBJECTS: Final = {
    "SERVICE": "service",
    "OPERATION": "job",
    "TOBACCO": "excise",
    "ALCOHOL": "excise",
    "LIGHT_ALCOHOL": "excise",
    "OTHER_EXCISABLE": "excise",
}
_ADVANCE: Final = frozenset({"PREPAID", "PREPAID_CORRECTION"})
_CENT: Final = Decimal("0.01")


def parse_sum(text: str, what: str) -> Decimal:
    """A money amount from the command line (``1000``, ``599.90``).

    Raises:
        ValidationError: not a number, negative, or with more than two decimals.
    """
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ValidationError(what, f"not a sum: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise ValidationError(what, f"must be a sum of 0 or more, not {text!r}")
    if value != value.quantize(_CENT):
        raise ValidationError(what, f"at most two decimals (kopecks): {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class OrderPaid:
    """An order paid at the till: the receipt's fiscal data and the money."""

    order_id: str
    document_number: str
    check_type: str
    total: Decimal
    cash: Decimal
    card: Decimal
    prepaid: Decimal
    accepted: Decimal
    change: Decimal
    dropped: tuple[int, ...]
    fiscal_info: dict[str, Any]
    cash_document_id: str
    lowered: dict[int, Decimal] | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``order pay`` answers (and the ``order.paid`` event carries)."""
        return {
            "orderId": self.order_id,
            "documentNumber": self.document_number,
            "checkType": self.check_type,
            "total": float(self.total),
            "cash": float(self.cash),
            "card": float(self.card),
            "prepaid": float(self.prepaid),
            "acceptedSum": float(self.accepted),
            "change": float(self.change),
            "droppedPositions": list(self.dropped),
            "loweredQuantities": {
                str(n): float(q) for n, q in sorted((self.lowered or {}).items())
            },
            "fiscalInfo": self.fiscal_info,
            "cashDocumentId": self.cash_document_id,
        }


@dataclass(frozen=True, slots=True)
class OrderList:
    """The orders on the till (``order list``)."""

    orders: list[dict[str, Any]]
    rev: int
    synced: bool

    def to_json(self) -> dict[str, Any]:
        """As ``order.list`` answers: the orders, the revision, whether this answer synced."""
        return {"orders": self.orders, "rev": self.rev, "synced": self.synced}


class OrderDesk:
    """The till's orders: sync, list, claim, release, pay.

    Args:
        ctx: the till's shared state.
        link: the cloud link.
        shifts: the till's shifts (the receipt goes into the open one).
    """

    def __init__(self, ctx: TillContext, link: CloudLink, shifts: Shifts) -> None:
        self.ctx = ctx
        self.link = link
        self.shifts = shifts
        # The synced revision, as the store it was read from holds it: every long poll asks for it,
        # and reading it reopened an idle till's store (D71) 40 times a second at 1,000 tills. A
        # restart or a snapshot brings a new store object, which reads it again.
        self._rev: tuple[object, int] | None = None
        self.watched: Callable[[], WatchMember | None] = lambda: None
        """The till's fleet watch membership, when it has one (D116); the till sets it."""
        self.watch_pending: Callable[[], bool] = lambda: False
        """Whether the till is joining a fleet watch not yet confirmed (D116); the till sets it."""

    # ------------------------------------------------------------------ what the till keeps

    def _kept(self) -> dict[str, dict[str, Any]]:
        kept: dict[str, dict[str, Any]] = self.ctx.state.get("orders") or {}
        return kept

    def _paid(self) -> dict[str, dict[str, Any]]:
        paid: dict[str, dict[str, Any]] = self.ctx.state.get("orders_paid") or {}
        return paid

    @property
    def rev(self) -> int:
        """The last order revision the till synced."""
        store = self.ctx.state
        if self._rev is None or self._rev[0] is not store:
            self._rev = (store, int(store.get("orders_rev") or 0))
        return self._rev[1]

    def apply(self, answer: dict[str, Any]) -> list[str]:
        """Keep what a sync answered; the ids of the orders that are new to the till."""
        items = answer.get("orders") or []
        rev = max(int(answer.get("rev") or 0), self.rev)
        if not items and rev == self.rev:
            return []  # a long poll that timed out: nothing changed, nothing to write
        kept = self._kept()
        fresh: list[str] = []
        for item in items:
            order_id = str(item["id"])
            if item.get("state") == "DELETED":
                mine = kept.get(order_id)
                if mine is not None and mine.get("claimedByMe"):
                    # the courier holds it: the receipt may still be made, and is kept (O6)
                    kept[order_id] = {**mine, "state": "DELETED"}
                else:
                    kept.pop(order_id, None)
                continue
            if order_id not in kept:
                fresh.append(order_id)
            kept[order_id] = item
        store = self.ctx.state
        store.put(orders=kept, orders_rev=rev)
        self._rev = (store, rev)
        for order_id in fresh:
            order = kept[order_id]["order"]
            self.ctx.emit(
                "order.received",
                {
                    "orderId": order_id,
                    "documentNumber": order.get("documentNumber"),
                    "totalSum": order.get("totalSum"),
                },
            )
        return fresh

    async def sync(self, wait: float = 0.0) -> list[str]:
        """One sync with the cloud (a long poll of ``wait`` seconds); the new orders' ids."""
        return self.apply(await self.link.orders(self.rev, wait))

    async def sync_loop(self) -> None:
        """Keep the orders in sync while the ``orders`` setting is on (D90), until the till stops.

        A long-polling till of a fleet watch (D116) syncs without waiting and then sleeps until
        the watch says its point's orders changed (the signal is cleared before the sync, so a
        change during it is kept), or :data:`WATCHED_SYNC_EVERY` at the latest; any other
        long-polling till holds its own order long poll.
        """
        ctx = self.ctx
        retry = 1.0
        while not ctx.stopping.is_set():
            settings = ctx.settings
            if not settings.orders or not ctx.polling_allowed():
                await ctx.pause(max(settings.poll_interval, 1.0))
                continue
            member = self.watched() if settings.long_poll > 0 else None
            try:
                if member is None and settings.long_poll > 0 and self.watch_pending():
                    # The till is joining a fleet watch: no long poll to be stuck in meanwhile.
                    # It looks first and syncs only if the watch has still not answered (D132):
                    # once it has, the watched sync below is the till's first, so a fleet's
                    # start-up costs one sync a till, not two.
                    await ctx.clock.pace(WATCH_PENDING_LOOK)
                    if self.watched() is None and self.watch_pending():
                        await self.sync()
                    continue
                if member is not None:
                    member.orders_ready.clear()
                    await self.sync()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(member.orders_ready.wait(), WATCHED_SYNC_EVERY)
                    retry = 1.0
                    continue
                await self.sync(wait=settings.long_poll)
            except (TransportError, CloudError) as exc:
                ctx.log.warning("orders_sync_failed", error=str(exc), retry_s=retry)
                await ctx.clock.pace(retry)
                retry = min(retry * 2, SYNC_RETRY_MAX)
                continue
            retry = 1.0
            if settings.long_poll <= 0:
                await ctx.clock.pace(max(settings.poll_interval, MIN_POLL))

    def listing(self) -> list[dict[str, Any]]:
        """The orders on the till, oldest first, as the courier sees them (``order list``)."""
        paid = self._paid()
        rows = []
        for order_id, item in self._kept().items():
            order = item["order"]
            rows.append(
                {
                    "id": order_id,
                    "documentNumber": order.get("documentNumber"),
                    "documentType": order.get("documentType"),
                    "state": item.get("state"),
                    "claimedByMe": bool(item.get("claimedByMe")),
                    "takenElsewhere": item.get("state") == "IN_PAYMENT"
                    and not item.get("claimedByMe"),
                    "prepaid": bool(item.get("prepaid")),
                    "totalSum": order.get("totalSum"),
                    "customerContact": order.get("customerContact"),
                    "description": order.get("description"),
                    "positions": [
                        {
                            "n": index + 1,
                            "name": p.get("name"),
                            "quantity": p.get("quantity"),
                            "price": p.get("price"),
                            "posSum": p.get("posSum"),
                        }
                        for index, p in enumerate(order.get("inventPositions") or [])
                    ],
                    "paid": paid.get(order_id),
                }
            )
        return rows

    async def fresh_listing(self) -> OrderList:
        """Sync once if the till may reach the cloud, then list (offline: what the till kept)."""
        synced = False
        if self.ctx.polling_allowed():
            try:
                await self.sync()
            except (TransportError, CloudError) as exc:
                self.ctx.log.info("orders_sync_failed", error=str(exc))
            else:
                synced = True
        return OrderList(self.listing(), self.rev, synced)

    # ------------------------------------------------------------------ claim and release

    async def claim(self, order_id: str) -> dict[str, Any]:
        """Claim the order at the cloud (409 → :class:`CloudError`: another till has it)."""
        item = await self.link.claim_order(order_id)
        self.apply({"rev": 0, "orders": [item]})
        return item

    async def release(self, order_id: str) -> dict[str, Any]:
        """Give a claimed order back (the courier will not take it)."""
        item = await self.link.release_order(order_id)
        self.apply({"rev": 0, "orders": [item]})
        return item

    # ------------------------------------------------------------------ payment

    async def pay(
        self,
        order_id: str,
        *,
        cash: Decimal | None = None,
        card: Decimal | None = None,
        drop: Sequence[int] = (),
        cashier: str | None = None,
        quantities: Mapping[int, Decimal] | None = None,
    ) -> OrderPaid:
        """Take the payment for an order and fiscalise its receipt (O8, D91, B22).

        ``drop`` are the positions (1, 2, …) the buyer refuses; ``quantities`` lowers a
        position's quantity (the buyer takes less of it): the receipt's position has the new
        quantity and its sum ``round(price × quantity, 2)``.

        Raises:
            ValidationError: the order is not on the till or was paid here already, a position to
                drop does not exist, every position is dropped, a lowered quantity is not above 0
                and below or at the order's, or names a dropped or missing position, the money
                does not cover the sum,
                the card pays more than the sum, or money is offered for a prepaid order.
            CloudError: another till has claimed the order (409) or the cloud refused the claim.
            TransportError: the cloud cannot be reached (the claim needs it).
            DriveError: the drive refused the receipt (the claim stays; pay again or release).
        """
        ctx = self.ctx
        if order_id in self._paid():
            raise ValidationError("order", f"order {order_id} is already paid at this till")
        item = self._kept().get(order_id)
        if item is None:
            await self.sync()
            item = self._kept().get(order_id)
        if item is None:
            raise ValidationError("order", f"order {order_id} is not on this till")
        order: dict[str, Any] = item["order"]
        positions = list(order.get("inventPositions") or [])
        dropped = tuple(sorted(set(drop)))
        for n in dropped:
            if not 1 <= n <= len(positions):
                raise ValidationError(
                    "drop", f"the order has positions 1..{len(positions)}, not {n}"
                )
        lowered = self._lowered(positions, dropped, quantities or {})
        kept = [
            _with_quantity(p, lowered[index + 1]) if index + 1 in lowered else p
            for index, p in enumerate(positions)
            if index + 1 not in dropped
        ]
        if not kept:
            raise ValidationError("drop", "every position is dropped: nothing to pay")
        total = sum((Decimal(str(p["posSum"])) for p in kept), Decimal(0))
        prepaid = bool(item.get("prepaid"))
        payments, money = self._payments(total, prepaid=prepaid, cash=cash, card=card)

        positions_in = self._positions(kept)
        # the firmware's checks before the order is taken from the other tills
        build_receipt(
            {
                "docType": order["documentType"],
                "email": order.get("customerContact"),
                "printReceipt": not order.get("customerContact"),
                "inventPositions": positions_in,
                "moneyPositions": payments,
            },
            ctx.profile,
        )
        if not item.get("claimedByMe"):
            await self.claim(order_id)  # the first till wins (O7)
        tendered = [dict(p) for p in payments]
        if money["change"] > 0:  # the cash handed over, the change computed from it
            for p in tendered:
                if p["paymentType"] == "CASH":
                    p["sum"] = p["sum"] + money["change"]
        made = await self.shifts.counter_receipt(
            positions_in,
            [{"paymentType": p["paymentType"], "sum": float(p["sum"])} for p in tendered],
            doc_type=str(order["documentType"]),
            cashier=cashier or ctx.profile.registration.cashier,
            linked_doc_id=order_id,
            contact=order.get("customerContact") or None,
            description=order.get("description"),
        )
        paid = OrderPaid(
            order_id=order_id,
            document_number=str(order.get("documentNumber")),
            check_type=str(order["documentType"]),
            total=total,
            cash=money["cash"],
            card=money["card"],
            prepaid=money["prepaid"],
            accepted=money["accepted"],
            change=money["change"],
            dropped=dropped,
            fiscal_info=dict(made.fiscal_info or {}),
            cash_document_id=made.doc_id,
            lowered=lowered or None,
        )
        ctx.state.put(orders_paid={**self._paid(), order_id: paid.to_json()})
        ctx.log.info(
            "order_paid",
            order_id=order_id,
            doc_id=made.doc_id,
            total=str(total),
            change=str(money["change"]),
        )
        ctx.emit("order.paid", paid.to_json())
        return paid

    @staticmethod
    def _lowered(
        positions: Sequence[dict[str, Any]],
        dropped: Sequence[int],
        quantities: Mapping[int, Decimal],
    ) -> dict[int, Decimal]:
        """The lowered quantities by position, checked against the order (B22)."""
        lowered: dict[int, Decimal] = {}
        for n, quantity in sorted(quantities.items()):
            if not 1 <= n <= len(positions):
                raise ValidationError(
                    "quantity", f"the order has positions 1..{len(positions)}, not {n}"
                )
            if n in dropped:
                raise ValidationError("quantity", f"position {n} is dropped: no quantity to lower")
            ordered = Decimal(str(positions[n - 1]["quantity"]))
            if not Decimal(0) < quantity <= ordered:
                raise ValidationError(
                    "quantity",
                    f"position {n}: the quantity can only be lowered, to above 0 and at most"
                    f" {ordered}, not {quantity}",
                )
            if quantity != ordered:
                lowered[n] = quantity
        return lowered

    @staticmethod
    def _payments(
        total: Decimal, *, prepaid: bool, cash: Decimal | None, card: Decimal | None
    ) -> tuple[list[dict[str, Any]], dict[str, Decimal]]:
        """The receipt's payments and the money the courier handles (D91)."""
        zero = Decimal(0)
        if prepaid:
            if (cash or zero) > 0 or (card or zero) > 0:
                raise ValidationError(
                    "payment", "the order is prepaid: no money is taken (no --cash or --card)"
                )
            money = {"cash": zero, "card": zero, "prepaid": total, "accepted": zero, "change": zero}
            return [{"paymentType": "PREPAID", "sum": total}], money
        card = card or zero
        if card > total:
            raise ValidationError("card", f"the card pays {card}, more than the sum {total}")
        cash_due = total - card
        given = cash_due if cash is None else cash
        if given < cash_due:
            raise ValidationError(
                "cash",
                f"not enough: the sum is {total}, paid {given + card} (cash {given}, card {card})",
            )
        payments = []
        if cash_due > 0:
            payments.append({"paymentType": "CASH", "sum": cash_due})
        if card > 0:
            payments.append({"paymentType": "CARD", "sum": card})
        if not payments:  # a zero-sum order (every position free): one cash payment of 0
            payments.append({"paymentType": "CASH", "sum": zero})
        money = {
            "cash": cash_due,
            "card": card,
            "prepaid": zero,
            "accepted": given + card,
            "change": given - cash_due,
        }
        return payments, money

    def _positions(self, positions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The order's positions as the receipt's store-API positions (O8's mapping)."""
        default_vat = int(self.ctx.point_settings.get("defaultVatTag") or 1105)
        items = []
        for p in positions:
            kind = str(p.get("inventoryType") or "INVENTORY")
            items.append(
                {
                    "name": p["name"],
                    "inventCode": p.get("inventCode"),
                    "barcode": p.get("barcode"),
                    "measure": p.get("measure"),
                    "price": float(p["price"]),
                    "quantity": p["quantity"],
                    "vatTag": int(p.get("vatTag") or default_vat),
                    "paymentObject": _OBJECTS.get(kind, "commodity"),
                    "paymentMethod": "advance" if kind in _ADVANCE else "full_payment",
                }
            )
        return items


def _with_quantity(position: dict[str, Any], quantity: Decimal) -> dict[str, Any]:
    """The order's position with a lowered quantity and its sum recomputed as O4 computes it."""
    amount = (Decimal(str(position["price"])) * quantity).quantize(_CENT, rounding=ROUND_HALF_UP)
    return {**position, "quantity": float(quantity), "posSum": float(amount)}
