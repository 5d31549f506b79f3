"""``/cabinet/receipt/{id}.svg|.png|.json``: the slip of a fiscalised document, 404, 409, 401."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import httpx
from cloud_helpers import (
    FakeShop,
    FakeTill,
    Point,
    assert_message,
    make_point,
    minimal_doc,
    post_doc,
)
from PIL import Image

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.security import CABINET_COOKIE, cabinet_cookie_value
from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.profiles import load_profile
from kkt_emulator.slip import Receipt
from kkt_emulator.slip.render import layout

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.clock import ManualClock

SVG = "{http://www.w3.org/2000/svg}"


async def fiscalised(http: httpx.AsyncClient, point: Point, till: FakeTill) -> str:
    doc = minimal_doc()
    assert (await post_doc(http, point, doc)).status_code == 200
    (leased,) = await till.lease()
    await till.succeed(leased)
    return str(doc["id"])


async def test_a_fiscalised_documents_slip_in_three_forms(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc_id = await fiscalised(http, point, till)
    svg = await http.get(f"/cabinet/receipt/{doc_id}.svg")
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)  # noqa: S314 - the cloud's own SVG
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "КАССОВЫЙ ЧЕК" in texts
    assert "ИТОГ" in texts
    qr = next(g for g in root.iter(f"{SVG}g") if g.get("id") == "qr")
    assert qr.get("data-qr", "").startswith("t=20190904T141400&s=100.00&fn=")

    data = (await http.get(f"/cabinet/receipt/{doc_id}.json")).json()
    receipt = Receipt.from_json(data)
    # the fake till bound with no firmware profile: the retail point's details (D102)
    assert (receipt.seller.name, receipt.seller.inn) == ('ТЦ "Европа"', "7727401209")
    assert (receipt.fn_serial, receipt.fd, receipt.fp) == (till.fn_serial, till.fd, 3125146288)
    assert receipt.total == 10000
    assert receipt.customer_contact == "buyer@example.com"

    png = await http.get(f"/cabinet/receipt/{doc_id}.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    lay = layout(receipt)
    assert image.size == (lay.width, lay.height)


async def test_the_slip_carries_the_tills_registration(
    http: httpx.AsyncClient, point: Point
) -> None:
    till = FakeTill(http, point)
    bound = await http.post(
        "/api/device/v1/bind",
        auth=point.service,
        json={
            "tillSerial": till.serial,
            "fnSerial": till.fn_serial,
            "firmwareProfile": "modulkassa-ffd12",
        },
    )
    till.token = bound.json()["token"]
    doc_id = await fiscalised(http, point, till)
    data = (await http.get(f"/cabinet/receipt/{doc_id}.json")).json()
    reg = load_profile("modulkassa-ffd12").registration
    assert data["seller"] == {
        "name": reg.user_name,
        "inn": reg.inn,
        "address": reg.addresses[0].address,
        "place": reg.addresses[0].place,
    }
    assert (data["ofdName"], data["ofdInn"], data["senderEmail"]) == (
        reg.ofd_name,
        reg.ofd_inn,
        reg.sender_email,
    )


async def test_unknown_and_not_yet_fiscalised_documents_are_404(
    http: httpx.AsyncClient, point: Point
) -> None:
    for suffix in ("svg", "png", "json"):
        assert_message(
            await http.get(f"/cabinet/receipt/nope.{suffix}"), 404, "Document not found: nope"
        )
    doc = minimal_doc()
    await post_doc(http, point, doc)
    assert_message(
        await http.get(f"/cabinet/receipt/{doc['id']}.svg"),
        404,
        f"Document {doc['id']} is QUEUED and has no receipt yet",
    )


async def test_an_id_of_two_points_needs_the_point(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc_id = await fiscalised(http, point, till)
    other = await make_point(http)
    await post_doc(http, other, minimal_doc(id=doc_id))
    assert_message(await http.get(f"/cabinet/receipt/{doc_id}.svg"), 409)
    chosen = await http.get(f"/cabinet/receipt/{doc_id}.svg", params={"retailPointId": point.id})
    assert chosen.status_code == 200
    assert_message(
        await http.get(f"/cabinet/receipt/{doc_id}.svg", params={"retailPointId": other.id}), 404
    )


async def test_the_cabinet_token_guards_the_slip(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(password_iterations=1000, cabinet_token="s3cret")  # noqa: S106 - a test token
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            assert_message(await http.get("/cabinet/receipt/x.svg"), 401)
            assert_message(
                await http.get("/cabinet/receipt/x.png", headers={"Authorization": "Bearer no"}),
                401,
            )
            right = await http.get(
                "/cabinet/receipt/x.svg", headers={"Authorization": "Bearer s3cret"}
            )
            assert_message(right, 404)


async def test_the_web_cabinets_cookie_opens_the_slip(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    # A page's <img> sends the cookie the web cabinet set (D99), never a bearer header.
    settings = CloudSettings(password_iterations=1000, cabinet_token="s3cret")  # noqa: S106 - a test token
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            http.cookies.set(CABINET_COOKIE, cabinet_cookie_value("s3cret"))
            assert_message(await http.get("/cabinet/receipt/x.svg"), 404)
            # The API itself takes the cookie too: one secret, one guard.
            listed = await http.get("/api/cabinet/v1/accounts")
            http.cookies.set(CABINET_COOKIE, cabinet_cookie_value("other"))
            assert_message(await http.get("/cabinet/receipt/x.svg"), 401)
            assert listed.status_code != 401
