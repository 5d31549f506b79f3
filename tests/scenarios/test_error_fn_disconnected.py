"""Support case §5 row 4: the fiscal drive dropped off (хост «nask», ФН отвалился).

The drive stops answering: the till gives up after its drive timeout and reports «Сетевой поток
не инициализирован» (FN_GENERIC_FAILURE); its state shows the drive as not OK. When the drive is
back, «Провести повторно» fiscalises the same document once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import FN, drive_receipts, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "FN_GENERIC_FAILURE", "message": FN + "Сетевой поток не инициализирован"}


async def test_error_fn_disconnected(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, drive_timeout=0.3) as kkt:
        kkt.till.inject_fault("fn.disconnected")
        doc = kkt.sale(10.0)
        failed = await fail_with(kkt, doc)
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        assert (await kkt.document_detail(doc["id"]))["failureInfo"] == FAILURE
        state = await kkt.till.snapshot_state()
        assert state["drive"]["ok"] is False
        assert drive_receipts(kkt) == []

        kkt.till.clear_faults("fn.disconnected")
        await kkt.cabinet(
            "POST", f"/retail-points/{kkt.retail_point_id}/documents/{doc['id']}/redrive"
        )
        done = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert drive_receipts(kkt) == [done["fiscalInfo"]["fnDocNumber"]]
