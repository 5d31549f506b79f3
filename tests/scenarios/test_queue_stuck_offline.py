"""Support case §4.2: the till has no internet.

Documents stay «В очереди» (QUEUED) while the till is offline; the cabinet's heartbeat view stops
moving. After reconnection the queue drains oldest first, nothing lost, nothing twice.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_offline(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:

        async def quiet(_run: ScenarioRun) -> None:
            assert not kkt.till.polling_allowed()

        # The case checks the till's state (offline, not polling), no poll meanwhile, three
        # documents QUEUED, then the drain oldest first.
        run = await run_case(kkt, "queue_stuck_offline", quiet=quiet)
        assert drive_receipts(kkt) == run.facts["fds"]
