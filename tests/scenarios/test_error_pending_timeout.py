"""Support case §5 row 8: the till took the document and its result never reached the server.

The till's result reports are lost (fault ``cloud.drop_result``). Fifteen minutes of business time
after the lease the cloud fails the document with «Касса не подтвердила фискализацию документа в
течение 15 минут» (NON_FN_FAILURE) although the drive signed it. When the reports get through again
the late success wins (§8: a receipt is never lost) and the document is fiscalised exactly once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_pending_timeout(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks PENDING at 14 minutes, the failure at 15 (store, cabinet), the receipt
        # signed all the same, and the late success on that one receipt.
        await run_case(kkt, "error_pending_timeout")
        assert len(drive_receipts(kkt)) == 1
        assert kkt.till.list_faults() == []
