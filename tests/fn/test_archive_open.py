"""A new archive is read by nobody and named by its first commit (D130).

A file made just now from its template holds no row: opening it and loading the drive's state run
no statement, and the file's name (serial, profile) is written by the drive's first transaction,
or by a close when the drive never wrote. The statements are counted on SQLite's trace callback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.testing.drive import DriveBench

SERIAL = "9999078900000001"


def _statements(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # the statements the archive runs
    return seen


def test_a_new_archive_registers_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    store = SqliteStore(path, serial=SERIAL, profile="modulkassa-ffd12", idle=None)
    seen = _statements(store)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    bench.register()
    assert [s for s in seen if s.startswith(("SELECT", "PRAGMA"))] == []
    assert sum(s == "BEGIN IMMEDIATE" for s in seen) == 1  # the report, the state and the name
    assert sum(s.startswith("INSERT OR REPLACE INTO meta") for s in seen) == 3
    store.close()
    assert SqliteStore.read_meta(path)["serial"] == SERIAL
    reopened = SqliteStore(path, serial=SERIAL, idle=None)
    state = reopened.load_state()
    assert state is not None
    assert state.to_json() == bench.drive.state.to_json()
    reopened.close()


def test_an_archive_closed_unwritten_is_named(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    SqliteStore(path, serial=SERIAL, profile="modulkassa-ffd12").close()
    assert SqliteStore.read_meta(path) == {
        "schema": "2",
        "serial": SERIAL,
        "profile": "modulkassa-ffd12",
    }
    with pytest.raises(ConfigError, match="holds drive"):
        SqliteStore(path, serial="9999078900000002")


def test_an_archive_opened_unnamed_takes_the_name_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    store = SqliteStore(path)  # opened with the till's store, before the serial is known
    store.claim(SERIAL, "modulkassa-ffd12")
    assert store.meta["serial"] == SERIAL
    store.close()
    again = SqliteStore(path)  # an existing file keeps its name
    with pytest.raises(ConfigError, match="holds drive"):
        again.claim("9999078900000002", None)
    again.close()
    assert SqliteStore.read_meta(path)["serial"] == SERIAL


def test_a_crash_before_the_first_commit_leaves_a_new_drive(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    store = SqliteStore(path, serial=SERIAL, idle=None)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    bench.call(
        Command.START_REGISTRATION_12, report_type=0
    )  # an open document: held, nothing written (D136)
    # No close: the process died. The file holds no drive and no name; the next open names it.
    crashed = SqliteStore(path, serial=SERIAL, idle=None)
    assert crashed.meta["serial"] == SERIAL
    assert crashed.load_state() is None
    crashed.close()
    assert SqliteStore.read_meta(path)["serial"] == SERIAL
    store._handle.close()  # the crashed drive's connection, its held row never written
