"""Shifts and the sales made at the counter: the drive's shift, the till app's own shift numbers.

A shift opens by itself before the first document and closes and reopens when it is 24 hours old
(D50). In ``shift_mode = separate`` the till app numbers the counter's shifts itself while the
shop's automatic shifts only advance the drive's numbers (``support-cases.md``). Counter sales and
correction receipts (17h) are entered here.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from kkt_emulator.errors import DriveError, TransportError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.tlv import tlv_string
from kkt_emulator.fnio.client import ShiftAnswer
from kkt_emulator.profiles import Address
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.receipts import correction_receipt_tlv, counter_receipt_tlv
from kkt_emulator.till.results import CorrectionResult, CounterShift, SaleResult, ShiftClosed

__all__ = ["SHIFT_LENGTH", "Shifts"]

SHIFT_LENGTH = timedelta(hours=24)


class Shifts:
    """Opens and closes shifts, numbers the counter's shifts and enters counter documents.

    Args:
        ctx: the till's shared state.
    """

    def __init__(self, ctx: TillContext) -> None:
        self.ctx = ctx

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
                await self.close_drive_shift(local)
                is_open = False
        elif is_open and opened is None:
            ctx.state.put(shift_opened_at=local.isoformat())
        if not is_open:
            answer = await ctx.fn.open_shift(
                local, tlv_string(1021, ctx.profile.registration.cashier)
            )
            ctx.state.put(shift_opened_at=local.isoformat())
            ctx.emit("shift.opened", {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd})
            number = int(answer.shift_number)
        return number

    async def close_drive_shift(self, local: datetime) -> ShiftAnswer:
        """Close the drive's open shift (13h…14h); the caller holds ``fn.exclusive``."""
        ctx = self.ctx
        answer = await ctx.fn.close_shift(local, tlv_string(1021, ctx.profile.registration.cashier))
        ctx.state.put(shift_opened_at=None)
        ctx.emit("shift.closed", {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd})
        return answer

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

    async def close_shop_shift(self) -> None:
        """``separate`` mode: the shop's shift closes by itself after its documents.

        Its reports exist only at the OFD (no Z-report at the till); when the counter's shift is
        open, the shop's documents went into it and it stays open.
        """
        if self.counter_shift().open:
            return
        ctx = self.ctx
        async with ctx.fn.exclusive:
            # The next document opens or closes the shift again; its own commands report the drive.
            with contextlib.suppress(DriveError, TransportError):
                if (await ctx.fn.call(Command.SHIFT_PARAMS)).shift_open:
                    await self.close_drive_shift(ctx.local_now())

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
        ctx.ofd_wake.set()  # the new document goes to the OFD now, not at the next idle check
        app_shift = (
            self._open_counter_shift()
            if ctx.settings.shift_mode == "separate"
            else shift.shift_number
        )
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
