"""The till as the control plane drives it: typed answers, each with a ``to_json()`` for the wire.

:class:`TillControl` is what :class:`~kkt_emulator.control.agent.TillAgent` is given for a real till
(``Till.control``); it satisfies :class:`~kkt_emulator.control.agent.ControlledTill` structurally,
so the till never imports the control plane. The dict-returning methods of
:class:`~kkt_emulator.till.till.Till` are these answers' JSON.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kkt_emulator.till.catalog import parse_item
from kkt_emulator.till.faults import ActiveFault
from kkt_emulator.till.receipts import kopecks

if TYPE_CHECKING:
    from datetime import datetime

    from kkt_emulator.clock import Clock
    from kkt_emulator.profiles import FirmwareProfile
    from kkt_emulator.till.context import Listener, TillSettings
    from kkt_emulator.till.orders import OrderList, OrderPaid
    from kkt_emulator.till.results import (
        CashDocResult,
        CorrectionResult,
        DriveReplaced,
        SaleResult,
        ShiftClosed,
        SnapshotInfo,
        TillState,
    )
    from kkt_emulator.till.till import Till

__all__ = ["TillControl"]


class TillControl:
    """The control-plane face of one till.

    Args:
        till: the till it controls.
    """

    def __init__(self, till: Till) -> None:
        self._till = till

    @property
    def device_id(self) -> str:
        """The id the cloud gave the till; names its topics."""
        return self._till.device_id

    @property
    def kkt_serial(self) -> str:
        """The till's serial number."""
        return self._till.kkt_serial

    @property
    def fn_serial(self) -> str:
        """The drive's serial number."""
        return self._till.fn_serial

    @property
    def profile(self) -> FirmwareProfile:
        """The firmware profile."""
        return self._till.profile

    @property
    def clock(self) -> Clock:
        """The clock the till runs on."""
        return self._till.clock

    @property
    def listeners(self) -> list[Listener]:
        """Called as ``listener(event, data)`` for every event of the till."""
        return self._till.listeners

    async def snapshot_state(self) -> TillState:
        """The whole state (``kkt/<id>/state``)."""
        return self._till.views.snapshot()

    async def set_settings(self, **values: Any) -> TillSettings:
        """Change settings; raises ConfigError on a bad name or value."""
        return await self._till.set_settings(**values)

    def inject_fault(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> ActiveFault:
        """Arm a fault of the catalogue; raises ConfigError for an unknown one or a bad parameter."""
        return self._till.fault_control.inject(
            name, count=count, probability=probability, seed=seed, params=params
        )

    def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault or all; returns the names cleared."""
        return self._till.fault_control.clear(name)

    def list_faults(self) -> list[ActiveFault]:
        """The armed faults with their parameters and counters."""
        return self._till.fault_control.active()

    def deadlines(self) -> dict[str, datetime | None]:
        """Business-time deadlines: shift.expires, ofd.block, fn.expires, fn.warning."""
        return self._till.views.deadlines()

    async def close_shift(self) -> ShiftClosed | None:
        """Close the open shift; ``None`` when none is open."""
        return await self._till.shifts.close()

    async def sell(self, total_kopecks: int, cashier: str = "Кассир", /) -> SaleResult:
        """A counter sale entered at the till."""
        return await self._till.shifts.sell(total_kopecks, cashier)

    async def sell_items(
        self, items: list[str], card: int = 0, cash: int | None = None, cashier: str = "Кассир", /
    ) -> CashDocResult:
        """A counter sale of catalogue items (``CODE`` or ``CODE*QTY``), from the till's catalogue.

        ``card`` kopecks are paid by card, the rest in cash; ``cash`` is what the buyer handed
        over (the rest of the sum when not given; more than it leaves change). B16.
        """
        positions = await self._till.catalog.positions([parse_item(t) for t in items])
        due = sum(
            kopecks(Decimal(str(p["price"])) * Decimal(str(p["quantity"]))) for p in positions
        )
        payments: list[dict[str, Any]] = []
        if card:
            payments.append({"paymentType": "CARD", "sum": card / 100})
        tendered = max(due - card, 0) if cash is None else cash
        if tendered:
            payments.append({"paymentType": "CASH", "sum": tendered / 100})
        return await self._till.shifts.counter_receipt(positions, payments, cashier=cashier)

    async def correction(
        self, total: int, cashier: str = "Кассир", operation: int = 1, /
    ) -> CorrectionResult:
        """A correction receipt (17h) for a settlement that was not registered."""
        return await self._till.shifts.correction(total, cashier, operation)

    async def order_list(self) -> OrderList:
        """The orders on the till, synced first when the cloud can be reached (O7)."""
        return await self._till.orders.fresh_listing()

    async def order_pay(
        self,
        order_id: str,
        cash: Decimal | None = None,
        card: Decimal | None = None,
        drop: tuple[int, ...] = (),
        quantities: tuple[tuple[int, Decimal], ...] = (),
        /,
    ) -> OrderPaid:
        """Take the payment for an order and fiscalise its receipt (O8, B22)."""
        return await self._till.orders.pay(
            order_id, cash=cash, card=card, drop=drop, quantities=dict(quantities)
        )

    async def replace_drive(self) -> DriveReplaced:
        """Put in a new drive and register it."""
        return await self._till.keeper.replace()

    async def save_snapshot(self, path: Path, /) -> SnapshotInfo:
        """Save the till's whole state to ``path``."""
        return await self._till.keeper.save_snapshot(path)

    async def load_snapshot(self, path: Path, /) -> SnapshotInfo:
        """Load the till's whole state from ``path``."""
        return await self._till.keeper.load_snapshot(path)
