"""Stopping an installation never raises out of the shutdown, and says what failed to stop."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from structlog.testing import capture_logs

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.clock import ManualClock
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.till.till import Till


class _Till:
    def __init__(self, device_id: str, *, fails: bool) -> None:
        self.device_id = device_id
        self.fn_serial = f"99990789000{device_id[-1]}0000"
        self.fails = fails
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        if self.fails:
            raise OSError(28, "No space left on device")


async def test_a_till_that_fails_to_stop_is_logged_and_the_rest_still_stop(tmp_path: Path) -> None:
    tills = [
        _Till("till-1", fails=False),
        _Till("till-2", fails=True),
        _Till("till-3", fails=False),
    ]
    with capture_logs() as logs:
        stack = Stack(StackOptions(load_profile(DEFAULT_PROFILE), tmp_path), ManualClock())
        stack.tills = cast("list[Till]", tills)
        await stack.close()
    assert all(till.closed for till in tills)
    assert stack.tills == []
    failed = [entry for entry in logs if entry["event"] == "stack_stop_failed"]
    assert len(failed) == 1
    assert failed[0]["part"] == "till"
    assert failed[0]["device_id"] == "till-2"
    assert failed[0]["fn_serial"] == tills[1].fn_serial
    assert failed[0]["log_level"] == "error"
    assert failed[0]["exc_info"] is True
