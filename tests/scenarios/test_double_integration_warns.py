"""Support case §6: 1C-Bitrix МодульФискализации and a Yandex.Kassa integration both active.

Every payment comes twice, from two integrations (two ``clientId`` associations), with the same
``docNum`` and sum. Both are accepted and fiscalised (the cloud cannot know which one is wrong), but
the cabinet warns: the second document carries a warning and ``possibleDuplicateOf`` naming the
first, and it is listed under the cabinet's warnings. The same sale from one integration, or another
sale, raises nothing.
"""

from __future__ import annotations

from pathlib import Path

from kkt_emulator.testing.stack import StackHarness


async def test_double_integration_warns(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        service = (kkt.info["service_login"], kkt.info["service_password"])
        creds = {}
        for client in ("bitrix", "yandex-kassa"):
            answer = await kkt.http.post(
                f"{kkt.store_url}/v1/associate/{kkt.retail_point_id}",
                params={"clientId": client},
                auth=service,
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            creds[client] = (body["userName"], body["password"])

        bitrix = kkt.sale(990.0, docNum="ORDER-77")
        kassa = kkt.sale(990.0, docNum="ORDER-77")
        other = kkt.sale(990.0, docNum="ORDER-78")
        await kkt.post_document(bitrix, auth=creds["bitrix"])
        await kkt.post_document(kassa, auth=creds["yandex-kassa"])
        await kkt.post_document(other, auth=creds["yandex-kassa"])
        # Fiscalised twice: that is the symptom the shop complains about.
        for doc in (bitrix, kassa, other):
            await kkt.wait_for_status(doc["id"], "COMPLETED")

        first = await kkt.document_detail(bitrix["id"])
        second = await kkt.document_detail(kassa["id"])
        third = await kkt.document_detail(other["id"])
        assert first["possibleDuplicateOf"] is None
        assert first["warnings"] == []
        assert second["possibleDuplicateOf"] == bitrix["id"]
        assert second["clientId"] == "yandex-kassa"
        expected = (
            f"possible double integration: document {bitrix['id']} from clientId bitrix"
            " has the same docNum and sum"
        )
        assert second["warnings"] == [expected]
        assert third["possibleDuplicateOf"] is None
        warned = await kkt.cabinet("GET", "/warnings")
        assert [w["id"] for w in warned] == [kassa["id"]]
