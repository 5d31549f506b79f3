"""Support case §5 row 4: the fiscal drive dropped off (хост «nask», ФН отвалился).

The drive stops answering: the till gives up after its drive timeout and reports «Сетевой поток
не инициализирован» (FN_GENERIC_FAILURE); its state shows the drive as not OK. When the drive is
back, «Провести повторно» fiscalises the same document once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_fn_disconnected(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, drive_timeout=0.3) as kkt:
        # The case checks the failure (store and cabinet), the till's drive state, no receipt,
        # then one receipt after the re-drive.
        await run_case(kkt, "error_fn_disconnected")
        assert len(drive_receipts(kkt)) == 1
        assert kkt.till.list_faults() == []
