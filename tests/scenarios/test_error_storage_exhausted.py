"""Support case §5 row 1: documents waited more than 30 days for the OFD, so the drive is blocked.

The OFD is unreachable; one receipt goes through and waits in the drive's OFD queue. Thirty days
later (one minute past the drive's ``ofd.block`` deadline) the drive refuses the next receipt with
its storage code and the till shows «Исчерпан ресурс хранения ФН» (FN_MEMORY_OVERFLOW). Once the
OFD takes the backlog, «Провести повторно» fiscalises the document.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_storage_exhausted(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks the failure one minute past ofd.block (store, cabinet, OFD state, the
        # drive's queue), then the re-drive once the OFD took the backlog.
        run = await run_case(kkt, "error_storage_exhausted")
        done = await kkt.status(run.facts["doc"]["id"])
        assert done["status"] == "COMPLETED"
        assert done["failureInfo"] is None
