"""Account services, their generated pairs and the Basic auth of the account-level APIs (O2, B2)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cloud_helpers import make_point
from fastapi import APIRouter, Depends

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.service_auth import (
    BACKOFFICE_FORBIDDEN,
    ORDER_SERVICES,
    ORDERS_FORBIDDEN,
    BackofficePrincipal,
    OrdersPrincipal,
    account_auth,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from cloud_helpers import Point

    from kkt_emulator.cloud.settings import CloudSettings

CABINET = "/api/cabinet/v1"


def _probe_routes(cloud: Cloud) -> None:
    """Two routes guarded like the orders and back-office APIs, for the auth verdicts alone."""
    service = cloud.service
    closure = account_auth(service, ORDER_SERVICES, ORDERS_FORBIDDEN)
    router = APIRouter()

    @router.get("/api/v2/probe/{rp}")
    async def probe_orders(rp: str, who: OrdersPrincipal) -> dict[str, Any]:
        point = service.authorized_point(who, rp)
        return {"account": who.account_id, "service": who.service, "point": point.id}

    @router.get("/api/v1/probe/{rp}")
    async def probe_back(rp: str, who: BackofficePrincipal) -> dict[str, Any]:
        service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
        return {"account": who.account_id, "service": who.service}

    @router.get("/api/v2/closure/{rp}", dependencies=[Depends(closure)])
    async def probe_closure(rp: str) -> dict[str, str]:
        return {"point": rp}

    cloud.app.include_router(router)


@pytest.fixture
async def probed(
    tmp_path: Any, clock: ManualClock, settings: CloudSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with Cloud(tmp_path / "cloud.db", clock, settings) as cloud:
        _probe_routes(cloud)
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            yield client


async def _pair(http: httpx.AsyncClient, point: Point, service: str) -> tuple[str, str]:
    response = await http.post(f"{CABINET}/retail-points/{point.id}/services/{service}/credentials")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service"] == service
    assert re.fullmatch(r"[a-z]{7}@[a-z]{10}", body["login"])  # O11
    return body["login"], body["password"]


def _refused(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert body["status"] == status
    assert body["message"] == message
    assert body["path"].startswith("/v")  # reported without /api (O3)


async def test_orders_pair_cabinet_login_and_refusals(probed: httpx.AsyncClient) -> None:
    http = probed
    point = await make_point(http)
    login, password = await _pair(http, point, "orders")
    url = f"/api/v2/probe/{point.id}"

    ok = await http.get(url, auth=(login, password))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"account": "default", "service": "orders", "point": point.id}

    _refused(await http.get(url), 401, "Запрос не авторизован")
    _refused(await http.get(url, auth=(login, "wrong")), 401, "Запрос не авторизован")
    _refused(await http.get(url, auth=("nobody@nowhere", "x")), 401, "Запрос не авторизован")
    assert (await http.get(url)).headers["www-authenticate"].startswith("Basic")
    # the store API's pair and an fn association are right pairs of no account API: 403
    _refused(await http.get(url, auth=point.service), 403, ORDERS_FORBIDDEN)
    _refused(await http.get(url, auth=point.assoc), 403, ORDERS_FORBIDDEN)
    # a back-office service's pair is refused by the orders API, accepted by the back office
    sklad = await _pair(http, point, "moysklad")
    _refused(await http.get(url, auth=sklad), 403, ORDERS_FORBIDDEN)
    back = await http.get(f"/api/v1/probe/{point.id}", auth=sklad)
    assert back.json() == {"account": "default", "service": "moysklad"}
    assert (await http.get(f"/api/v1/probe/{point.id}", auth=(login, password))).status_code == 200
    closure = f"/api/v2/closure/{point.id}"
    assert (await http.get(closure, auth=(login, password))).status_code == 200
    _refused(await http.get(closure, auth=sklad), 403, ORDERS_FORBIDDEN)

    # unknown or malformed point: 404; the point of another account: 403
    _refused(
        await http.get(
            "/api/v2/probe/2b0e6b1a-0000-4000-8000-000000000000", auth=(login, password)
        ),
        404,
        "Точка продаж не найдена",
    )
    _refused(
        await http.get("/api/v2/probe/not-a-uuid", auth=(login, password)),
        404,
        "Точка продаж не найдена",
    )
    created = await http.post(
        f"{CABINET}/accounts",
        json={"id": "other", "name": "Other", "login": "boss@shop.ru", "password": "s3cret"},
    )
    assert created.status_code == 200, created.text
    other = await make_point(http, accountId="other")
    _refused(
        await http.get(f"/api/v2/probe/{other.id}", auth=(login, password)), 403, ORDERS_FORBIDDEN
    )
    # the cabinet e-mail/password of the other account works for its own point
    mine = await http.get(f"/api/v2/probe/{other.id}", auth=("boss@shop.ru", "s3cret"))
    assert mine.json()["service"] is None
    _refused(await http.get(url, auth=("boss@shop.ru", "s3cret")), 403, ORDERS_FORBIDDEN)


async def test_regenerated_pair_replaces_the_old_and_switch_off_forbids(
    probed: httpx.AsyncClient,
) -> None:
    http = probed
    point = await make_point(http)
    url = f"/api/v2/probe/{point.id}"
    first = await _pair(http, point, "orders")
    second = await _pair(http, point, "orders")
    assert first[0] != second[0]
    _refused(await http.get(url, auth=first), 401, "Запрос не авторизован")
    assert (await http.get(url, auth=second)).status_code == 200

    listed = (await http.get(f"{CABINET}/accounts/default/services")).json()
    orders = next(s for s in listed if s["service"] == "orders")
    assert orders == {
        "service": "orders",
        "title": "Заказы (выдача/доставка)",
        "enabled": True,
        "login": second[0],
        "changedAt": orders["changedAt"],
    }
    assert {s["service"] for s in listed} == {
        "orders",
        "moysklad",
        "onec",
        "sklad",
        "moedelo",
        "elba",
    }
    assert "password" not in orders

    off = await http.patch(f"{CABINET}/accounts/default/services/orders", json={"enabled": False})
    assert off.json()["enabled"] is False
    _refused(await http.get(url, auth=second), 403, ORDERS_FORBIDDEN)
    on = await http.patch(f"{CABINET}/accounts/default/services/orders", json={"enabled": True})
    assert on.json()["login"] == second[0]
    assert (await http.get(url, auth=second)).status_code == 200


async def test_bad_cabinet_requests(probed: httpx.AsyncClient) -> None:
    http = probed
    point = await make_point(http)
    unknown = await http.post(f"{CABINET}/retail-points/{point.id}/services/kassa/credentials")
    assert unknown.status_code == 400
    assert "unknown service" in unknown.json()["message"]
    gone = await http.post(
        f"{CABINET}/retail-points/2b0e6b1a-0000-4000-8000-000000000000/services/orders/credentials"
    )
    assert gone.status_code == 404
    no_account = await http.patch(
        f"{CABINET}/accounts/nope/services/orders", json={"enabled": True}
    )
    assert no_account.status_code == 404
    bad = await http.patch(f"{CABINET}/accounts/default/services/orders", json={"enabled": "maybe"})
    assert bad.status_code == 400


async def test_pairs_on_postgresql_and_sqlite(any_db: str, settings: CloudSettings) -> None:
    """The table works on both backends: generate, verify, regenerate, switch (D73)."""
    clock = ManualClock()
    async with Cloud(any_db, clock, settings) as cloud:
        _probe_routes(cloud)
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            first = await _pair(http, point, "orders")
            second = await _pair(http, point, "orders")
            url = f"/api/v2/probe/{point.id}"
            assert (await http.get(url, auth=first)).status_code == 401
            assert (await http.get(url, auth=second)).status_code == 200
            await http.patch(f"{CABINET}/accounts/default/services/orders", json={"enabled": False})
            assert (await http.get(url, auth=second)).status_code == 403
