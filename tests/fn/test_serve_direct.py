"""DriveServer on the memory pair: the direct path answers a plain line, faults take the bytes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kkt_emulator.clock import ManualClock
from kkt_emulator.fn.codes import Command, Phase
from kkt_emulator.fn.frame import decode_frame, encode_frame
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.profiles import DEFAULT_PROFILE
from kkt_emulator.testing.drive import DEFAULT_START, DriveBench, Item, item_tlv
from kkt_emulator.transport.base import TX, ByteManipulator
from kkt_emulator.transport.memory import MemoryPipe, memory_pipe_pair

# A guard against hangs only: nothing here measures how long anything takes.
GUARD_S = 20.0


class Served:
    def __init__(
        self,
        bench: DriveBench,
        till_end: MemoryPipe,
        drive_end: MemoryPipe,
        drive_side: ByteManipulator,
    ) -> None:
        self.bench = bench
        self.till_end = till_end
        self.drive_end = drive_end
        self.drive_side = drive_side
        self.client = FnClient(till_end, timeout=5.0, retries=10, max_data=bench.config.max_data)


@asynccontextmanager
async def served(delay: float | None = None) -> AsyncIterator[Served]:
    bench = DriveBench(DEFAULT_PROFILE, start=DEFAULT_START)
    bench.register()
    clock = ManualClock(bench.now)
    drive_side = ByteManipulator(clock=clock, seed=4)
    till_end, drive_end = memory_pipe_pair(
        clock, manipulators=(ByteManipulator(clock=clock), drive_side)
    )
    server = DriveServer(bench.endpoint, clock, None if delay is None else (lambda _code: delay))
    task = asyncio.create_task(server.serve(drive_end))
    await asyncio.sleep(0)  # the pump starts and offers the direct path
    try:
        yield Served(bench, till_end, drive_end, drive_side)
    finally:
        await till_end.close()
        await task


async def test_a_plain_line_is_answered_within_the_write() -> None:
    async with served() as s:
        before = s.bench.endpoint.commands
        await s.till_end.write(encode_frame(Command.STATUS))
        # No task ran in between: the answer is already in the till's buffer.
        answer = decode_frame(s.till_end.read_nowait())
        assert answer.code == 0
        assert s.bench.endpoint.commands == before + 1


async def test_a_whole_receipt_on_the_direct_path_matches_the_drive() -> None:
    async with served() as s:
        local = s.bench.drive.local_time(s.bench.now)
        await s.client.open_shift(local)
        tlv = s.bench.receipt_tlv(4550) + item_tlv(Item())
        done = await s.client.receipt(local, 1, 4550, tlv)
        status = await s.client.status()
        assert status.phase == Phase.FISCAL
        assert status.last_fd == done.fd
        assert s.client.enq_sent == 0


async def test_a_dropping_line_goes_back_to_bytes_then_direct_again() -> None:
    async with served() as s:
        await s.client.status()
        s.drive_side.drop_probability = 1.0
        answered = asyncio.Event()

        def sent(direction: str, data: bytes) -> None:
            del data
            if direction == TX:
                answered.set()

        s.drive_end.add_trace(sent)
        await s.till_end.write(encode_frame(Command.STATUS))
        # The drive's pump has to answer, and its answer is lost on the line.
        assert s.till_end.read_nowait() == b""
        await asyncio.wait_for(answered.wait(), GUARD_S)
        s.drive_end.remove_trace(sent)
        assert s.drive_side.dropped == 1
        assert s.till_end.read_nowait() == b""
        s.drive_side.drop_probability = 0.0
        before = s.drive_side.chunks
        status = await s.client.status()
        assert status.serial == s.bench.serial
        # Answered on the direct path: the drive's manipulator saw nothing.
        assert s.drive_side.chunks == before


async def test_the_client_retries_with_enq_through_the_pump() -> None:
    async with served() as s:
        s.drive_side.corrupt_probability = 0.5
        for _ in range(5):
            await s.client.status()
        assert s.drive_side.corrupted > 0
        assert s.client.enq_sent > 0


async def test_realistic_timing_keeps_the_pump() -> None:
    async with served(delay=0.0) as s:
        await s.till_end.write(encode_frame(Command.STATUS))
        assert s.till_end.read_nowait() == b""
        status = await s.client.status()
        assert status.serial == s.bench.serial
