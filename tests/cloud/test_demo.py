"""Demo mode (D4): a virtual till fiscalises every document, at once or after a latency."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from cloud_helpers import FakeShop, doc_status, make_point, minimal_doc, post_doc

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.clock import ManualClock


async def test_demo_mode_fiscalises_everything(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(
        password_iterations=1000, demo_mode=True, demo_latency=timedelta(seconds=10)
    )
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            status = await http.get("/api/fn/v1/status", auth=point.assoc)
            assert status.json()["status"] == "READY"
            doc = minimal_doc(responseURL="https://shop.example/cb", docType="BUY")
            queued = await post_doc(http, point, doc)
            assert queued.json()["status"] == "QUEUED"
            await clock.advance(timedelta(seconds=9))
            await cloud.wait_idle()
            assert (await doc_status(http, point, doc["id"]))["status"] == "QUEUED"
            await clock.advance(timedelta(seconds=1))
            await cloud.wait_idle()
            done = await doc_status(http, point, doc["id"])
            assert done["status"] == "COMPLETED"
            assert done["fnState"] == "READY"
            info = done["fiscalInfo"]
            assert info["checkType"] == "PURCHASE"
            assert info["sum"] == 100
            assert info["date"] == "2024-05-01T09:00:10+00:00"
            assert info["qr"].startswith("t=20240501T090010&s=100.00&fn=9999078900000000&i=")
            assert info["qr"].endswith("&n=3")
            assert str(shop.requests[0].url).startswith("https://shop.example/cb?status=SUCCESS")
