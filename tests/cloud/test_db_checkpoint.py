"""D115: the cloud's SQLite WAL is checkpointed by a thread, never inside a COMMIT on the loop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kkt_emulator.cloud import db_sqlite
from kkt_emulator.cloud.db_sqlite import SqliteConnection

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""
# A guard against hangs only: nothing here measures how long anything takes.
GUARD_S = 20.0


def _fill(conn: SqliteConnection, rows: int) -> None:
    for n in range(rows):
        conn.begin()
        conn.execute("INSERT INTO blobs (body) VALUES (?)", ("x" * 3000 + str(n),))
        conn.commit(())


def test_commits_never_checkpoint_and_the_thread_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_sqlite, "CHECKPOINT_LOOK_S", 0.02)
    monkeypatch.setattr(db_sqlite, "CHECKPOINT_BYTES", 256 * 1024)
    path = tmp_path / "cloud.sqlite3"
    before = set(threading.enumerate())
    conn = SqliteConnection(str(path), SCHEMA, 1)
    mine = [
        t for t in threading.enumerate() if t not in before and t.name == "kkt-cloud-checkpoint"
    ]
    assert len(mine) == 1
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        size_before = path.stat().st_size
        _fill(conn, 300)  # ~1 MiB of WAL: past the threshold, far below SQLite's own
        deadline = time.monotonic() + GUARD_S
        while path.stat().st_size <= size_before:  # the pages reached the database file
            assert time.monotonic() < deadline, "the checkpointer never copied the WAL"
            time.sleep(0.02)
        assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 300
    finally:
        conn.close()
    # Closed: the thread is gone and the file holds everything.
    assert not mine[0].is_alive()
    again = SqliteConnection(str(path), SCHEMA, 1)
    try:
        assert again.execute("SELECT count(*) FROM blobs").fetchone()[0] == 300
    finally:
        again.close()


def test_below_the_threshold_nothing_is_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_sqlite, "CHECKPOINT_LOOK_S", 0.02)
    path = tmp_path / "cloud.sqlite3"
    conn = SqliteConnection(str(path), SCHEMA, 1)
    try:
        size_before = path.stat().st_size
        _fill(conn, 20)  # ~60 KiB: stays in the WAL
        time.sleep(0.2)
        assert path.stat().st_size == size_before
    finally:
        conn.close()
