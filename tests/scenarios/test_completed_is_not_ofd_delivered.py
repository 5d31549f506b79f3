"""Support case §2: «Выполнен» (COMPLETED) does not mean the receipt reached the OFD.

With the OFD unreachable the document still completes: the drive signed it, the shop got its
fiscal data. The cabinet's document detail keeps OFD delivery as a fact of its own («not_sent»),
the drive keeps the document in its OFD queue, and the store API shows the vendor's fields only.
When the OFD is back the drive's queue empties and the cabinet says «acknowledged»; the store
status is unchanged by it.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import ofd_state, until

from kkt_emulator.testing.stack import StackHarness


async def test_completed_is_not_ofd_delivered(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("ofd.down")
        doc = kkt.sale(64.0)
        await kkt.post_document(doc)
        completed = await kkt.wait_for_status(doc["id"], "COMPLETED")
        fd = completed["fiscalInfo"]["fnDocNumber"]

        # The store API keeps the vendor's six keys only: nothing about the OFD.
        assert set(completed) == {
            "status",
            "fnState",
            "fiscalInfo",
            "failureInfo",
            "message",
            "timeStatusChanged",
        }
        assert await ofd_state(kkt, doc["id"]) == "not_sent"
        state = await kkt.till.snapshot_state()
        assert state["drive"]["unsent"] >= 1
        assert kkt.till.deadlines()["ofd.block"] is not None
        assert kkt.stack.ofd is not None
        assert fd not in kkt.stack.ofd.acknowledged_fds(kkt.till.fn_serial)

        kkt.till.clear_faults("ofd.down")

        async def delivered() -> bool:
            return await ofd_state(kkt, doc["id"]) == "acknowledged"

        await until(kkt, delivered)
        assert fd in kkt.stack.ofd.acknowledged_fds(kkt.till.fn_serial)
        assert (await kkt.till.snapshot_state())["drive"]["unsent"] == 0
        after = await kkt.status(doc["id"])
        assert after == completed
