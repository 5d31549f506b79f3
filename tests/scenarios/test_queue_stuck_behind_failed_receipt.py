"""Support case §4.4 and the three ways out of §5: a receipt in error ahead of the queue.

With «Останавливать регистрацию чеков в случае ошибок» on, a FAILED document blocks every document
accepted after it: the till keeps polling and is handed nothing. The till takes one document per
poll here (``max_docs = 1``) so the block acts between documents. Each way out lifts the block and
the documents behind drain oldest first:

1. fix the cause and «Провести повторно» (re-drive): the same document is fiscalised first;
2. «Отметить как выполненный» (mark done): the document completes without a receipt;
3. a correction receipt at the till (17h, the drive's correction document) for the sale that
   failed, then mark done so the cloud stops waiting for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scenario_helpers import drive_receipts, until

from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness


async def stuck_behind(kkt: StackHarness, total: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document that fails on the drive, and one accepted after it that stays QUEUED."""
    kkt.till.inject_fault("fn.storage_exhausted", count=1)
    failing, behind = kkt.sale(total), kkt.sale(total + 1)
    await kkt.post_document(failing)
    await kkt.post_document(behind)
    await kkt.wait_for_status(failing["id"], "FAILED")
    assert kkt.till.list_faults() == []  # the cause is gone, yet nothing moves
    polls = kkt.till.counters["polls"]

    async def polled() -> bool:
        return kkt.till.counters["polls"] >= polls + 3

    await until(kkt, polled)
    assert (await kkt.status(behind["id"]))["status"] == "QUEUED"
    assert (await kkt.document_detail(failing["id"]))["blocking"] is True
    return failing, behind


async def test_queue_stuck_behind_failed_receipt(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, max_docs=1) as kkt:
        point = f"/retail-points/{kkt.retail_point_id}"
        assert (await kkt.cabinet("PATCH", point, json={"stopOnErrors": True}))["stopOnErrors"]

        # 1. Re-drive: the failed document goes first, then the one it held back.
        failing, behind = await stuck_behind(kkt, 10.0)
        await kkt.cabinet("POST", f"{point}/documents/{failing['id']}/redrive")
        first = await kkt.wait_for_status(failing["id"], "COMPLETED")
        second = await kkt.wait_for_status(behind["id"], "COMPLETED")
        assert first["fiscalInfo"]["fnDocNumber"] < second["fiscalInfo"]["fnDocNumber"]

        # 2. Mark done: no receipt for it, the queue moves on.
        failing, behind = await stuck_behind(kkt, 20.0)
        marked = await kkt.cabinet("POST", f"{point}/documents/{failing['id']}/mark-done")
        assert marked["status"] == "COMPLETED"
        assert marked["storeStatus"]["fiscalInfo"] is None
        assert marked["markedDone"] is True
        await kkt.wait_for_status(behind["id"], "COMPLETED")

        # 3. A correction receipt at the till for the failed sale, then mark done.
        failing, behind = await stuck_behind(kkt, 30.0)
        correction = await kkt.till.correction(3000, cashier="Старший кассир")
        assert kkt.till.drive is not None
        archived = kkt.till.drive.store.get_document(correction["fnDocNumber"])
        assert archived is not None
        assert archived.doc_code == DocCode.CORRECTION
        assert correction["total"] == 3000
        await kkt.cabinet("POST", f"{point}/documents/{failing['id']}/mark-done")
        await kkt.wait_for_status(behind["id"], "COMPLETED")

        # Nothing lost, nothing twice: four shop receipts on the drive, one per completed sale.
        assert len(drive_receipts(kkt)) == 4
