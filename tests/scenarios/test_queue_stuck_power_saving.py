"""Support case §4.3: power-saving mode is on (as an Android phone in power saving, the till app
stops polling).

The queue stays QUEUED, the till reports ``powerSaving`` in its heartbeat (the cabinet shows it),
and turning power saving off drains the queue oldest first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_power_saving(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:

        async def power_saving(_run: ScenarioRun) -> None:
            # The till's last heartbeat before it went quiet tells the cabinet about power
            # saving: nobody calls heartbeat() here, the poll loop reports it by itself.
            flags = []
            for _ in range(1500):
                [device] = await kkt.cabinet("GET", "/heartbeats")
                flags.append((device["heartbeat"] or {}).get("powerSaving"))  # None: not yet
                if flags[-1]:
                    break
                await asyncio.sleep(0.01)
            assert flags[-1] is True, flags
            polls = kkt.till.ctx.counters["polls"]
            await asyncio.sleep(0.2)
            assert kkt.till.ctx.counters["polls"] == polls  # quiet: no poll, no heartbeat

        # The case checks the till not polling, three documents QUEUED, the drain oldest first
        # and the cabinet's heartbeat without power saving afterwards.
        run = await run_case(kkt, "queue_stuck_power_saving", power_saving=power_saving)
        assert drive_receipts(kkt) == run.facts["fds"]
        [device] = await kkt.cabinet("GET", "/heartbeats")
        assert device["heartbeat"]["powerSaving"] is False
