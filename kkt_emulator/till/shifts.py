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

from kkt_emulator.errors import ConfigError, DriveError, TransportError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.tlv import tlv_string
from kkt_emulator.fnio.client import ShiftAnswer
from kkt_emulator.profiles import Address
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.receipts import correction_receipt_tlv, counter_receipt_tlv
from kkt_emulator.till.results import CorrectionResult, CounterShift, SaleResult, ShiftClosed

__all__ = ["SHIFT_LENGTH", "SHIFT_LOOK", "SHIFT_RECHECK", "SHIFT_RETRY_MAX", "Shifts"]

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

    def __init__(self, ctx: TillContext) -> None:
        self.ctx = ctx
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
        answer = await ctx.fn.close_shift(local, tlv_string(1021, ctx.profile.registration.cashier))
        ctx.state.put(shift_opened_at=None)
        ctx.emit(
            "shift.closed",
            {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd, "automatic": automatic},
        )
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

    async def sell(self, total: int, cashier: str = "Кассир") -> SaleResult:
        """A counter sale entered at the till (cash, one item); returns its fiscal data.

        ``shiftNumber`` is the drive's (the OFD's) shift; ``appShiftNumber`` the one the till app
        prints, which differs in ``shift_mode = separate`` (see :meth:`counter_shift`).
        """
        ctx = self.ctx
        async with ctx.fn.exclusive:
            local = ctx.local_now()
            await self.ensure_open(local)
            answer = await ctx.fn.receipt(
                local, 1, total, counter_receipt_tlv(ctx.profile, total, cashier, self.address())
            )
            self.address_used()
            shift = await ctx.fn.call(Command.SHIFT_PARAMS)
            # Under the lock, so the shift timer cannot close the drive's shift in between.
            app_shift = (
                self._open_counter_shift()
                if ctx.settings.shift_mode == "separate"
                else shift.shift_number
            )
        ctx.ofd_wake.set()  # the new document goes to the OFD now, not at the next idle check
        return SaleResult(
            shift.shift_number, app_shift, answer.receipt_number, answer.fd, answer.fpd
        )

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
        ctx.ofd_wake.set()
        ctx.emit("state.changed", {"reason": "correction", "fnDocNumber": answer.fd})
        return CorrectionResult(
            shift.shift_number, answer.receipt_number, answer.fd, answer.fpd, total, operation
        )
