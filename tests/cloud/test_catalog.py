"""Catalogues of a retail point over the back-office API and the till API (B8, B15, B16; §5 check 14)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import FakeTill, make_point

if TYPE_CHECKING:
    import httpx
    from cloud_helpers import Point

CABINET = "/api/cabinet/v1"


def batch(*commands: dict[str, Any]) -> str:
    body = "\n---\n".join(json.dumps(c, ensure_ascii=False) for c in commands)
    return f"### data begin ###\n{body}\n### data end ###\n"


def item(code: str, name: str, price: float, **extra: Any) -> dict[str, Any]:
    return {
        "command": "add",
        "entity": {
            "catalogType": "INVENTORY",
            "inventCode": code,
            "name": name,
            "price": price,
            **extra,
        },
    }


@pytest.fixture
async def owned(http: httpx.AsyncClient) -> tuple[Point, tuple[str, str]]:
    response = await http.post(
        f"{CABINET}/accounts",
        json={
            "id": "acc-cat",
            "name": "Каталог",
            "login": "cat@example.com",
            "password": "secret-1",
        },
    )
    assert response.status_code == 200, response.text
    point = await make_point(http, accountId="acc-cat")
    return point, ("cat@example.com", "secret-1")


async def changes(
    http: httpx.AsyncClient, point: Point, auth: tuple[str, str], text: str
) -> httpx.Response:
    return await http.post(
        f"/api/v1/retail-point/{point.id}/catalog-changes",
        content=text.encode(),
        headers={"Content-Type": "text/plain"},
        auth=auth,
    )


async def inventory(
    http: httpx.AsyncClient, point: Point, auth: tuple[str, str], **params: Any
) -> dict[str, Any]:
    response = await http.get(
        f"/api/v1/retail-point/{point.id}/catalog/INVENTORY", params=params, auth=auth
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_clear_and_add_replace_the_inventory_catalogue(
    http: httpx.AsyncClient, owned: tuple[Point, tuple[str, str]]
) -> None:
    point, auth = owned
    first = await changes(
        http, point, auth, batch(item("001", "Хлеб", 45), item("002", "Молоко", 89.9))
    )
    assert first.status_code == 200, first.text
    assert first.json() == {"revision": 1, "applied": 2}
    listed = await inventory(http, point, auth)
    assert [e["inventCode"] for e in listed["data"]] == ["001", "002"]
    assert listed["pos"] == 0
    assert listed["total_count"] == 2

    second = await changes(
        http,
        point,
        auth,
        batch(
            {"command": "clear", "catalogs": ["INVENTORY"]},
            item("100", "Сыр", 520.5, vatTag="1103"),
        ),
    )
    assert second.status_code == 200, second.text
    listed = await inventory(http, point, auth)
    assert listed["total_count"] == 1
    assert listed["data"][0] == {
        "catalogType": "INVENTORY",
        "inventCode": "100",
        "name": "Сыр",
        "price": 520.5,
        "vatTag": 1103,
    }


async def test_a_malformed_batch_is_refused_naming_its_line_and_changes_nothing(
    http: httpx.AsyncClient, owned: tuple[Point, tuple[str, str]]
) -> None:
    point, auth = owned
    assert (await changes(http, point, auth, batch(item("001", "Хлеб", 45)))).status_code == 200
    text = batch(
        {"command": "clear", "catalogs": ["INVENTORY"]}, item("002", "Молоко", 10)
    ).replace('"price": 10', '"price": -1')
    response = await changes(http, point, auth, text)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Bad Request"
    assert body["message"].startswith("line 4: entity.price")
    listed = await inventory(http, point, auth)
    assert [e["inventCode"] for e in listed["data"]] == ["001"]  # the clear was not applied either

    broken = '### data begin ###\n{"command": "add", \n### data end ###'
    response = await changes(http, point, auth, broken)
    assert response.status_code == 400
    assert response.json()["message"].startswith("line 2:")


async def test_listing_pages_and_other_types(
    http: httpx.AsyncClient, owned: tuple[Point, tuple[str, str]]
) -> None:
    point, auth = owned
    entries = [
        {"catalogType": "INVENTORY", "inventCode": f"{i:03d}", "name": f"Товар {i}", "price": i}
        for i in range(5)
    ]
    response = await http.post(f"/api/v1/retail-point/{point.id}/catalog", json=entries, auth=auth)
    assert response.status_code == 200, response.text
    page = await inventory(http, point, auth, start=2, count=2)
    assert [e["inventCode"] for e in page["data"]] == ["002", "003"]
    assert page["pos"] == 2
    assert page["total_count"] == 5
    cashier = {
        "catalogType": "CONTRACTOR",
        "code": "7",
        "name": "Курьер Петров",
        "locked": False,
        "roles": ["CASHIER"],
    }
    assert (
        await http.put(f"/api/v1/retail-point/{point.id}/catalog", json=cashier, auth=auth)
    ).status_code == 200
    response = await http.get(f"/api/v1/retail-point/{point.id}/catalog/CONTRACTOR", auth=auth)
    assert response.json() == {"data": [cashier], "pos": 0, "total_count": 1}
    assert (
        await http.get(f"/api/v1/retail-point/{point.id}/catalog/NOPE", auth=auth)
    ).status_code == 404
    assert (
        await http.get(
            f"/api/v1/retail-point/{point.id}/catalog/INVENTORY", params={"count": 0}, auth=auth
        )
    ).status_code == 400


async def test_the_back_office_needs_its_credentials(
    http: httpx.AsyncClient, owned: tuple[Point, tuple[str, str]]
) -> None:
    point, auth = owned
    url = f"/api/v1/retail-point/{point.id}/catalog/INVENTORY"
    assert (await http.get(url)).status_code == 401
    assert (await http.get(url, auth=("cat@example.com", "wrong"))).status_code == 401
    assert (await http.get(url, auth=point.service)).status_code == 403  # the shop's pair
    other = await make_point(http)
    assert (
        await http.get(f"/api/v1/retail-point/{other.id}/catalog/INVENTORY", auth=auth)
    ).status_code == 403


async def test_the_till_pulls_what_changed_since_its_revision(
    http: httpx.AsyncClient, owned: tuple[Point, tuple[str, str]]
) -> None:
    point, auth = owned
    till = await FakeTill(http, point).bind()
    assert (await till.heartbeat())["catalogRevision"] == 0
    await changes(http, point, auth, batch(item("001", "Хлеб", 45), item("002", "Молоко", 89.9)))
    assert (await till.heartbeat())["catalogRevision"] == 1
    full = (await http.get("/api/device/v1/catalog", headers=till.headers)).json()
    assert full["revision"] == 1
    assert full["full"] is True
    assert [e["code"] for e in full["entries"]] == ["001", "002"]

    await changes(
        http,
        point,
        auth,
        batch(
            {"command": "delete", "catalogType": "INVENTORY", "inventCode": "001"},
            item("003", "Сыр", 500),
        ),
    )
    delta = (
        await http.get("/api/device/v1/catalog", params={"since": 1}, headers=till.headers)
    ).json()
    assert delta["revision"] == 2
    assert delta["full"] is False
    assert [(e["code"], e["deleted"]) for e in delta["entries"]] == [("001", True), ("003", False)]
    assert delta["entries"][0]["entity"] is None
    unchanged = (
        await http.get("/api/device/v1/catalog", params={"since": 2}, headers=till.headers)
    ).json()
    assert unchanged["entries"] == []
    assert unchanged["revision"] == 2
    assert (await http.get("/api/device/v1/catalog")).status_code == 401
