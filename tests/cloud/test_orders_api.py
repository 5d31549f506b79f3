"""The orders API, its v1 façade, the tills' order calls and the shop's callback (§5 checks 1–9).

In process over ASGI with a manual clock and a fake shop; the courier's real till and the cloud
on a real port are in ``tests/till/test_orders_till.py``.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cloud_helpers import FakeShop, FakeTill, make_point

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.orders_ops import orders_key
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery

if TYPE_CHECKING:
    from cloud_helpers import Point

    from kkt_emulator.cloud.settings import CloudSettings

CABINET = "/api/cabinet/v1"

# orders-and-backoffice.md §4.1: the request as DS sends it.
DS_ORDER: dict[str, Any] = {
    "documentNumber": "51234",
    "documentType": "SALE",
    "documentDateTime": "2024-05-01T12:00:00+0300",
    "customerContact": "+79161234567",
    "clientInformation": {"name": "Иван"},
    "prepaid": False,
    "inventPositions": [
        {
            "name": "Нитки",
            "measure": "pcs",
            "inventoryType": "INVENTORY",
            "quantity": 2,
            "price": 150,
        },
        {
            "name": "Доставка",
            "measure": "other",
            "inventoryType": "SERVICE",
            "quantity": 1,
            "price": "300",
        },
    ],
}
ORDER_KEYS = {
    "id",
    "remoteId",
    "documentNumber",
    "documentType",
    "documentDateTime",
    "customerContact",
    "responseURL",
    "description",
    "checkComment",
    "checkCommentChanged",
    "agentInformation",
    "clientInformation",
    "totalSum",
    "inventPositions",
}


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(DS_ORDER)
    body.update(changes)
    return body


class Desk:
    """A retail point with an orders pair, and the calls a shop makes."""

    def __init__(self, http: httpx.AsyncClient, point: Point, pair: tuple[str, str]) -> None:
        self.http = http
        self.point = point
        self.pair = pair

    @property
    def base(self) -> str:
        return f"/api/v2/retail-point/{self.point.id}/order"

    async def create(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.http.post(self.base, json=body, auth=kwargs.get("auth", self.pair))

    async def created(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.create(body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


async def _desk(http: httpx.AsyncClient) -> Desk:
    point = await make_point(http)
    creds = await http.post(f"{CABINET}/retail-points/{point.id}/services/orders/credentials")
    return Desk(http, point, (creds.json()["login"], creds.json()["password"]))


@pytest.fixture
async def desk(http: httpx.AsyncClient) -> Desk:
    return await _desk(http)


def assert_spring(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["error"] == error
    assert {"timestamp", "status", "error", "message", "path"} <= set(body)
    return body


# -- check 1: create and read -----------------------------------------------------------------------


async def test_create_answers_the_full_order_and_get_returns_it(desk: Desk) -> None:
    created = await desk.created(order())
    uuid.UUID(created["id"])
    assert set(created) == ORDER_KEYS
    assert "prepaid" not in created
    assert created["documentDateTime"] == "2024-05-01T12:00:00+03:00"
    assert created["totalSum"] == 600.0
    assert [p["posSum"] for p in created["inventPositions"]] == [300.0, 300.0]
    assert created["inventPositions"][1]["price"] == 300.0
    assert created["clientInformation"] == {"name": "Иван", "inn": None, "documentNumber": None}
    assert created["checkCommentChanged"] is False
    assert created["responseURL"] is None
    first = created["inventPositions"][0]
    assert first["vatTag"] is None
    assert first["minPrice"] is None
    read = await desk.http.get(f"{desk.base}/{created['id']}", auth=desk.pair)
    assert read.status_code == 200
    assert read.json() == created


async def test_client_sums_and_id_are_ignored(desk: Desk) -> None:
    created = await desk.created(
        order(
            id="mine",
            totalSum=1,
            remoteId=77,
            responsURL="https://shop/cb",
            inventPositions=[
                {
                    "name": "A",
                    "measure": "kg",
                    "quantity": "0.333",
                    "price": 10.01,
                    "posSum": 1,
                    "vatTag": "1102",
                }
            ],
        )
    )
    assert created["id"] != "mine"
    assert created["totalSum"] == 3.33  # round(10.01 × 0.333, 2)
    assert created["inventPositions"][0]["vatTag"] == 1102
    assert created["remoteId"] == "77"
    assert created["responseURL"] == "https://shop/cb"


# -- check 2: duplicates ----------------------------------------------------------------------------


async def test_duplicate_number_is_409_until_the_order_is_deleted(desk: Desk) -> None:
    first = await desk.created(order())
    again = await desk.create(order(customerContact="a@b.ru"))
    body = assert_spring(again, 409, "Conflict")
    assert body["message"] == "object-already-exists"
    assert body["path"] == f"/v2/retail-point/{desk.point.id}/order"
    deleted = await desk.http.delete(f"{desk.base}/{first['id']}", auth=desk.pair)
    assert deleted.status_code == 200
    assert deleted.content == b""
    assert (await desk.http.get(f"{desk.base}/{first['id']}", auth=desk.pair)).status_code == 404
    assert (await desk.http.delete(f"{desk.base}/{first['id']}", auth=desk.pair)).status_code == 404
    second = await desk.created(order())
    assert second["id"] != first["id"]


# -- check 3: validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"customerContact": "+375298882111"}, "customerContact", "Contact"),
        ({"documentNumber": None}, "documentNumber", "NotNull"),
        ({"documentType": "BUY"}, "documentType", "InvalidFormat"),
        ({"documentDateTime": "2024-05-01T12:00:00"}, "documentDateTime", "typeMismatch"),
        ({"inventPositions": []}, "inventPositions", "NotEmpty"),
        (
            {"inventPositions": [{"name": "A", "quantity": 1, "price": 1}]},
            "inventPositions[0].measure",
            "NotNull",
        ),
        (
            {"inventPositions": [{"name": "A", "measure": "pcs", "quantity": 0, "price": 1}]},
            "inventPositions[0].quantity",
            "Positive",
        ),
        (
            {"inventPositions": [{"name": "A", "measure": "pcs", "quantity": 1, "price": -1}]},
            "inventPositions[0].price",
            "DecimalMin",
        ),
        (
            {
                "inventPositions": [
                    {"name": "A", "measure": "pcs", "quantity": 1, "price": 1, "vatTag": 1109}
                ]
            },
            "inventPositions[0].vatTag",
            "InvalidFormat",
        ),
        (
            {"inventPositions": [{"measure": "pcs", "quantity": 1, "price": 1}]},
            "inventPositions[0].name",
            "NotNull",
        ),
        (
            {
                "inventPositions": [
                    {
                        "name": "A",
                        "measure": "pcs",
                        "quantity": 1,
                        "price": 1,
                        "originCountryCode": "6430",
                    }
                ]
            },
            "inventPositions[0].originCountryCode",
            "Pattern",
        ),
        (
            {"agentInformation": {"tags": ["PAY_AGENT"], "paymentAgentPhone": "12345"}},
            "agentInformation.paymentAgentPhone",
            "Pattern",
        ),
    ],
)
async def test_validation_names_the_field(
    desk: Desk, change: dict[str, Any], field: str, code: str
) -> None:
    body = assert_spring(await desk.create(order(**change)), 400, "Bad Request")
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["code"] == code
    assert body["errors"][0]["objectName"] == "orderDto"
    assert (
        body["message"]
        == f"Validation failed for object='orderDto'. Error count: {len(body['errors'])}"
    )
    listed = await desk.http.get(desk.base, auth=desk.pair)
    assert listed.json()["total_count"] == 0  # a refused request stores nothing


async def test_the_real_ds_400_and_offsets(desk: Desk) -> None:
    body = assert_spring(
        await desk.create(order(customerContact="+375298882111")), 400, "Bad Request"
    )
    assert body["errors"] == [
        {
            "defaultMessage": "Переданное значение не соответствует допустимому формату",
            "rejectedValue": "+375298882111",
            "code": "Contact",
            "objectName": "orderDto",
            "field": "customerContact",
        }
    ]
    assert body["message"] == "Validation failed for object='orderDto'. Error count: 1"
    for stamp, shown in (
        ("2024-05-01T12:00:00+03:00", "2024-05-01T12:00:00+03:00"),
        ("2024-05-01T09:00:00Z", "2024-05-01T09:00:00+00:00"),
        ("2024-05-01T12:00:00+0300", "2024-05-01T12:00:00+03:00"),
    ):
        created = await desk.created(order(documentNumber=stamp, documentDateTime=stamp))
        assert created["documentDateTime"] == shown
    broken = await desk.http.post(desk.base, content=b"{not json", auth=desk.pair)
    assert_spring(broken, 400, "Bad Request")


# -- check 4: auth ----------------------------------------------------------------------------------


async def test_auth_verdicts_on_the_orders_api(http: httpx.AsyncClient, desk: Desk) -> None:
    assert_spring(await desk.create(order(), auth=(desk.pair[0], "wrong")), 401, "Unauthorized")
    body = assert_spring(await desk.create(order(), auth=desk.point.service), 403, "Forbidden")
    assert body["message"] == "У пользователя недостаточно прав для работы с заказами"
    unknown = f"/api/v2/retail-point/{uuid.uuid4()}/order"
    body = assert_spring(await http.post(unknown, json=order(), auth=desk.pair), 404, "Not Found")
    assert body["message"] == "Точка продаж не найдена"
    await http.post(
        f"{CABINET}/accounts",
        json={"id": "other", "name": "O", "login": "boss@shop.ru", "password": "pw"},
    )
    other = await make_point(http, accountId="other")
    elsewhere = f"/api/v2/retail-point/{other.id}/order"
    assert_spring(await http.post(elsewhere, json=order(), auth=desk.pair), 403, "Forbidden")
    by_login = await http.post(elsewhere, json=order(), auth=("boss@shop.ru", "pw"))
    assert by_login.status_code == 200
    new = await http.post(f"{CABINET}/retail-points/{desk.point.id}/services/orders/credentials")
    assert_spring(await desk.create(order()), 401, "Unauthorized")  # the old pair is gone
    pair = (new.json()["login"], new.json()["password"])
    assert (await desk.create(order(), auth=pair)).status_code == 200
    # nothing stored by the refused requests: one order at the point, one at the other's
    assert (await http.get(desk.base, auth=pair)).json()["total_count"] == 1


# -- check 5: list ----------------------------------------------------------------------------------


async def test_list_pages_and_leaves_deleted_out(desk: Desk) -> None:
    ids = [(await desk.created(order(documentNumber=str(n))))["id"] for n in range(5)]
    await desk.http.delete(f"{desk.base}/{ids[1]}", auth=desk.pair)
    page = (await desk.http.get(desk.base, params={"start": 1, "count": 2}, auth=desk.pair)).json()
    assert page["pos"] == 1
    assert page["total_count"] == 4
    assert [o["id"] for o in page["data"]] == [ids[2], ids[3]]
    everything = (await desk.http.get(desk.base, auth=desk.pair)).json()
    assert [o["id"] for o in everything["data"]] == [ids[0], ids[2], ids[3], ids[4]]
    bad = await desk.http.get(desk.base, params={"count": 0}, auth=desk.pair)
    assert_spring(bad, 400, "Bad Request")


# -- check 6: tills, claims, PUT and DELETE in payment ----------------------------------------------


async def _sync(till: FakeTill, since: int = 0, wait: float = 0) -> dict[str, Any]:
    response = await till.http.get(
        "/api/device/v1/orders", params={"since": since, "wait": wait}, headers=till.headers
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_two_tills_claim_put_and_delete(desk: Desk) -> None:
    one = await FakeTill(desk.http, desk.point).bind()
    two = await FakeTill(desk.http, desk.point).bind()
    created = await desk.created(order())
    seen = await _sync(one)
    assert [o["id"] for o in seen["orders"]] == [created["id"]]
    assert seen["orders"][0]["state"] == "ON_TILL"
    assert seen["orders"][0]["order"] == created
    assert (await _sync(two))["orders"][0]["claimedBy"] is None
    nothing = await _sync(one, seen["rev"])
    assert nothing == {"rev": seen["rev"], "orders": []}

    url = f"/api/device/v1/orders/{created['id']}"
    claimed = await desk.http.post(f"{url}/claim", headers=one.headers)
    assert claimed.status_code == 200
    assert claimed.json()["claimedByMe"] is True
    again = await desk.http.post(f"{url}/claim", headers=one.headers)
    assert again.status_code == 200  # a repeated claim after a lost answer
    assert (await desk.http.post(f"{url}/claim", headers=two.headers)).status_code == 409
    assert (await desk.http.post(f"{url}/release", headers=two.headers)).status_code == 409
    change = await _sync(two, seen["rev"])
    assert change["orders"][0]["state"] == "IN_PAYMENT"
    assert change["orders"][0]["claimedBy"] == one.device_id

    put = await desk.http.put(
        desk.base, json=order(id=created["id"], checkComment="x"), auth=desk.pair
    )
    body = assert_spring(put, 400, "Bad Request")
    assert body["message"] == "Заказ уже проводится или проведён на кассе"

    released = await desk.http.post(f"{url}/release", headers=one.headers)
    assert released.json()["state"] == "ON_TILL"
    put = await desk.http.put(
        desk.base, json=order(id=created["id"], checkComment="x"), auth=desk.pair
    )
    assert put.status_code == 200, put.text
    assert put.json()["checkCommentChanged"] is True
    assert (await _sync(two, change["rev"]))["orders"][0]["order"]["checkComment"] == "x"

    assert (await desk.http.post(f"{url}/claim", headers=two.headers)).status_code == 200
    deleted = await desk.http.delete(f"{desk.base}/{created['id']}", auth=desk.pair)
    assert deleted.status_code == 200
    gone = await _sync(one, change["rev"])
    assert gone["orders"][-1] == {"id": created["id"], "rev": gone["rev"], "state": "DELETED"}
    # the till that held the claim still gets its receipt into the cloud (O6)
    service = _service(desk)
    assert service.order_receipt_stored(desk.point.id, created["id"], {"qr": "t=1"}) is True
    assert service.order_receipt_stored(desk.point.id, created["id"], {"qr": "t=2"}) is False


async def test_put_rules(desk: Desk) -> None:
    a = await desk.created(order(documentNumber="A"))
    await desk.created(order(documentNumber="B"))
    missing = await desk.http.put(desk.base, json=order(documentNumber="A"), auth=desk.pair)
    assert assert_spring(missing, 400, "Bad Request")["errors"][0]["field"] == "id"
    unknown = await desk.http.put(desk.base, json=order(id=str(uuid.uuid4())), auth=desk.pair)
    assert_spring(unknown, 404, "Not Found")
    taken = await desk.http.put(
        desk.base, json=order(id=a["id"], documentNumber="B"), auth=desk.pair
    )
    assert_spring(taken, 409, "Conflict")
    same = await desk.http.put(
        desk.base, json=order(id=a["id"], documentNumber="A"), auth=desk.pair
    )
    assert same.status_code == 200
    assert same.json()["checkCommentChanged"] is False


async def test_long_poll_is_woken_by_a_new_order(desk: Desk, cloud: Cloud) -> None:
    till = await FakeTill(desk.http, desk.point).bind()
    rev = (await _sync(till))["rev"]
    waiting = asyncio.ensure_future(_sync(till, rev, wait=25))
    for _ in range(50):
        await asyncio.sleep(0)
        if cloud.notifier.waiting.get(orders_key(desk.point.id)):
            break
    assert cloud.notifier.waiting.get(orders_key(desk.point.id)) == 1
    created = await desk.created(order())
    answer = await asyncio.wait_for(waiting, 10)
    assert [o["id"] for o in answer["orders"]] == [created["id"]]


# -- check 8: the callback --------------------------------------------------------------------------


def _service(desk: Desk) -> Any:
    return desk.http._transport.app.state.service  # type: ignore[attr-defined]


async def test_callback_after_the_first_receipt_retried_until_200(
    desk: Desk, cloud: Cloud, clock: ManualClock, shop: FakeShop
) -> None:
    created = await desk.created(order(responseURL="https://shop.example/done?order=51234"))
    await cloud.wait_idle()
    assert shop.requests == []  # nothing before the receipt
    shop.statuses = [500, 503]
    assert cloud.service.order_receipt_stored(
        desk.point.id, created["id"], {"qr": "t=20240501T1041&s=600.00"}
    )
    await cloud.wait_idle()
    assert len(shop.requests) == 1
    first = shop.requests[0]
    assert first.method == "GET"
    assert str(first.url) == (
        "https://shop.example/done?order=51234&status=SUCCESS&qr=t%3D20240501T1041%26s%3D600.00"
    )
    await clock.advance(timedelta(minutes=1))  # D44: +1 min
    await cloud.wait_idle()
    assert len(shop.requests) == 2
    await clock.advance(timedelta(minutes=2))  # +3 min
    await cloud.wait_idle()
    assert len(shop.requests) == 3  # the 200
    await clock.advance(timedelta(hours=5))
    await cloud.wait_idle()
    assert len(shop.requests) == 3  # delivered: never again
    # a second receipt for the same order calls nobody
    assert not cloud.service.order_receipt_stored(desk.point.id, created["id"], {"qr": "x"})
    await cloud.wait_idle()
    assert len(shop.requests) == 3
    shown = (await desk.http.get(f"{CABINET}/retail-points/{desk.point.id}/orders")).json()
    assert shown[0]["state"] == "FISCALIZED"
    assert shown[0]["callback"] == {"attempts": 3, "nextAt": None, "lastError": None}
    read = await desk.http.get(f"{desk.base}/{created['id']}", auth=desk.pair)
    assert read.json() == created  # O9: the unchanged Order


async def test_callback_survives_a_restart(
    tmp_path: Any, settings: CloudSettings, clock: ManualClock
) -> None:
    """Scheduled with the receipt: a cloud stopped before the attempt makes it after its start."""
    db = tmp_path / "cloud.db"
    shop = FakeShop()
    async with Cloud(db, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            desk = await _desk(http)
            created = await desk.created(order(responseURL="http://shop/cb"))
        shop.fail_with = httpx.ConnectError("down")
        cloud.service.order_receipt_stored(desk.point.id, created["id"], {"qr": "q"})
        await cloud.wait_idle()
    assert len(shop.requests) == 1
    shop.fail_with = None
    async with Cloud(db, clock, settings, callback_transport=shop.transport) as cloud:
        await clock.advance(timedelta(minutes=1))
        await cloud.wait_idle()
        await clock.advance(timedelta(hours=2))
        await cloud.wait_idle()
    assert len(shop.requests) == 2
    assert str(shop.requests[1].url) == "http://shop/cb?status=SUCCESS&qr=q"


# -- check 9: the v1 façade -------------------------------------------------------------------------

SC_CASHDOC: dict[str, Any] = {
    "id": "sc-1",
    "docNum": "1001",
    "docType": "SALE",
    "status": "OPENED",
    "beginDateTime": "2024-05-01T12:00:00+03:00",
    "inventPositions": [
        {
            "inventCode": "42",
            "name": "Чай",
            "quantity": 2,
            "price": 100,
            "posSum": 999,
            "measure": "pcs",
            "type": "MAIN",
            "vatTag": 0,
        }
    ],
    "baseSum": 200,
    "actualSum": 200,
    "moneyPositions": [{"paymentType": "CASH", "sum": 200}],
    "description": "Курьером",
}


async def test_external_cashdoc_facade(desk: Desk) -> None:
    v1 = f"/api/v1/retail-point/{desk.point.id}"
    first = await desk.http.get(f"{v1}/next-extdoc-docnum", auth=desk.pair)
    assert first.json() == 1
    posted = await desk.http.post(f"{v1}/shift/:external/cashdoc", json=SC_CASHDOC, auth=desk.pair)
    assert posted.status_code == 200, posted.text
    doc = posted.json()
    assert doc["shift"] == {"id": ":external"}
    assert doc["status"] == "OPENED"
    assert doc["actualSum"] == 200.0
    assert doc["inventPositions"][0]["posSum"] == 200.0
    assert doc["inventPositions"][0]["vatTag"] is None
    assert (await desk.http.get(f"{v1}/next-extdoc-docnum", auth=desk.pair)).json() == 1002
    dup = await desk.http.post(f"{v1}/shift/:external/cashdoc", json=SC_CASHDOC, auth=desk.pair)
    assert assert_spring(dup, 409, "Conflict")["message"] == "object-already-exists"
    listed = (await desk.http.get(desk.base, auth=desk.pair)).json()
    assert [o["id"] for o in listed["data"]] == [doc["id"]]
    assert listed["data"][0]["documentNumber"] == "1001"
    assert listed["data"][0]["description"] == "Курьером"
    external = (await desk.http.get(f"{v1}/shift/:external/cashdoc", auth=desk.pair)).json()
    assert external["total_count"] == 1
    assert external["data"][0]["status"] == "OPENED"
    _service(desk).order_receipt_stored(desk.point.id, doc["id"], {"qr": "q"})
    one = await desk.http.get(f"{v1}/shift/:external/cashdoc/{doc['id']}", auth=desk.pair)
    assert one.json()["status"] == "CLOSED"
    gone = await desk.http.delete(f"{v1}/shift/:external/cashdoc/{doc['id']}", auth=desk.pair)
    assert gone.status_code == 200
    assert (
        await desk.http.get(f"{v1}/shift/:external/cashdoc/{doc['id']}", auth=desk.pair)
    ).status_code == 404


async def test_orders_on_postgresql_and_sqlite(any_db: str, settings: CloudSettings) -> None:
    """The table on both backends: create, duplicate, sync, claim, receipt, callback (D73)."""
    clock = ManualClock()
    shop = FakeShop()
    async with Cloud(any_db, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            desk = await _desk(http)
            created = await desk.created(order(responseURL="http://shop/cb"))
            assert (await desk.create(order())).status_code == 409
            till = await FakeTill(http, desk.point).bind()
            synced = await _sync(till)
            assert synced["orders"][0]["id"] == created["id"]
            url = f"/api/device/v1/orders/{created['id']}/claim"
            assert (await http.post(url, headers=till.headers)).status_code == 200
            assert cloud.service.order_receipt_stored(desk.point.id, created["id"], {"qr": "q"})
            await cloud.wait_idle()
            assert len(shop.requests) == 1
            listed = (await http.get(desk.base, auth=desk.pair)).json()
            assert listed["total_count"] == 1


async def test_an_uploaded_receipt_fiscalises_the_order_and_calls_back(
    desk: Desk, cloud: Cloud, shop: FakeShop
) -> None:
    """The receipt comes through the till's upload queue (B7) with ``linkedDocId`` (O7, O9)."""
    created = await desk.created(order(responseURL="http://shop/cb?id=7"))
    till = await FakeTill(desk.http, desk.point).bind()
    claim = f"/api/device/v1/orders/{created['id']}/claim"
    assert (await desk.http.post(claim, headers=till.headers)).status_code == 200
    lookup = CashDocQuery(desk.point.id, linked_doc_id=created["id"])
    assert cloud.storage.list_cashdocs(lookup)[1] == 0  # before: total_count 0 (O9)
    shift = {"id": str(uuid.uuid4()), "shiftNum": 1}
    receipt = {
        "id": str(uuid.uuid4()),
        "docNum": "17",
        "docType": "SALE",
        "status": "CLOSED",
        "beginDateTime": "2024-05-01T10:41:07+00:00",
        "shift": shift,
        "linkedDocId": created["id"],
        "actualSum": 600.0,
        "moneyPositions": [{"paymentType": "CASH", "sum": 1000.0}],
        "change": 400.0,
        "fiscalInfo": {"qr": "t=20240501T1041&s=600.00", "fnDocNumber": 342},
    }
    counter_sale = {**receipt, "id": str(uuid.uuid4()), "docNum": "18", "linkedDocId": None}
    url = "/api/device/v1/cashdocs"
    for _ in range(2):  # the second upload is the till's retry: a duplicate, nothing again
        sent = await desk.http.post(
            url, headers=till.headers, json={"documents": [receipt, counter_sale]}
        )
        assert sent.status_code == 200, sent.text
        await cloud.wait_idle()
    assert [str(r.url) for r in shop.requests] == [
        "http://shop/cb?id=7&status=SUCCESS&qr=t%3D20240501T1041%26s%3D600.00"
    ]
    found, total = cloud.storage.list_cashdocs(lookup)
    assert total == 1
    assert found[0].document["fiscalInfo"]["fnDocNumber"] == 342
    state = (await desk.http.get(f"{CABINET}/retail-points/{desk.point.id}/orders")).json()
    assert state[0]["state"] == "FISCALIZED"
    assert state[0]["receipt"]["id"] == receipt["id"]
    synced = await _sync(till)
    assert synced["orders"][0]["state"] == "FISCALIZED"
