"""Shifts close on time by themselves (D85): 24 hours after they opened, on the business clock.

An internet shop's shifts «открываются и закрываются автоматически»: a shop-only till must close
its shift without waiting for the next document, and its closing report goes only to the OFD.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till import shifts as shifts_module

Events = list[tuple[str, dict[str, Any]]]


async def _until(kkt: StackHarness, what: str, predicate: Any, seconds: float = 10.0) -> None:
    deadline = kkt.clock.monotonic() + seconds
    while not predicate():
        assert kkt.clock.monotonic() < deadline, f"not reached in time: {what}"
        await kkt.clock.pace(0.02)


def _listen(kkt: StackHarness) -> Events:
    events: Events = []
    kkt.till.listeners.append(lambda event, data: events.append((event, data)))
    return events


def _shift(kkt: StackHarness) -> dict[str, Any]:
    shift: dict[str, Any] = kkt.till.drive_view()["shift"]
    return shift


def _closes(events: Events) -> list[dict[str, Any]]:
    return [data for event, data in events if event == "shift.closed"]


def _expires(kkt: StackHarness) -> datetime:
    expires = kkt.till.deadlines()["shift.expires"]
    assert expires is not None
    return expires


async def _shop_document(kkt: StackHarness, total: float) -> dict[str, Any]:
    doc = kkt.sale(total)
    await kkt.post_document(doc)
    status = await kkt.wait_for_status(doc["id"])
    assert status["status"] == "COMPLETED", status
    return status


async def test_a_shop_only_shift_closes_after_24_hours_without_a_document(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        assert kkt.till.settings.shift_mode == "shared"
        events = _listen(kkt)
        first = await _shop_document(kkt, 10.0)
        assert first["fiscalInfo"]["shiftNumber"] == 1
        opened = kkt.clock.now()
        closing = kkt.till.shifts.closing_time()
        assert closing is not None
        assert closing <= _expires(kkt)
        # A minute short of 24 hours the shift is still open.
        await kkt.advance(_expires(kkt) - kkt.clock.now() - timedelta(minutes=1))
        await kkt.clock.pace(0.1)
        assert _shift(kkt)["open"] is True
        assert _closes(events) == []
        # At 24 hours it closes by itself: no document arrived, the cashier got no Z-report.
        await kkt.advance(timedelta(minutes=2))
        await _until(kkt, "the shift closed", lambda: bool(_closes(events)))
        assert _shift(kkt)["open"] is False
        [closed] = _closes(events)
        assert closed["shiftNumber"] == 1
        assert closed["automatic"] is True
        assert kkt.till.counters["fiscalized"] == 1
        assert kkt.clock.now() - opened <= timedelta(hours=24, minutes=2)
        # Its report goes to the OFD.
        ofd = kkt.stack.ofd
        assert ofd is not None

        def reported() -> bool:
            codes = [d.doc_code for d in ofd.received(kkt.till.fn_serial)]
            return DocCode.CLOSE_SHIFT in codes

        await _until(kkt, "the OFD has the closing report", reported)
        # The next document opens the next shift, and that one is timed too.
        second = await _shop_document(kkt, 11.0)
        assert second["fiscalInfo"]["shiftNumber"] == 2
        assert _expires(kkt) > kkt.clock.now() + timedelta(hours=23)
        assert kkt.till.shifts.closing_time() == _expires(kkt)


async def test_separate_mode_one_shift_across_batches_and_the_counter_shift_ends_with_it(
    tmp_path: Path,
) -> None:
    async with StackHarness.running(tmp_path, shift_mode="separate") as kkt:
        events = _listen(kkt)
        for total in (10.0, 11.0, 12.0):  # three poll batches, one shift
            status = await _shop_document(kkt, total)
            assert status["fiscalInfo"]["shiftNumber"] == 1
        assert _shift(kkt)["open"] is True
        sale = await kkt.till.sell(500)  # the counter opens the app's shift 1 in the drive's 1
        assert (sale["shiftNumber"], sale["appShiftNumber"]) == (1, 1)
        assert kkt.till.counter_shift() == {"number": 1, "open": True}
        await kkt.advance(_expires(kkt) - kkt.clock.now())
        await _until(kkt, "the shift closed", lambda: bool(_closes(events)))
        assert _shift(kkt)["open"] is False
        [closed] = _closes(events)
        assert (closed["shiftNumber"], closed["automatic"]) == (1, True)
        await _until(kkt, "the counter shift closed", lambda: not kkt.till.counter_shift()["open"])
        assert kkt.till.counter_shift() == {"number": 1, "open": False}
        sale = await kkt.till.sell(100)
        assert (sale["shiftNumber"], sale["appShiftNumber"]) == (2, 2)
        # The cashier's own close is not automatic.
        await kkt.till.close_shift()
        assert [c["automatic"] for c in _closes(events)] == [True, False]


async def test_a_drive_that_does_not_answer_delays_the_close_until_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shifts_module, "SHIFT_RECHECK", 0.05)
    async with StackHarness.running(tmp_path, drive_timeout=0.3) as kkt:
        events = _listen(kkt)
        await _shop_document(kkt, 10.0)
        kkt.till.inject_fault("fn.disconnected")
        await kkt.advance(_expires(kkt) - kkt.clock.now())
        await kkt.clock.pace(0.8)  # at least one close timed out meanwhile
        assert _closes(events) == []
        kkt.till.clear_faults("fn.disconnected")
        await _until(kkt, "the shift closed", lambda: bool(_closes(events)))
        assert _shift(kkt)["open"] is False
        assert [c["automatic"] for c in _closes(events)] == [True]


async def test_the_timer_outlives_a_crash_and_restart_of_the_till(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        events = _listen(kkt)
        await _shop_document(kkt, 10.0)
        await kkt.till._restart_after_crash("power cut")  # the store and the drive reopened
        assert _shift(kkt)["open"] is True
        await kkt.advance(_expires(kkt) - kkt.clock.now())
        await _until(kkt, "the shift closed", lambda: bool(_closes(events)))
        assert [c["automatic"] for c in _closes(events)] == [True]
