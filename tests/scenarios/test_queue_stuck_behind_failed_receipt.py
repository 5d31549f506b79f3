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

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_behind_failed_receipt(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, max_docs=1) as kkt:

        async def correction(run: ScenarioRun) -> None:
            assert kkt.till.drive is not None
            fd = run.facts["correction"]["fnDocNumber"]
            archived = kkt.till.drive.store.get_document(fd)
            assert archived is not None
            assert archived.doc_code == DocCode.CORRECTION

        # The case blocks the queue three times (a FAILED document, one QUEUED behind it while
        # the till polls, the blocking flag) and takes each way out in turn.
        await run_case(kkt, "queue_stuck_behind_failed_receipt", correction=correction)
        # Nothing lost, nothing twice: four shop receipts on the drive, one per completed sale.
        assert len(drive_receipts(kkt)) == 4
        assert kkt.till.settings.max_docs == 1
