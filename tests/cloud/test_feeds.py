"""Integration switches, the MoySklad webhook, the feeds of a complete shift and their delivery.

``orders-and-backoffice.md`` B6, B8, B17–B19 and §5 checks 12 and 14, over the real cloud app: a
scripted till uploads a shift through ``POST /api/device/v1/cashdocs``; the feeds are read from
the cabinet API and their webhooks land in the fake shop. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import T0, FakeTill, make_point

if TYPE_CHECKING:
    import httpx
    from cloud_helpers import FakeShop, Point

    from kkt_emulator.clock import ManualClock
    from kkt_emulator.cloud.app import Cloud

CABINET = "/api/cabinet/v1"
LOGIN = ("feeds@example.com", "secret-2")


@pytest.fixture
def db_path(any_db: str) -> str:
    return any_db


@pytest.fixture
async def owned(http: httpx.AsyncClient) -> Point:
    response = await http.post(
        f"{CABINET}/accounts",
        json={"id": "acc-feeds", "name": "Фиды", "login": LOGIN[0], "password": LOGIN[1]},
    )
    assert response.status_code == 200, response.text
    return await make_point(http, accountId="acc-feeds")


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _doc(  # noqa: PLR0917 - a table of documents reads best positionally
    shift: dict[str, Any],
    num: int,
    doc_type: str,
    minutes: int,
    positions: list[tuple[str, str, float, float, int]] = (),  # type: ignore[assignment]
    payments: list[tuple[str, float]] = (),  # type: ignore[assignment]
    change: float = 0.0,
) -> dict[str, Any]:
    total = round(sum(q * p for _, _, q, p, _ in positions), 2)
    return {
        "id": str(uuid.uuid4()),
        "docNum": str(num),
        "docType": doc_type,
        "status": "CLOSED",
        "beginDateTime": _at(minutes),
        "endDateTime": _at(minutes),
        "shift": shift,
        "inventPositions": [
            {
                "posNum": i + 1,
                "inventCode": code,
                "name": name,
                "quantity": qty,
                "price": price,
                "posSum": round(qty * price, 2),
                "vatTag": str(vat),
                "type": "MAIN",
            }
            for i, (code, name, qty, price, vat) in enumerate(positions)
        ],
        "moneyPositions": [{"paymentType": kind, "sum": value} for kind, value in payments],
        "baseSum": total,
        "actualSum": total,
        "change": change,
    }


def shift_docs(start: int = 0, num: int = 7) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Cash and card, change, a mixed payment, a return, a correction, cash in and out."""
    shift = {"id": str(uuid.uuid4()), "shiftNum": num}
    m = start
    return shift, [
        _doc(shift, 0, "SHIFT_OPEN", m),
        _doc(
            shift,
            1,
            "SALE",
            m + 5,
            [("001", "Хлеб", 2, 50, 1102), ("002", "Молоко", 1, 80, 1103)],
            [("CASH", 200)],
            change=20,
        ),
        _doc(shift, 2, "SALE", m + 10, [("003", "Сыр", 1, 300, 1102)], [("CARD", 300)]),
        _doc(
            shift,
            3,
            "SALE",
            m + 15,
            [("004", "Чай", 1, 500, 1105)],
            [("CARD", 200), ("CASH", 400)],
            change=100,
        ),
        _doc(shift, 4, "RETURN", m + 20, [("001", "Хлеб", 1, 50, 1102)], [("CARD", 50)]),
        _doc(shift, 5, "SALE_CORRECTION", m + 25, [("900", "Товар", 1, 70, 1105)], [("CASH", 70)]),
        _doc(shift, 1, "CASH_IN", m + 30, payments=[("CASH", 1000)]),
        _doc(shift, 2, "CASH_OUT", m + 35, payments=[("CASH", 300)]),
        _doc(shift, 6, "SHIFT_CLOSE", m + 40),
    ]


async def upload(http: httpx.AsyncClient, till: FakeTill, docs: list[dict[str, Any]]) -> list[str]:
    response = await http.post(
        "/api/device/v1/cashdocs", headers=till.headers, json={"documents": docs}
    )
    assert response.status_code == 200, response.text
    return [r["outcome"] for r in response.json()["results"]]


async def switch(http: httpx.AsyncClient, point: Point, name: str, **body: Any) -> dict[str, Any]:
    response = await http.put(f"{CABINET}/retail-points/{point.id}/integrations/{name}", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def feeds(http: httpx.AsyncClient, point: Point, **params: Any) -> dict[str, Any]:
    response = await http.get(f"{CABINET}/retail-points/{point.id}/feeds", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_a_complete_shift_gives_one_record_per_enabled_integration(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, shop: FakeShop, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    for name in ("moysklad", "onec", "moedelo", "elba"):
        await switch(http, point, name, enabled=True)
    await switch(http, point, "moedelo", webhookUrl="http://accounting.test/hook?k=1")
    shift, docs = shift_docs()
    await clock.advance(timedelta(minutes=45))

    assert await upload(http, till, docs[:-1]) == ["stored"] * 8
    assert (await feeds(http, point))["total_count"] == 0  # incomplete: no feed yet
    assert await upload(http, till, docs) == ["duplicate"] * 8 + ["stored"]
    assert await upload(http, till, docs[-1:]) == ["duplicate"]  # the close again: nothing twice
    await cloud.wait_idle()

    listed = await feeds(http, point)
    assert listed["total_count"] == 4
    records = {r["integration"]: r for r in listed["data"]}
    assert sorted(records) == ["elba", "moedelo", "moysklad", "onec"]
    for record in records.values():
        assert record["shiftId"] == shift["id"]
        assert record["shiftNum"] == 7
        assert record["retailPointId"] == point.id

    ms = records["moysklad"]["payload"]["documents"]
    assert [(d["docNum"], d["docType"]) for d in ms] == [
        ("1", "SALE"),
        ("2", "SALE"),
        ("3", "SALE"),
        ("4", "RETURN"),
    ]
    assert ms[0]["positions"][0] == {
        "inventCode": "001",
        "name": "Хлеб",
        "quantity": 2.0,
        "price": 50.0,
        "posSum": 100.0,
        "vatTag": 1102,
    }
    assert ms[0]["payments"] == [{"paymentType": "CASH", "sum": 180.0}]  # 200 less 20 change
    assert ms[2]["payments"] == [
        {"paymentType": "CARD", "sum": 200.0},
        {"paymentType": "CASH", "sum": 300.0},
    ]

    onec = records["onec"]["payload"]
    assert onec["period"] == {
        "from": "2024-05-01T09:00:00+00:00",
        "to": "2024-05-01T09:40:00+00:00",
    }
    sales = {p["name"]: p for p in onec["sales"]}
    assert sales["Хлеб"] == {
        "inventCode": "001",
        "name": "Хлеб",
        "price": 50.0,
        "vatTag": 1102,
        "quantity": 2.0,
        "sum": 100.0,
        "vatSum": 16.67,
    }
    assert (sales["Молоко"]["vatSum"], sales["Сыр"]["vatSum"], sales["Чай"]["vatSum"]) == (
        7.27,
        50.0,
        0.0,
    )
    assert sorted(sales) == ["Молоко", "Сыр", "Хлеб", "Чай"]  # the correction is no sale
    assert onec["returns"] == [
        {
            "inventCode": "001",
            "name": "Хлеб",
            "price": 50.0,
            "vatTag": 1102,
            "quantity": 1.0,
            "sum": 50.0,
            "vatSum": 8.33,
        }
    ]
    assert (onec["cash"], onec["card"]) == (480.0, 450.0)  # 180 + 300 cash; 300 + 200 − 50 card

    assert records["moedelo"]["payload"] == {
        "shiftNum": 7,
        "closeDate": "2024-05-01T09:40:00+00:00",
        "cash": {"sales": 480.0, "returns": 0.0},
        "card": {"sales": 500.0, "returns": 50.0},
    }
    assert records["elba"]["payload"] == {"date": "2024-05-01", "cashTotal": 480.0}

    # Only Моё дело has a URL: one POST of its envelope, delivered at the first attempt.
    assert [str(r.url) for r in shop.requests] == ["http://accounting.test/hook?k=1"]
    sent = json.loads(shop.requests[0].content)
    assert sent["id"] == records["moedelo"]["id"]
    assert sent["payload"] == records["moedelo"]["payload"]
    assert shop.requests[0].method == "POST"
    assert records["moedelo"]["delivery"]["state"] == "delivered"
    assert records["elba"]["delivery"]["state"] == "no_url"


async def test_delivery_is_retried_on_the_callback_schedule_and_can_be_resent(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, shop: FakeShop, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "elba", enabled=True, webhookUrl="http://elba.test/in")
    shop.statuses = [500, 302]
    _, docs = shift_docs()
    await clock.advance(timedelta(minutes=45))
    await upload(http, till, docs)
    await cloud.wait_idle()
    (record,) = (await feeds(http, point))["data"]
    assert record["delivery"]["attempts"] == 1
    assert record["delivery"]["lastError"] == "HTTP 500"
    assert len(shop.requests) == 1

    await clock.advance(timedelta(seconds=59))
    await cloud.wait_idle()
    assert len(shop.requests) == 1  # the next attempt is 1 minute after the first (D44)
    await clock.advance(timedelta(seconds=1))
    await cloud.wait_idle()
    assert len(shop.requests) == 2  # a redirect is no delivery either (D43)
    await clock.advance(timedelta(minutes=2))
    await cloud.wait_idle()
    assert len(shop.requests) == 3
    (record,) = (await feeds(http, point))["data"]
    assert record["delivery"]["state"] == "delivered"
    assert record["delivery"]["attempts"] == 3

    # «Отправить повторно»: to the current URL, from now.
    await switch(http, point, "elba", webhookUrl="http://elba.test/v2")
    response = await http.post(f"{CABINET}/retail-points/{point.id}/feeds/{record['id']}/resend")
    assert response.status_code == 200, response.text
    await cloud.wait_idle()
    assert str(shop.requests[-1].url) == "http://elba.test/v2"
    detail = (await http.get(f"{CABINET}/retail-points/{point.id}/feeds/{record['id']}")).json()
    assert detail["delivery"]["url"] == "http://elba.test/v2"
    assert detail["delivery"]["attempts"] == 1
    unknown = await http.get(f"{CABINET}/retail-points/{point.id}/feeds/{uuid.uuid4()}")
    assert unknown.status_code == 404


async def test_a_disabled_integration_gets_nothing_and_feeds_never_see_shop_documents(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "onec", enabled=True)
    await switch(http, point, "onec", enabled=False)
    await switch(http, point, "elba", enabled=True)
    await clock.advance(timedelta(minutes=45))
    # A shop document fiscalised by the same till in the same hours.
    shop_doc = {
        "id": str(uuid.uuid4()),
        "docNum": "WEB-1",
        "docType": "SALE",
        "checkoutDateTime": _at(12),
        "email": "buyer@example.com",
        "printReceipt": False,
        "inventPositions": [{"name": "Онлайн", "price": 999, "quantity": 1, "vatTag": 1105}],
        "moneyPositions": [{"paymentType": "CARD", "sum": 999}],
    }
    assert (await http.post("/api/fn/v2/doc", json=shop_doc, auth=point.assoc)).status_code == 200
    (leased,) = await till.lease()
    await till.succeed(leased, till.fiscal_info(999))
    _, docs = shift_docs()
    await upload(http, till, docs)
    await cloud.wait_idle()
    listed = await feeds(http, point)
    assert [r["integration"] for r in listed["data"]] == ["elba"]
    assert listed["data"][0]["payload"]["cashTotal"] == 480.0  # the 999 card sale is not in it


async def test_the_moysklad_webhook_and_enabling_moysklad_empties_inventory(
    http: httpx.AsyncClient, owned: Point
) -> None:
    point = owned
    batch = (
        "### data begin ###\n"
        '{"command":"add","entity":{"catalogType":"INVENTORY","inventCode":"1","name":"Гвозди","price":3}}\n'
        "### data end ###"
    )
    url = f"/api/v1/retail-point/{point.id}/catalog-changes"
    assert (await http.post(url, content=batch.encode(), auth=LOGIN)).status_code == 200
    inventory = f"/api/v1/retail-point/{point.id}/catalog/INVENTORY"
    assert (await http.get(inventory, auth=LOGIN)).json()["total_count"] == 1

    view = await switch(http, point, "moysklad", enabled=True)
    assert view["enabled"] is True
    assert view["moyskladWebhookPath"] == f"/api/v1/moysklad/webhook/{view['uuid']}"
    assert (await http.get(inventory, auth=LOGIN)).json()["total_count"] == 0

    event = {"events": [{"meta": {"type": "product"}, "action": "UPDATE"}]}
    hook = await http.post(view["moyskladWebhookPath"], json=event)
    assert hook.status_code == 200, hook.text
    assert (
        await http.post(f"/api/v1/moysklad/webhook/{uuid.uuid4()}", json=event)
    ).status_code == 404
    recorded = (await http.get(f"{CABINET}/retail-points/{point.id}/integration-events")).json()
    assert [json.loads(e["body"]) for e in recorded] == [event]

    # Switched off: the same uuid is refused; on again: it comes back, and INVENTORY is emptied again.
    await switch(http, point, "moysklad", enabled=False)
    assert (await http.post(view["moyskladWebhookPath"], json=event)).status_code == 404
    assert (await http.post(url, content=batch.encode(), auth=LOGIN)).status_code == 200
    again = await switch(http, point, "moysklad", enabled=True)
    assert again["uuid"] == view["uuid"]
    assert (await http.get(inventory, auth=LOGIN)).json()["total_count"] == 0
    listed = (await http.get(f"{CABINET}/retail-points/{point.id}/integrations")).json()
    assert [(i["name"], i["enabled"]) for i in listed] == [
        ("moysklad", True),
        ("onec", False),
        ("moedelo", False),
        ("elba", False),
    ]
    bad = await http.put(
        f"{CABINET}/retail-points/{point.id}/integrations/onec", json={"webhookUrl": "ftp://x"}
    )
    assert bad.status_code == 400
    assert (
        await http.put(f"{CABINET}/retail-points/{point.id}/integrations/nope", json={})
    ).status_code == 404


async def test_moysklad_on_by_its_pair_or_the_account_switch_empties_inventory_too(
    http: httpx.AsyncClient, owned: Point
) -> None:
    """B21: «Сгенерировать логин и пароль» for МойСклад switches it on, and so empties INVENTORY."""
    point = owned
    batch = (
        "### data begin ###\n"
        '{"command":"add","entity":{"catalogType":"INVENTORY","inventCode":"1","name":"Гвозди","price":3}}\n'
        "### data end ###"
    )
    url = f"/api/v1/retail-point/{point.id}/catalog-changes"
    inventory = f"/api/v1/retail-point/{point.id}/catalog/INVENTORY"

    async def stocked() -> int:
        assert (await http.post(url, content=batch.encode(), auth=LOGIN)).status_code == 200
        return int((await http.get(inventory, auth=LOGIN)).json()["total_count"])

    async def left() -> int:
        return int((await http.get(inventory, auth=LOGIN)).json()["total_count"])

    credentials = f"{CABINET}/retail-points/{point.id}/services/moysklad/credentials"
    assert await stocked() == 1
    made = await http.post(credentials)
    assert made.status_code == 200, made.text
    assert await left() == 0  # off until now: the pair switched it on
    assert await stocked() == 1
    assert (await http.post(credentials)).status_code == 200
    assert await left() == 1  # a new pair of a service already on changes nothing
    service = f"{CABINET}/accounts/{made.json()['accountId']}/services/moysklad"
    assert (await http.patch(service, json={"enabled": False})).status_code == 200
    assert await left() == 1
    assert (await http.patch(service, json={"enabled": True})).status_code == 200
    assert await left() == 0  # the account's switch on again


async def test_the_back_office_reads_and_the_1c_period_export(
    http: httpx.AsyncClient, cloud: Cloud, owned: Point, clock: ManualClock
) -> None:
    point = owned
    till = await FakeTill(http, point).bind()
    await switch(http, point, "onec", enabled=True)
    first, docs1 = shift_docs(0, 7)
    second, docs2 = shift_docs(60, 8)
    await clock.advance(timedelta(hours=2))
    await upload(http, till, docs1 + docs2)
    await cloud.wait_idle()
    base = f"/api/v1/retail-point/{point.id}"

    points = (await http.get("/api/v1/retail-points", auth=LOGIN)).json()
    assert [p["id"] for p in points] == [point.id]
    assert (await http.get(base, auth=LOGIN)).json()["kkmInfo"]["serialNo"] == till.serial
    recent = (await http.get(f"{base}/get-recent-shifts", params={"days": 1}, auth=LOGIN)).json()
    assert [s["id"] for s in recent] == [second["id"], first["id"]]
    one = (await http.get(f"{base}/shift/{first['id']}", auth=LOGIN)).json()
    assert one["shiftTotals"]["salesByCash"] == 480.0
    assert one["status"] == "CLOSED"
    envelope = (await http.get(f"{base}/shift", params={"count": 1}, auth=LOGIN)).json()
    assert envelope["total_count"] == 2
    assert [s["id"] for s in envelope["data"]] == [second["id"]]
    cashdocs = (await http.get(f"{base}/shift/{first['id']}/cashdoc", auth=LOGIN)).json()
    assert [d["docNum"] for d in cashdocs] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "1",
        "2",
    ]  # no shift documents
    doc = (
        await http.get(f"{base}/shift/{first['id']}/cashdoc/{cashdocs[2]['id']}", auth=LOGIN)
    ).json()
    assert doc == cashdocs[2]

    # A period of exactly the second shift's receipts (with positions), + sent as %2B.
    period = "beginDateTime=ge=2024-05-01T13:00:00+03:00;beginDateTime=lt=2024-05-01T13:21:00+03:00;docType==SALE"
    found = (await http.get(f"{base}/cashdocs", params={"q": period}, auth=LOGIN)).json()
    assert [d["id"] for d in found["data"]] == [d["id"] for d in docs2[1:4]]
    assert found["data"][0]["inventPositions"][0]["name"] == "Хлеб"
    raw_plus = (
        f"{base}/cashdocs?q=beginDateTime=ge=2024-05-01T10:00:00+00:00"  # + unencoded: a space
    )
    assert (await http.get(raw_plus, auth=LOGIN)).json()["total_count"] == 7
    quick = (
        await http.get(f"{base}/cashdocs", params={"q": ':quickSearch="сыр"'}, auth=LOGIN)
    ).json()
    assert quick["total_count"] == 2
    desc = (
        await http.get(f"{base}/cashdocs", params={"sortDirection": "desc", "count": 1}, auth=LOGIN)
    ).json()
    assert desc["data"][0]["id"] == docs2[-2]["id"]
    assert desc["total_count"] == 14
    linked = (
        await http.get(
            f"{base}/cashdocs", params={"count": 1, "q": f"linkedDocId=={uuid.uuid4()}"}, auth=LOGIN
        )
    ).json()
    assert linked == {"data": [], "pos": 0, "total_count": 0}
    bad = await http.get(f"{base}/cashdocs", params={"q": "total==5"}, auth=LOGIN)
    assert bad.status_code == 400
    assert bad.json()["status"] == 400
    money = (await http.get(f"{base}/moneydocs", auth=LOGIN)).json()
    assert [d["docType"] for d in money["data"]] == ["CASH_IN", "CASH_OUT"] * 2

    # «Выгрузить за период» over both shifts = the two shifts' reports added up.
    response = await http.post(
        f"{CABINET}/retail-points/{point.id}/feeds/onec/export",
        json={"from": "2024-05-01T09:00:00+00:00", "to": "2024-05-01T11:00:00+00:00"},
    )
    assert response.status_code == 200, response.text
    export = response.json()["payload"]
    shifts = [
        r["payload"]
        for r in (await feeds(http, point, integration="onec"))["data"]
        if r["kind"] == "shift"
    ]
    assert len(shifts) == 2
    assert export["cash"] == sum(s["cash"] for s in shifts) == 960.0
    assert export["card"] == sum(s["card"] for s in shifts)
    bread = next(p for p in export["sales"] if p["name"] == "Хлеб")
    assert (bread["quantity"], bread["sum"]) == (4.0, 200.0)


async def test_cashdocs_of_the_external_shift_are_the_orders(
    http: httpx.AsyncClient, owned: Point
) -> None:
    """``cashdocs?q=shift.id==":external"`` lists the orders as cash documents (O10)."""
    point = owned
    pair = (
        await http.post(f"{CABINET}/retail-points/{point.id}/services/orders/credentials")
    ).json()
    auth = (pair["login"], pair["password"])
    order = {
        "documentNumber": "51234",
        "documentType": "SALE",
        "documentDateTime": "2024-05-01T12:00:00+0300",
        "inventPositions": [
            {
                "name": "Нитки",
                "measure": "pcs",
                "inventoryType": "INVENTORY",
                "quantity": 2,
                "price": 150,
            }
        ],
    }
    created = await http.post(f"/api/v2/retail-point/{point.id}/order", json=order, auth=auth)
    assert created.status_code == 200, created.text
    base = f"/api/v1/retail-point/{point.id}/cashdocs"
    external = (await http.get(base, params={"q": 'shift.id==":external"'}, auth=LOGIN)).json()
    assert external["total_count"] == 1
    assert external["data"][0]["id"] == created.json()["id"]
    assert external["data"][0]["shift"] == {"id": ":external"}
    assert (await http.get(base, auth=LOGIN)).json()["total_count"] == 0  # no receipt yet
    lookup = await http.get(
        base, params={"count": 1, "q": f"linkedDocId=={created.json()['id']}"}, auth=LOGIN
    )
    assert lookup.json() == {"data": [], "pos": 0, "total_count": 0}
