"""Support case §5 row 3: Yandex.Kassa in «За 5 минут» mode, and the till did not answer.

The retail point's ``pickupWindow`` is ``5min`` and the till is offline. 235 seconds of business time
after the document entered the queue the cloud fails it: the store API says «POS doesn't connect for
document within 235 seconds» (NON_FN_FAILURE), the shop's ``responseURL`` gets ``status=FAILED``,
and the cabinet's document detail shows what the shop sees on the payment side,
``shopMessage`` «Касса не ответила на запрос в течение 5 минут». At 234 seconds it is still queued;
in «За 3 дня» mode nothing fails. The till, back online, never fiscalises the failed document.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, shop_site, until

from kkt_emulator.testing.stack import StackHarness

FAILURE = {
    "type": "NON_FN_FAILURE",
    "message": "POS doesn't connect for document within 235 seconds",
}
SHOP_MESSAGE = "Касса не ответила на запрос в течение 5 минут"


async def test_error_pickup_window(tmp_path: Path) -> None:
    async with shop_site() as site, StackHarness.running(tmp_path) as kkt:
        point = f"/retail-points/{kkt.retail_point_id}"
        await kkt.till.set_settings(online=False)
        patient = kkt.sale(10.0)  # accepted in «За 3 дня» mode: no deadline
        await kkt.post_document(patient)
        view = await kkt.cabinet("PATCH", point, json={"pickupWindow": "5min"})
        assert view["pickupWindow"] == "5min"

        doc = kkt.sale(20.0, responseURL=site.url)
        await kkt.post_document(doc)
        await kkt.advance("234s")
        assert (await kkt.status(doc["id"]))["status"] == "QUEUED"
        await kkt.advance("1s")
        failed = await kkt.wait_for_status(doc["id"], "FAILED")
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]

        detail = await kkt.document_detail(doc["id"])
        assert detail["failureInfo"] == FAILURE
        assert detail["shopMessage"] == SHOP_MESSAGE

        async def told() -> bool:
            return bool(site.received)

        await until(kkt, told)
        assert site.received[0]["query"] == {"status": "FAILED"}

        assert (await kkt.status(patient["id"]))["status"] == "QUEUED"
        assert (await kkt.document_detail(patient["id"]))["shopMessage"] is None
        await kkt.till.set_settings(online=True)
        done = await kkt.wait_for_status(patient["id"], "COMPLETED")
        assert drive_receipts(kkt) == [done["fiscalInfo"]["fnDocNumber"]]
        assert (await kkt.status(doc["id"]))["status"] == "FAILED"
