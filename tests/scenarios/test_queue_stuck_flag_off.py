"""Support case §4.1: the cabinet flag «Использовать для документов ИМ» is off.

Documents are accepted and stay «В очереди» (QUEUED) with ``fnState`` DISABLED; the till is not
handed them however often it polls. Switching the flag on drains the queue oldest first, each
document fiscalised exactly once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_flag_off(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks fnState DISABLED (cabinet, each document, /v1/status), three documents
        # QUEUED while the till polls, no receipt, then the drain oldest first.
        run = await run_case(kkt, "queue_stuck_flag_off")
        assert drive_receipts(kkt) == run.facts["fds"]
