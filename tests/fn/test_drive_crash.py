"""A bug inside the drive: answered 03h «Отказ ФН», and recorded and logged where it can be seen."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from structlog.testing import capture_logs

from kkt_emulator.clock import ManualClock
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.crash import DriveCrash
from kkt_emulator.fn.frame import decode_frame, encode_frame
from kkt_emulator.fn.rules import PHASES
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.testing.drive import DriveBench
from kkt_emulator.transport.memory import memory_pipe_pair


def _broken_bench() -> DriveBench:
    bench = DriveBench("modulkassa-ffd12")

    def broken(local: datetime, request: object) -> bytes:
        raise RuntimeError(f"bug at {local:%H:%M} with {request!r}")

    bench.drive._handlers[Command.SERIAL] = broken
    return bench


def test_a_crash_is_answered_03h_and_recorded() -> None:
    bench = _broken_bench()
    seen: list[tuple[DriveCrash, BaseException]] = []
    bench.endpoint.on_crash = lambda crash, exc: seen.append((crash, exc))
    answer = bench.raw(Command.SERIAL)
    assert answer.result == ResultCode.FN_FAILURE
    assert bench.endpoint.crash_count == 1
    crash = bench.endpoint.last_crash
    assert crash is not None
    assert crash is bench.drive.last_crash
    assert crash.command == Command.SERIAL
    assert crash.exc_type == "RuntimeError"
    assert crash.message.startswith("bug at")
    assert "RuntimeError" in crash.traceback
    assert "broken" in crash.traceback
    assert crash.when == bench.now
    assert crash.to_json()["command"] == "31h"
    assert [(c, type(e)) for c, e in seen] == [(crash, RuntimeError)]
    # The drive goes on answering, as a real one does.
    assert bench.raw(Command.STATUS).result == ResultCode.OK
    assert bench.raw(Command.SERIAL).result == ResultCode.FN_FAILURE
    assert bench.endpoint.crash_count == 2


def test_no_crash_is_recorded_for_refusals() -> None:
    bench = DriveBench("modulkassa-ffd12")
    assert bench.raw(Command.OPEN_SHIFT).result == ResultCode.WRONG_STATE
    assert bench.raw(0x99).result == ResultCode.UNKNOWN_COMMAND
    assert bench.endpoint.crash_count == 0
    assert bench.endpoint.last_crash is None


async def test_the_pump_logs_a_crash_with_its_traceback_and_serial() -> None:
    bench = _broken_bench()
    earlier: list[DriveCrash] = []
    bench.endpoint.on_crash = lambda crash, _exc: earlier.append(crash)
    clock = ManualClock(bench.now)
    till_end, drive_end = memory_pipe_pair(clock)
    with capture_logs() as logs:
        server = DriveServer(bench.endpoint, clock)
        task = asyncio.create_task(server.serve(drive_end))
        await till_end.write(encode_frame(Command.SERIAL))
        raw = await till_end.read(4096)
        await till_end.close()
        await task
    assert decode_frame(raw).result == ResultCode.FN_FAILURE
    (entry,) = [e for e in logs if e["event"] == "drive_crashed"]
    assert entry["log_level"] == "error"
    assert entry["fn_serial"] == bench.serial
    assert entry["command"] == "31h"
    assert isinstance(entry["exc_info"], RuntimeError)
    assert len(earlier) == 1, "the endpoint's own hook is still called"


def test_every_command_has_a_phase_rule() -> None:
    bench = DriveBench("modulkassa-ffd12")
    assert set(bench.drive._handlers) == set(PHASES)


@pytest.mark.parametrize("code", sorted(PHASES))
def test_phase_rules_name_real_phases(code: int) -> None:
    assert PHASES[code], f"{code:02X}h is admitted in no phase"
