"""The shared installations behind ``kkt_stack``: what a reset puts back and what retires one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kkt_emulator.profiles import DEFAULT_PROFILE
from kkt_emulator.testing import shared
from kkt_emulator.testing.shared import (
    HomedClock,
    LoopThread,
    Shape,
    SharedInstallation,
    SharedPool,
)
from kkt_emulator.testing.stack import StackHarness

pytestmark = pytest.mark.slow

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PACE = HomedClock(START)
ONE_TILL = Shape(DEFAULT_PROFILE, 1, 1, None)
# Bounds on waits that must end long before; not timings.
WAIT_S = 30.0


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedPool]:
    pool = SharedPool(lambda: tmp_path_factory.mktemp("shared"), {"poll_interval": 0.05})
    yield pool
    pool.close()


@pytest.fixture
async def kkt(pool: SharedPool) -> AsyncIterator[StackHarness]:
    """A test's view of the shared installation of ONE_TILL, as the plugin builds it."""
    installation = pool.acquire(ONE_TILL)
    harness = StackHarness(installation.running, installation.clock)
    yield harness
    await harness.http.aclose()


async def test_the_clock_is_moved_on_its_home_loop_from_another(loop_thread: LoopThread) -> None:
    clock = HomedClock(START, home=loop_thread.loop)
    slept = asyncio.run_coroutine_threadsafe(clock.sleep(3600), loop_thread.loop)
    await clock.advance(timedelta(hours=1))
    assert slept.result(WAIT_S) is None
    assert clock.advanced
    assert clock.now() == START + timedelta(hours=1)
    # And a sleeper of this loop is woken by time moved on the home loop.
    sleeper = asyncio.create_task(clock.sleep(60))
    await asyncio.sleep(0)
    await loop_thread.call(_until(lambda: clock.next_deadline() is not None))
    loop_thread.run(clock.advance(timedelta(minutes=1)))
    await asyncio.wait_for(sleeper, WAIT_S)


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await PACE.pace(0.001)


def test_a_blocking_run_waits_for_the_loop_and_refuses_the_loop_itself(
    loop_thread: LoopThread,
) -> None:
    async def nested() -> int:
        return loop_thread.run(asyncio.sleep(0, 7))

    assert loop_thread.run(asyncio.sleep(0, 7)) == 7
    with pytest.raises(RuntimeError, match="would never return"):
        loop_thread.run(nested())


def test_a_blocking_run_that_gives_up_cancels_the_coroutine(loop_thread: LoopThread) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        loop_thread.run(forever(), timeout=0.05)
    # On a loop too busy to start it within the timeout, it is cancelled before it begins.
    assert cancelled.wait(WAIT_S) or not started.is_set()


def test_shapes_with_the_same_parts_share_a_key() -> None:
    assert (
        Shape("p", 1, 1, None, {"a": 1, "b": 2}).key()
        == Shape("p", 1, 1, None, {"b": 2, "a": 1}).key()
    )
    assert Shape("p", 1, 1, None).key() != Shape("p", 2, 1, None).key()
    assert Shape("p", 1, 1, None).key() != Shape("p", 1, 1, "mqtt://127.0.0.1:1").key()


async def test_a_reset_puts_back_faults_settings_point_flags_and_empties_the_queue(
    pool: SharedPool, kkt: StackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "PARK_AFTER_S", 0.0)
    till = kkt.till
    installation = pool.acquire(ONE_TILL)  # the same one: it was never released
    assert installation.running is kkt.stack

    async def spoil() -> None:
        till.inject_fault("ofd.down")
        await till.set_settings(power_saving=True)

    await pool.thread.call(spoil())
    await kkt.cabinet("PATCH", f"/retail-points/{kkt.retail_point_id}", json={"stopOnErrors": True})
    # Power saving keeps the document waiting (a poll already under way may still take it); the
    # OFD being down keeps whatever the drive signs from reaching the OFD until the reset.
    waiting = kkt.sale(total=12.0)
    await kkt.post_document(waiting)

    await pool.release(installation)

    assert installation.retired is None
    assert installation.clean
    assert (await kkt.status(waiting["id"]))["status"] == "COMPLETED"
    assert till.list_faults() == []
    assert till.settings.power_saving is False
    # Idle until the next test: the tills poll slowly.
    await pool.thread.call(_until(lambda: till.settings.poll_interval == shared.PARKED_POLL_S))
    point = await kkt.cabinet("GET", f"/retail-points/{kkt.retail_point_id}")
    assert point["stopOnErrors"] is False
    state = await pool.thread.call(till.snapshot_state())
    assert state["ofdBacklog"]["unsent"] == 0
    assert pool.acquire(ONE_TILL) is installation
    assert till.settings.poll_interval == 0.05


async def test_a_reset_before_the_test_when_none_was_made_after_the_last(
    pool: SharedPool, kkt: StackHarness
) -> None:
    installation = pool.acquire(ONE_TILL)
    await pool.thread.call(kkt.till.set_settings(online=False))
    again = pool.acquire(ONE_TILL)  # not released: the reset runs now
    assert again is installation
    assert kkt.till.settings.online is True


async def test_a_retired_installation_is_stopped_and_replaced(
    pool: SharedPool, kkt: StackHarness
) -> None:
    installation = pool.acquire(ONE_TILL)
    first_drive = kkt.till.fn_serial
    installation.retired = "the test moved business time"
    await pool.release(installation)
    assert installation.stack is None
    replacement = pool.acquire(ONE_TILL)
    assert replacement is not installation
    assert replacement.running.tills[0].fn_serial != first_drive


async def test_credentials_that_stopped_working_retire_the_installation(
    pool: SharedPool, kkt: StackHarness
) -> None:
    installation = pool.acquire(ONE_TILL)
    point = kkt.stack.points[0]
    # A new association password: the one the installation hands to tests no longer works.
    async with httpx.AsyncClient(base_url=kkt.stack.base_url) as http:
        rotated = await http.post(
            f"/api/fn/v1/associate/{point['retail_point_id']}",
            auth=(point["service_login"], point["service_password"]),
        )
    assert rotated.status_code == httpx.codes.OK
    await pool.release(installation)
    assert installation.retired is not None
    assert "credentials" in installation.retired
    assert pool.acquire(ONE_TILL) is not installation


async def test_a_queue_that_does_not_drain_retires_the_installation(
    pool: SharedPool, kkt: StackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    installation = pool.acquire(ONE_TILL)
    await pool.thread.call(kkt.till.set_settings(power_saving=True))
    stuck = kkt.sale()
    await kkt.post_document(stuck)

    async def never() -> bool:
        return False

    monkeypatch.setattr(shared, "DRAIN_SECONDS", 0.05)
    monkeypatch.setattr(installation, "_drained", never)
    await pool.release(installation)
    assert installation.retired is not None
    assert "not done" in installation.retired
    assert installation.stack is None


def test_the_least_recently_used_shape_stops_beyond_the_limit(
    pool: SharedPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared, "MAX_LIVE", 1)
    first = pool.acquire(ONE_TILL)
    second = pool.acquire(Shape(DEFAULT_PROFILE, 2, 1, None))
    assert first.stack is None
    assert len(second.running.tills) == 2


def test_an_installation_that_never_started_has_nothing_to_give(tmp_path: Path) -> None:
    installation = SharedInstallation(ONE_TILL, tmp_path, {})
    with pytest.raises(RuntimeError, match="not running"):
        _ = installation.running
