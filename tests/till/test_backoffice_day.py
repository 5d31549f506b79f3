"""A scripted day at one till, through to the shift's totals and the four feeds (issue 14 done-when).

Real cloud on a port, a real till with its drive and OFD, a real webhook receiver on a port:
counter sales from the point's catalogue in cash and by card, a mixed payment with change, a
return, a correction, cash in and out, two VAT rates, a courier's order sent by the shop through
the orders API and paid at the till with change, and an internet-shop document fiscalised by the
same till in the same hours. The shift's totals and the four feed records must equal the values
computed by hand below; the shop's document must change none of them. Then, with
``upload.block``, the next shift's documents, its feeds and the order callback wait; after the
fault is cleared everything arrives in order and nothing twice (``orders-and-backoffice.md`` §5
checks 11–13).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, Request

from kkt_emulator.clock import RealClock
from kkt_emulator.net import listen_socket
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.orders import parse_sum

if TYPE_CHECKING:
    from pathlib import Path

CATALOG = (
    "### data begin ###\n"
    '{"command":"clear","catalogs":["INVENTORY"]}\n---\n'
    '{"command":"add","entity":{"inventCode":"001","name":"Хлеб","price":50,"vatTag":1102}}\n---\n'
    '{"command":"add","entity":{"inventCode":"002","name":"Молоко","price":80,"vatTag":1103}}\n---\n'
    '{"command":"add","entity":{"inventCode":"003","name":"Сыр","price":300,"vatTag":1102}}\n'
    "### data end ###"
)


class Receiver:
    """An accounting program's webhook and the shop's ``responseURL`` on one real port."""

    def __init__(self, base: str) -> None:
        self.hook = f"{base}/hook"
        self.done = f"{base}/orders/done"
        self.feeds: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, str]] = []


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """Records every feed body it is sent and every order callback (GET, O15)."""
    app = FastAPI()
    sock = listen_socket("127.0.0.1", 0)
    got = Receiver(f"http://127.0.0.1:{sock.getsockname()[1]}")

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, str]:
        got.feeds.append(json.loads(await request.body()))
        return {"ok": "yes"}

    @app.get("/orders/done")
    async def done(request: Request) -> dict[str, str]:
        got.callbacks.append(dict(request.query_params))
        return {"ok": "yes"}

    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await RealClock().pace(0.01)
        yield got
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(kkt: StackHarness, check: Any, what: str, seconds: float = 20.0) -> Any:
    deadline = kkt.clock.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        assert kkt.clock.monotonic() < deadline, f"timed out waiting for {what}"
        await kkt.clock.pace(0.05)


class Office:
    """The back office and the cabinet of the stack's retail point."""

    def __init__(self, kkt: StackHarness, auth: tuple[str, str]) -> None:
        self.kkt = kkt
        self.auth = auth
        self.v1 = f"{kkt.stack.base_url}/api/v1/retail-point/{kkt.retail_point_id}"
        self.point = f"/retail-points/{kkt.retail_point_id}"

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.kkt.http.get(self.v1 + path, params=params, auth=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def feeds(self) -> list[dict[str, Any]]:
        listed = await self.kkt.cabinet("GET", f"{self.point}/feeds", params={"count": 1000})
        return list(listed["data"])


class Shop:
    """The shop's side of the orders API, with the pair the ready-file names (O2, D93)."""

    def __init__(self, kkt: StackHarness) -> None:
        self.kkt = kkt
        self.url = kkt.info["orders_api"]
        self.pair = (kkt.info["orders_login"], kkt.info["orders_password"])

    async def create(self, number: str, positions: list[dict[str, Any]], url: str) -> str:
        body = {
            "documentNumber": number,
            "documentType": "SALE",
            "documentDateTime": "2024-05-01T12:00:00+0300",
            "customerContact": "+79161234567",
            "responseURL": url,
            "inventPositions": positions,
        }
        response = await self.kkt.http.post(self.url, json=body, auth=self.pair)
        assert response.status_code == 200, response.text
        order_id: str = response.json()["id"]
        return order_id


MILK = {"inventCode": "002", "name": "Молоко", "measure": "pcs", "price": 80, "vatTag": 1103}
DELIVERY = {
    "name": "Доставка",
    "measure": "other",
    "inventoryType": "SERVICE",
    "quantity": 1,
    "price": 100,
    "vatTag": 1103,
}
CHEESE = {"inventCode": "003", "name": "Сыр", "measure": "pcs", "price": 300, "vatTag": 1102}


async def test_a_scripted_day_gives_hand_computed_totals_and_feeds(tmp_path: Path) -> None:
    async with receiver() as got, StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        shop = Shop(kkt)
        pair = await kkt.cabinet(
            "POST", f"/retail-points/{kkt.retail_point_id}/services/sklad/credentials"
        )
        office = Office(kkt, (pair["login"], pair["password"]))
        for name in ("moysklad", "onec", "moedelo", "elba"):
            await kkt.cabinet("PUT", f"{office.point}/integrations/{name}", json={"enabled": True})
        await kkt.cabinet(
            "PUT", f"{office.point}/integrations/moedelo", json={"webhookUrl": got.hook}
        )
        response = await kkt.http.post(
            f"{office.v1}/catalog-changes", content=CATALOG.encode(), auth=office.auth
        )
        assert response.status_code == 200, response.text

        control = till.control
        # 1. cash: 2 × Хлеб 50 (20 %) + Молоко 80 (10 %) = 180, 200 handed over, 20 change.
        await control.sell_items(["001*2", "002"], 0, 20000)
        # 2. card: Сыр 300 (20 %).
        await control.sell_items(["003"], 30000)
        # An internet-shop document, fiscalised by the same till in the same hours.
        web = kkt.sale(999.0)
        await kkt.post_document(web)
        await kkt.wait_for_status(web["id"], "COMPLETED")
        # 3. mixed with change: 5 × Хлеб = 250; 100 by card, 200 in cash for the 150 left: 50 change.
        await control.sell_items(["001*5"], 10000, 20000)
        # 4. a courier's order from the shop: 2 × Молоко 80 + Доставка 100 (both 10 %) = 260,
        #    the buyer hands the courier 500: change 240.
        order_id = await shop.create("D-1", [{**MILK, "quantity": 2}, DELIVERY], got.done)
        paid = await till.orders.pay(order_id, cash=parse_sum("500", "cash"))
        assert (paid.total, paid.change) == (Decimal(260), Decimal(240))
        # 5. a return of one Хлеб to the card.
        bread = await till.catalog.positions([("001", Decimal(1))])
        await till.shifts.counter_receipt(
            bread, [{"paymentType": "CARD", "sum": 50}], doc_type="RETURN"
        )
        # 6. a correction receipt of 70; 7. cash in 1000 and out 300.
        await till.shifts.correction(7000)
        await till.shifts.cash_move(100000)
        await till.shifts.cash_move(30000, out=True)
        assert await till.close_shift() is not None

        records = await until(kkt, lambda: _four(office), "the four feed records")
        shift_id = records["moysklad"]["shiftId"]
        shift = await office.get(f"/shift/{shift_id}")
        assert shift["status"] == "CLOSED"
        assert shift["shiftTotals"] == {
            "sales": 990.0,  # 180 + 300 + 250 + 260; the shop's 999 is not in it
            "salesByCash": 590.0,  # 180 + 150 + 260
            "salesByCard": 400.0,  # 300 + 100
            "salesByOther": 0.0,
            "returns": 50.0,
            "returnsByCash": 0.0,
            "returnsByCard": 50.0,
            "returnsByOther": 0.0,
            "cashIns": 1000.0,
            "cashOuts": 300.0,
            "corrIns": 70.0,
            "corrOuts": 0.0,
            "salesCount": 4,
            "returnsCount": 1,
            "corrCount": 1,
            "vatTotals": [
                # 100/6 = 16.67, 300/6 = 50.00, 250/6 = 41.67 (per position); 50/6 = 8.33
                {
                    "vatTag": 1102,
                    "sales": 650.0,
                    "returns": 50.0,
                    "vatSales": 108.34,
                    "vatReturns": 8.33,
                },
                # 80/11 = 7.27, 160/11 = 14.55, 100/11 = 9.09 (per position)
                {
                    "vatTag": 1103,
                    "sales": 340.0,
                    "returns": 0.0,
                    "vatSales": 30.91,
                    "vatReturns": 0.0,
                },
            ],
        }

        moysklad = records["moysklad"]["payload"]["documents"]
        assert [(d["docType"], sum(p["posSum"] for p in d["positions"])) for d in moysklad] == [
            ("SALE", 180.0),
            ("SALE", 300.0),
            ("SALE", 250.0),
            ("SALE", 260.0),
            ("RETURN", 50.0),
        ]
        assert {p["paymentType"]: p["sum"] for p in moysklad[2]["payments"]} == {
            "CARD": 100.0,
            "CASH": 150.0,
        }
        # the courier's receipt names its order and counts its cash net of the change
        assert [d["linkedDocId"] for d in moysklad] == [None, None, None, order_id, None]
        assert moysklad[3]["payments"] == [{"paymentType": "CASH", "sum": 260.0}]
        # The shop's sale (its «Хлеб» at 999, no VAT) reached no feed.
        positions = [p for d in moysklad for p in d["positions"]]
        assert all(p["price"] != 999.0 and p["vatTag"] != 1105 for p in positions)
        assert web["id"] not in {d["id"] for d in moysklad}
        onec = records["onec"]["payload"]
        assert {
            (p["inventCode"], p["name"], p["quantity"], p["sum"], p["vatSum"])
            for p in onec["sales"]
        } == {
            ("001", "Хлеб", 7.0, 350.0, 58.34),
            ("002", "Молоко", 3.0, 240.0, 21.82),  # 7.27 + 14.55: the counter's and the order's
            ("003", "Сыр", 1.0, 300.0, 50.0),
            (None, "Доставка", 1.0, 100.0, 9.09),
        }
        assert [(p["inventCode"], p["sum"], p["vatSum"]) for p in onec["returns"]] == [
            ("001", 50.0, 8.33)
        ]
        assert (onec["cash"], onec["card"]) == (590.0, 350.0)
        assert records["moedelo"]["payload"]["cash"] == {"sales": 590.0, "returns": 0.0}
        assert records["moedelo"]["payload"]["card"] == {"sales": 400.0, "returns": 50.0}
        assert "positions" not in json.dumps(records["moedelo"]["payload"])
        assert records["elba"]["payload"]["cashTotal"] == 590.0
        await until(kkt, lambda: _got(got.feeds, 1), "the Моё дело webhook")
        assert got.feeds[0]["id"] == records["moedelo"]["id"]
        await until(kkt, lambda: _got(got.callbacks, 1), "the order's callback")
        assert got.callbacks[0]["status"] == "SUCCESS"
        assert got.callbacks[0]["qr"] == paid.fiscal_info["qr"]

        # The next shift: its first sale (Молоко 80 in cash) reaches the cloud, then the upload
        # channel goes down: nothing more arrives, the shift stays incomplete, no feed and no
        # order callback (§5 check 13).
        opener = await control.sell_items(["002"], 0, None)

        async def opener_uploaded() -> list[dict[str, Any]]:
            return list((await office.get("/cashdocs", q=f"id=={opener.doc_id}"))["data"])

        shift2_id = (await until(kkt, opener_uploaded, "the second shift's first sale"))[0][
            "shift"
        ]["id"]
        till.inject_fault("upload.block")
        second = [await control.sell_items(["002*3"], 0, None) for _ in range(2)]
        later = await shop.create("D-2", [{**CHEESE, "quantity": 1}], got.done)
        courier = await till.orders.pay(later, card=parse_sum("300", "card"))
        await till.close_shift()
        await kkt.clock.pace(0.5)
        assert till.upload_queue()["size"] == 4  # two sales, the order's receipt, the close
        assert len(await office.feeds()) == 4  # the first shift's, and no more
        ids = [s.doc_id for s in second] + [courier.cash_document_id]
        found = await office.get("/cashdocs", q=f"id=={ids[0]}")
        assert found["total_count"] == 0
        looked_up = await office.get("/cashdocs", count=1, q=f"linkedDocId=={later}")
        assert looked_up["total_count"] == 0  # the shop's polling sees no receipt yet (O9)
        assert len(got.callbacks) == 1  # and the shop is not called back
        states = await kkt.cabinet("GET", f"{office.point}/orders")
        assert {o["order"]["id"]: o["state"] for o in states}[later] == "IN_PAYMENT"
        incomplete = await office.get(f"/shift/{shift2_id}")
        assert (incomplete["status"], incomplete["complete"]) == ("OPENED", False)
        assert incomplete["shiftTotals"]["sales"] == 80.0  # the opener alone

        till.clear_faults("upload.block")
        await until(kkt, lambda: _count(office, 8), "the second shift's feeds")
        assert till.upload_queue()["size"] == 0
        listed = await office.get("/cashdocs", count=1000)
        uploaded = [d["id"] for d in listed["data"]]
        assert len(uploaded) == len(set(uploaded))  # nothing twice
        assert [i for i in uploaded if i in ids] == ids  # in order
        feeds = await office.feeds()
        per_shift = [(r["shiftId"], r["integration"]) for r in feeds]
        assert len(per_shift) == len(set(per_shift)) == 8
        new = {r["integration"]: r for r in feeds[4:]}
        assert new["elba"]["payload"]["cashTotal"] == 560.0  # 80 + 2 × 3 × 80; the order by card
        assert new["moedelo"]["payload"]["card"] == {"sales": 300.0, "returns": 0.0}
        assert new["moysklad"]["payload"]["documents"][-1]["linkedDocId"] == later
        complete = await office.get(f"/shift/{shift2_id}")
        assert (complete["status"], complete["complete"]) == ("CLOSED", True)
        assert complete["shiftTotals"]["sales"] == 860.0  # 80 + 480 + the order's 300
        await until(kkt, lambda: _got(got.feeds, 2), "the second Моё дело webhook")
        await until(kkt, lambda: _got(got.callbacks, 2), "the second order's callback")
        assert got.callbacks[1]["qr"] == courier.fiscal_info["qr"]
        states = await kkt.cabinet("GET", f"{office.point}/orders")
        assert {o["order"]["id"]: o["state"] for o in states}[later] == "FISCALIZED"
        await kkt.clock.pace(0.3)
        assert [r["id"] for r in got.feeds] == [records["moedelo"]["id"], new["moedelo"]["id"]]
        assert len(got.callbacks) == 2  # each order called back once


async def _four(office: Office) -> dict[str, dict[str, Any]] | None:
    feeds = await office.feeds()
    return {r["integration"]: r for r in feeds} if len(feeds) >= 4 else None


async def _count(office: Office, n: int) -> bool:
    return len(await office.feeds()) >= n


async def _got(received: list[dict[str, Any]], n: int) -> bool:
    return len(received) >= n


async def test_lm_and_nj_read_a_real_tills_shifts_and_1c_exports_a_period(tmp_path: Path) -> None:
    """§5 checks 10 and 12 at a real till: the importers' call sequences, a period, the export."""
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        pair = await kkt.cabinet(
            "POST", f"/retail-points/{kkt.retail_point_id}/services/sklad/credentials"
        )
        office = Office(kkt, (pair["login"], pair["password"]))
        await kkt.cabinet("PUT", f"{office.point}/integrations/onec", json={"enabled": True})
        courier = {"catalogType": "CONTRACTOR", "code": "7", "name": "Курьер Петров"}
        response = await kkt.http.post(f"{office.v1}/catalog", json=courier, auth=office.auth)
        assert response.status_code == 200, response.text

        start = kkt.clock.now()
        await till.shifts.sell(10000)  # 100 in cash
        await till.shifts.cash_move(50000)  # cash in 500
        await kkt.advance("10m")
        await till.shifts.sell(20000, card=20000)  # 200 by card, ten minutes later
        await till.close_shift()
        await kkt.advance("1h")
        await till.shifts.sell(30000)  # the next shift: 300 in cash
        await till.close_shift()
        await kkt.advance("1m")
        end = kkt.clock.now()
        records = await until(
            kkt, lambda: _records(office, 2), "the two shifts' 1С records", seconds=20.0
        )

        # LM: the points, the recent shifts, each shift's documents.
        listed = await kkt.http.get(f"{kkt.stack.base_url}/api/v1/retail-points", auth=office.auth)
        assert listed.status_code == 200, listed.text
        points = listed.json()
        assert kkt.retail_point_id in [p["id"] for p in points]
        point = await office.get("")
        assert point["kkmInfo"]["serialNo"] == till.kkt_serial
        recent = await office.get("/get-recent-shifts", days=1)
        assert [s["id"] for s in recent] == [r["shiftId"] for r in reversed(records)]
        first, second = reversed(recent)
        assert first["shiftTotals"]["sales"] == 300.0
        assert first["shiftTotals"]["cashIns"] == 500.0
        assert second["shiftTotals"]["salesByCash"] == 300.0
        docs = await office.get(f"/shift/{first['id']}/cashdoc")
        assert [(d["docType"], d["actualSum"]) for d in docs] == [
            ("SALE", 100.0),
            ("CASH_IN", 500.0),
            ("SALE", 200.0),
        ]  # no shift documents (B10)
        # NJ: one document of a shift, full, as listed.
        assert await office.get(f"/shift/{first['id']}/cashdoc/{docs[2]['id']}") == docs[2]
        money = await office.get("/moneydocs")
        assert [(d["docType"], d["actualSum"]) for d in money["data"]] == [("CASH_IN", 500.0)]
        contractors = await office.get("/catalog/CONTRACTOR")
        assert [c["name"] for c in contractors["data"]] == ["Курьер Петров"]

        # A period of exactly the card sale (with its positions): from start + 5 min to + 1 h.
        since = (start + timedelta(minutes=5)).isoformat()
        until_ = (start + timedelta(hours=1)).isoformat()
        found = await office.get(
            "/cashdocs", q=f"beginDateTime=ge={since};beginDateTime=lt={until_}"
        )
        assert [(d["id"], d["actualSum"]) for d in found["data"]] == [(docs[2]["id"], 200.0)]
        assert found["data"][0]["inventPositions"]

        # «Выгрузить за период»: the day's report equals the sum of its shifts' (cash 400, card 200).
        exported = await kkt.cabinet(
            "POST",
            f"{office.point}/feeds/onec/export",
            json={"from": (start - timedelta(minutes=1)).isoformat(), "to": end.isoformat()},
        )
        payload = exported["payload"]
        assert (payload["cash"], payload["card"]) == (400.0, 200.0)
        assert payload["cash"] == sum(r["payload"]["cash"] for r in records)
        assert payload["card"] == sum(r["payload"]["card"] for r in records)
        assert sum(p["sum"] for p in payload["sales"]) == 600.0


async def _records(office: Office, n: int) -> list[dict[str, Any]] | None:
    feeds = [r for r in await office.feeds() if r["integration"] == "onec"]
    return feeds if len(feeds) >= n else None
