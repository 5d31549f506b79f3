"""Support case §5 row 6: a position with a negative price.

The till firmware refuses it before the drive is involved: «Negative» (NON_FN_FAILURE). The cabinet's
error detail names the position and the field; a negative quantity is refused the same way.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_negative(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks both refusals (store, cabinet) and the error detail's position and field.
        await run_case(kkt, "error_negative")
        # The firmware refused both: the drive never saw them.
        assert drive_receipts(kkt) == []
