"""Support case §5 row 8: the till took the document and its result never reached the server.

The till's result reports are lost (fault ``cloud.drop_result``). Fifteen minutes of business time
after the lease the cloud fails the document with «Касса не подтвердила фискализацию документа в
течение 15 минут» (NON_FN_FAILURE) although the drive signed it. When the reports get through again
the late success wins (§8: a receipt is never lost) and the document is fiscalised exactly once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, until

from kkt_emulator.testing.stack import StackHarness

FAILURE = {
    "type": "NON_FN_FAILURE",
    "message": "Касса не подтвердила фискализацию документа в течение 15 минут",
}


async def test_error_pending_timeout(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("cloud.drop_result")
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "PENDING")

        async def dropped() -> bool:
            applied: int = kkt.till.list_faults()[0]["applied"]
            return applied > 0

        await until(kkt, dropped)
        await kkt.advance("14m")
        assert (await kkt.status(doc["id"]))["status"] == "PENDING"
        await kkt.advance("1m")
        failed = await kkt.wait_for_status(doc["id"], "FAILED")
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        assert (await kkt.document_detail(doc["id"]))["failureInfo"] == FAILURE
        assert len(drive_receipts(kkt)) == 1  # signed, only the server does not know

        kkt.till.clear_faults("cloud.drop_result")
        late = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert late["failureInfo"] is None
        assert drive_receipts(kkt) == [late["fiscalInfo"]["fnDocNumber"]]
