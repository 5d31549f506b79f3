"""D114: a durable commit syncs its WAL off the event loop, and nothing acts on it before the sync.

The WAL's ``fdatasync`` is replaced by a gate the test opens: while it is closed, the drive's
answer to a signed document must not reach the till, and the till's journal entry must not count
as written; once it opens, both go on. Without the deferral the commit would be ``FULL`` and the
gate would never be asked; without the wait the answer would arrive before the gate opened.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kkt_emulator import sqlite as kkt_sqlite
from kkt_emulator.clock import ManualClock
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.profiles import DEFAULT_PROFILE
from kkt_emulator.testing.drive import DEFAULT_START, DriveBench
from kkt_emulator.till.store import TillStore
from kkt_emulator.transport.memory import memory_pipe_pair

# A guard against hangs only: nothing here measures how long anything takes.
GUARD_S = 20.0


class Gate:
    """Stands in for the WAL sync: records each path and holds the worker until opened."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.asked = threading.Event()
        self.open = threading.Event()
        self.error: OSError | None = None

    def __call__(self, path: str) -> None:
        self.paths.append(path)
        self.asked.set()
        if not self.open.wait(GUARD_S):
            raise OSError("the test never opened the gate")
        if self.error is not None:
            raise self.error


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    monkeypatch.setattr(kkt_sqlite, "_fdatasync_wal", g)
    yield g
    g.open.set()  # never leave a worker thread waiting


async def _asked(gate: Gate) -> None:
    await asyncio.wait_for(asyncio.to_thread(gate.asked.wait, GUARD_S), GUARD_S)


async def test_the_drive_answers_a_signed_document_only_after_its_sync(
    tmp_path: Path, gate: Gate
) -> None:
    store = SqliteStore(tmp_path / "drive.sqlite3", idle=None)
    gate.open.set()  # registration goes through
    bench = DriveBench(DEFAULT_PROFILE, start=DEFAULT_START, store=store)
    bench.register()  # not served: committed FULL, the gate is not asked
    assert gate.paths == []
    clock = ManualClock(bench.now)
    till_end, drive_end = memory_pipe_pair(clock)
    server = DriveServer(bench.endpoint, clock)
    assert store.defer_sync
    pump = asyncio.create_task(server.serve(drive_end))
    await asyncio.sleep(0)
    client = FnClient(till_end, timeout=GUARD_S, retries=0, max_data=bench.config.max_data)
    gate.open.clear()
    gate.asked.clear()
    opening = asyncio.create_task(client.open_shift(bench.drive.local_time(bench.now)))
    try:
        await _asked(gate)
        await asyncio.sleep(0.05)  # room for a wrong answer to arrive
        assert not opening.done(), "the answer left before the shift report was on the disk"
        assert store.unsynced is False  # taken by the sync under way
        gate.open.set()
        answer = await asyncio.wait_for(opening, GUARD_S)
        assert answer.fd > 0
        assert gate.paths == [str(store.path)]
    finally:
        gate.open.set()
        await till_end.close()
        await pump
        store.close()


async def test_the_journal_entry_counts_only_once_synced(tmp_path: Path, gate: Gate) -> None:
    gate.open.set()
    till = TillStore(tmp_path / "till.sqlite3", idle=None)
    gate.open.clear()
    writing = asyncio.create_task(
        till.journal_synced("doc-1", "lease-1", 7, {"id": "doc-1"}, "2026-12-03T10:00:00+00:00")
    )
    try:
        await _asked(gate)
        await asyncio.sleep(0.05)
        assert not writing.done()
        gate.open.set()
        await asyncio.wait_for(writing, GUARD_S)
        assert [e.doc_id for e in till.journal_entries()] == ["doc-1"]
        assert gate.paths == [str(till.path)]
    finally:
        gate.open.set()
        till.close()


async def test_a_failed_sync_reaches_the_waiter(tmp_path: Path, gate: Gate) -> None:
    gate.error = OSError(5, "Input/output error")
    gate.open.set()
    till = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        with pytest.raises(OSError, match="Input/output error"):
            await till.journal_synced("doc-1", None, 7, {}, "2026-12-03T10:00:00+00:00")
    finally:
        till.close()


async def test_waiters_of_one_batch_share_a_sync(tmp_path: Path, gate: Gate) -> None:
    # The first request holds both workers' attention on path a; the ten for path b queued
    # meanwhile are taken together by the next free worker and synced once (or twice at most,
    # when the second worker takes some before the rest are queued).
    first = asyncio.create_task(kkt_sqlite.sync_wal(tmp_path / "a"))
    await _asked(gate)
    rest = [asyncio.create_task(kkt_sqlite.sync_wal(tmp_path / "b")) for _ in range(10)]
    await asyncio.sleep(0.05)
    gate.open.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), GUARD_S)
    assert gate.paths.count(str(tmp_path / "b")) <= 2


async def test_a_missing_wal_needs_no_sync(tmp_path: Path) -> None:
    # The last close checkpointed the WAL into the database and removed it: nothing to sync.
    await kkt_sqlite.sync_wal(tmp_path / "never-opened.sqlite3")
    path = tmp_path / "db.sqlite3"
    conn = kkt_sqlite.open_database(path, schema="CREATE TABLE t (x INTEGER);")
    try:
        conn.execute("INSERT INTO t VALUES (1)")
        assert path.with_name(f"{path.name}-wal").exists()
        await kkt_sqlite.sync_wal(path)  # the real fdatasync
    finally:
        conn.close()
