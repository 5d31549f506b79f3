"""Support case §4.3: power-saving mode is on (as an Android phone in power saving, the till app
stops polling).

The queue stays QUEUED, the till reports ``powerSaving`` in its heartbeat (the cabinet shows it),
and turning power saving off drains the queue oldest first.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_power_saving(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:

        async def power_saving(_run: ScenarioRun) -> None:
            # The last heartbeat before the till went quiet tells the cabinet about power saving.
            await kkt.till.heartbeat()
            [device] = await kkt.cabinet("GET", "/heartbeats")
            assert device["heartbeat"]["powerSaving"] is True

        # The case checks the till not polling, three documents QUEUED, the drain oldest first
        # and the cabinet's heartbeat without power saving afterwards.
        run = await run_case(kkt, "queue_stuck_power_saving", power_saving=power_saving)
        assert drive_receipts(kkt) == run.facts["fds"]
        [device] = await kkt.cabinet("GET", "/heartbeats")
        assert device["heartbeat"]["powerSaving"] is False
