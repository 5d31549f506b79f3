"""The courier's orders end to end: shop → orders API → two real tills → receipt → cloud → shop.

A whole installation on real ports (:class:`StackHarness`): the orders API with the pair from the
ready-file, two tills of one retail point long-polling their orders, the drive, the upload queue
(B7) and the ``responseURL`` callback to a shop site on its own port (§5 checks 6–8).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from kkt_emulator.app import stack as stack_module
from kkt_emulator.clock import RealClock
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery
from kkt_emulator.errors import CloudError, ValidationError
from kkt_emulator.fn.signing import parse_qr
from kkt_emulator.net import listen_socket
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.orders import parse_sum
from kkt_emulator.till.till import Till

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def shop_site(statuses: list[int]) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """The shop's ``responseURL`` on a real port: answers ``statuses`` in turn, then 200."""
    received: list[dict[str, str]] = []
    app = FastAPI()

    @app.get("/orders/done")
    async def done(request: Request) -> PlainTextResponse:
        received.append(dict(request.query_params))
        return PlainTextResponse("ok", status_code=statuses.pop(0) if statuses else 200)

    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await RealClock().pace(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/orders/done", received
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(check: Any, seconds: float = 15.0) -> Any:
    """Poll ``check()`` (real time) until it returns something true."""
    clock = RealClock()
    deadline = clock.monotonic() + seconds
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if clock.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await clock.pace(0.05)


class Shop:
    """The shop's side of the orders API, with the pair the ready-file names."""

    def __init__(self, kkt: StackHarness) -> None:
        self.kkt = kkt
        info = kkt.info
        self.url = info["orders_api"]
        self.pair = (info["orders_login"], info["orders_password"])

    async def create(self, number: str, positions: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "documentNumber": number,
            "documentType": "SALE",
            "documentDateTime": "2024-05-01T12:00:00+0300",
            "customerContact": "+79161234567",
            "inventPositions": positions,
            **extra,
        }
        response = await self.kkt.http.post(self.url, json=body, auth=self.pair)
        assert response.status_code == 200, response.text
        order_id: str = response.json()["id"]
        return order_id

    async def delete(self, order_id: str) -> None:
        response = await self.kkt.http.delete(f"{self.url}/{order_id}", auth=self.pair)
        assert response.status_code == 200, response.text


NITKI = {
    "name": "Нитки",
    "measure": "pcs",
    "inventoryType": "INVENTORY",
    "quantity": 2,
    "price": 150,
}
DELIVERY = {
    "name": "Доставка",
    "measure": "other",
    "inventoryType": "SERVICE",
    "quantity": 1,
    "price": 300,
}


def on_till(till: Till, order_id: str) -> dict[str, Any] | None:
    return next((o for o in till.orders.listing() if o["id"] == order_id), None)


def receipts_of(kkt: StackHarness, order_id: str) -> list[dict[str, Any]]:
    assert kkt.stack.cloud is not None
    found, _ = kkt.stack.cloud.storage.list_cashdocs(
        CashDocQuery(kkt.retail_point_id, linked_doc_id=order_id)
    )
    return [r.document for r in found]


async def test_two_tills_one_order_paid_with_change_and_the_shop_called_back(
    tmp_path: Path,
) -> None:
    async with (
        shop_site([500]) as (url, calls),
        StackHarness.running(tmp_path, tills=2, clock=RealClock(), long_poll=2.0) as kkt,
    ):
        shop = Shop(kkt)
        one, two = kkt.stack.tills
        order_id = await shop.create("51234", [NITKI, DELIVERY], responseURL=url)
        # both tills get it from their long poll, within one poll (check 6)
        await until(lambda: on_till(one, order_id) and on_till(two, order_id))
        assert on_till(one, order_id)["totalSum"] == 600.0  # type: ignore[index]
        assert receipts_of(kkt, order_id) == []  # O9: nothing before the receipt

        await two.orders.claim(order_id)
        with pytest.raises(CloudError) as taken:
            await one.orders.pay(order_id, cash=parse_sum("1000", "cash"))
        assert taken.value.status == 409
        await until(lambda: (on_till(one, order_id) or {}).get("takenElsewhere"))
        await two.orders.release(order_id)
        await until(lambda: not (on_till(one, order_id) or {}).get("takenElsewhere"))

        paid = await one.orders.pay(order_id, cash=parse_sum("1000", "cash"))
        assert paid.change == 400
        assert paid.total == 600
        assert paid.fiscal_info["sum"] == 600.0
        assert parse_qr(paid.fiscal_info["qr"])["total_kopecks"] == 60000
        with pytest.raises(ValidationError, match="already paid"):
            await one.orders.pay(order_id)

        # the receipt reaches the cloud through the upload queue, linked to the order
        documents = await until(lambda: receipts_of(kkt, order_id))
        receipt = documents[0]
        assert receipt["docType"] == "SALE"
        assert receipt["change"] == 400.0
        assert receipt["actualSum"] == 600.0
        assert receipt["fiscalInfo"]["fnDocNumber"] == paid.fiscal_info["fnDocNumber"]
        # the shop is called back (GET, status and qr), retried after the 500 (D44: +1 min on
        # the emulator's clock is too long for a test, so the retry is checked in the cloud
        # tests; here the first attempt and the order's state)
        first = await until(lambda: calls)
        assert first[0]["status"] == "SUCCESS"
        assert first[0]["qr"] == paid.fiscal_info["qr"]
        states = await kkt.cabinet("GET", f"/retail-points/{kkt.retail_point_id}/orders")
        assert states[0]["state"] == "FISCALIZED"
        await until(lambda: (on_till(two, order_id) or {}).get("state") == "FISCALIZED")


async def test_partial_refusal_prepaid_return_and_delete_in_payment(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, tills=1, clock=RealClock(), long_poll=2.0) as kkt:
        shop = Shop(kkt)
        till = kkt.till
        partial = await shop.create("1", [NITKI, DELIVERY])
        prepaid = await shop.create("2", [NITKI], prepaid=True)
        back = await shop.create("3", [DELIVERY], documentType="RETURN")
        deleted = await shop.create("4", [NITKI])
        await until(lambda: all(on_till(till, o) for o in (partial, prepaid, back, deleted)))

        # partial refusal: the delivery is refused, card and cash together (check 7)
        with pytest.raises(ValidationError, match="not enough"):
            await till.orders.pay(
                partial, drop=[2], card=parse_sum("100", "card"), cash=parse_sum("100", "cash")
            )
        with pytest.raises(ValidationError, match=r"positions 1\.\.2"):
            await till.orders.pay(partial, drop=[3])
        made = await till.orders.pay(
            partial, drop=[2], card=parse_sum("100", "card"), cash=parse_sum("500", "cash")
        )
        assert (made.total, made.card, made.cash, made.change) == tuple(
            map(Decimal, (300, 100, 200, 300))
        )
        assert made.fiscal_info["sum"] == 300.0

        # lowered quantities (B22): the buyer takes one of the two Нитки
        fewer = await shop.create("5", [NITKI, DELIVERY])
        await until(lambda: on_till(till, fewer))
        with pytest.raises(ValidationError, match="can only be lowered"):
            await till.orders.pay(fewer, quantities={1: Decimal(3)})
        with pytest.raises(ValidationError, match="is dropped"):
            await till.orders.pay(fewer, drop=[1], quantities={1: Decimal(1)})
        less = await till.orders.pay(
            fewer, quantities={1: Decimal(1)}, cash=parse_sum("500", "cash")
        )
        assert (less.total, less.change) == (Decimal(450), Decimal(50))
        assert less.lowered == {1: Decimal(1)}

        with pytest.raises(ValidationError, match="prepaid"):
            await till.orders.pay(prepaid, cash=parse_sum("300", "cash"))
        advance = await till.orders.pay(prepaid)
        assert advance.prepaid == 300
        assert advance.change == 0

        returned = await till.orders.pay(back)
        assert returned.check_type == "RETURN"
        assert returned.fiscal_info["checkType"] == "RETURN"

        # DELETE while in payment: the claiming till's receipt still reaches the cloud (check 6)
        await till.orders.claim(deleted)
        await shop.delete(deleted)
        await until(lambda: (on_till(till, deleted) or {}).get("state") == "DELETED")
        kept = await till.orders.pay(deleted)
        assert kept.total == 300

        for order_id, kind in (
            (partial, "SALE"),
            (prepaid, "SALE"),
            (back, "RETURN"),
            (deleted, "SALE"),
        ):
            documents = await until(lambda order_id=order_id: receipts_of(kkt, order_id))
            assert documents[0]["docType"] == kind
        money = {o: receipts_of(kkt, o)[0]["moneyPositions"] for o in (partial, prepaid)}
        assert {m["paymentType"]: m["sum"] for m in money[partial]} == {
            "CARD": 100.0,
            "CASH": 500.0,
        }
        assert money[prepaid] == [
            {
                "paymentType": "PREPAID",
                "sum": 300.0,
                "createDateTime": money[prepaid][0]["createDateTime"],
            }
        ]
        assert [p["name"] for p in receipts_of(kkt, partial)[0]["inventPositions"]] == ["Нитки"]
        lowered = (await until(lambda: receipts_of(kkt, fewer)))[0]
        assert [(p["name"], p["quantity"], p["posSum"]) for p in lowered["inventPositions"]] == [
            ("Нитки", 1.0, 150.0),
            ("Доставка", 1.0, 300.0),
        ]
        assert lowered["actualSum"] == 450.0


async def test_a_fleet_watch_brings_orders_without_an_order_long_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D116: watched tills sync their orders when the watch says so, never by a long poll."""
    monkeypatch.setattr(stack_module, "FLEET_WATCH_FROM", 1)  # a fleet, however small (D109)
    async with StackHarness.running(tmp_path, tills=2, clock=RealClock(), long_poll=25.0) as kkt:
        shop = Shop(kkt)
        one, two = kkt.stack.tills
        await until(lambda: one.loops.watch_member() and two.loops.watch_member())
        waits: list[float] = []
        for till in (one, two):
            original = till.link.orders

            async def spy(rev: int, wait: float, _original: Any = original) -> Any:
                waits.append(wait)
                return await _original(rev, wait)

            monkeypatch.setattr(till.link, "orders", spy)
        order_id = await shop.create("77001", [NITKI])
        # Both tills hear of it through the watch, within a moment, not the 25 s long poll.
        await until(lambda: on_till(one, order_id) and on_till(two, order_id), seconds=5.0)
        assert waits
        assert all(w == 0 for w in waits)  # syncs that wait for nothing
