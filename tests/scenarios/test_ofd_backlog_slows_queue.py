"""Support case §4: an unpaid OFD slows the shop queue once about 700–800 receipts wait.

The model: when the drive holds more documents the OFD has not acknowledged than the profile's
``quirks.ofd_backlog_threshold`` (700 in the shipped profiles), the till waits
``quirks.ofd_backlog_slowdown_s`` before each document and publishes one ``warning`` event. The test
uses a copy of the profile with a threshold of 3 and a 0.1 s slowdown. Documents still complete —
slower, not stopped — and once the OFD takes the backlog the till stops pacing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from scenario_helpers import run_case

from kkt_emulator.profiles import BUILTIN_DIR
from kkt_emulator.testing.stack import StackHarness

THRESHOLD = 3


def slow_ofd_profile(tmp_path: Path) -> Path:
    """``modulkassa-ffd12`` under another name, with a small backlog threshold."""
    text = (BUILTIN_DIR / "modulkassa-ffd12.toml").read_text(encoding="utf-8")
    text = text.replace('name = "modulkassa-ffd12"', 'name = "modulkassa-ffd12-backlog"')
    text = re.sub(r"ofd_backlog_threshold = \d+", f"ofd_backlog_threshold = {THRESHOLD}", text)
    text = re.sub(r"ofd_backlog_slowdown_s = [\d.]+", "ofd_backlog_slowdown_s = 0.1", text)
    path = tmp_path / "modulkassa-ffd12-backlog.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_ofd_backlog_slows_queue(tmp_path: Path) -> None:
    profile = slow_ofd_profile(tmp_path)
    async with StackHarness.running(tmp_path / "stack", profile=str(profile)) as kkt:
        events: list[tuple[str, dict[str, Any]]] = []
        kkt.till.listeners.append(lambda event, data: events.append((event, data)))

        # The case waits for the registration report to reach the OFD, posts threshold + 3
        # documents with the OFD down, checks the backlog state and the paced documents, then
        # that the till stops pacing once the OFD took the backlog.
        run = await run_case(kkt, "ofd_backlog_slows_queue")

        warnings = [data for event, data in events if event == "warning"]
        assert len(warnings) == 1  # once per crossing, not once per document
        [warning] = warnings
        assert warning["code"] == "ofd.backlog"
        assert warning["threshold"] == THRESHOLD
        assert warning["unsent"] > THRESHOLD
        assert warning["slowdownSeconds"] == 0.1
        # Before the k-th receipt the drive holds the shift opening and k - 1 receipts, k in all:
        # the 4th, 5th and 6th found more than 3 waiting and were paced.
        assert run.facts["paced"] == 3
        assert kkt.till.counters["backlogPaced"] == 3
