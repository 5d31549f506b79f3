"""Support case §2: «Выполнен» (COMPLETED) does not mean the receipt reached the OFD.

With the OFD unreachable the document still completes: the drive signed it, the shop got its
fiscal data. The cabinet's document detail keeps OFD delivery as a fact of its own («not_sent»),
the drive keeps the document in its OFD queue, and the store API shows the vendor's fields only.
When the OFD is back the drive's queue empties and the cabinet says «acknowledged»; the store
status is unchanged by it.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.testing.stack import StackHarness


async def test_completed_is_not_ofd_delivered(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        ofd = kkt.stack.ofd
        assert ofd is not None

        async def ofd_down(run: ScenarioRun) -> None:
            fd = run.facts["completed"]["fiscalInfo"]["fnDocNumber"]
            assert kkt.till.deadlines()["ofd.block"] is not None
            assert fd not in ofd.acknowledged_fds(kkt.till.fn_serial)

        # The case checks the store API's six keys, the cabinet's «not_sent» then «acknowledged»,
        # the drive's OFD queue, and that the store status did not change.
        run = await run_case(kkt, "completed_is_not_ofd_delivered", ofd_down=ofd_down)
        fd = run.facts["completed"]["fiscalInfo"]["fnDocNumber"]
        assert fd in ofd.acknowledged_fds(kkt.till.fn_serial)
        assert (await kkt.till.snapshot_state())["drive"]["unsent"] == 0
