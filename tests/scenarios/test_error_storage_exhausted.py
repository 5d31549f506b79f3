"""Support case §5 row 1: documents waited more than 30 days for the OFD, so the drive is blocked.

The OFD is unreachable; one receipt goes through and waits in the drive's OFD queue. Thirty days
later (one minute past the drive's ``ofd.block`` deadline) the drive refuses the next receipt with
its storage code and the till shows «Исчерпан ресурс хранения ФН» (FN_MEMORY_OVERFLOW). Once the
OFD takes the backlog, «Провести повторно» fiscalises the document.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from scenario_helpers import FN, fail_with, until

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "FN_MEMORY_OVERFLOW", "message": FN + "Исчерпан ресурс хранения ФН"}


async def test_error_storage_exhausted(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("ofd.down")
        first = kkt.sale(10.0)
        await kkt.post_document(first)
        await kkt.wait_for_status(first["id"], "COMPLETED")
        block = kkt.till.deadlines()["ofd.block"]
        assert block is not None
        await kkt.advance(block - kkt.clock.now() + timedelta(minutes=1))

        doc = kkt.sale(11.0)
        failed = await fail_with(kkt, doc)
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        detail = await kkt.document_detail(doc["id"])
        assert detail["failureInfo"] == FAILURE
        assert detail["ofd"]["state"] == "not_sent"
        assert (await kkt.till.snapshot_state())["drive"]["unsent"] >= 1

        kkt.till.clear_faults("ofd.down")

        async def drained() -> bool:
            return kkt.till.deadlines()["ofd.block"] is None

        await until(kkt, drained)
        await kkt.cabinet(
            "POST", f"/retail-points/{kkt.retail_point_id}/documents/{doc['id']}/redrive"
        )
        done = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert done["failureInfo"] is None
