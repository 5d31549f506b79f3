"""Support case §4.3: power-saving mode is on (as an Android phone in power saving, the till app
stops polling).

The queue stays QUEUED, the till reports ``powerSaving`` in its heartbeat (the cabinet shows it),
and turning power saving off drains the queue oldest first.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts

from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_power_saving(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        await kkt.till.heartbeat()
        await kkt.till.set_settings(power_saving=True)
        # The last heartbeat before the till went quiet tells the cabinet about power saving.
        await kkt.till.heartbeat()
        [device] = await kkt.cabinet("GET", "/heartbeats")
        assert device["heartbeat"]["powerSaving"] is True
        docs = [kkt.sale(30.0 + n) for n in range(3)]
        for doc in docs:
            await kkt.post_document(doc)
        polls = kkt.till.counters["polls"]
        await kkt.clock.pace(0.5)
        assert kkt.till.counters["polls"] == polls
        assert [(await kkt.status(d["id"]))["status"] for d in docs] == ["QUEUED"] * 3
        assert (await kkt.till.snapshot_state())["polling"] is False

        await kkt.till.set_settings(power_saving=False)
        done = [await kkt.wait_for_status(d["id"], "COMPLETED") for d in docs]
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in done]
        assert fds == sorted(fds)
        assert drive_receipts(kkt) == fds
        [device] = await kkt.cabinet("GET", "/heartbeats")
        assert device["heartbeat"]["powerSaving"] is False
