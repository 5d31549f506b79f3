"""The cabinet API: retail points, flags, credentials, document lists, detail, errors, token."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from cloud_helpers import FakeShop, Point, assert_message, make_point, minimal_doc, post_doc

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.clock import ManualClock

CABINET = "/api/cabinet/v1"


async def test_retail_point_crud(http: httpx.AsyncClient) -> None:
    created = await http.post(
        f"{CABINET}/retail-points",
        json={
            "id": "1e12bbc3-c2c4-446a-b9cd-f712a8fce985",
            "name": "Shop",
            "address": "Moscow",
            "inn": "772740120912",
            "pickupWindow": "5min",
            "defaultTaxMode": "SIMPLIFIED",
        },
    )
    assert created.status_code == 200
    point = created.json()
    assert point["id"] == "1e12bbc3-c2c4-446a-b9cd-f712a8fce985"
    assert point["internetDocsEnabled"] is True
    assert point["stopOnErrors"] is False
    assert point["duplicatePolicy"] == "replay"
    assert point["fnState"] == "ASSOCIATED"
    again = await http.post(f"{CABINET}/retail-points", json={"id": point["id"], "name": "X"})
    assert_message(again, 409)
    shown = await http.get(f"{CABINET}/retail-points/{point['id']}")
    assert shown.json()["defaultTaxMode"] == "SIMPLIFIED"
    changed = await http.patch(
        f"{CABINET}/retail-points/{point['id']}", json={"name": "New", "pickupWindow": "3days"}
    )
    assert changed.json()["name"] == "New"
    assert changed.json()["address"] == "Moscow"
    assert changed.json()["pickupWindow"] == "3days"
    listed = await http.get(f"{CABINET}/retail-points")
    assert [p["id"] for p in listed.json()] == [point["id"]]
    deleted = await http.delete(f"{CABINET}/retail-points/{point['id']}")
    assert deleted.status_code == 204
    assert_message(await http.get(f"{CABINET}/retail-points/{point['id']}"), 404)
    assert (await http.get(f"{CABINET}/retail-points")).json() == []


async def test_retail_point_validation(http: httpx.AsyncClient) -> None:
    cases = [
        ({"name": ""}, "name:"),
        ({"address": "x"}, "name: Field required"),
        ({"name": "x", "inn": "123"}, "inn:"),
        ({"name": "x", "pickupWindow": "1h"}, "pickupWindow:"),
        ({"name": "x", "defaultTaxMode": "USN"}, "defaultTaxMode:"),
        ({"name": "x", "id": "not-a-uuid"}, "id: must be a UUID"),
        ({"name": "x", "accountId": "nobody"}, "Account not found: nobody"),
        ({"name": "x", "colour": "red"}, "colour:"),
    ]
    for body, start in cases:
        response = await http.post(f"{CABINET}/retail-points", json=body)
        assert response.status_code in (400, 404), (body, response.text)
        assert response.json()["message"].startswith(start), response.json()
    missing = "3769574b-d082-4fe2-8cf0-dee21f9a7e0f"
    assert_message(await http.patch(f"{CABINET}/retail-points/{missing}", json={}), 404)
    assert_message(await http.post(f"{CABINET}/retail-points/{missing}/credentials"), 404)
    assert_message(await http.delete(f"{CABINET}/retail-points/{missing}"), 404)


async def test_accounts(http: httpx.AsyncClient) -> None:
    created = await http.post(f"{CABINET}/accounts", json={"id": "a1", "name": "A"})
    assert created.json()["id"] == "a1"
    assert_message(await http.post(f"{CABINET}/accounts", json={"id": "a1", "name": "A"}), 409)
    half = await http.post(f"{CABINET}/accounts", json={"name": "B", "login": "b@example.com"})
    assert_message(half, 400, "login: login and password go together")
    ids = [a["id"] for a in (await http.get(f"{CABINET}/accounts")).json()]
    assert ids == ["default", "a1"]


async def test_document_list_filters(
    http: httpx.AsyncClient, point: Point, clock: ManualClock
) -> None:
    other = await make_point(http)
    first = minimal_doc()
    await post_doc(http, point, first)
    await clock.advance(timedelta(hours=1))
    second = minimal_doc()
    await post_doc(http, point, second)
    third = minimal_doc()
    await post_doc(http, other, third)

    async def ids(**params: str | int) -> list[str]:
        response = await http.get(f"{CABINET}/documents", params=params)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()]

    assert await ids() == [first["id"], second["id"], third["id"]]
    assert await ids(retailPointId=point.id) == [first["id"], second["id"]]
    assert await ids(since="2024-05-01T09:30:00+00:00") == [second["id"], third["id"]]
    assert await ids(until="2024-05-01T09:30:00Z") == [first["id"]]
    assert await ids(status="QUEUED", limit=1, offset=1) == [second["id"]]
    assert await ids(status="FAILED") == []
    assert await ids(id=third["id"]) == [third["id"]]
    with_history = await http.get(f"{CABINET}/documents", params={"history": "true", "limit": 1})
    assert with_history.json()[0]["history"][0]["event"] == "accepted"
    bad = await http.get(f"{CABINET}/documents", params={"status": "LOST"})
    assert_message(bad, 400, "status: unsupported value LOST")
    naive = await http.get(f"{CABINET}/documents", params={"since": "2024-05-01T09:00:00"})
    assert_message(naive, 400, "since: needs a UTC offset")
    assert_message(await http.get(f"{CABINET}/documents", params={"since": "yesterday"}), 400)


async def test_document_actions_on_unknown_or_wrong_status(
    http: httpx.AsyncClient, point: Point
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    base = f"{CABINET}/retail-points/{point.id}/documents"
    assert_message(await http.get(f"{base}/nope"), 404, "Document not found: nope")
    assert_message(await http.post(f"{base}/nope/redrive"), 404)
    assert_message(await http.post(f"{base}/{doc['id']}/redrive"), 400)
    assert_message(
        await http.post(f"{base}/{doc['id']}/mark-done"),
        400,
        f"Document {doc['id']} is QUEUED, only FAILED documents can be marked done",
    )
    detail = (await http.get(f"{base}/{doc['id']}")).json()
    assert detail["storeStatus"]["status"] == "QUEUED"
    assert detail["ofd"] == {"state": "not_sent", "changedAt": None}
    assert detail["errorDetail"] is None
    assert detail["history"] == [
        {
            "at": "2024-05-01T09:00:00+00:00",
            "status": "QUEUED",
            "statusText": "В очереди",
            "event": "accepted",
            "detail": {"clientId": "", "route": "v2"},
        }
    ]


async def test_cabinet_token_is_enforced(db_path: Path, clock: ManualClock, shop: FakeShop) -> None:
    settings = CloudSettings(password_iterations=1000, cabinet_token="s3cret")  # noqa: S106 - a test token
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            assert_message(await http.get(f"{CABINET}/retail-points"), 401)
            wrong = await http.get(
                f"{CABINET}/retail-points", headers={"Authorization": "Bearer nope"}
            )
            assert_message(wrong, 401)
            right = await http.get(
                f"{CABINET}/retail-points", headers={"Authorization": "Bearer s3cret"}
            )
            assert right.status_code == 200
