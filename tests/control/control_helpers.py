"""A stand-in till for control-plane tests, and waits with timeouts.

Run as a script (``python control_helpers.py URL DEVICE_ID``) it serves one fake till's agent on its
own link until killed: the last-will test SIGKILLs it. With ``--shared`` and several device ids it
serves them all on one process link (a control plane) and prints ``ready <processId>``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kkt_emulator.clock import Clock, ManualClock, RealClock
from kkt_emulator.control import topics
from kkt_emulator.control.agent import TillAgent, agent_link
from kkt_emulator.control.link import MqttLink, Received
from kkt_emulator.control.plane import ControlPlane
from kkt_emulator.errors import ConfigError, DriveError
from kkt_emulator.logging import configure_logging
from kkt_emulator.till.faults import FAULTS

PACE = RealClock()


@dataclass
class Profile:
    name: str = "fake-profile"


@dataclass(frozen=True)
class Json:
    """A fake answer: plain data behind the ``to_json()`` every answer of the contract has."""

    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


class FakeTill:
    """The till's control API (``ControlledTill``) over plain data, recording what the agent asked.

    ``tests/control/test_contract.py`` runs the same contract tests against it and a real till.
    """

    def __init__(self, device_id: str, clock: Clock | None = None) -> None:
        self.device_id = device_id
        self.kkt_serial = "000100000001"
        self.fn_serial = "9999000000000001"
        self.profile = Profile()
        self.clock = clock or ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.settings: dict[str, Any] = {"power_saving": False, "online": True}
        self.faults: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.shift_open = True
        self.snapshots: list[Path] = []
        self.jitter = random.Random(5)
        self.snapshot_gate: asyncio.Event | None = None  # set: snapshots wait for it (a dead drive)

    def emit(self, event: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(event, data)

    def bump(self) -> None:
        """Change the state and say so, as the till does."""
        self.version += 1
        self.emit("state.changed", {"version": self.version})

    @property
    def control(self) -> FakeTill:
        return self

    async def snapshot_state(self) -> Json:
        if self.snapshot_gate is not None:
            await self.snapshot_gate.wait()
        return Json(
            {
                "version": self.version,
                "settings": dict(self.settings),
                "polling": self.settings["online"] and not self.settings["power_saving"],
                "faults": list(self.faults.values()),
                "shift": {"open": self.shift_open, "number": 1, "receipts": 0},
                "deadlines": {k: v.isoformat() if v else None for k, v in self.deadlines().items()},
                "clock": {"now": self.clock.now().isoformat(), "mode": self.clock.mode},
            }
        )

    async def set_settings(self, **values: Any) -> Json:
        for key, value in values.items():
            if key not in ("power_saving", "online", "poll_interval"):
                raise ConfigError(f"unknown setting {key!r}")
            if key in ("power_saving", "online") and not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false")
        self.settings.update(values)
        return Json(self.settings)

    def inject_fault(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> Json:
        if name not in FAULTS:
            raise ConfigError(f"unknown fault {name!r}")
        fault = {
            "name": name,
            "count": count,
            "probability": probability,
            "seed": seed,
            "params": params or {},
        }
        self.faults[name] = fault
        self.emit("fault.applied", {"name": name})
        return Json(fault)

    def clear_faults(self, name: str | None = None) -> list[str]:
        if name is not None and name not in FAULTS:
            raise ConfigError(f"unknown fault {name!r}")
        names = [name] if name else list(self.faults)
        cleared = [n for n in names if self.faults.pop(n, None) is not None]
        for n in cleared:
            self.emit("fault.cleared", {"name": n})
        return cleared

    def list_faults(self) -> list[Json]:
        return [Json(fault) for fault in self.faults.values()]

    def deadlines(self) -> dict[str, datetime | None]:
        start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        return {
            "shift.expires": start + timedelta(hours=24) if self.shift_open else None,
            "ofd.block": None,
            "fn.expires": start + timedelta(days=400),
            "fn.warning": start + timedelta(days=370),
        }

    async def close_shift(self) -> Json | None:
        if not self.shift_open:
            return None
        self.shift_open = False
        return Json({"shiftNumber": 1, "fnDocNumber": 7})

    async def sell(self, total_kopecks: int, cashier: str = "Кассир", /) -> Json:
        if total_kopecks == 13:
            raise DriveError(0x14, detail="unlucky")
        if total_kopecks == 666:
            raise RuntimeError("a bug in the till")
        # Answer out of order, so that only correlation data can match answers to requests.
        await PACE.pace(self.jitter.uniform(0, 0.05))
        return Json({"total": total_kopecks, "cashier": cashier})

    async def sell_items(
        self, items: list[str], card: int = 0, cash: int | None = None, cashier: str = "Кассир", /
    ) -> Json:
        return Json({"items": items, "card": card, "cash": cash, "cashier": cashier})

    async def correction(
        self, total_kopecks: int, cashier: str = "Кассир", operation: int = 1, /
    ) -> Json:
        return Json({"total": total_kopecks, "cashier": cashier, "operation": operation})

    async def replace_drive(self) -> Json:
        self.fn_serial = "9999000000000002"
        return Json({"fnSerial": self.fn_serial})

    async def order_list(self) -> Json:
        return Json({"orders": [], "rev": 0, "synced": False})

    async def order_pay(
        self,
        order_id: str,
        cash: Decimal | None = None,
        card: Decimal | None = None,
        drop: tuple[int, ...] = (),
        quantities: tuple[tuple[int, Decimal], ...] = (),
        /,
    ) -> Json:
        return Json(
            {
                "orderId": order_id,
                "cash": cash,
                "card": card,
                "drop": list(drop),
                "quantities": [[n, str(q)] for n, q in quantities],
            }
        )

    async def save_snapshot(self, path: Path, /) -> Json:
        self.snapshots.append(path)
        return Json({"path": str(path)})

    async def load_snapshot(self, path: Path, /) -> Json:
        return Json({"path": str(path)})


async def wait_for(
    check: Callable[[], Awaitable[bool] | bool],
    timeout: float = 10.0,  # noqa: ASYNC109 - a test helper with a deadline
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = PACE.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if PACE.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await PACE.pace(0.02)


async def retained(url: str, topic: str, timeout: float = 5.0) -> Received | None:  # noqa: ASYNC109 - a test helper with a deadline
    """What a subscriber arriving now gets retained on ``topic`` (``None``: nothing)."""
    async with MqttLink(url) as observer:
        await observer.connect(timeout)
        async with observer.messages(topic) as inbox:
            await observer.sync(timeout)
            messages = inbox.drain()
    return messages[-1] if messages else None


async def retained_json(url: str, topic: str) -> Any:
    message = await retained(url, topic)
    return None if message is None else topics.decode_json(message.payload)


async def _serve(url: str, device_id: str) -> None:
    configure_logging("console", "warning")  # stdout carries only the "ready" line
    till = FakeTill(device_id)
    link = agent_link(url, device_id)
    async with link:
        await link.connect()
        async with TillAgent(till, link, state_interval=0.2):
            print("ready", flush=True)  # noqa: T201 - the parent test waits for this line
            await asyncio.Event().wait()


async def _serve_shared(url: str, device_ids: list[str]) -> None:
    configure_logging("console", "warning")
    plane = ControlPlane(url, PACE)
    await plane.start([FakeTill(d) for d in device_ids])
    print("ready", plane.process_id, flush=True)  # noqa: T201 - the parent test reads this line
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[2] == "--shared":
        asyncio.run(_serve_shared(sys.argv[1], sys.argv[3:]))
    else:
        asyncio.run(_serve(sys.argv[1], sys.argv[2]))
