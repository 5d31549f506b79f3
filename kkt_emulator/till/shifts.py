"""Shifts and the sales made at the counter: the drive's shift, the till app's own shift numbers.

A shift opens by itself before the first document (D50) and closes by itself when it is 24 hours
old, on the till's business clock, whether or not another document arrives (D85: the shift timer,
:meth:`Shifts.shift_timer`); its closing report goes to the OFD only. In ``shift_mode = separate``
the till app numbers the counter's shifts itself while the shop's automatic shifts only advance the
drive's numbers (``support-cases.md`` §1): the shop's shift stays open across poll batches, one a
day, not one per batch. Counter sales and correction receipts (17h) are entered here.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kkt_emulator.cashdocs import shift_totals
from kkt_emulator.errors import ConfigError, DriveError, TransportError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.tlv import tlv_string
from kkt_emulator.fnio.client import ShiftAnswer
from kkt_emulator.profiles import Address
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.outbox import CashDocs, enqueue_cashdoc, fiscal_info
from kkt_emulator.till.receipts import (
    TAX_MODES,
    build_receipt,
    correction_receipt_tlv,
    kopecks,
)
from kkt_emulator.till.results import (
    CashDocResult,
    CorrectionResult,
    CounterShift,
    SaleResult,
    ShiftClosed,
)

__all__ = ["SHIFT_LENGTH", "SHIFT_LOOK", "SHIFT_RECHECK", "SHIFT_RETRY_MAX", "Shifts"]

_CORRECTION_TYPES = {1: "SALE_CORRECTION", 2: "SALE_RETURN_CORRECTION"}
"""The cash-document type of a correction receipt by its operation (1054), B13."""

SHIFT_LENGTH = timedelta(hours=24)
SHIFT_RECHECK = 5.0
"""Real seconds before the shift timer first retries a close the drive refused."""
SHIFT_LOOK = 60.0
"""Real seconds between the shift timer's looks at the stored opening time when nothing woke it
(a snapshot may change it behind the timer's back). Each look reads the till store, which an idle
till keeps closed (D71): every 5 s, 1,000 idle tills reopened 200 databases a second."""
SHIFT_RETRY_MAX = 300.0
"""Real seconds the shift timer waits at most between retries of a refused close (doubling)."""


class Shifts:
    """Opens and closes shifts, numbers the counter's shifts and enters counter documents.

    Args:
        ctx: the till's shared state.
    """

    def __init__(self, ctx: TillContext, cashdocs: CashDocs | None = None) -> None:
        self.ctx = ctx
        self.cashdocs = cashdocs
        """The upload queue the counter's documents go to (``orders-and-backoffice.md`` B7)."""
        self.opened = asyncio.Event()
        """Set when a shift opens: the shift timer reads its closing time again."""

    # ------------------------------------------------------------------ the drive's shift

    async def ensure_open(self, local: datetime) -> int:
        """Open a shift if none is open; close and reopen one older than 24 hours (D50).

        Returns the number of the shift now open. The caller holds ``fn.exclusive``.
        """
        ctx = self.ctx
        params = await ctx.fn.call(Command.SHIFT_PARAMS)
        is_open = bool(params.shift_open)
        number = int(params.shift_number)
        opened = ctx.state.get("shift_opened_at")
        if is_open and opened is not None:
            if local >= datetime.fromisoformat(opened) + SHIFT_LENGTH:
                # The timer was not running then (the till was off): close it now.
                await self.close_drive_shift(local, automatic=True)
                is_open = False
        elif is_open and opened is None:
            ctx.state.put(shift_opened_at=local.isoformat())
        if not is_open:
            answer = await ctx.fn.open_shift(
                local, tlv_string(1021, ctx.profile.registration.cashier)
            )
            ctx.state.put(shift_opened_at=local.isoformat())
            self.opened.set()
            ctx.emit("shift.opened", {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd})
            number = int(answer.shift_number)
        return number

    async def close_drive_shift(self, local: datetime, *, automatic: bool = False) -> ShiftAnswer:
        """Close the drive's open shift (13h…14h); the caller holds ``fn.exclusive``.

        ``automatic``: the till closed it by itself (the shift timer or a document that found it
        too old), not the cashier; the event says so.
        """
        ctx = self.ctx
        cashier = ctx.profile.registration.cashier
        answer = await ctx.fn.close_shift(local, tlv_string(1021, cashier))
        ctx.state.put(shift_opened_at=None)
        # The cashier shift ends with the drive's: its SHIFT_CLOSE is queued with its totals (B10).
        closed = None
        if self.cashdocs is not None:
            closed = self.cashdocs.close_shift(answer.shift_number, cashier)
        event: dict[str, object] = {
            "shiftNumber": answer.shift_number,
            "fnDocNumber": answer.fd,
            "automatic": automatic,
        }
        # B5 keys, from the till's own documents of the shift (B11; zeros for a shop-only shift).
        event.update(closed or {"cashShiftId": None, "shiftTotals": shift_totals(())})
        ctx.emit("shift.closed", event)
        return answer

    # ------------------------------------------------------------------ closing on time (D85)

    def closing_time(self) -> datetime | None:
        """When the open shift closes by itself (business time, UTC); ``None`` if none is open.

        24 hours after it opened, counted from the minute the drive recorded (DATE_TIME has minute
        resolution), so the close is never later than the drive's own 24-hour limit.
        """
        ctx = self.ctx
        if ctx.store is None:
            return None
        opened = ctx.store.get("shift_opened_at")
        if opened is None:
            return None
        local = datetime.fromisoformat(opened).replace(second=0, microsecond=0)
        return (local - ctx.config.utc_offset).replace(tzinfo=UTC) + SHIFT_LENGTH

    async def close_if_due(self) -> ShiftClosed | None:
        """Close the drive's shift if its closing time has come; the close, or ``None``.

        Its closing report goes to the OFD like every document and nowhere else: the cashier gets
        no Z-report for it. In ``separate`` mode an open counter shift ends with the drive's.

        Raises:
            DriveError, TransportError: the drive refused or is unreachable (try again later).
        """
        ctx = self.ctx
        async with ctx.fn.exclusive:
            due = self.closing_time()
            if due is None or ctx.clock.now() < due:
                return None
            if not (await ctx.fn.call(Command.SHIFT_PARAMS)).shift_open:
                ctx.state.put(shift_opened_at=None)  # closed already (a drive put back, a restore)
                return None
            answer = await self.close_drive_shift(ctx.local_now(), automatic=True)
            app_shift = answer.shift_number
            if ctx.settings.shift_mode == "separate":
                # Under the lock: a sale waiting for it opens the app's next shift, not this one.
                counter = self.counter_shift()
                app_shift = counter.number
                if counter.open:
                    ctx.state.put(counter_shift_open=False)
        ctx.ofd_wake.set()
        ctx.log.info("shift_closed_on_time", shift=answer.shift_number, fd=answer.fd)
        return ShiftClosed(answer.shift_number, app_shift, answer.fd)

    async def shift_timer(self) -> None:
        """Close every shift when it turns 24 hours old, until the till stops (D85).

        The till starts it beside its loops. It sleeps on the business clock until the open
        shift's closing time (so a manual clock's ``advance`` past it closes the shift with no
        document arriving), wakes when a shift opens, and looks again every
        :data:`SHIFT_LOOK` real seconds. A drive that refuses is tried again after
        :data:`SHIFT_RECHECK`, doubling up to :data:`SHIFT_RETRY_MAX`; the next document still
        closes a shift it finds too old (:meth:`ensure_open`).
        """
        ctx = self.ctx
        retry = SHIFT_RECHECK
        while not ctx.stopping.is_set():
            self.opened.clear()
            due = self.closing_time()
            if due is None or ctx.clock.now() < due:
                await self._wait_for(due)
                continue
            try:
                await self.close_if_due()
            except (DriveError, TransportError, ConfigError) as exc:
                # ConfigError: the till is between a stop and a start (a crash being restarted).
                # A drive that refuses for good (storage exhausted, expired) is asked less often.
                ctx.log.warning("shift_close_on_time_failed", error=str(exc), retry_s=retry)
                await ctx.clock.pace(retry)
                retry = min(retry * 2, SHIFT_RETRY_MAX)
            else:
                retry = SHIFT_RECHECK

    async def _wait_for(self, due: datetime | None) -> None:
        """Until ``due`` on the business clock, a shift opening, or :data:`SHIFT_LOOK`."""
        waits = [
            asyncio.ensure_future(self.opened.wait()),
            asyncio.ensure_future(self.ctx.clock.pace(SHIFT_LOOK)),
        ]
        if due is not None:
            waits.append(asyncio.ensure_future(self.ctx.clock.sleep_until(due)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def close(self) -> ShiftClosed | None:
        """Close the open shift (``shift.close``); ``None`` if none is open.

        ``appShiftNumber`` is the number the till app's Z-report shows (see :meth:`counter_shift`).
        """
        ctx = self.ctx
        async with ctx.fn.exclusive:
            shift = await ctx.fn.call(Command.SHIFT_PARAMS)
            if not shift.shift_open:
                return None
            answer = await self.close_drive_shift(ctx.local_now())
        app_shift = answer.shift_number
        if ctx.settings.shift_mode == "separate":
            app_shift = self.counter_shift().number
            ctx.state.put(counter_shift_open=False)
        return ShiftClosed(answer.shift_number, app_shift, answer.fd)

    # ------------------------------------------------------------------ the app's counter shift

    def counter_shift(self) -> CounterShift:
        """The till app's own shift of counter sales (``shift_mode = separate``).

        In ``separate`` mode the till app numbers the counter's shifts itself («программная»
        смена: its Z-report shows this number) while the drive's shift numbers, which the OFD
        shows, advance for the internet shop's automatic shifts too. In ``shared`` mode the app
        shows the drive's numbers and this counter stays unused.
        """
        return CounterShift(
            number=int(self.ctx.state.get("counter_shift") or 0),
            open=bool(self.ctx.state.get("counter_shift_open")),
        )

    def _open_counter_shift(self) -> int:
        counter = self.counter_shift()
        if counter.open:
            return counter.number
        self.ctx.state.put(counter_shift=counter.number + 1, counter_shift_open=True)
        return counter.number + 1

    # ------------------------------------------------------------------ registered addresses

    def address(self) -> Address:
        """The registered address the next receipt prints (1009/1187), never the shop's.

        A till registered with several addresses prints them in turn, one receipt each (the
        support case of one site whose receipts show several addresses, support-cases.md §6); the
        turn moves on only when the drive signs a receipt.
        """
        addresses = self.ctx.profile.registration.addresses
        return addresses[int(self.ctx.state.get("address_turn") or 0) % len(addresses)]

    def address_used(self) -> None:
        """A receipt was signed: the next one prints the next registered address."""
        if len(self.ctx.profile.registration.addresses) > 1:
            self.ctx.state.put(address_turn=int(self.ctx.state.get("address_turn") or 0) + 1)

    # ------------------------------------------------------------------ counter documents

    async def sell(
        self,
        total: int,
        cashier: str = "Кассир",
        *,
        card: int = 0,
        cash: int | None = None,
        doc_type: str = "SALE",
        vat_tag: int = 1105,
    ) -> SaleResult:
        """A counter sale (or return) entered at the till, one free-price item; its fiscal data.

        ``total`` kopecks; ``card`` of it paid by card, the rest in cash; ``cash`` is what the
        buyer handed over (at least the cash part; the difference is the change). ``doc_type``
        ``SALE`` or ``RETURN``; ``vat_tag`` the item's (store-api.md §6.4). ``shiftNumber`` is the
        drive's (the OFD's) shift; ``appShiftNumber`` the one the till app prints, which differs in
        ``shift_mode = separate`` (see :meth:`counter_shift`).
        """
        if total <= 0 or card < 0 or card > total:
            raise ConfigError("sell: the total must be positive and the card part within it")
        cash_part = total - card
        tendered = cash_part if cash is None else cash
        if tendered < cash_part:
            raise ConfigError(
                f"sell: {tendered / 100:.2f} in cash does not cover the cash part {cash_part / 100:.2f}"
            )
        payments: list[dict[str, object]] = []
        if tendered:
            payments.append({"paymentType": "CASH", "sum": tendered / 100})
        if card:
            payments.append({"paymentType": "CARD", "sum": card / 100})
        position = {
            "name": "Товар по свободной цене",
            "price": total / 100,
            "quantity": 1,
            "vatTag": vat_tag,
        }
        result = await self.counter_receipt(
            [position], payments, doc_type=doc_type, cashier=cashier
        )
        assert result.sale is not None  # a receipt always has its fiscal data
        return result.sale

    async def counter_receipt(
        self,
        positions: list[dict[str, Any]],
        payments: list[dict[str, Any]],
        *,
        doc_type: str = "SALE",
        cashier: str = "Кассир",
        linked_doc_id: str | None = None,
        contact: str | None = None,
        description: str | None = None,
    ) -> CashDocResult:
        """A receipt made at the till: fiscalised, then queued for upload (B7, B13).

        ``positions`` are store-API positions (``name``, ``price`` and ``quantity`` in roubles and
        units, ``vatTag``; optional ``discSum``, ``paymentObject``, ``paymentMethod``,
        ``inventCode``, ``measure``); ``payments`` ``{paymentType, sum}`` in roubles as handed over:
        cash beyond what is left to pay after the other payments is the change. ``doc_type``
        ``SALE`` or ``RETURN``; ``linked_doc_id`` names the order a courier's receipt pays
        (``orders-and-backoffice.md`` O7); ``contact`` the buyer's phone or e-mail (tag 1008).
        Opens the shift if none is open, as every counter document does.

        Raises:
            ConfigError: payments that do not cover the sum, or card payments beyond it.
            TillCheckError: the firmware's own checks (a negative amount).
            DriveError, TransportError: the drive refused or is unreachable (nothing queued).
        """
        ctx = self.ctx
        if not positions:
            raise ConfigError("a receipt needs at least one position")
        due = sum(
            (
                Decimal(kopecks(Decimal(str(p["price"])) * Decimal(str(p["quantity"]))))
                - kopecks(p.get("discSum") or 0)
                for p in positions
            ),
            Decimal(0),
        )
        other = sum(kopecks(p["sum"]) for p in payments if p["paymentType"] != "CASH")
        cash = sum(kopecks(p["sum"]) for p in payments if p["paymentType"] == "CASH")
        if other > due:
            raise ConfigError("non-cash payments exceed the receipt's sum")
        change = other + cash - int(due)
        if change < 0:
            raise ConfigError(
                f"payments {(other + cash) / 100:.2f} do not cover the sum {int(due) / 100:.2f}"
            )
        net = [dict(p) for p in payments if p["paymentType"] != "CASH"]
        if cash - change:
            net.append({"paymentType": "CASH", "sum": (cash - change) / 100})
        reg = ctx.profile.registration
        tax_bit = reg.tax_mask & -reg.tax_mask
        tax_mode = next(name for name, bit in TAX_MODES.items() if bit == tax_bit)
        receipt_doc: dict[str, Any] = {
            "docType": doc_type,
            "inventPositions": positions,
            "moneyPositions": net,
            "taxMode": tax_mode,
            "printReceipt": contact is None,
        }
        if contact is not None:
            receipt_doc["email"] = contact
        async with ctx.fn.exclusive:
            local = ctx.local_now()
            await self.ensure_open(local)
            plan = build_receipt(receipt_doc, ctx.profile, self.address(), cashier)
            answer = await ctx.fn.receipt(local, plan.operation, plan.total, plan.all_tlv)
            self.address_used()
            shift = await ctx.fn.call(Command.SHIFT_PARAMS)
            # Under the lock, so the shift timer cannot close the drive's shift in between.
            app_shift = (
                self._open_counter_shift()
                if ctx.settings.shift_mode == "separate"
                else shift.shift_number
            )
            info = fiscal_info(
                ctx,
                shift=shift.shift_number,
                receipt=answer.receipt_number,
                fd=answer.fd,
                fpd=answer.fpd,
                local=local,
                total=plan.total,
                check_type=plan.check_type,
                operation=plan.operation,
            )
            doc_id = self._queue_receipt(
                app_shift,
                shift.shift_number,
                cashier,
                doc_type=doc_type,
                positions=positions,
                payments=payments,
                change=Decimal(change) / 100,
                info=info,
                linked_doc_id=linked_doc_id,
                description=description,
            )
        ctx.ofd_wake.set()  # the new document goes to the OFD now, not at the next idle check
        ctx.emit(
            "document.fiscalized",
            {
                "docId": doc_id,
                "origin": "till",
                "docType": doc_type,
                "linkedDocId": linked_doc_id,
                **info,
            },
        )
        sale = SaleResult(
            shift.shift_number, app_shift, answer.receipt_number, answer.fd, answer.fpd
        )
        return CashDocResult(doc_id, doc_type, sale, info)

    def _queue_receipt(
        self,
        app_shift: int,
        drive_shift: int,
        cashier: str,
        **document: Any,
    ) -> str:
        """Queue a counter document for upload in one store transaction; its id (B7)."""
        cashdocs = self.cashdocs
        if cashdocs is None:
            return ""
        with self.ctx.state.transaction() as db:
            shift = cashdocs.open_shift_in(db, app_shift, drive_shift, cashier)
            made = cashdocs.receipt_document(db, shift, cashier=cashier, **document)
            enqueue_cashdoc(db, made, at=made["beginDateTime"])
        cashdocs.queued()
        return str(made["id"])

    async def cash_move(
        self, total: int, cashier: str = "Кассир", *, out: bool = False
    ) -> CashDocResult:
        """Cash in («внесение») or out («выплата»): a non-fiscal till document (B13).

        It needs an open shift (one opens, as for a sale); no drive document is made, so the
        result carries no fiscal data.
        """
        ctx = self.ctx
        if total <= 0:
            raise ConfigError("the sum must be positive")
        doc_type = "CASH_OUT" if out else "CASH_IN"
        async with ctx.fn.exclusive:
            local = ctx.local_now()
            drive_shift = await self.ensure_open(local)
            app_shift = (
                self._open_counter_shift() if ctx.settings.shift_mode == "separate" else drive_shift
            )
            doc_id = self._queue_receipt(
                app_shift,
                drive_shift,
                cashier,
                doc_type=doc_type,
                positions=[],
                payments=[{"paymentType": "CASH", "sum": total / 100}],
                change=Decimal(0),
                info=None,
            )
        ctx.emit("cashdoc.created", {"docId": doc_id, "docType": doc_type, "sum": total / 100})
        return CashDocResult(doc_id, doc_type, None, None)

    async def correction(
        self, total: int, cashier: str = "Кассир", operation: int = 1
    ) -> CorrectionResult:
        """A correction receipt (чек коррекции, 17h) for a settlement that was not registered.

        One of the ways out of a shop document in error (support-cases.md §5): register the sale
        with a correction receipt at the till, then mark the document done in the cabinet.
        Returns its fiscal data.
        """
        ctx = self.ctx
        async with ctx.fn.exclusive:
            local = ctx.local_now()
            await self.ensure_open(local)
            tlv = correction_receipt_tlv(
                ctx.profile, total, cashier, local.replace(tzinfo=UTC), address=self.address()
            )
            answer = await ctx.fn.receipt(local, operation, total, tlv, correction=True)
            self.address_used()
            shift = await ctx.fn.call(Command.SHIFT_PARAMS)
            doc_type = _CORRECTION_TYPES.get(operation)
            info = fiscal_info(
                ctx,
                shift=shift.shift_number,
                receipt=answer.receipt_number,
                fd=answer.fd,
                fpd=answer.fpd,
                local=local,
                total=total,
                check_type="CORRECTION",
                operation=operation,
            )
            doc_id = ""
            if doc_type is not None:  # purchase corrections (3, 4) are no back-office document
                app_shift = (
                    self._open_counter_shift()
                    if ctx.settings.shift_mode == "separate"
                    else shift.shift_number
                )
                position = {
                    "name": "Товар по свободной цене",
                    "price": total / 100,
                    "quantity": 1,
                    "vatTag": 1105,
                }
                doc_id = self._queue_receipt(
                    app_shift,
                    shift.shift_number,
                    cashier,
                    doc_type=doc_type,
                    positions=[position],
                    payments=[{"paymentType": "CASH", "sum": total / 100}],
                    change=Decimal(0),
                    info=info,
                )
        ctx.ofd_wake.set()
        ctx.emit("state.changed", {"reason": "correction", "fnDocNumber": answer.fd})
        ctx.emit(
            "document.fiscalized",
            {
                "docId": doc_id or None,
                "origin": "till",
                "docType": doc_type or "CORRECTION",
                **info,
            },
        )
        return CorrectionResult(
            shift.shift_number, answer.receipt_number, answer.fd, answer.fpd, total, operation
        )
