"""The till's cheap path to the cloud: one fsync per receipt, one outbox exchange, heartbeats only
when something changed, and long-polling tills woken by the document itself."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kkt_emulator.app import stack as stack_module
from kkt_emulator.app.stack import FLEET_WATCH_FROM, Stack, StackOptions, uses_fleet_watch
from kkt_emulator.clock import ManualClock
from kkt_emulator.errors import CloudError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till import views
from kkt_emulator.till.cloud_link import CloudLink
from kkt_emulator.till.fleet_watch import FleetWatch
from kkt_emulator.till.store import TillStore

NORMAL = 1


def _synced(store: TillStore, before: list[int]) -> bool:
    """Whether the store synced its WAL since the last look (D129)."""
    now = store.connection.syncs
    synced, before[0] = now > before[0], now
    return synced


def _synchronous(store: TillStore) -> int:
    conn: sqlite3.Connection = store._db  # what the connection commits with
    level: int = conn.execute("PRAGMA synchronous").fetchone()[0]
    return level


def test_only_the_intent_and_failures_wait_for_the_disk(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3")
    seen = [0]
    try:
        document = {"id": "d1"}
        store.journal_leased([("d1", "l1", document), ("d2", "l2", document)], "t")
        assert not _synced(store, seen)  # the cloud's resumed leases give it back
        store.journal("d1", "l1", 7, document, "t")
        assert _synced(store, seen)  # «about to fiscalise d1 as FD 7»
        success = {"docId": "d1", "outcome": "fiscalized", "fiscalInfo": {"fnDocNumber": 7}}
        store.record_result("d1", 7, success)
        assert not _synced(store, seen)  # the journal entry and the archive give it back
        failure = {"docId": "d2", "outcome": "failed"}
        store.record_result("d2", None, failure)
        assert _synced(store, seen)  # nothing else remembers a failure
        store.queue_ofd_ack(7, {"fnDocNumber": 7, "fnNumber": "F", "state": "acknowledged"})
        assert not _synced(store, seen)  # the mark and the drive give it back
        store.delivered(store.outbox("result") + store.outbox("ofd"))
        assert not _synced(store, seen)
        store.put(kkt_serial="1")
        assert _synced(store, seen)
        with store.transaction():
            pass
        assert _synced(store, seen)
        # The connection never switches its mode: a wait is a sync after the commit (D129).
        assert _synchronous(store) == NORMAL
        # What each write did is there whatever it waited for.
        assert store.journal_entries() == []
        assert store.processed("d1") == success
        assert store.processed("d2") == failure
        assert store.outbox_size() == 0
        assert store.ofd_acked_mark("F") == 7
    finally:
        store.close()
    reopened = TillStore(tmp_path / "till.sqlite3")
    try:
        assert reopened.processed("d1") == success
        assert _synchronous(reopened) == NORMAL
    finally:
        reopened.close()


def test_a_durable_write_runs_no_pragma(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        seen: list[str] = []
        store._db.set_trace_callback(seen.append)  # the statements the store runs
        store.journal("d1", "l1", 7, {"id": "d1"}, "t")
        store.record_result("d1", 7, {"docId": "d1", "outcome": "fiscalized"})
        store.put(rnm="r")
        assert [sql for sql in seen if sql.startswith("PRAGMA")] == []
    finally:
        store.close()


def test_a_failed_sync_is_an_error_of_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:

        def fail(_fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr("kkt_emulator.sqlite.os.fdatasync", fail)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            store.journal("d1", "l1", 7, {"id": "d1"}, "t")
    finally:
        monkeypatch.undo()
        store.close()


async def test_a_cloud_without_outbox_gets_the_two_calls() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/outbox"):
            return httpx.Response(404, json={"message": "Not Found"})
        if request.url.path.endswith("/results"):
            return httpx.Response(
                200, json={"results": [{"docId": "d", "outcome": "accepted", "status": "X"}]}
            )
        return httpx.Response(200, json={"updated": 1, "unknown": []})

    link = CloudLink("http://cloud", transport=httpx.MockTransport(answer))
    link.token = "t"  # noqa: S105 - a test bearer token for a mock transport
    try:
        acks = await link.outbox([{"docId": "d"}], [{"fnDocNumber": 1}])
        assert [a.outcome for a in acks] == ["accepted"]
        await link.outbox([], [{"fnDocNumber": 2}])
    finally:
        await link.close()
    api = "/api/device/v1"
    assert seen == [f"{api}/outbox", f"{api}/results", f"{api}/ofd-acks", f"{api}/ofd-acks"]


async def test_other_outbox_errors_are_not_a_reason_to_split() -> None:
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "busy"})

    link = CloudLink("http://cloud", transport=httpx.MockTransport(answer))
    link.token = "t"  # noqa: S105 - a test bearer token for a mock transport
    try:
        with pytest.raises(CloudError) as raised:
            await link.outbox([{"docId": "d"}], [])
        assert raised.value.status == 503
    finally:
        await link.close()


def _record_calls(link: CloudLink) -> list[str]:
    calls: list[str] = []
    original = link._call  # watching the exchanges

    async def call(path: str, **kwargs: Any) -> Any:
        calls.append(path)
        return await original(path, **kwargs)

    link._call = call  # type: ignore[method-assign]  # a spy on the exchanges
    return calls


async def test_results_and_acks_go_in_outbox_exchanges(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        calls = _record_calls(kkt.till.link)
        doc = kkt.sale(12.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "COMPLETED")
        deadline = kkt.clock.monotonic() + 10.0
        while (await kkt.document_detail(doc["id"]))["ofd"]["state"] != "acknowledged":
            assert kkt.clock.monotonic() < deadline, "the OFD acknowledgement never arrived"
            await kkt.clock.pace(0.02)
        assert "/outbox" in calls
        assert "/results" not in calls
        assert "/ofd-acks" not in calls


async def test_heartbeats_follow_changes_not_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "HEARTBEAT_EVERY", 3600.0)
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till

        async def polls_pass(n: int) -> None:
            target = till.counters["polls"] + n
            deadline = kkt.clock.monotonic() + 10.0
            while till.counters["polls"] < target:
                assert kkt.clock.monotonic() < deadline, "the till stopped polling"
                await kkt.clock.pace(0.01)

        await polls_pass(1)
        calls = _record_calls(till.link)
        await polls_pass(5)
        assert "/heartbeat" not in calls
        assert "/lease" in calls
        # A warning the cabinet must see makes the next poll heartbeat, once.
        till.inject_fault("fn.memory_warning")
        await polls_pass(5)
        assert calls.count("/heartbeat") == 1
        [device] = await kkt.cabinet("GET", "/heartbeats")
        assert device["heartbeat"]["fn"]["warnings"] != 0


@asynccontextmanager
async def _long_polling(tmp_path: Path) -> AsyncIterator[tuple[StackHarness, ManualClock]]:
    """One till that leases with a 30 s long poll and whose timer would never poll again."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        till_settings={"poll_interval": 3600.0},
        long_poll=30.0,
    )
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        try:
            yield kkt, clock
        finally:
            await kkt.http.aclose()


async def test_a_long_polling_till_takes_a_document_the_moment_it_is_queued(
    tmp_path: Path,
) -> None:
    # No timer would ever poll again within this test: only the waiting lease can take it.
    async with _long_polling(tmp_path) as (kkt, clock):
        assert kkt.till.settings.long_poll == 30.0
        first = kkt.sale(10.0)
        await kkt.post_document(first)
        await kkt.wait_for_status(first["id"], "COMPLETED")
        await clock.pace(0.3)  # the till is back in a lease that waits for work
        polls = kkt.till.counters["polls"]
        second = kkt.sale(11.0)
        await kkt.post_document(second)
        await kkt.wait_for_status(second["id"], "COMPLETED")
        # The lease that was already waiting handed it over.
        assert kkt.till.counters["polls"] == polls + 1


async def test_a_setting_changed_during_a_long_poll_ends_it(tmp_path: Path) -> None:
    async with _long_polling(tmp_path) as (kkt, clock):
        await clock.pace(0.3)  # the till waits in a 30 s lease
        await kkt.till.set_settings(power_saving=True)
        await clock.pace(0.3)  # the waiting lease was abandoned; the till sleeps
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        await clock.pace(0.5)
        # Before, the waiting lease took it although the till had gone to power saving.
        assert (await kkt.status(doc["id"]))["status"] == "QUEUED"
        await kkt.till.set_settings(power_saving=False)
        await kkt.wait_for_status(doc["id"], "COMPLETED")


async def test_a_wake_up_during_a_round_is_kept_for_the_next_pause(tmp_path: Path) -> None:
    from kkt_emulator.clock import RealClock  # noqa: PLC0415 - only this test
    from kkt_emulator.till.context import TillConfig, TillContext  # noqa: PLC0415

    config = TillConfig(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        server="http://127.0.0.1:9",
        login="l",
        password="p",  # noqa: S106 - never used: nothing is started
    )
    ctx = TillContext(config, RealClock())
    # Set while the loop was busy (a cleared ofd.down, a report queued): the pause that follows
    # returns at once instead of sleeping through an hour. wait_for only keeps a broken pause
    # from hanging the test.
    ctx.ofd_wake.set()
    await asyncio.wait_for(ctx.ofd_pause(3600.0), timeout=30.0)
    ctx.outbox_wake.set()
    assert await asyncio.wait_for(ctx.outbox_pause(3600.0), timeout=30.0) is True
    ctx.outbox_wake.clear()
    assert await ctx.outbox_pause(0.0) is False


async def test_a_till_long_polling_alone_heartbeats_only_on_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D68: liveness comes from the long poll; heartbeats come with changes, and rarely else."""
    monkeypatch.setattr(FleetWatch, "shared", classmethod(lambda _cls, _server: None))
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    skipped = [0.0]
    real_monotonic = clock.monotonic
    # Pacing time jumps ahead by whole minutes of idleness without the test waiting for them.
    monkeypatch.setattr(clock, "monotonic", lambda: real_monotonic() + skipped[0])
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        till_settings={"poll_interval": 3600.0},
        long_poll=0.05,
    )
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        till = kkt.till
        try:

            async def polls_pass(n: int) -> None:
                target = till.counters["polls"] + n
                for _ in range(1000):
                    if till.counters["polls"] >= target:
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError("the till stopped polling")

            await polls_pass(2)
            # Start-up moved counts (the OFD took the registration): reported once, coalesced.
            skipped[0] += 60.0
            await polls_pass(3)
            calls = _record_calls(till.link)
            for _ in range(9):  # nine idle minutes, a few long polls in each
                skipped[0] += 60.0
                await polls_pass(2)
            assert "/heartbeat" not in calls
            # 18 polls; the first may have sent its lease before the recording began.
            assert calls.count("/lease") >= 17

            till.inject_fault("fn.memory_warning")  # a change the cabinet must see
            await polls_pass(3)
            assert calls.count("/heartbeat") == 1
            [device] = await kkt.cabinet("GET", "/heartbeats")
            assert device["heartbeat"]["fn"]["warnings"] != 0

            skipped[0] += views.HEARTBEAT_IDLE  # ten quiet minutes more: the safety net
            await polls_pass(3)
            assert calls.count("/heartbeat") == 2
        finally:
            await kkt.http.aclose()


async def test_idle_tills_of_a_fleet_watch_make_no_calls_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D69: three tills over two points; one watch waits for all; a document wakes its point."""
    monkeypatch.setattr(stack_module, "FLEET_WATCH_FROM", 1)  # a fleet, however small (D109)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        tills=3,
        points=2,
        # orders on: the watch tells the order syncs too (D116)
        till_settings={"poll_interval": 3600.0, "orders": True},
        long_poll=30.0,
    )
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        try:
            assert stack.cloud is not None
            notifier = stack.cloud.notifier
            point_ids = {p["retail_point_id"] for p in stack.points}
            points = point_ids | {f"orders:{p}" for p in point_ids}
            watch = FleetWatch.shared(stack.base_url)
            assert watch is not None
            for _ in range(1000):  # every till has polled and listens to the watch
                if notifier.waiting == dict.fromkeys(points, 1) and watch.watching == 3:
                    break
                await asyncio.sleep(0.01)
            # One wait names both points (their documents and their orders): the fleet watch; no
            # till holds a lease or an order long poll of its own.
            assert notifier.waiting == dict.fromkeys(points, 1)
            calls = [_record_calls(t.link) for t in stack.tills]
            await asyncio.sleep(0.3)
            assert calls == [[], [], []]  # idle: no lease, no heartbeat, no report

            for access in stack.points:
                doc = kkt.sale(10.0)
                auth = (access["login"], access["password"])
                await kkt.post_document(doc, auth=auth)
                for _ in range(1000):
                    answer = await kkt.http.get(
                        f"{kkt.store_url}/v1/doc/{doc['id']}/status", auth=auth
                    )
                    if answer.json()["status"] == "COMPLETED":
                        break
                    await asyncio.sleep(0.01)
                assert answer.json()["status"] == "COMPLETED"
            served = [till for till, made in zip(stack.tills, calls, strict=True) if made]
            assert 2 <= len(served) <= 3
        finally:
            await kkt.http.aclose()


async def test_a_long_polling_till_reports_moved_counts_once_coalesced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    skipped = [0.0]
    real_monotonic = clock.monotonic
    monkeypatch.setattr(clock, "monotonic", lambda: real_monotonic() + skipped[0])
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        till_settings={"poll_interval": 3600.0},
        long_poll=30.0,
    )
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        try:
            for _ in range(1000):
                [before] = await kkt.cabinet("GET", "/heartbeats")
                if before["heartbeat"] is not None:
                    break
                await asyncio.sleep(0.01)
            calls = _record_calls(kkt.till.link)
            skipped[0] += views.HEARTBEAT_EVERY  # the coalescing interval has passed
            doc = kkt.sale(10.0)
            await kkt.post_document(doc)
            await kkt.wait_for_status(doc["id"], "COMPLETED")
            for _ in range(1000):  # the poll after the batch reports the moved counts
                if "/heartbeat" in calls:
                    break
                await asyncio.sleep(0.01)
            [after] = await kkt.cabinet("GET", "/heartbeats")
            assert after["heartbeat"]["fn"]["lastFd"] > before["heartbeat"]["fn"]["lastFd"]
        finally:
            await kkt.http.aclose()


async def test_a_small_installation_long_polls_without_the_fleet_watch(tmp_path: Path) -> None:
    """D109: below FLEET_WATCH_FROM tills each till holds its own long poll, one exchange per
    document; from it on they share the watch."""
    assert not uses_fleet_watch(FLEET_WATCH_FROM - 1)
    assert uses_fleet_watch(FLEET_WATCH_FROM)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        tills=2,
        till_settings={"poll_interval": 3600.0, "orders": False},  # no order long poll (D90)
        long_poll=30.0,
    )
    async with Stack(options, clock) as stack:
        for till in stack.tills:
            assert till.ctx.config.fleet_watch is False
        assert stack.cloud is not None
        notifier = stack.cloud.notifier
        point = stack.points[0]["retail_point_id"]
        for _ in range(200):  # each till's own lease is waiting on the cloud: two waits
            if notifier.waiting == {point: 2}:
                break
            await asyncio.sleep(0.02)
        assert notifier.waiting == {point: 2}
        server = stack.base_url.rstrip("/")
        watches = [w for (_, base), w in FleetWatch._shared.items() if base == server]
        assert watches == []


async def test_a_watch_tells_one_till_of_a_point_per_document_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D112: four tills of one point in a watch; each document wakes one till, the next another."""
    monkeypatch.setattr(stack_module, "FLEET_WATCH_FROM", 1)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        tills=4,
        till_settings={"poll_interval": 3600.0, "orders": False},
        long_poll=30.0,
    )
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        try:
            watch = FleetWatch.shared(stack.base_url)
            assert watch is not None
            for _ in range(1000):
                if watch.watching == 4:
                    break
                await asyncio.sleep(0.01)
            assert watch.watching == 4
            woken: list[int] = []
            calls = [_record_calls(t.link) for t in stack.tills]
            for _ in range(2):
                for _ in range(50):  # start-up calls and OFD acknowledgements have settled
                    for made in calls:
                        made.clear()
                    await asyncio.sleep(0.3)
                    if not any(calls):
                        break
                assert not any(calls), calls
                doc = kkt.sale(10.0)
                await kkt.post_document(doc)
                await kkt.wait_for_status(doc["id"], "COMPLETED")
                leased = [n for n, made in enumerate(calls) if "/lease" in made]
                assert len(leased) == 1, calls  # one document, one till asked
                woken += leased
                for _ in range(200):  # that till listens again before the next document
                    if watch.watching == 4:
                        break
                    await asyncio.sleep(0.01)
            assert woken[0] != woken[1]  # in turn
        finally:
            await kkt.http.aclose()
