"""Support case §5 row 2: the fiscal drive's validity ended.

With the business clock one minute past the drive's expiry (``fn.expires``) every document fails
with «Исчерпан ресурс КС» (FN_EXPIRED); the till's state shows the expiry date it passed. The fault
``fn.expired`` gives the same text without moving the clock.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from scenario_helpers import extra_run, run_case

from kkt_emulator.app.scenarios.cases_errors import EXPIRED, expect_failure
from kkt_emulator.testing.stack import StackHarness


async def test_error_fn_expired(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The fault: one document fails with the text, the next completes.
        await run_case(kkt, "error_fn_expired")

        # The real thing: one minute past the drive's expiry every document fails the same way.
        async with extra_run(kkt) as run:

            async def delivered() -> bool:  # else a year's jump blocks the drive for the OFD
                unsent: int = (await run.till_state())["drive"]["unsent"]
                return unsent == 0

            await run.until("the OFD has every document", delivered)
            await run.advance_past("fn.expires")
            await expect_failure(run, run.sale(12.0), EXPIRED)
        state = await kkt.till.snapshot_state()
        assert datetime.fromisoformat(state["drive"]["expiry"]) <= kkt.till.local_now()
