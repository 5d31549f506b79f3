"""Support case §4.2: the till has no internet.

Documents stay «В очереди» (QUEUED) while the till is offline; the cabinet's heartbeat view stops
moving. After reconnection the queue drains oldest first, nothing lost, nothing twice.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts

from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_offline(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        await kkt.till.set_settings(online=False)
        assert not kkt.till.polling_allowed()
        docs = [kkt.sale(20.0 + n) for n in range(3)]
        for doc in docs:
            await kkt.post_document(doc)
        polls = kkt.till.counters["polls"]
        await kkt.clock.pace(0.5)
        assert kkt.till.counters["polls"] == polls
        assert [(await kkt.status(d["id"]))["status"] for d in docs] == ["QUEUED"] * 3
        state = await kkt.till.snapshot_state()
        assert state["settings"]["online"] is False
        assert state["polling"] is False

        await kkt.till.set_settings(online=True)
        done = [await kkt.wait_for_status(d["id"], "COMPLETED") for d in docs]
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in done]
        assert fds == sorted(fds)
        assert drive_receipts(kkt) == fds
