"""One contract suite for every clock mode, then ``parse_duration`` and ``make_clock``.

Nothing here asserts how long anything took in real time: the machine is shared and noisy. Real and
scaled clocks only ever wait a few milliseconds; long business-time waits go through ``advance``.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kkt_emulator.clock import (
    Clock,
    ClockMode,
    ManualClock,
    RealClock,
    ScaledClock,
    make_clock,
    parse_duration,
)
from kkt_emulator.errors import ConfigError

# A guard against hangs only.
GUARD_S = 20.0
# Far enough that a real or 1000× clock never reaches it by itself during a test (86 s at 1000×).
DAY = timedelta(days=1)


@dataclass
class Harness:
    """A clock and how business time passes for it in a test."""

    clock: Clock
    # A business-time wait that takes a few milliseconds of real time (or an advance, if manual).
    tick: timedelta

    @property
    def manual(self) -> bool:
        return isinstance(self.clock, ManualClock)

    async def elapse(self, delta: timedelta) -> None:
        """Let ``delta`` of business time pass: advance a manual clock, wait for the others."""
        if self.manual:
            await self.clock.advance(delta)
        else:
            deadline = self.clock.now() + delta
            while self.clock.now() < deadline:
                await self.clock.pace(0.001)


@pytest.fixture(params=["real", "scaled", "manual"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "real":
        return Harness(RealClock(), timedelta(milliseconds=5))
    if request.param == "scaled":
        return Harness(ScaledClock(factor=1000), timedelta(seconds=5))
    return Harness(ManualClock(datetime(2024, 3, 5, 14, 7, tzinfo=UTC)), timedelta(seconds=5))


async def settle(clock: Clock) -> None:
    """Give started tasks a chance to run up to their first sleep."""
    for _ in range(5):
        await clock.pace(0)


async def sleep_for(clock: Clock, order: list[str], name: str, delay: timedelta) -> None:
    deadline = clock.now() + delay
    await clock.sleep_until(deadline)
    assert clock.now() >= deadline
    order.append(name)


# -- the contract ---------------------------------------------------------------------------------


async def test_now_is_aware_utc_and_never_goes_backwards(harness: Harness) -> None:
    clock = harness.clock
    previous = clock.now()
    for step in range(300):
        if step == 150:
            await clock.advance(timedelta(hours=1))
        current = clock.now()
        assert current.tzinfo is not None
        assert current.utcoffset() == timedelta(0)
        assert current >= previous
        previous = current


async def test_advance_moves_business_time(harness: Harness) -> None:
    before = harness.clock.now()
    after = await harness.clock.advance(timedelta(days=30))
    assert after >= before + timedelta(days=30)
    assert harness.clock.now() >= after


async def test_sleep_wakes_no_earlier_than_the_deadline(harness: Harness) -> None:
    clock = harness.clock
    deadline = clock.now() + harness.tick
    task = asyncio.create_task(clock.sleep(harness.tick.total_seconds()))
    await settle(clock)
    await harness.elapse(harness.tick)
    async with asyncio.timeout(GUARD_S):
        await task
    assert clock.now() >= deadline


async def test_sleep_until_wakes_no_earlier_than_the_deadline(harness: Harness) -> None:
    clock = harness.clock
    order: list[str] = []
    async with asyncio.timeout(GUARD_S), asyncio.TaskGroup() as group:
        for n in (3, 1, 2):
            group.create_task(sleep_for(clock, order, str(n), harness.tick * n))
        await settle(clock)
        await harness.elapse(harness.tick * 3)
    assert order == ["1", "2", "3"]


async def test_sleep_in_the_past_or_zero_returns_at_once(harness: Harness) -> None:
    clock = harness.clock
    async with asyncio.timeout(GUARD_S):
        await clock.sleep(0)
        await clock.sleep(-5)
        await clock.sleep_until(clock.now() - DAY)
    assert clock.next_deadline() is None


async def test_sleep_until_needs_an_aware_datetime(harness: Harness) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await harness.clock.sleep_until(datetime(2030, 1, 1))  # noqa: DTZ001 - the naive value is the point


async def test_advance_wakes_sleepers_in_deadline_order(harness: Harness) -> None:
    clock = harness.clock
    days = [1, 2, 3, 4, 5]
    random.Random(11).shuffle(days)
    order: list[str] = []
    woken_at: dict[str, datetime] = {}
    start = clock.now()

    async def sleep_days(n: int) -> None:
        await clock.sleep_until(start + DAY * n)
        order.append(str(n))
        woken_at[str(n)] = clock.now()

    async with asyncio.timeout(GUARD_S), asyncio.TaskGroup() as group:
        for n in days:
            group.create_task(sleep_days(n))
        await settle(clock)
        assert clock.next_deadline() == start + DAY
        await clock.advance(DAY * 10)
    assert order == ["1", "2", "3", "4", "5"]
    for name, when in woken_at.items():
        deadline = start + DAY * int(name)
        assert when >= deadline
        if harness.manual:
            assert when == deadline  # each sleeper runs with the clock stopped at its deadline
    assert clock.next_deadline() is None


async def test_cancelled_sleeper_is_cleaned_up_and_blocks_nobody(harness: Harness) -> None:
    clock = harness.clock
    start = clock.now()
    order: list[str] = []

    async def sleep_days(n: int) -> None:
        await clock.sleep_until(start + DAY * n)
        order.append(str(n))

    async with asyncio.timeout(GUARD_S), asyncio.TaskGroup() as group:
        tasks = {n: group.create_task(sleep_days(n)) for n in (1, 2, 3)}
        await settle(clock)
        tasks[2].cancel()
        await settle(clock)
        assert len(clock._sleepers) == 2
        assert clock.next_deadline() == start + DAY
        tasks[1].cancel()
        await settle(clock)
        assert len(clock._sleepers) == 1
        assert clock.next_deadline() == start + DAY * 3
        await clock.advance(DAY * 4)
    assert order == ["3"]
    assert tasks[2].cancelled()
    assert clock._sleepers == []


async def test_advance_by_a_negative_delta_raises(harness: Harness) -> None:
    before = harness.clock.now()
    with pytest.raises(ValueError, match="backwards"):
        await harness.clock.advance(timedelta(seconds=-1))
    assert harness.clock.now() >= before
    await harness.clock.advance(timedelta(0))


async def test_sleepers_that_sleep_again_inside_the_window_wake_in_order(harness: Harness) -> None:
    clock = harness.clock
    start = clock.now()
    order: list[str] = []

    async def twice() -> None:
        await clock.sleep_until(start + DAY)
        order.append("A@1d")
        await clock.sleep(DAY.total_seconds())
        order.append("A@2d")
        await clock.sleep(DAY.total_seconds())  # 3 days: beyond the window
        order.append("A@3d")

    async def once(name: str, at: timedelta) -> None:
        await clock.sleep_until(start + at)
        order.append(name)

    async with asyncio.timeout(GUARD_S), asyncio.TaskGroup() as group:
        group.create_task(twice())
        group.create_task(once("B@1.5d", DAY * 1.5))
        group.create_task(once("C@2.5d", DAY * 2.5))
        await settle(clock)
        await clock.advance(DAY * 2.75)
        assert order == ["A@1d", "B@1.5d", "A@2d", "C@2.5d"]
        await clock.advance(DAY)
    assert order == ["A@1d", "B@1.5d", "A@2d", "C@2.5d", "A@3d"]


async def test_pace_is_real_time(harness: Harness) -> None:
    clock = harness.clock
    business_before = clock.now()
    real_before = clock.monotonic()
    async with asyncio.timeout(GUARD_S):
        await clock.pace(0.01)
    # A lower bound only: a timer never fires early, however loaded the machine.
    assert clock.monotonic() - real_before >= 0.0099
    if harness.manual:
        assert clock.now() == business_before  # pacing does not need anyone to advance the clock
    await clock.pace(-1)  # negative pacing is no pacing


async def test_sleepers_of_real_clocks_wake_by_themselves(harness: Harness) -> None:
    if harness.manual:
        pytest.skip("a manual clock moves only on advance")
    clock = harness.clock
    deadline = clock.now() + harness.tick
    async with asyncio.timeout(GUARD_S):
        await clock.sleep_until(deadline)
    assert clock.now() >= deadline


# -- manual clock specifics -----------------------------------------------------------------------


async def test_manual_30_day_sleep_completes_via_advance() -> None:
    clock = ManualClock(datetime(2024, 3, 5, tzinfo=UTC))
    task = asyncio.create_task(clock.sleep(timedelta(days=30).total_seconds()))
    await settle(clock)
    assert not task.done()  # a manual clock never moves by itself
    assert clock.next_deadline() == datetime(2024, 4, 4, tzinfo=UTC)
    async with asyncio.timeout(GUARD_S):
        await clock.advance(timedelta(days=30))
        await task
    assert clock.now() == datetime(2024, 4, 4, tzinfo=UTC)


async def test_manual_advance_stops_at_the_target() -> None:
    clock = ManualClock(datetime(2024, 3, 5, tzinfo=UTC))
    task = asyncio.create_task(clock.sleep(3600))
    await settle(clock)
    assert await clock.advance(timedelta(minutes=59)) == datetime(2024, 3, 5, 0, 59, tzinfo=UTC)
    assert not task.done()
    await clock.advance(timedelta(minutes=1))
    async with asyncio.timeout(GUARD_S):
        await task


def test_manual_clock_start_in_another_zone_reads_utc() -> None:
    msk = timezone(timedelta(hours=3))
    clock = ManualClock(datetime(2024, 3, 5, 17, 7, tzinfo=msk))
    assert clock.now() == datetime(2024, 3, 5, 14, 7, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_manual_clock_needs_an_aware_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2024, 3, 5))  # noqa: DTZ001 - the naive value is the point


def test_manual_clock_default_start_is_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    assert ManualClock().now() >= before


def test_scaled_clock_start_reads_utc() -> None:
    msk = timezone(timedelta(hours=3))
    clock = ScaledClock(1000, start=datetime(2024, 3, 5, 17, 7, tzinfo=msk))
    assert clock.now().tzinfo is UTC
    assert clock.now() >= datetime(2024, 3, 5, 14, 7, tzinfo=UTC)


# -- parse_duration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("235s", timedelta(seconds=235)),
        ("1.5h", timedelta(minutes=90)),
        ("90", timedelta(seconds=90)),
        ("2.5", timedelta(seconds=2.5)),
        ("0", timedelta(0)),
        ("2w", timedelta(weeks=2)),
        ("250ms", timedelta(milliseconds=250)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 1H 30M ", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "10x",
        "h",
        "1h30",
        "30d!",
        "d30",
        "1..5h",
        "-5",
        "-5m",
        "inf",
        "nan",
        "1e400",
        "99999999999999d",
    ],
)
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


# -- make_clock --------------------------------------------------------------------------------------


def test_make_clock_real() -> None:
    clock = make_clock("real")
    assert isinstance(clock, RealClock)
    assert clock.mode == "real"


def test_make_clock_manual_with_start() -> None:
    start = datetime(2024, 3, 5, 14, 7, tzinfo=UTC)
    clock = make_clock("manual", start)
    assert isinstance(clock, ManualClock)
    assert clock.mode == "manual"
    assert clock.now() == start


def test_make_clock_scaled() -> None:
    clock = make_clock("scaled:1000")
    assert isinstance(clock, ScaledClock)
    assert clock.mode == "scaled"
    assert clock.factor == 1000
    assert isinstance(make_clock("scaled:0.5"), ScaledClock)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "REAL",
        "wall",
        "scaled",
        "scaled:",
        "scaled:x",
        "scaled:0",
        "scaled:-2",
        "scaled:nan",
        "scaled:inf",
    ],
)
def test_make_clock_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_clock(spec)


def test_modes_are_a_str_enum_that_reads_as_the_spec() -> None:
    clocks = [make_clock("real"), make_clock("manual"), make_clock("scaled:10")]
    assert [clock.mode for clock in clocks] == [ClockMode.REAL, ClockMode.MANUAL, ClockMode.SCALED]
    assert [f"{clock.mode}" for clock in clocks] == ["real", "manual", "scaled"]
    assert json.dumps([clock.mode for clock in clocks]) == '["real", "manual", "scaled"]'
