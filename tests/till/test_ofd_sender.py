"""The till's OFD sender end to end: a real drive behind DriveServer, the OFD stand-in on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from kkt_emulator.clock import ManualClock
from kkt_emulator.errors import ConfigError, DriveError, TransportError
from kkt_emulator.fn.codes import Command, OfdRejectReason, ResultCode, WarningFlag
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.ofd.server import OfdServer
from kkt_emulator.profiles import DEFAULT_PROFILE
from kkt_emulator.testing.drive import DriveBench, Item, item_tlv
from kkt_emulator.till.ofd_sender import OfdSender, parse_address
from kkt_emulator.transport.memory import memory_pipe_pair

PROFILES = [DEFAULT_PROFILE, "modulkassa-ffd105"]
# Sberbank's ИНН: valid check digits, but not the operator the drive was registered with.
OTHER_OFD_INN = "7707083893"
SAFETY_TIMEOUT = 10.0  # a hang guard, never a timing assertion


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures logging globally (onto a captured stream): start clean, put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@dataclass
class Rig:
    bench: DriveBench
    clock: ManualClock
    client: FnClient
    ofd: OfdServer
    sender: OfdSender
    sent: list[int] = field(default_factory=list)
    acked: list[tuple[int, datetime]] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    all_acked: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def ofd_status(self) -> Any:
        return await self.client.call(Command.OFD_STATUS)


def bench_with_documents(profile: str, sales: int = 3) -> DriveBench:
    bench = DriveBench(profile)
    bench.register()
    bench.open_shift()
    for _ in range(sales):
        bench.sale()
    return bench


@asynccontextmanager
async def rig(
    bench: DriveBench, *, ofd_inn: str = "7704358518", **sender_options: Any
) -> AsyncIterator[Rig]:
    clock = ManualClock(bench.now)
    till_end, drive_end = memory_pipe_pair(clock)
    serving = asyncio.create_task(DriveServer(bench.endpoint, clock).serve(drive_end))
    client = FnClient(till_end, timeout=2.0, max_data=bench.config.max_data)
    try:
        async with OfdServer(clock, ofd_inn=ofd_inn) as ofd:
            box: list[Rig] = []

            async def on_sent(fd: int) -> None:
                box[0].sent.append(fd)

            async def on_ack(fd: int, when: datetime) -> None:
                box[0].acked.append((fd, when))
                if len(box[0].acked) >= box[0].expected:
                    box[0].all_acked.set()

            sender = OfdSender(
                client,
                clock,
                ofd.address,
                ffd=bench.profile.ffd_version,
                fn_serial=bench.serial,
                on_sent=on_sent,
                on_ack=on_ack,
                **sender_options,
            )
            box.append(Rig(bench, clock, client, ofd, sender))
            original = client.call

            async def recording_call(code: int, /, data: bytes | None = None, **fields: Any) -> Any:
                box[0].calls.append(code)
                return await original(code, data=data, **fields)

            client.call = recording_call  # type: ignore[method-assign]
            try:
                yield box[0]
            finally:
                await sender.close()
    finally:
        await till_end.close()
        await serving


async def run_until_acked(r: Rig, count: int) -> None:
    r.expected = count
    stop = asyncio.Event()
    task = asyncio.create_task(r.sender.run(stop, interval=0.005, backoff_max=0.02))
    try:
        await asyncio.wait_for(r.all_acked.wait(), SAFETY_TIMEOUT)
    finally:
        stop.set()
        await asyncio.wait_for(task, SAFETY_TIMEOUT)


@pytest.mark.parametrize("profile", PROFILES)
async def test_send_once_acknowledges_every_document(profile: str) -> None:
    bench = bench_with_documents(profile)
    async with rig(bench) as r:
        assert (await r.ofd_status()).unsent == 5
        assert await r.sender.send_once() == [1, 2, 3, 4, 5]
        status = await r.ofd_status()
        # The connection is kept for the next round, and the drive is told so.
        assert (status.unsent, status.reading, status.status & 0x01) == (0, 0, 1)
        assert r.ofd.connections == 1
        now = r.clock.now()
        assert r.sent == [1, 2, 3, 4, 5]
        assert r.acked == [(fd, now) for fd in range(1, 6)]
        for fd in range(1, 6):
            stored = await r.client.call(Command.OFD_ACK_BY_NUMBER, fd=fd)
            assert stored.fd == fd
        assert r.ofd.acknowledged_fds(bench.serial) == {1, 2, 3, 4, 5}
        assert [d.doc_code for d in r.ofd.received(bench.serial)] == [1, 2, 3, 3, 3]
        assert await r.sender.send_once() == []
        await r.sender.close()
        assert (await r.ofd_status()).status & 0x01 == 0


async def test_the_real_till_sequence_per_document() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        r.client.max_data = 100  # several 23h blocks per container
        assert await r.sender.send_once() == [1, 2]
        calls = r.calls
        per_document = calls[2 : calls.index(Command.OFD_ACK_BY_NUMBER) + 1]
        reads = per_document.count(Command.OFD_READ_BLOCK)
        assert reads >= 2
        assert per_document == [
            Command.OFD_START_READ,
            *[Command.OFD_READ_BLOCK] * reads,
            Command.OFD_FINISH_READ,
            Command.OFD_RECEIPT,
            Command.OFD_ACK_BY_NUMBER,
        ]
        # One 20h and one 21h(1) per round; the second document reuses both.
        second = calls[2 + len(per_document) :]
        assert calls[:2] == [Command.OFD_STATUS, Command.OFD_TRANSPORT]
        assert [c for c in second if c != Command.OFD_READ_BLOCK] == [
            Command.OFD_START_READ,
            Command.OFD_FINISH_READ,
            Command.OFD_RECEIPT,
            Command.OFD_ACK_BY_NUMBER,
        ]
        await r.sender.close()
        assert r.calls[-1] == Command.OFD_TRANSPORT
        assert (await r.ofd_status()).status & 0x01 == 0


async def test_ofd_down_raises_and_leaves_the_queue_intact_then_run_drains_it() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE)
    async with rig(bench) as r:
        await r.ofd.set_fault("ofd.down")
        with pytest.raises(TransportError, match="cannot connect"):
            await r.sender.send_once()
        status = await r.ofd_status()
        assert (status.unsent, status.first_fd, status.reading, status.status & 0x01) == (
            5,
            1,
            0,
            0,
        )
        assert r.sent == []
        assert r.ofd.received() == []
        await r.ofd.clear_faults()
        await run_until_acked(r, 5)
        assert [fd for fd, _ in r.acked] == [1, 2, 3, 4, 5]
        assert (await r.ofd_status()).unsent == 0


async def test_run_backs_off_while_down_and_recovers() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=1)
    async with rig(bench) as r:
        await r.ofd.set_fault("ofd.down")
        failures = 0
        failed_twice = asyncio.Event()
        original = r.sender.send_once

        async def counting() -> list[int]:
            nonlocal failures
            try:
                return await original()
            except TransportError:
                failures += 1
                if failures == 2:
                    failed_twice.set()
                raise

        r.sender.send_once = counting  # type: ignore[method-assign]
        r.expected = 3
        stop = asyncio.Event()
        task = asyncio.create_task(r.sender.run(stop, interval=0.005, backoff_max=0.02))
        await asyncio.wait_for(failed_twice.wait(), SAFETY_TIMEOUT)
        assert not task.done()
        await r.ofd.clear_faults()
        await asyncio.wait_for(r.all_acked.wait(), SAFETY_TIMEOUT)
        stop.set()
        await asyncio.wait_for(task, SAFETY_TIMEOUT)
        assert [fd for fd, _ in r.acked] == [1, 2, 3]


async def test_receipts_signed_while_running_are_sent_on_notify() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        r.expected = 2
        stop = asyncio.Event()
        # An idle interval far beyond the safety timeout: only notify() can wake the loop.
        task = asyncio.create_task(r.sender.run(stop, interval=3600))
        await asyncio.wait_for(r.all_acked.wait(), SAFETY_TIMEOUT)
        r.all_acked.clear()
        r.expected = 5
        local = bench.drive.local_time(r.clock.now())
        for _ in range(3):
            async with r.client.exclusive:
                await r.client.receipt(local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item()))
        r.sender.notify()
        await asyncio.wait_for(r.all_acked.wait(), SAFETY_TIMEOUT)
        stop.set()
        await asyncio.wait_for(task, SAFETY_TIMEOUT)
        assert [fd for fd, _ in r.acked] == [1, 2, 3, 4, 5]


async def test_reject_code_14_is_delivered_and_stored_by_the_drive() -> None:
    # The drive takes an acknowledgement with 1022 = 14 («не прошел ФЛК») as delivery: the
    # document leaves the queue and 41h holds the ack. The OFD lists it as not accepted.
    bench = bench_with_documents(DEFAULT_PROFILE, sales=1)
    async with rig(bench) as r:
        await r.ofd.set_fault("ofd.reject", code=14)
        assert await r.sender.send_once() == [1, 2, 3]
        assert (await r.ofd_status()).unsent == 0
        for fd in (1, 2, 3):
            assert (await r.client.call(Command.OFD_ACK_BY_NUMBER, fd=fd)).fd == fd
        assert [d.ofd_code for d in r.ofd.received()] == [14, 14, 14]
        assert r.ofd.acknowledged_fds(bench.serial) == set()
        # FFD 1.2: the 1206 ФЛК flag becomes the drive's warning bit 4 until a clean ack.
        assert (await r.client.status()).warnings & WarningFlag.FLC_REJECTED
        await r.ofd.clear_faults()
        local = bench.drive.local_time(r.clock.now())
        await r.client.receipt(local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item()))
        assert await r.sender.send_once() == [4]
        assert not (await r.client.status()).warnings & WarningFlag.FLC_REJECTED


async def test_slow_ofd_still_acknowledges() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        await r.ofd.set_fault("ofd.slow", delay_ms=10)
        assert await r.sender.send_once() == [1, 2]


async def test_an_ofd_that_does_not_answer_in_time_is_a_transport_error() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench, reply_timeout=0.05) as r:
        await r.ofd.set_fault("ofd.slow", delay_ms=5000)
        with pytest.raises(TransportError, match="no answer within"):
            await r.sender.send_once()
        assert r.sent == [1]
        assert r.sender.unacknowledged == 1  # the till reports it «sent, not acknowledged»
        status = await r.ofd_status()
        assert (status.unsent, status.reading, status.status & 0x01) == (2, 0, 0)
        await r.ofd.clear_faults()
        assert await r.sender.send_once() == [1, 2]
        assert r.sender.unacknowledged is None


async def test_a_drive_refusal_of_the_ack_stops_the_round_with_the_reason() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench, ofd_inn=OTHER_OFD_INN) as r:
        with capture_logs() as logs, pytest.raises(DriveError) as info:
            await r.sender.send_once()
        refusals = [e for e in logs if e["event"] == "ofd_ack_refused_by_drive"]
        assert [(e["fd"], e["reason"], e["reason_name"]) for e in refusals] == [
            (1, OfdRejectReason.BAD_OFD_INN, "bad_ofd_inn")
        ]
        assert info.value.code == ResultCode.OFD_MESSAGE_REJECTED
        assert info.value.data == bytes((OfdRejectReason.BAD_OFD_INN,))
        assert r.acked == []
        status = await r.ofd_status()
        assert (status.unsent, status.status & 0x01) == (2, 0)


async def test_a_read_that_fails_half_way_is_cancelled() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        r.client.max_data = 100
        recording = r.client.call
        blocks = 0

        async def flaky(code: int, /, data: bytes | None = None, **fields: Any) -> Any:
            nonlocal blocks
            if code == Command.OFD_READ_BLOCK:
                blocks += 1
                if blocks == 2:
                    raise TransportError("line noise")
            return await recording(code, data=data, **fields)

        r.client.call = flaky  # type: ignore[method-assign]
        with pytest.raises(TransportError, match="line noise"):
            await r.sender.send_once()
        assert r.calls[-2:] == [Command.OFD_CANCEL_READ, Command.OFD_TRANSPORT]
        assert (await r.ofd_status()).reading == 0
        assert r.ofd.received() == []


@pytest.mark.parametrize("profile", PROFILES)
async def test_the_30_day_rule_through_the_real_pieces(profile: str) -> None:
    bench = bench_with_documents(profile, sales=1)
    async with rig(bench) as r:
        await r.ofd.set_fault("ofd.down")
        with pytest.raises(TransportError):
            await r.sender.send_once()
        await r.clock.advance(timedelta(days=31))
        local = bench.drive.local_time(r.clock.now())
        tlv = bench.receipt_tlv(4550) + item_tlv(Item())
        with pytest.raises(DriveError) as info:
            await r.client.receipt(local, 1, 4550, tlv)
        assert info.value.code == bench.config.ofd_block_code
        assert info.value.code in (ResultCode.STORAGE_EXHAUSTED, ResultCode.OFD_WAIT_EXHAUSTED)
        await r.ofd.clear_faults()
        await run_until_acked(r, 3)
        assert (await r.ofd_status()).unsent == 0
        await r.client.close_shift(local)
        await r.client.open_shift(local)
        answer = await r.client.receipt(local, 1, 4550, tlv)
        assert answer.receipt_number == 1


def test_bad_settings_are_config_errors() -> None:
    bench = DriveBench(DEFAULT_PROFILE)
    client = FnClient(memory_pipe_pair()[0])
    clock = ManualClock(bench.now)
    for address in ("localhost", "host:0", "host:99999", ":7777", "host:port"):
        with pytest.raises(ConfigError):
            OfdSender(client, clock, address, ffd="1.2", fn_serial=bench.serial)
    with pytest.raises(ConfigError, match="FFD"):
        OfdSender(client, clock, "127.0.0.1:7777", ffd="2.0", fn_serial=bench.serial)
    assert parse_address("[::1]:7777") == ("::1", 7777)
    assert parse_address("ofd.example:7777") == ("ofd.example", 7777)


async def test_a_kept_connection_the_ofd_closed_is_replaced_without_a_failure() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        assert await r.sender.send_once() == [1, 2]
        # down then up again: the stand-in closed the connection the sender kept.
        await r.ofd.set_fault("ofd.down")
        await r.ofd.clear_faults()
        local = bench.drive.local_time(r.clock.now())
        await r.client.receipt(local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item()))
        assert await r.sender.send_once() == [3]
        assert r.ofd.connections == 2
        assert r.ofd.acknowledged_fds(bench.serial) == {1, 2, 3}


async def test_ofd_down_while_a_connection_is_kept_fails_the_round_and_keeps_the_queue() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench) as r:
        assert await r.sender.send_once() == [1, 2]
        await r.ofd.set_fault("ofd.down")
        local = bench.drive.local_time(r.clock.now())
        await r.client.receipt(local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item()))
        with pytest.raises(TransportError, match="cannot connect"):
            await r.sender.send_once()
        status = await r.ofd_status()
        assert (status.unsent, status.first_fd, status.reading, status.status & 0x01) == (
            1,
            3,
            0,
            0,
        )
        assert r.ofd.acknowledged_fds(bench.serial) == {1, 2}
        await r.ofd.clear_faults()
        assert await r.sender.send_once() == [3]


async def test_an_idle_connection_is_closed_and_the_next_document_opens_one() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench, idle_close=0.05) as r:
        assert await r.sender.send_once() == [1, 2]
        assert (await r.ofd_status()).status & 0x01 == 1
        assert await r.sender.send_once() == []  # a round with nothing to send keeps the timer
        for _ in range(200):  # a hang guard, not a timing assertion
            if r.sender.idle_closes:
                break
            await r.clock.pace(0.02)
        assert r.sender.idle_closes == 1
        # The drive was told (21h(0)) and the OFD saw the connection end.
        assert r.calls[-1] == Command.OFD_TRANSPORT
        assert (await r.ofd_status()).status & 0x01 == 0
        r.calls.clear()
        local = bench.drive.local_time(r.clock.now())
        await r.client.receipt(local, 1, 4550, bench.receipt_tlv(4550) + item_tlv(Item()))
        r.calls.clear()
        assert await r.sender.send_once() == [3]
        assert r.ofd.connections == 2
        assert r.calls[:2] == [Command.OFD_STATUS, Command.OFD_TRANSPORT]  # 21h(1) again
        assert r.ofd.acknowledged_fds(bench.serial) == {1, 2, 3}


async def test_a_busy_connection_is_kept_across_idle_periods() -> None:
    bench = bench_with_documents(DEFAULT_PROFILE, sales=0)
    async with rig(bench, idle_close=30.0) as r:
        assert await r.sender.send_once() == [1, 2]
        for n in range(3):
            local = bench.drive.local_time(r.clock.now())
            await r.client.receipt(
                local, 1, 4550 + n, bench.receipt_tlv(4550 + n) + item_tlv(Item())
            )
            assert await r.sender.send_once() == [3 + n]
        assert (r.ofd.connections, r.sender.idle_closes) == (1, 0)


def test_a_bad_idle_close_is_a_config_error() -> None:
    bench = DriveBench(DEFAULT_PROFILE)
    with pytest.raises(ConfigError, match="idle close must be positive"):
        OfdSender(
            FnClient(memory_pipe_pair()[0]),
            ManualClock(bench.now),
            "127.0.0.1:1",
            ffd="1.2",
            fn_serial=bench.serial,
            idle_close=0,
        )
