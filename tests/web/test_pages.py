"""The web cabinet's pages in process: labels, the error text, the buttons and what they do, token."""

from __future__ import annotations

import html
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.cloud.texts import STATUS_TEXTS

from .web_helpers import STORAGE_TEXT, open_shop, sale

if TYPE_CHECKING:
    import httpx

    from kkt_emulator.clock import ManualClock
    from kkt_emulator.cloud.app import Cloud

ROOT = Path(__file__).resolve().parents[2]
TAX_TEXT = "Сообщение ФН об ошибке: СНО товара не была указана при регистрации ККТ"


def _text(html: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (tags stripped, spaces collapsed)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.DOTALL)
    assert match is not None, f"no #{element_id} in the page"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


async def test_the_root_goes_to_the_document_list(http: httpx.AsyncClient) -> None:
    response = await http.get("/cabinet/")
    assert response.status_code == 303
    assert response.headers["location"] == "/cabinet/documents"


async def test_the_list_shows_the_seed_status_labels(http: httpx.AsyncClient) -> None:
    shop = await open_shop(http)
    failed = await shop.post(sale(docNum="1"))
    await shop.fail_next(TAX_TEXT)
    queued = sale(docNum="2")
    await shop.post(queued)
    assert failed["status"] == "QUEUED"
    page = (await http.get("/cabinet/documents")).text
    assert f'data-status="FAILED">{STATUS_TEXTS["FAILED"]}<' in page
    assert 'data-status="QUEUED">В очереди<' in page
    assert "Ошибка<" in page
    assert TAX_TEXT in page  # the error line under the failed document


async def test_the_list_filters_by_status_and_finds_by_id(http: httpx.AsyncClient) -> None:
    shop = await open_shop(http)
    first = sale()
    await shop.post(first)
    await shop.fail_next()
    second = sale()
    await shop.post(second)
    failed_only = (await http.get("/cabinet/documents", params={"status": "FAILED"})).text
    assert first["id"] in failed_only
    assert second["id"] not in failed_only
    found = (await http.get("/cabinet/documents", params={"q": second["id"]})).text
    assert second["id"] in found
    assert first["id"] not in found
    bad = await http.get("/cabinet/documents", params={"status": "LOST"})
    assert bad.status_code == 400
    assert "unsupported value LOST" in bad.text


async def test_the_sections_are_tabs(http: httpx.AsyncClient) -> None:
    await open_shop(http)
    page = (await http.get("/cabinet/documents", params={"section": "orders"})).text
    for label in ("Интернет-магазин", "Заказы", "Касса"):
        assert label in page
    assert 'id="orders"' in page
    counter = (await http.get("/cabinet/documents", params={"section": "counter"})).text
    assert 'id="cashdocs"' in counter
    unknown = await http.get("/cabinet/documents", params={"section": "nope"})
    assert unknown.status_code == 400


async def test_a_failed_document_shows_the_till_text_positions_and_both_buttons(
    http: httpx.AsyncClient,
) -> None:
    shop = await open_shop(http)
    await shop.post(sale())
    doc_id = await shop.fail_next()
    page = (await http.get(f"/cabinet/documents/{shop.point_id}/{doc_id}")).text
    assert _text(page, "failure") == STORAGE_TEXT  # exactly as the till reported it
    assert _text(page, "status") == "Ошибка"
    assert "Документ №5727" in page
    assert "↻ ПРОВЕСТИ ПОВТОРНО" in page
    assert "ОТМЕТИТЬ КАК ВЫПОЛНЕННЫЙ" in page
    assert "Коляска Joie Chrome DLX" in page
    assert "19 900,00 ₽" in page
    assert "не облагается" in page
    assert 'id="receipt"' not in page  # not fiscalised: no printed receipt


async def test_redrive_requeues_through_the_cabinet_operation(
    http: httpx.AsyncClient, cloud: Cloud
) -> None:
    shop = await open_shop(http)
    await shop.post(sale())
    doc_id = await shop.fail_next()
    url = f"/cabinet/documents/{shop.point_id}/{doc_id}"
    response = await http.post(f"{url}/redrive")
    assert response.status_code == 303
    assert response.headers["location"] == url
    record = cloud.service.find_document(shop.point_id, doc_id)
    assert record.state.status.value == "REQUEUED"
    assert record.state.redrives == 1
    page = (await http.get(url)).text
    assert _text(page, "status") == STATUS_TEXTS["REQUEUED"]
    assert "ПРОВЕСТИ ПОВТОРНО" not in page
    again = await http.post(f"{url}/redrive")  # the operation's own refusal, shown on the page
    assert again.status_code == 400
    assert "only FAILED documents can be re-queued" in again.text


async def test_mark_done_completes_without_a_receipt(http: httpx.AsyncClient, cloud: Cloud) -> None:
    shop = await open_shop(http)
    await shop.post(sale())
    doc_id = await shop.fail_next()
    url = f"/cabinet/documents/{shop.point_id}/{doc_id}"
    assert (await http.post(f"{url}/mark-done")).status_code == 303
    record = cloud.service.find_document(shop.point_id, doc_id)
    assert record.state.status.value == "COMPLETED"
    assert record.state.marked_done
    page = (await http.get(url)).text
    assert _text(page, "status") == "Выполнен"
    assert 'id="receipt"' not in page  # done by hand: nothing was printed
    refused = await http.post(f"{url}/mark-done")
    assert refused.status_code == 400
    assert "only FAILED documents can be marked done" in refused.text


async def test_a_fiscalised_document_shows_its_receipt_and_ofd_delivery_apart(
    http: httpx.AsyncClient,
) -> None:
    shop = await open_shop(http)
    await shop.post(sale())
    doc_id = await shop.succeed_next()
    page = (await http.get(f"/cabinet/documents/{shop.point_id}/{doc_id}")).text
    assert _text(page, "status") == "Выполнен"
    assert _text(page, "ofd") == "Не отправлен в ОФД"  # «Выполнен» is not «в ОФД»
    assert f'<img src="/cabinet/receipt/{doc_id}.svg"' in page
    assert "ПРОВЕСТИ ПОВТОРНО" not in page
    assert "ОТМЕТИТЬ КАК ВЫПОЛНЕННЫЙ" not in page


async def test_an_unknown_document_is_a_404_page(http: httpx.AsyncClient) -> None:
    shop = await open_shop(http)
    response = await http.get(f"/cabinet/documents/{shop.point_id}/nope")
    assert response.status_code == 404
    assert "Document not found: nope" in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_the_point_form_changes_the_flags_through_update_point(
    http: httpx.AsyncClient, cloud: Cloud
) -> None:
    shop = await open_shop(http)
    url = f"/cabinet/points/{shop.point_id}"
    page = (await http.get(url)).text
    assert "Использовать для документов интернет-магазина" in page
    assert "За 3 дня" in page
    assert "За 5 минут" in page
    assert re.search(r'id="internetDocsEnabled"\s+checked', page)
    # Unchecked boxes send nothing: the internet-shop flag goes off, stop-on-errors on.
    response = await http.post(url, data={"stopOnErrors": "on", "pickupWindow": "5min"})
    assert response.status_code == 303
    point = cloud.service.point_view(cloud.service.get_point(shop.point_id))
    assert point["internetDocsEnabled"] is False
    assert point["stopOnErrors"] is True
    assert point["pickupWindow"] == "5min"
    assert point["fnState"] == "DISABLED"
    page = (await http.get(url)).text
    assert not re.search(r'id="internetDocsEnabled"\s+checked', page)
    bad = await http.post(url, data={"pickupWindow": "1week"})
    assert bad.status_code == 400
    assert "unsupported value '1week'" in html.unescape(bad.text)


async def test_generated_credentials_are_shown_once(http: httpx.AsyncClient) -> None:
    shop = await open_shop(http)
    url = f"/cabinet/points/{shop.point_id}"
    page = (await http.post(f"{url}/credentials")).text
    login, password = _text(page, "shown-login"), _text(page, "shown-password")
    assert len(password) == 16
    associated = await http.post(f"/api/fn/v1/associate/{shop.point_id}", auth=(login, password))
    assert associated.status_code == 200  # the pair works for the store API
    assert password not in (await http.get(url)).text  # and is never shown again


async def test_services_switch_and_get_their_pair(http: httpx.AsyncClient, cloud: Cloud) -> None:
    shop = await open_shop(http)
    url = f"/cabinet/points/{shop.point_id}"
    account = cloud.service.get_point(shop.point_id).account_id
    assert (await http.post(f"{url}/services/orders", data={"enabled": "on"})).status_code == 303
    assert cloud.service.service_enabled(account, "orders")
    assert (await http.post(f"{url}/services/orders")).status_code == 303
    assert not cloud.service.service_enabled(account, "orders")
    page = (await http.post(f"{url}/services/moysklad/credentials")).text
    assert "МойСклад: новый логин и пароль" in page
    assert cloud.service.service_enabled(account, "moysklad")
    unknown = await http.post(f"{url}/services/nope")
    assert unknown.status_code == 400
    assert "unknown service 'nope'" in html.unescape(unknown.text)


async def test_the_tills_page_shows_the_drive_resources(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    shop = await open_shop(http)
    await shop.post(sale())
    await shop.heartbeat(
        {
            "fnState": "READY",
            "fnSerial": "9999078900000001",
            "powerSaving": True,
            "fn": {
                "ok": True,
                "serial": "9999078900000001",
                "lastFd": 250,
                "documentsLeft": 750,
                "unsent": 3,
                "oldestUnsent": "2026-02-28T09:00:00",
                "expiry": "2026-03-12",
            },
            "faults": ["fn.disconnected"],
            "uploadQueue": {"size": 2, "oldestAt": None, "lastError": None},
        }
    )
    page = (await http.get("/cabinet/tills")).text
    assert "на связи" in page
    assert "режим энергосбережения" in page
    assert "10 дн. (до 2026-03-12)" in page  # 2 March → 12 March
    assert "3, старейший ждёт 2.0 дн." in page
    assert "занято 25.0%" in page
    assert "в очереди 1, в обработке 0" in page
    assert "fn.disconnected" in page
    assert 'data-poll="5"' in page  # heartbeats announce nothing: the page polls
    await clock.advance(timedelta(minutes=10))
    assert "не на связи" in (await http.get("/cabinet/tills")).text


async def test_static_assets_are_served_by_the_cloud(http: httpx.AsyncClient) -> None:
    script = await http.get("/cabinet/static/cabinet.js")
    assert script.status_code == 200
    assert "EventSource" in script.text
    css = await http.get("/cabinet/static/cabinet.css")
    assert css.headers["content-type"].startswith("text/css")
    assert (await http.get("/cabinet/static/nope.js")).status_code == 404
    page = (await http.get("/cabinet/documents")).text
    assert "http://" not in page
    assert "https://" not in page  # nothing from elsewhere


class TestToken:
    @pytest.fixture
    def settings(self) -> CloudSettings:
        return CloudSettings(password_iterations=1000, cabinet_token="s3cret")  # noqa: S106 - a test token

    async def test_pages_without_the_token_are_refused(self, http: httpx.AsyncClient) -> None:
        for url in ("/cabinet/documents", "/cabinet/points", "/cabinet/tills", "/cabinet/events"):
            response = await http.get(url)
            assert response.status_code == 401, url
            assert "Нужен токен кабинета" in response.text
        assert (await http.post("/cabinet/points/x/credentials")).status_code == 401
        assert (await http.get("/cabinet/documents?token=wrong")).status_code == 401

    async def test_the_token_once_in_the_url_sets_a_cookie(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/cabinet/documents?section=orders&token=s3cret")
        assert response.status_code == 303
        assert response.headers["location"] == "/cabinet/documents?section=orders"
        cookie = response.headers["set-cookie"]
        assert "s3cret" not in cookie  # a digest, not the token
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert (await http.get("/cabinet/documents")).status_code == 200  # the cookie is kept
        http.cookies.clear()
        assert (await http.get("/cabinet/documents")).status_code == 401

    async def test_the_api_header_works_too(self, http: httpx.AsyncClient) -> None:
        headers = {"Authorization": "Bearer s3cret"}
        shop = await open_shop(http, headers)
        page = await http.get(f"/cabinet/points/{shop.point_id}", headers=headers)
        assert page.status_code == 200
        wrong = await http.get("/cabinet/points", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_orders_show_their_state_and_unlock_through_the_cabinet_operation(
    http: httpx.AsyncClient,
) -> None:
    shop = await open_shop(http)
    pair = (
        await http.post(
            f"/api/cabinet/v1/retail-points/{shop.point_id}/services/orders/credentials"
        )
    ).json()
    order = {
        "documentNumber": "51234",
        "documentType": "SALE",
        "documentDateTime": "2024-05-01T12:00:00+0300",
        "customerContact": "+79161234567",
        "prepaid": False,
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
    created = await http.post(
        f"/api/v2/retail-point/{shop.point_id}/order",
        json=order,
        auth=(pair["login"], pair["password"]),
    )
    assert created.status_code in (200, 201), created.text
    order_id = created.json()["id"]
    claimed = await http.post(
        f"/api/device/v1/orders/{order_id}/claim",
        headers={"Authorization": f"Bearer {shop.till_token}"},
    )
    assert claimed.status_code == 200, claimed.text
    url = "/cabinet/documents?section=orders"
    page = (await http.get(url)).text
    assert 'data-status="IN_PAYMENT">В оплате<' in page
    assert "СНЯТЬ БЛОКИРОВКУ" in page
    by_state = "/cabinet/documents?section=orders&status="
    assert order_id in (await http.get(by_state + "IN_PAYMENT")).text
    assert order_id not in (await http.get(by_state + "NEW")).text
    unlocked = await http.post(f"/cabinet/points/{shop.point_id}/orders/{order_id}/unlock")
    assert unlocked.status_code == 303
    page = (await http.get(url)).text
    assert 'data-status="ON_TILL">Передан на кассу<' in page
    assert "СНЯТЬ БЛОКИРОВКУ" not in page
    again = await http.post(f"/cabinet/points/{shop.point_id}/orders/{order_id}/unlock")
    assert again.status_code == 400
    assert "not IN_PAYMENT" in again.text


def test_every_template_and_asset_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["kkt_emulator.cloud.web"]
    folder = ROOT / "kkt_emulator" / "cloud" / "web"
    shipped = {p for pattern in globs for p in folder.glob(pattern)}
    files = {
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    }
    assert files
    assert files <= shipped, f"add to package-data: {sorted(str(p) for p in files - shipped)}"
