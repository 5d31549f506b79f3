"""The in-memory drive link's per-frame shortcuts (D139): same bytes, and the removed costs stay gone.

``encode_frame`` and ``whole_frame`` stand in for the construct frame schema and the framer on
the common case; the properties below put them side by side on any input. The counting tests
fail if a registration or a status read over the direct path goes back through construct or the
framer (nothing here is timed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.app.drivebench import CASHIER, DriveBench, Item, item_tlv
from kkt_emulator.clock import ManualClock
from kkt_emulator.fn.codes import Phase
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.endpoint import DriveEndpoint
from kkt_emulator.fn.frame import FRAME_SCHEMA, Frame, Framer, encode_frame, whole_frame
from kkt_emulator.fn.tlv import tlv_string
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.registration import registration_plan
from kkt_emulator.transport.memory import memory_pipe_pair

START = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(code=st.integers(0, 255), data=st.binary(max_size=300))
def test_encode_frame_builds_what_the_schema_builds(code: int, data: bytes) -> None:
    built = FRAME_SCHEMA.build(
        {"body": {"value": {"length": len(data) + 1, "code": code, "data": data}}}
    )
    assert encode_frame(code, data) == built


def _frames() -> st.SearchStrategy[bytes]:
    """Whole frames, often with a byte changed, cut, doubled or with garbage around them."""
    whole = st.builds(encode_frame, st.integers(0, 255), st.binary(max_size=40))

    def mangle(raw: bytes, how: int, pos: int, extra: bytes) -> bytes:
        pos %= len(raw)
        if how == 1:
            return raw[:pos] + bytes(((raw[pos] + 1) % 256,)) + raw[pos + 1 :]
        if how == 2:
            return raw[:pos]
        if how == 3:
            return raw + raw
        if how == 4:
            return extra + raw
        if how == 5:
            return raw + extra
        return raw

    return st.one_of(
        st.builds(
            mangle, whole, st.integers(0, 5), st.integers(0, 60), st.binary(min_size=1, max_size=3)
        ),
        st.binary(max_size=12),
    )


@settings(max_examples=300, deadline=None)
@given(raw=_frames(), max_data=st.sampled_from([8, 1024, 1536]))
def test_whole_frame_finds_what_the_framer_finds(raw: bytes, max_data: int) -> None:
    fast = whole_frame(raw, max_data)
    framer = Framer(max_data=max_data, accept_enq=True)
    consumed, item = framer.feed(raw)
    counters = (framer.crc_errors, framer.garbage_bytes, framer.oversize)
    if fast is not None:
        # Exactly one frame, all of it, and nothing for the framer to count.
        assert (consumed, item, counters) == (len(raw), fast, (0, 0, 0))
    else:
        assert not (consumed == len(raw) and isinstance(item, Frame) and counters == (0, 0, 0))


class _Counts:
    def __init__(self) -> None:
        self.construct = 0
        self.framer = 0


@contextmanager
def _counting(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counts]:
    """Count every construct parse/build and every framer feed while the block runs."""
    counts = _Counts()
    parse, build, feed = cs.Construct.parse, cs.Construct.build, Framer.feed

    def counted_parse(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.construct += 1
        return parse(self, *args, **kwargs)

    def counted_build(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.construct += 1
        return build(self, *args, **kwargs)

    def counted_feed(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.framer += 1
        return feed(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(cs.Construct, "parse", counted_parse)
        m.setattr(cs.Construct, "build", counted_build)
        m.setattr(Framer, "feed", counted_feed)
        yield counts


@asynccontextmanager
async def _linked(profile_name: str) -> AsyncIterator[tuple[FnClient, DriveEndpoint, ManualClock]]:
    """A new drive served on the in-memory pair as a till's drive slot serves it."""
    profile = load_profile(profile_name)
    clock = ManualClock(START)
    serial = profile.drive.serial_prefix.ljust(16, "0")
    endpoint = DriveEndpoint(FiscalDrive(DriveConfig.from_profile(profile, serial)))
    server = DriveServer(endpoint, clock, None)
    till_end, drive_end = memory_pipe_pair(clock)
    task = asyncio.create_task(server.serve(drive_end))
    await asyncio.sleep(0)  # the pump starts and offers the direct path
    client = FnClient(till_end, retries=10, max_data=profile.drive.max_frame_data)
    try:
        yield client, endpoint, clock
    finally:
        await till_end.close()
        await task


@pytest.mark.parametrize("profile_name", [DEFAULT_PROFILE, "modulkassa-ffd105"])
async def test_a_registration_needs_no_construct_and_no_framer(
    profile_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = load_profile(profile_name)
    async with _linked(profile_name) as (client, endpoint, clock):
        with _counting(monkeypatch) as counts:
            status = await client.status()
            plan = registration_plan(profile, "000100000001")
            await client.call(plan.start, **plan.start_fields)
            await client.send_tlv(plan.tlv)
            when = endpoint.drive.local_time(clock.now())
            answer = await client.call(plan.finish, when=when, **plan.finish_fields)
        registration = (counts.construct, counts.framer, endpoint.commands)
        with _counting(monkeypatch) as counts:
            after = [await client.status() for _ in range(3)]  # a heartbeat's reads
        reads = (counts.construct, counts.framer, endpoint.commands)
    assert status.phase == Phase.READY
    assert answer.fd == after[-1].last_fd == 1
    assert after[-1].phase == Phase.FISCAL
    # Four frames register a drive (30h, start, one 07h, finish); none of them, nor a status
    # read, goes through construct or through a framer on either end of the link.
    assert registration == (0, 0, 4)
    assert reads == (0, 0, 7)


async def test_a_receipt_needs_no_construct_and_no_framer(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile(DEFAULT_PROFILE)
    async with _linked(DEFAULT_PROFILE) as (client, endpoint, clock):
        plan = registration_plan(profile, "000100000001")
        await client.call(plan.start, **plan.start_fields)
        await client.send_tlv(plan.tlv)
        local = endpoint.drive.local_time(clock.now())
        await client.call(plan.finish, when=local, **plan.finish_fields)
        await client.open_shift(local, tlv_string(1021, CASHIER))
        bench = DriveBench(DEFAULT_PROFILE)
        items = [Item(), Item(name="Молоко", price=8990)]
        total = sum(item.total for item in items)
        tlv = bench.receipt_tlv(total) + b"".join(item_tlv(item) for item in items)
        before = endpoint.commands
        with _counting(monkeypatch) as counts:
            done = await client.receipt(local, 1, total, tlv)
    assert done.receipt_number == 1
    assert (counts.construct, counts.framer, endpoint.commands - before) == (0, 0, 3)
