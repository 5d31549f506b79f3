"""A bug inside the drive shows in the till's state (``drive.crashes``), not only as 03h."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.testing.stack import StackHarness


async def test_a_drive_crash_is_counted_in_the_till_state(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        before = (await kkt.till.snapshot_state())["drive"]["crashes"]
        assert before == {"count": 0, "last": None}
        drive = kkt.till.drive
        assert drive is not None

        def broken(local: datetime, request: object) -> bytes:
            raise RuntimeError(f"bug at {local:%H:%M} with {request!r}")

        drive._handlers[Command.SERIAL] = broken
        with pytest.raises(DriveError) as refused:
            await kkt.till.fn.call(Command.SERIAL)
        assert refused.value.code == ResultCode.FN_FAILURE
        crashes = (await kkt.till.snapshot_state())["drive"]["crashes"]
        assert crashes["count"] == 1
        assert crashes["last"].startswith("RuntimeError: bug at")
