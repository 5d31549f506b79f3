"""FnClient against a served drive over an in-memory pipe, with and without a noisy link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from kkt_emulator.clock import ManualClock
from kkt_emulator.errors import DriveError, TransportError, ValidationError
from kkt_emulator.fn.codes import Command, Phase, ResultCode
from kkt_emulator.fnio.client import FnClient, LocalRefusalError, result_text
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.profiles import DEFAULT_PROFILE
from kkt_emulator.testing.drive import DEFAULT_START, DriveBench, Item, item_tlv
from kkt_emulator.transport.base import ByteManipulator
from kkt_emulator.transport.memory import memory_pipe_pair


@asynccontextmanager
async def served(
    bench: DriveBench, drive_side: ByteManipulator | None = None, answer_timeout: float = 2.0
) -> AsyncIterator[tuple[FnClient, ManualClock]]:
    clock = ManualClock(bench.now)
    till_end, drive_end = memory_pipe_pair(
        clock,
        manipulators=(ByteManipulator(clock=clock), drive_side or ByteManipulator(clock=clock)),
    )
    server = DriveServer(bench.endpoint, clock)
    task = asyncio.create_task(server.serve(drive_end))
    try:
        yield (
            FnClient(till_end, timeout=answer_timeout, retries=10, max_data=bench.config.max_data),
            clock,
        )
    finally:
        await till_end.close()
        await task


def registered() -> DriveBench:
    bench = DriveBench(DEFAULT_PROFILE, start=DEFAULT_START)
    bench.register()
    return bench


async def test_status_shift_and_receipt() -> None:
    bench = registered()
    async with served(bench) as (client, clock):
        status = await client.status()
        assert status.phase == Phase.FISCAL
        assert await client.serial() == bench.serial
        local = bench.drive.local_time(clock.now())
        shift = await client.open_shift(local)
        assert shift.shift_number == 1
        tlv = bench.receipt_tlv(4550) + item_tlv(Item())
        answer = await client.receipt(local, 1, 4550, tlv)
        assert (answer.receipt_number, answer.fd) == (1, 3)


async def test_drive_refusal_cancels_the_document_and_names_the_code() -> None:
    bench = registered()
    async with served(bench) as (client, clock):
        local = bench.drive.local_time(clock.now())
        await client.open_shift(local)
        tlv = bench.receipt_tlv(4550, tax_system=0x20) + item_tlv(Item())
        with pytest.raises(DriveError) as info:
            await client.receipt(local, 1, 4550, tlv)
        assert info.value.code == ResultCode.TAG_NOT_REGISTERED
        assert info.value.data == (1055).to_bytes(2, "little")
        assert (await client.status()).current_document == 0
        assert result_text(0x19) == "Реквизит не соответствует установкам при регистрации"


async def test_long_tlv_is_cut_at_object_boundaries() -> None:
    bench = registered()
    async with served(bench) as (client, clock):
        local = bench.drive.local_time(clock.now())
        await client.open_shift(local)
        items = [Item(name=f"Товар номер {i}") for i in range(60)]
        tlv = bench.receipt_tlv(sum(i.total for i in items)) + b"".join(item_tlv(i) for i in items)
        assert len(tlv) > bench.config.max_data * 2
        answer = await client.receipt(local, 1, sum(i.total for i in items), tlv)
        assert answer.receipt_number == 1


async def test_corrupted_answers_are_recovered_with_enq_and_nothing_is_lost() -> None:
    bench = registered()
    noisy = ByteManipulator(corrupt_probability=0.25, seed=7)
    async with served(bench, noisy) as (client, clock):
        local = bench.drive.local_time(clock.now())
        await client.open_shift(local)
        for n in range(1, 11):
            answer = await client.receipt(
                local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item())
            )
            assert answer.receipt_number == n
        assert client.enq_sent > 0
        assert noisy.corrupted > 0
    assert bench.drive.state.receipts_in_shift == 10


async def test_silent_drive_times_out() -> None:
    bench = registered()
    silent = ByteManipulator(drop_probability=1.0, seed=1)
    async with served(bench, silent, answer_timeout=0.05) as (client, _):
        with pytest.raises(TransportError, match="did not answer"):
            await client.call(Command.STATUS)


async def test_a_tlv_larger_than_a_frame_is_a_local_refusal_not_a_drive_answer() -> None:
    bench = DriveBench(DEFAULT_PROFILE, start=DEFAULT_START)
    async with served(bench) as (client, local):
        commands = bench.endpoint.commands
        size = client.max_data + 10  # one raw TLV (tag, length, value; all little-endian)
        huge = (1192).to_bytes(2, "little") + size.to_bytes(2, "little") + b"x" * size
        with pytest.raises(LocalRefusalError) as refused:
            await client.send_tlv(huge)
        assert not isinstance(refused.value, DriveError)
        assert isinstance(refused.value, ValidationError)
        assert refused.value.code == ResultCode.TLV_TOO_LARGE
        assert refused.value.as_drive_error().code == ResultCode.TLV_TOO_LARGE
        assert bench.endpoint.commands == commands  # nothing reached the drive
        del local
