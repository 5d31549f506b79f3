"""The storage contract on SQLite and PostgreSQL: schema, transactions, restart, errors, caches.

Tests taking ``any_db`` run on both backends; the SQLite-only and PostgreSQL-only facts (WAL, the
listener, claims shared between processes) have tests of their own.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import psycopg
import pytest

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.settings import DuplicatePolicy, PickupWindow
from kkt_emulator.cloud.storage import (
    Account,
    Association,
    DatabaseTarget,
    Device,
    DocumentFilter,
    DocumentRecord,
    RetailPoint,
    Storage,
    StorageError,
)
from kkt_emulator.errors import EmulatorError
from kkt_emulator.taxes import TaxSystem

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def point(point_id: str = "3769574b-d082-4fe2-8cf0-dee21f9a7e0f") -> RetailPoint:
    return RetailPoint(
        id=point_id,
        account_id="acc",
        name="Shop",
        address="Moscow",
        inn="7727401209",
        internet_docs_enabled=True,
        stop_on_errors=False,
        pickup_window=PickupWindow.THREE_DAYS,
        default_tax_mode=TaxSystem.COMMON,
        duplicate_policy=DuplicatePolicy.REPLAY,
        deleted=False,
        created_at=T0,
    )


def record(doc_id: str, point_id: str = "3769574b-d082-4fe2-8cf0-dee21f9a7e0f") -> DocumentRecord:
    return DocumentRecord(
        seq=0,
        retail_point_id=point_id,
        doc_id=doc_id,
        client_id="",
        route="v2",
        document={"id": doc_id},
        content_key="{}",
        doc_num="1",
        total="100.00",
        response_url=None,
        created_at=T0,
        state=lc.new_document(T0, has_callback=False, pickup_window=lc.PICKUP_WINDOW_5MIN),
    )


_opened: list[Storage] = []


@pytest.fixture(autouse=True)
def _close_storages() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def opened(target: Path | str | DatabaseTarget) -> Storage:
    storage = Storage(target)
    _opened.append(storage)
    return storage


def seeded(path: Path | str) -> Storage:
    storage = opened(path)
    with storage.transaction():
        storage.insert_account(Account("acc", "Account", T0))
        storage.insert_point(point())
    return storage


def test_schema_is_created_and_wal_is_on(tmp_path: Path) -> None:
    storage = seeded(tmp_path / "sub" / "cloud.db")
    mode = sqlite3.connect(tmp_path / "sub" / "cloud.db").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"
    storage.close()


def insert(storage: Storage, doc: DocumentRecord) -> int:
    seq = storage.insert_document(doc)
    assert seq is not None
    return seq


def test_documents_survive_a_restart(any_db: str) -> None:
    storage = seeded(any_db)
    with storage.transaction():
        seq = insert(storage, record("a"))
        storage.add_history(seq, T0, lc.Status.QUEUED, "accepted")
    storage.close()
    reopened = opened(any_db)
    stored = reopened.get_document("3769574b-d082-4fe2-8cf0-dee21f9a7e0f", "a")
    assert stored is not None
    assert stored.seq == seq
    assert stored.state.pickup_deadline == T0 + lc.PICKUP_WINDOW_5MIN
    assert [h.event for h in reopened.history(seq)] == ["accepted"]
    reopened.close()


def test_a_failed_transaction_stores_nothing(any_db: str) -> None:
    storage = seeded(any_db)

    def failing_write() -> None:
        with storage.transaction():
            storage.insert_document(record("a"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    assert storage.count_documents() == 0


def test_driver_errors_are_translated(any_db: str) -> None:
    storage = seeded(any_db)

    def orphan_history() -> None:
        with storage.transaction():
            insert(storage, record("a"))
            storage.add_history(999, T0, lc.Status.QUEUED, "accepted")  # no such document

    with pytest.raises(StorageError) as info:
        orphan_history()
    assert isinstance(info.value, EmulatorError)
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError | psycopg.IntegrityError)
    assert "\n" not in str(info.value)
    assert storage.count_documents() == 0
    with storage.transaction():  # the connection is usable after the failure
        insert(storage, record("a"))
    assert storage.count_documents() == 1


def test_a_repeated_document_id_is_not_stored_twice(any_db: str) -> None:
    storage = seeded(any_db)
    with storage.transaction():
        first = insert(storage, record("a"))
        assert storage.insert_document(record("a")) is None  # another process stored it first
        second = insert(storage, record("b"))
    assert second > first
    assert storage.count_documents() == 2


def test_unopenable_database_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StorageError):
        Storage(tmp_path / "dir.db")


def test_timers_and_queue_queries(any_db: str) -> None:
    storage = seeded(any_db)
    with storage.transaction():
        first = insert(storage, record("a"))
        second = insert(storage, record("b"))
    deadline = T0 + lc.PICKUP_WINDOW_5MIN
    assert storage.next_deadline() == deadline
    assert storage.due_timers(deadline - timedelta(seconds=1)) == []
    assert [seq for _, _, seq in storage.due_timers(deadline)] == [first, second]
    assert [r.doc_id for r in storage.eligible_for_lease(point().id, 10)] == ["a", "b"]
    listed = storage.list_documents(DocumentFilter(statuses=("QUEUED",), limit=1, offset=1))
    assert [r.doc_id for r in listed] == ["b"]


def test_concurrent_writers_from_threads(any_db: str) -> None:
    storage = seeded(any_db)

    def write(prefix: str) -> None:
        for n in range(25):
            with storage.transaction():
                storage.insert_document(record(f"{prefix}-{n}"))

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storage.count_documents() == 100


# -- the directory caches (D59) ---------------------------------------------------------------------


def _fresh(storage: Storage) -> Storage:
    """Another connection to the same file: what the database holds, without any cache."""
    return opened(storage.target)


def test_a_cached_point_follows_every_update(any_db: str) -> None:
    storage = seeded(any_db)
    assert storage.get_point(point().id) == point()
    changed = dataclasses.replace(point(), internet_docs_enabled=False, name="Renamed")
    with storage.transaction():
        storage.update_point(changed)
    assert storage.get_point(point().id) == changed == _fresh(storage).get_point(point().id)


def test_a_rolled_back_write_leaves_no_cached_row(any_db: str) -> None:
    storage = seeded(any_db)
    storage.get_point(point().id)
    changed = dataclasses.replace(point(), deleted=True)

    def failing_update() -> None:
        with storage.transaction():
            storage.update_point(changed)
            assert storage.get_point(point().id) == changed  # read back inside: cached
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_update()
    assert storage.get_point(point().id) == point()


def test_a_rotated_or_deleted_association_is_not_served_from_the_cache(any_db: str) -> None:
    storage = seeded(any_db)
    assoc = Association("user", point().id, "", "acc", b"s1", b"h1", T0, T0)
    with storage.transaction():
        storage.upsert_association(assoc)
    assert storage.get_association("user") == assoc
    rotated = dataclasses.replace(assoc, salt=b"s2", hash=b"h2", rotated_at=T0 + timedelta(1))
    with storage.transaction():
        storage.upsert_association(rotated)
    assert storage.get_association("user") == rotated
    with storage.transaction():
        storage.delete_association("user")
    assert storage.get_association("user") is None


def test_a_heartbeat_updates_the_cached_device_as_a_fresh_read_would(any_db: str) -> None:
    storage = seeded(any_db)
    device = Device("dev", "0001", point().id, "9999", "virtual", "p", "tok", T0, None, None, None)
    with storage.transaction():
        storage.upsert_device(device)
    assert storage.get_device_by_token("tok") == device
    assert storage.last_heartbeat(point().id) is None
    at = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=3)))
    body = {"z": 1, "a": {"fnState": "READY"}, "text": "Касса"}
    with storage.transaction():
        storage.record_heartbeat("dev", at, fn_ok=False, body=body, fn_serial="")
    cached = storage.get_device_by_token("tok")
    fresh = _fresh(storage).get_device_by_token("tok")
    assert cached == fresh
    assert cached is not None
    assert fresh is not None
    assert list(cached.heartbeat or {}) == list(fresh.heartbeat or {})  # key order too
    assert storage.last_heartbeat(point().id) == (at, False)


def test_a_rebound_till_loses_its_old_token(any_db: str) -> None:
    storage = seeded(any_db)
    device = Device("dev", "0001", point().id, "9999", "virtual", "p", "old", T0, None, None, None)
    with storage.transaction():
        storage.upsert_device(device)
    assert storage.get_device_by_token("old") is not None
    with storage.transaction():
        storage.upsert_device(dataclasses.replace(device, token_hash="new"))  # noqa: S106 - a test token
    assert storage.get_device_by_token("old") is None
    assert storage.get_device_by_token("new") is not None


def test_the_double_integration_query_finds_the_latest_other_integration(any_db: str) -> None:
    storage = seeded(any_db)
    later = T0 + timedelta(minutes=1)
    with storage.transaction():
        for doc_id, client_id, at in (("a1", "a", T0), ("c1", "c", T0), ("a2", "a", later)):
            doc = dataclasses.replace(record(doc_id), client_id=client_id, created_at=at)
            storage.insert_document(doc)

    def twin(client_id: str, total: str = "100.00", since: datetime = T0) -> str | None:
        found = storage.recent_with_doc_num(point().id, "1", total, since, client_id)
        return None if found is None else found.doc_id

    assert twin("b") == "a2"  # both sides of "b": the latest wins
    assert twin("a") == "c1"  # never the calling integration's own
    assert twin("c") == "a2"
    assert twin("") == "a2"
    assert twin("b", total="99.00") is None
    assert twin("a", since=later) is None


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    seeded(tmp_path / "cloud.db").close()
    with sqlite3.connect(tmp_path / "cloud.db") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(StorageError, match="schema version 99"):
        Storage(tmp_path / "cloud.db")
