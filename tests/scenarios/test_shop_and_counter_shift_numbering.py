"""Support case §1: a till that sells at a counter and for an internet shop (ИМ + розница).

Which number each report shows, per ``shift_mode``:

* ``shared`` (the default): shop documents and counter sales go into one shift. The receipts'
  shift number (1038, what the OFD and the store API's ``fiscalInfo.shiftNumber`` show) and the
  till app's Z-report number are the same.
* ``separate``: the shop's shift opens by itself with its first document and closes by itself 24
  hours later (D85), whatever batches of documents came in between (its reports exist only at the
  OFD; the till prints no Z-report for it), and the till app numbers the counter's shifts on its
  own («программная» смена). The drive has one shift at a time, so its numbers advance for both:
  the OFD sees shift 1 of the shop and shift 2 of the counter, while the till app's Z-report says
  shift 1. A shop document that arrives while the counter's shift is open goes into that shift.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case, until

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.app.scenarios.cases_shop import (
    separate_shift_numbering,
    shared_shift_numbering,
)
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness


async def test_shop_and_counter_shift_numbering(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path / "shared") as kkt:
        assert kkt.till.settings.shift_mode == "shared"
        # On a new till: the shop's shift 1, the counter sale and Z-report (1, 1).
        await run_case(kkt, shared_shift_numbering)

    async with StackHarness.running(tmp_path / "separate", shift_mode="separate") as kkt:
        ofd = kkt.stack.ofd
        assert ofd is not None

        async def separate(_run: ScenarioRun) -> None:
            # The OFD holds the opening and closing reports of the shop's automatic shift.
            async def shifts_reported() -> bool:
                codes = [d.doc_code for d in ofd.received(kkt.till.fn_serial)]
                return (
                    codes.count(DocCode.CLOSE_SHIFT) >= 2 and codes.count(DocCode.OPEN_SHIFT) >= 3
                )

            await until(kkt, shifts_reported)
            codes = [d.doc_code for d in ofd.received(kkt.till.fn_serial)]
            assert (codes.count(DocCode.OPEN_SHIFT), codes.count(DocCode.CLOSE_SHIFT)) == (3, 2)

        # On a new till: the shop's shift 1 with both its documents, closed on time; the
        # counter's (2, 1) with the shop's third document in it, the Z-report (2, 1), then the
        # app's shift 2.
        await run_case(kkt, separate_shift_numbering, separate=separate)
        assert kkt.till.settings.shift_mode == "separate"
