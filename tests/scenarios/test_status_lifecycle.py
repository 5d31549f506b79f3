"""Support case §2: a shop document walks QUEUED → PENDING → PRINTED → WAIT_FOR_CALLBACK → COMPLETED.

While the till is in power saving the document waits in «В очереди» (QUEUED). Once the till takes
it, it is «В обработке» (PENDING) until the drive signs it, then «Фискализирован» (PRINTED). With a
``responseURL`` whose site does not answer 200 it stays in «Доставка ответа на сайт»
(WAIT_FOR_CALLBACK, not critical: the receipt already has its fiscal sign); the next callback attempt
(one minute later, store-api D44) that gets 200 makes it «Выполнен» (COMPLETED).
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import history_statuses, shop_site

from kkt_emulator.testing.stack import StackHarness


async def test_status_lifecycle(tmp_path: Path) -> None:
    async with shop_site(status_code=503) as site, StackHarness.running(tmp_path) as kkt:
        await kkt.till.set_settings(power_saving=True)
        doc = kkt.sale(120.0, responseURL=site.url)
        accepted = await kkt.post_document(doc)
        assert accepted["status"] == "QUEUED"
        assert accepted["fiscalInfo"] is None
        assert (await kkt.status(doc["id"]))["status"] == "QUEUED"

        await kkt.till.set_settings(power_saving=False)
        waiting = await kkt.wait_for_status(doc["id"], "WAIT_FOR_CALLBACK")
        # Fiscalised already: the fiscal sign is there while the site has not said 200.
        assert waiting["fiscalInfo"]["fnDocMark"] > 0
        assert waiting["failureInfo"] is None
        assert site.received
        assert site.received[0]["query"]["status"] == "SUCCESS"

        site.status_code = 200
        await kkt.advance("1m")
        done = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert done["message"] == "Document successfully completed with callback"
        assert done["fiscalInfo"] == waiting["fiscalInfo"]

        detail = await kkt.document_detail(doc["id"])
        assert history_statuses(detail) == [
            "QUEUED",
            "PENDING",
            "PRINTED",
            "WAIT_FOR_CALLBACK",
            "COMPLETED",
        ]
        assert detail["callback"]["attempts"] >= 2
