"""A fleet's start-up: writes synced off the loop (D118), OFD loops held until every till started
with the databases kept open for the first OFD round (D119)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator.app.stack import (
    OFD_GATE_GROUP,
    OfdGates,
    Stack,
    StackOptions,
    till_config,
)
from kkt_emulator.clock import RealClock
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.store import TillStore
from kkt_emulator.till.till import Till

NORMAL = 1


async def test_a_synced_put_commits_normal_and_is_there_after_a_reopen(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3")
    try:
        await store.put_synced(server="http://cloud", device_id="d-1")
        level = store.connection.connection().execute("PRAGMA synchronous").fetchone()[0]
        assert level == NORMAL  # the WAL was synced in a worker thread instead
        await store.set_ofd_acked_mark_synced("F1", 4)
    finally:
        store.close()
    reopened = TillStore(tmp_path / "till.sqlite3")
    try:
        assert reopened.get("server") == "http://cloud"
        assert reopened.get("device_id") == "d-1"
        assert reopened.ofd_acked_mark("F1") == 4
    finally:
        reopened.close()


def test_gates_group_the_tills_of_a_fleet_only() -> None:
    small = OfdGates(10)
    assert small.gate(0) is None  # a few tills: no gate at all
    fleet = OfdGates(2 * OFD_GATE_GROUP + 1)
    first = fleet.gate(0)
    assert first is not None
    assert fleet.gate(OFD_GATE_GROUP - 1) is first
    second = fleet.gate(OFD_GATE_GROUP)
    last = fleet.gate(2 * OFD_GATE_GROUP)
    assert second is not None
    assert last is not None
    assert len({id(first), id(second), id(last)}) == 3


async def test_gates_open_one_group_after_another() -> None:
    fleet = OfdGates(2 * OFD_GATE_GROUP)
    first, second = fleet.gate(0), fleet.gate(OFD_GATE_GROUP)
    assert first is not None
    assert second is not None
    opening = asyncio.create_task(fleet.open(RealClock()))
    await asyncio.sleep(0)
    assert first.is_set()
    assert not second.is_set()  # the next group a step later
    await opening
    assert second.is_set()


def _unsent(till: Till) -> int:
    assert till.drive is not None
    return len(till.drive.state.unsent)


def _archive(till: Till) -> SqliteStore:
    assert till.drive is not None
    archive = till.drive.store
    assert isinstance(archive, SqliteStore)
    return archive


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Look every 50 ms: what is watched (a drive's queue, a database closing) has no event."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_held_till_sends_to_the_ofd_only_once_its_gate_opens(tmp_path: Path) -> None:
    clock = RealClock()
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE), state_dir=tmp_path / "stack", tills=1
    )
    async with Stack(options, clock) as stack:
        assert stack.ofd is not None
        gate = asyncio.Event()
        config = till_config(
            options.profile,
            tmp_path / "held",
            stack.base_url,
            stack.points[0],
            ofd_address=stack.ofd.address,
            ofd=stack.ofd,
            ofd_gate=gate,
        )
        till = Till(config, clock)
        await till.start()
        try:
            assert _unsent(till) == 1  # its registration report waits for the gate
            await asyncio.sleep(2.5)  # longer than the idle close of a database (D71)
            assert _unsent(till) == 1
            assert till.ofd_sender is None
            store = till.store
            assert store is not None
            assert store.connection.is_open  # held open for the first OFD round
            assert _archive(till).connection.is_open
            gate.set()
            await _until(lambda: _unsent(till) == 0)
            # Released after that round: both close when idle again.
            await _until(lambda: not store.connection.is_open)
            await _until(lambda: not _archive(till).connection.is_open)
            assert till.ctx.held_open == []
        finally:
            await till.close()


async def test_a_till_opens_both_databases_in_one_worker_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = RealClock()
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE), state_dir=tmp_path / "stack", tills=1
    )
    async with Stack(options, clock) as stack:
        hops: list[str] = []
        to_thread = asyncio.to_thread

        async def counted(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(func, "__name__", repr(func)))
            return await to_thread(func, *args, **kwargs)

        monkeypatch.setattr(asyncio, "to_thread", counted)
        assert stack.ofd is not None
        config = till_config(
            options.profile,
            tmp_path / "till",
            stack.base_url,
            stack.points[0],
            ofd_address=stack.ofd.address,
        )
        for _ in range(2):  # a new till, then the same till started again from its files
            hops.clear()
            till = Till(config, clock)
            await till.start()
            try:
                # The store and the archive in one hop (D130); no archive opened on its own.
                assert hops.count("_open_stores") == 1
                assert hops == ["_open_stores"]  # the first write is synced off the loop (D129)
                assert "SqliteStore" not in hops
                assert "_open_archive" not in hops
                assert _archive(till).meta["serial"] == till.ctx.fn_serial
            finally:
                await till.close()
