"""Support case §1: a till that sells at a counter and for an internet shop (ИМ + розница).

Which number each report shows, per ``shift_mode``:

* ``shared`` (the default): shop documents and counter sales go into one shift. The receipts'
  shift number (1038, what the OFD and the store API's ``fiscalInfo.shiftNumber`` show) and the
  till app's Z-report number are the same.
* ``separate``: the shop's shifts open and close by themselves around its documents (their
  reports exist only at the OFD; the till prints no Z-report for them), and the till app numbers
  the counter's shifts on its own («программная» смена). The drive has one shift at a time, so its
  numbers advance for both: the OFD sees shifts 1 and 2 of the shop and shift 3 of the counter,
  while the till app's Z-report says shift 1. A shop document that arrives while the counter's
  shift is open goes into that shift.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import until

from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness


async def shop_shift(kkt: StackHarness, total: float) -> int:
    doc = kkt.sale(total)
    await kkt.post_document(doc)
    done = await kkt.wait_for_status(doc["id"], "COMPLETED")
    shift: int = done["fiscalInfo"]["shiftNumber"]
    return shift


async def test_shop_and_counter_shift_numbering(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path / "shared") as kkt:
        assert kkt.till.settings.shift_mode == "shared"
        assert await shop_shift(kkt, 10.0) == 1
        sale = await kkt.till.sell(500)
        assert (sale["shiftNumber"], sale["appShiftNumber"]) == (1, 1)
        z_report = await kkt.till.close_shift()
        assert z_report is not None
        assert (z_report["shiftNumber"], z_report["appShiftNumber"]) == (1, 1)

    async with StackHarness.running(tmp_path / "separate", shift_mode="separate") as kkt:
        # Two shop documents: each in a shift of its own that closed by itself.
        assert await shop_shift(kkt, 10.0) == 1
        assert await shop_shift(kkt, 11.0) == 2
        state = await kkt.till.snapshot_state()
        assert state["shift"]["open"] is False
        assert state["counterShift"] == {"number": 0, "open": False}

        # The counter opens its shift: the drive's third, the till app's first.
        sale = await kkt.till.sell(500)
        assert (sale["shiftNumber"], sale["appShiftNumber"]) == (3, 1)
        # A shop document meanwhile joins the counter's open shift, which stays open.
        assert await shop_shift(kkt, 12.0) == 3
        state = await kkt.till.snapshot_state()
        assert state["shift"] == {**state["shift"], "open": True, "number": 3}
        assert state["counterShift"] == {"number": 1, "open": True}

        z_report = await kkt.till.close_shift()
        assert z_report is not None
        assert (z_report["shiftNumber"], z_report["appShiftNumber"]) == (3, 1)
        assert (await kkt.till.sell(100))["appShiftNumber"] == 2

        # The OFD holds the opening and closing reports of the shop's automatic shifts.
        ofd = kkt.stack.ofd
        assert ofd is not None

        async def shifts_reported() -> bool:
            codes = [d.doc_code for d in ofd.received(kkt.till.fn_serial)]
            return codes.count(DocCode.CLOSE_SHIFT) >= 3 and codes.count(DocCode.OPEN_SHIFT) >= 4

        await until(kkt, shifts_reported)
        codes = [d.doc_code for d in ofd.received(kkt.till.fn_serial)]
        assert (codes.count(DocCode.OPEN_SHIFT), codes.count(DocCode.CLOSE_SHIFT)) == (4, 3)
