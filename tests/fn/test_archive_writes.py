"""What a commit writes: only what changed, and fsynced exactly when a signed document is in it.

The SQLite archive keeps the state in three parts (a core row, the registrations, the OFD queue as
rows) and writes the part a command changed (fn-protocol.md §13, item 11). These tests check
that whatever sequence of changes the drive makes, the file reads back as the drive's state, and
that the durability level follows the rule: ``FULL`` for a commit with a document, an
acknowledgement or a registration, ``NORMAL`` otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.state import (
    ArchivedDocument,
    DriveState,
    MemoryStore,
    OfdAck,
    RegistrationRecord,
    UnsentEntry,
    queue_change,
)
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.testing.drive import DriveBench

WHEN = datetime(2026, 1, 12, 9, 0)  # noqa: DTZ001 - the drive's wall-clock time is naive
SERIAL = "9999078900000001"


def _entry(fd: int) -> UnsentEntry:
    return UnsentEntry(fd=fd, when=WHEN + timedelta(minutes=fd), size=100 + fd)


def _registration(fd: int) -> RegistrationRecord:
    return RegistrationRecord(
        fd=fd,
        fpd=1000 + fd,
        when=WHEN,
        inn="7702203276",
        rnm="0000000001002345",
        tax_systems=1,
        mode=0x20,
        ext_flags=0,
        ofd_inn="7704358518",
        ffd=4,
        agent=False,
        excise=False,
        reason=0,
        tlv=bytes((fd,)) * 4,
    )


# One step of what a drive does to the parts a store saves apart: push a signed document to the
# OFD queue, pop the acknowledged head, sign a registration, change a counter, or (rarely) a
# state made anew (a restore, a test) — then commit, and sometimes restart.
steps = st.lists(
    st.sampled_from(["push", "push", "pop", "register", "count", "replace", "commit", "reopen"]),
    max_size=40,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=steps)
def test_any_sequence_of_changes_reads_back(
    tmp_path_factory: pytest.TempPathFactory, script: list[str]
) -> None:
    path = tmp_path_factory.mktemp("archive") / "drive.sqlite3"
    sqlite = SqliteStore(path, serial=SERIAL)
    memory = MemoryStore()
    state = DriveState(phase=3)
    next_fd = 1
    try:
        for step in [*script, "commit"]:
            if step == "push":
                state.push_unsent(_entry(next_fd))
                next_fd += 1
            elif step == "pop" and state.unsent:
                state.pop_unsent()
            elif step == "register":
                state.registrations.append(_registration(next_fd))
                next_fd += 1
            elif step == "count":
                state.last_fd += 1
            elif step == "replace":
                state = DriveState.from_json(json.loads(json.dumps(state.to_json())))
            elif step == "commit":
                for store in (sqlite, memory):
                    store.commit(state)
                    loaded = store.load_state()
                    assert loaded is not None
                    assert loaded.to_json() == state.to_json()
            elif step == "reopen":
                sqlite.close()
                sqlite = SqliteStore(path, serial=SERIAL)
        sqlite.close()
        sqlite = SqliteStore(path, serial=SERIAL)
        loaded = sqlite.load_state()
        assert loaded is not None
        assert loaded.to_json() == state.to_json()
        assert loaded.unsent_bytes == state.unsent_bytes
    finally:
        sqlite.close()


@given(
    saved=st.lists(st.integers(1, 50), unique=True, max_size=12).map(sorted),
    popped=st.integers(0, 14),
    pushed=st.integers(0, 5),
)
def test_queue_change_finds_what_left_the_head_and_joined_the_tail(
    saved: list[int], popped: int, pushed: int
) -> None:
    entries = [_entry(fd) for fd in saved]
    current = entries[popped:] + [_entry(100 + i) for i in range(pushed)]
    change = queue_change(deque(entries), current)
    assert change is not None
    gone, new = change
    assert entries[gone:] + list(new) == current
    assert len(new) == len(current) - len(entries[gone:])


def test_queue_change_gives_up_on_a_queue_changed_in_the_middle() -> None:
    entries = [_entry(fd) for fd in (1, 2, 3)]
    # Same ends, but the kept part is not what was saved: not something push/pop can do.
    assert queue_change(entries, [entries[0], _entry(9), *entries[1:]]) is None
    assert queue_change(entries, [entries[1], entries[0]]) is None


def test_signed_documents_are_fsynced_and_intermediate_steps_are_not(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "drive.sqlite3", serial=SERIAL)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    seen: list[tuple[int, int, str]] = []
    commit = store.commit
    db = store._db

    def spy(
        state: DriveState,
        documents: tuple[ArchivedDocument, ...] = (),
        acks: tuple[OfdAck, ...] = (),
    ) -> None:
        before = db.total_changes
        commit(state, documents, acks)
        if db.total_changes != before:  # a commit that changes nothing writes nothing
            seen.append((len(documents), len(acks), store.synchronous))

    store.commit = spy  # type: ignore[method-assign]
    bench.register()
    assert seen[-1] == (1, 0, "FULL")
    bench.open_shift()
    assert seen[-1] == (1, 0, "FULL")
    seen.clear()
    bench.sale()
    # 15h, 07h…, 16h: the open document's steps write nothing (D136); 16h writes the receipt
    # with the state in one FULL commit.
    assert seen == [(1, 0, "FULL")]
    # The OFD exchange: the acknowledgement (26h) is fsynced, the transport and reads are not.
    seen.clear()
    bench.drain_ofd()
    assert store.get_ack(bench.drive.state.last_fd) is not None
    assert {mode for _, acks, mode in seen if acks} == {"FULL"}
    assert {mode for docs, acks, mode in seen if not docs and not acks} == {"NORMAL"}
    store.close()


def test_a_command_that_changes_nothing_writes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "drive.sqlite3", serial=SERIAL)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    bench.register()
    db = store._db
    before = db.total_changes
    store.commit(bench.drive.state)
    assert db.total_changes == before
    bench.raw(Command.OFD_CANCEL_READ)  # nothing being read: nothing to change
    assert db.total_changes == before
    store.close()


def test_an_archive_of_schema_1_is_read_and_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    reference = DriveBench("modulkassa-ffd12", serial=SERIAL)
    reference.register()
    reference.open_shift()
    reference.sale()
    state = reference.drive.state
    assert state.unsent
    # Schema 1 kept the whole state, registrations and OFD queue included, in its one row.
    SqliteStore(path, serial=SERIAL).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO drive_state (id, state) VALUES (1, ?)",
            (json.dumps(state.to_json(), ensure_ascii=False),),
        )
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.close()
    store = SqliteStore(path, serial=SERIAL)
    loaded = store.load_state()
    assert loaded is not None
    assert loaded.to_json() == state.to_json()
    store.commit(loaded)
    store.close()
    store = SqliteStore(path, serial=SERIAL)
    again = store.load_state()
    assert again is not None
    assert again.to_json() == state.to_json()
    assert store.meta["schema"] == "2"
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT state FROM drive_state").fetchone()
        assert "unsent" not in json.loads(row[0])
        assert db.execute("SELECT COUNT(*) FROM unsent").fetchone()[0] == len(state.unsent)
    db.close()
    store.close()


def _statements(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # the statements the archive runs
    return seen


def test_a_receipt_exchange_writes_the_archive_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "drive.sqlite3", serial=SERIAL, idle=None)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    bench.register()
    bench.open_shift()
    seen = _statements(store)
    bench.sale()
    # 15h, 07h x n, 16h: one transaction, no core-row UPDATE of its own per step (D136).
    writes = [s.split()[0] for s in seen if not s.startswith("SELECT")]
    assert writes.count("BEGIN") == 1
    assert writes.count("UPDATE") == 1  # the core row, inside 16h's transaction
    assert writes.count("COMMIT") == 1
    store.close()


def test_an_open_document_is_held_until_a_write_a_reload_or_a_close(tmp_path: Path) -> None:
    path = tmp_path / "drive.sqlite3"
    store = SqliteStore(path, serial=SERIAL, idle=None)
    bench = DriveBench("modulkassa-ffd12", store=store, serial=SERIAL)
    bench.register()
    bench.open_shift()
    last_fd = bench.drive.state.last_fd
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(100, None, 1, b""))
    assert bench.drive.state.open_doc is not None
    # A crash now (no close): the file holds the drive before 15h, as a power cut mid-document
    # leaves a real drive (the sequence must happen without power loss, fn-protocol.md §6).
    crashed = SqliteStore(path, serial=SERIAL, idle=None)
    state = crashed.load_state()
    assert state is not None
    assert state.open_doc is None
    assert state.last_fd == last_fd
    crashed.close()
    # A reload reads what the drive committed, the held row written first.
    reloaded = store.load_state()
    assert reloaded is not None
    assert reloaded.open_doc is not None
    store.close()
    reopened = SqliteStore(path, serial=SERIAL, idle=None)
    again = reopened.load_state()
    assert again is not None
    assert again.to_json() == bench.drive.state.to_json()
    reopened.close()
