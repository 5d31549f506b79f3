"""The one SQLite set-up (D71, D111): new files from a template, idle connections closed off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from kkt_emulator import sqlite as kkt_sqlite
from kkt_emulator.sqlite import IdleConnection, immediate, open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS item_name ON item (name);
"""


def _tables(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name FROM sqlite_master ORDER BY name").fetchall()
    finally:
        conn.close()


def test_a_new_file_is_the_template_in_wal_mode_with_its_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "store.sqlite3"
    conn = open_database(path, schema=SCHEMA)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        with immediate(conn):
            conn.execute("INSERT INTO item (name) VALUES ('a')")
    finally:
        conn.close()
    assert _tables(path) == [("table", "item"), ("index", "item_name")]
    assert not list(path.parent.glob(".store.sqlite3.new-*"))  # the scratch copy is gone
    again = open_database(path, schema=SCHEMA)  # an existing file is opened, never replaced
    try:
        assert again.execute("SELECT name FROM item").fetchall() == [("a",)]
    finally:
        again.close()


def test_a_file_made_meanwhile_by_another_opener_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    real_template = kkt_sqlite._template

    def other_opener_first(schema: str) -> bytes:
        monkeypatch.setattr(kkt_sqlite, "_template", real_template)
        image = real_template(schema)
        conn = open_database(path, schema=SCHEMA)  # this one makes the file first
        with immediate(conn):
            conn.execute("INSERT INTO item (name) VALUES ('theirs')")
        conn.close()
        return image

    monkeypatch.setattr(kkt_sqlite, "_template", other_opener_first)
    assert kkt_sqlite._create_from_template(path, SCHEMA) is False
    conn = open_database(path, schema=SCHEMA)
    try:
        assert conn.execute("SELECT name FROM item").fetchall() == [("theirs",)]
    finally:
        conn.close()


def test_the_template_is_made_once_per_schema(tmp_path: Path) -> None:
    schema = "CREATE TABLE IF NOT EXISTS once (x);"
    for n in range(3):
        open_database(tmp_path / f"{n}.sqlite3", schema=schema).close()
    image = kkt_sqlite._templates[schema]
    assert image[:16] == b"SQLite format 3\x00"
    assert image[18:20] == b"\x02\x02"  # WAL in the header


async def test_an_idle_connection_closes_in_the_worker_thread_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    handle = IdleConnection(path, schema=SCHEMA, idle=0.05)
    closed_on: list[str] = []
    real_close = kkt_sqlite._close_off_loop

    def spy(conn: sqlite3.Connection) -> None:
        class Spy:
            def close(self) -> None:
                closed_on.append(threading.current_thread().name)
                conn.close()

        real_close(Spy())  # type: ignore[arg-type]

    kkt_sqlite._close_off_loop = spy
    try:
        with immediate(handle.connection()) as conn:
            conn.execute("INSERT INTO item (name) VALUES ('kept')")
        for _ in range(100):
            if not handle.is_open and closed_on:
                break
            await asyncio.sleep(0.02)
        assert not handle.is_open
        assert closed_on
        assert closed_on[0].startswith("kkt-sqlite-close")
        rows = handle.connection().execute("SELECT name FROM item").fetchall()
        assert rows == [("kept",)]
        assert handle.reopens == 1
    finally:
        kkt_sqlite._close_off_loop = real_close
        handle.close()
    assert not handle.is_open
