"""Several cloud processes on one PostgreSQL database (D75, D76): each ``Storage`` here has its own
connection and listener, as a separate ``cloud serve`` process would.

Leases and deadlines are raced from threads, so the database's locks decide, not the order of
calls; the caches and wake-ups of one storage follow the writes of another.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.schemas import BindRequest, RetailPointUpdate
from kkt_emulator.cloud.service import DEFAULT_ACCOUNT, CloudService
from kkt_emulator.cloud.settings import CloudSettings, DuplicatePolicy, PickupWindow
from kkt_emulator.cloud.storage import (
    Account,
    Association,
    Device,
    DocumentRecord,
    MasterCredential,
    RetailPoint,
    Storage,
    StorageError,
)
from kkt_emulator.taxes import TaxSystem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from pg_server import PgServer

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
POINT = "8d6f4a70-6c39-4f7e-9a8e-1f2b3c4d5e6f"


@pytest.fixture
def url(pg: PgServer) -> str:
    return pg.new_database("shared")


@pytest.fixture
def opened() -> Iterator[Callable[[str], Storage]]:
    storages: list[Storage] = []

    def open_one(target: str) -> Storage:
        storage = Storage(target)
        storages.append(storage)
        return storage

    yield open_one
    for storage in storages:
        storage.close()


def retail_point(**changes: Any) -> RetailPoint:
    base = RetailPoint(
        id=POINT,
        account_id=DEFAULT_ACCOUNT,
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
    return dataclasses.replace(base, **changes)


def device(device_id: str, token_hash: str) -> Device:
    return Device(device_id, device_id, POINT, "9999", "v", "p", token_hash, T0, None, None, None)


def document(n: int, *, pickup: bool = False) -> DocumentRecord:
    window = lc.PICKUP_WINDOW_5MIN if pickup else None
    return DocumentRecord(
        seq=0,
        retail_point_id=POINT,
        doc_id=f"doc-{n:04d}",
        client_id="",
        route="v2",
        document={"id": f"doc-{n:04d}"},
        content_key="{}",
        doc_num=str(n),
        total="10.00",
        response_url=None,
        created_at=T0,
        state=lc.new_document(T0, has_callback=False, pickup_window=window),
    )


def services(url: str, opened: Callable[[str], Storage], count: int = 2) -> list[CloudService]:
    clock = ManualClock(T0)
    found = [
        CloudService(opened(url), clock, CloudSettings(password_iterations=1000))
        for _ in range(count)
    ]
    with found[0].storage.transaction():
        found[0].storage.insert_point(retail_point())
    return found


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def race(*jobs: Callable[[], None]) -> None:
    """Run the jobs at once, in threads; re-raise the first failure."""
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# -- one cloud: leases and deadlines (D75) -----------------------------------------------------------


def test_a_document_is_leased_to_exactly_one_till_across_processes(
    url: str, opened: Callable[[str], Storage]
) -> None:
    clouds = services(url, opened)
    with clouds[0].storage.transaction():
        for n in range(300):
            clouds[0].storage.insert_document(document(n))
    point = retail_point()
    leased: dict[str, list[str]] = {"a": [], "b": []}

    def till(cloud: CloudService, name: str) -> Callable[[], None]:
        def run() -> None:
            while items := cloud.lease(device(name, name), point, 3):
                leased[name].extend(item.doc_id for item in items)

        return run

    race(till(clouds[0], "a"), till(clouds[1], "b"))
    both = leased["a"] + leased["b"]
    assert sorted(both) == [f"doc-{n:04d}" for n in range(300)]  # each once, none lost
    assert leased["a"]
    assert leased["b"]
    for name in ("a", "b"):
        seqs = [clouds[0].storage.get_document(POINT, d) for d in leased[name]]
        assert {s.lease_device_id for s in seqs if s is not None} == {name}


def test_every_deadline_fires_once_when_processes_sweep_together(
    url: str, opened: Callable[[str], Storage]
) -> None:
    clouds = services(url, opened, count=3)
    with clouds[0].storage.transaction():
        for n in range(150):
            clouds[0].storage.insert_document(document(n, pickup=True))
    due = T0 + lc.PICKUP_WINDOW_5MIN
    fired: Counter[int] = Counter()

    def sweep(cloud: CloudService, index: int) -> Callable[[], None]:
        def run() -> None:
            fired[index] = cloud.sweep(due)

        return run

    race(*(sweep(cloud, i) for i, cloud in enumerate(clouds)))
    assert sum(fired.values()) == 150  # each deadline fired by exactly one of them
    storage = clouds[1].storage
    for n in range(150):
        record = storage.get_document(POINT, f"doc-{n:04d}")
        assert record is not None
        assert record.state.status is lc.Status.FAILED
        events = [h.event for h in storage.history(record.seq)]
        assert events.count("pickup_timeout") == 1, events
    assert storage.next_deadline() is None


def test_a_document_id_posted_to_two_processes_at_once_is_stored_once(
    url: str, opened: Callable[[str], Storage]
) -> None:
    clouds = services(url, opened)
    seqs: list[int | None] = []

    def insert(cloud: CloudService) -> Callable[[], None]:
        def run() -> None:
            with cloud.storage.transaction():
                seqs.append(cloud.storage.insert_document(document(1)))

        return run

    race(insert(clouds[0]), insert(clouds[1]))
    assert len(seqs) == 2
    assert seqs.count(None) == 1  # the second answers as for a repeated id (D32)
    assert clouds[0].storage.count_documents() == 1


# -- callbacks: one attempt, one process (D75, D77) --------------------------------------------------


def _due_callback(storage: Storage) -> int:
    record = document(7)
    state = dataclasses.replace(
        record.state,
        status=lc.Status.PRINTED,
        callback=lc.CallbackKind.SUCCESS,
        callback_first_at=T0,
        callback_next_at=T0,
        has_callback=True,
    )
    with storage.transaction():
        seq = storage.insert_document(dataclasses.replace(record, state=state))
    assert seq is not None
    return seq


def test_a_callback_attempt_is_claimed_by_one_process(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = opened(url), opened(url)
    seq = _due_callback(a)
    assert [r.seq for r in a.due_callbacks(T0)] == [seq]
    assert b.due_callbacks(T0) == []  # held by a
    assert b.next_deadline() == T0 + timedelta(seconds=2)  # looked at again, not in a hot loop
    assert [r.seq for r in a.due_callbacks(T0)] == [seq]  # a's own claim: still a's
    record = a.get_document_by_seq(seq)
    assert record is not None
    done = dataclasses.replace(record.state, callback_next_at=None, status=lc.Status.COMPLETED)
    with a.transaction():
        a.update_document(dataclasses.replace(record, state=done))
    a.release_callback(seq)
    assert b.due_callbacks(T0) == []  # made and recorded: nothing left to claim
    assert b.next_deadline() is None


def test_the_claims_of_a_process_that_died_pass_to_another(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = opened(url), opened(url)
    seq = _due_callback(a)
    assert [r.seq for r in a.due_callbacks(T0)] == [seq]
    assert b.due_callbacks(T0) == []
    a.close()  # its session ends, as when the process is killed
    assert eventually(lambda: [r.seq for r in b.due_callbacks(T0)] == [seq])


# -- caches and wake-ups (D76) ---------------------------------------------------------------------


def test_caches_follow_the_writes_of_another_process(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = services(url, opened)
    sa, sb = a.storage, b.storage
    assoc = Association("user", POINT, "", DEFAULT_ACCOUNT, b"s1", b"h1", T0, T0)
    with sa.transaction():
        sa.upsert_association(assoc)
        sa.upsert_device(device("till", "old-token"))
    assert sb.get_point(POINT) == retail_point()  # now cached in b
    assert sb.get_association("user") == assoc
    assert sb.get_device_by_token("old-token") is not None
    assert sb.last_heartbeat(POINT) is None

    renamed = retail_point(name="Renamed", internet_docs_enabled=False)
    rotated = dataclasses.replace(assoc, salt=b"s2", hash=b"h2")
    with sa.transaction():
        sa.update_point(renamed)
        sa.upsert_association(rotated)
        sa.upsert_device(device("till", "new-token"))  # a re-bind: the old token must die
    assert eventually(lambda: sb.get_point(POINT) == renamed)
    assert eventually(lambda: sb.get_association("user") == rotated)
    assert eventually(lambda: sb.get_device_by_token("old-token") is None)
    with sa.transaction():
        sa.record_heartbeat("till", T0, fn_ok=True, body={"fnState": "READY"}, fn_serial="")
    assert eventually(lambda: sb.last_heartbeat(POINT) == (T0, True))
    with sa.transaction():
        sa.delete_association("user")
    assert eventually(lambda: sb.get_association("user") is None)


def test_another_process_hears_document_writes_with_their_point(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = opened(url), opened(url)
    heard_a: list[str | None] = []
    heard_b: list[str | None] = []
    a.on_remote_change(heard_a.append)
    b.on_remote_change(heard_b.append)
    with a.transaction():
        a.insert_account(Account(DEFAULT_ACCOUNT, "Default", T0))
        a.insert_point(retail_point())
    with a.transaction():
        a.insert_document(document(1))
        a.insert_document(document(2))  # one announcement per point and transaction
    assert eventually(lambda: heard_b == [POINT])
    assert heard_a == []  # a process does not hear itself

    def failing() -> None:
        with a.transaction():
            a.insert_document(document(3))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    time.sleep(0.2)
    assert heard_b == [POINT]  # a rolled-back write is never announced


def test_a_lost_listener_drops_every_cache_and_wakes_everyone(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a = opened(url)
    with a.transaction():
        a.insert_account(Account(DEFAULT_ACCOUNT, "Default", T0))
        a.insert_point(retail_point())
    heard: list[str | None] = []
    a.on_remote_change(heard.append)
    assert a.get_point(POINT) is not None
    with psycopg.connect(url, autocommit=True) as admin:
        with admin.transaction():
            admin.execute("UPDATE retail_points SET name = 'Behind its back'")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        )
    assert eventually(lambda: None in heard)
    point = a.get_point(POINT)
    assert point is not None
    assert point.name == "Behind its back"


# -- schema ---------------------------------------------------------------------------------------


def test_processes_starting_together_on_an_empty_database_make_one_schema(
    url: str, opened: Callable[[str], Storage]
) -> None:
    def start() -> None:
        assert opened(url).count_documents() == 0

    race(*(start for _ in range(4)))
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row == ("1",)


def test_a_database_of_a_newer_schema_is_refused(
    url: str, opened: Callable[[str], Storage]
) -> None:
    opened(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match="schema version 99"):
        opened(url)


def test_a_broken_connection_is_one_error_and_then_opened_again(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a = opened(url)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            " AND datname = current_database() AND query NOT LIKE 'LISTEN%'"
        )
    with pytest.raises(StorageError) as info:
        a.count_documents()
    assert "\n" not in str(info.value)
    assert a.count_documents() == 0  # the next statement runs on a new connection
    with a.transaction():
        a.insert_document(document(1))
    assert a.count_documents() == 1


def test_an_association_made_while_another_process_makes_it_is_the_same(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = services(url, opened)
    login, password = "service", "secret-password"
    salt, digest = a.hasher.hash(password)
    with a.storage.transaction():
        a.storage.upsert_master_credential(
            MasterCredential(login, DEFAULT_ACCOUNT, POINT, "service", salt, digest), T0
        )
    header = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    first = Association("made-by-a", POINT, "shop", DEFAULT_ACCOUNT, b"s", b"h", T0, T0)
    inside = threading.Event()
    answers: list[str] = []

    def a_associates_slowly() -> None:  # what associate does in a, with time to overtake it
        with a.storage.transaction():
            a.storage.lock_point(POINT)
            assert a.storage.get_association_for(POINT, "shop") is None
            inside.set()
            time.sleep(0.3)
            a.storage.upsert_association(first)

    def b_associates() -> None:
        assert inside.wait(5)
        answers.append(b.associate(header, POINT, "shop")["userName"])

    race(a_associates_slowly, b_associates)
    assert answers == ["made-by-a"]  # b waited for a and rotated a's association (D6)
    bound: list[str] = []
    inside.clear()

    def a_binds_slowly() -> None:
        with a.storage.transaction():
            a.storage.lock_point(POINT)
            inside.set()
            time.sleep(0.3)
            a.storage.upsert_device(device("bound-by-a", "token-a"))

    def b_binds() -> None:
        assert inside.wait(5)
        request = BindRequest(tillSerial="bound-by-a", retailPointId=POINT)
        bound.append(b.bind(header, request)["deviceId"])

    race(a_binds_slowly, b_binds)
    assert bound == ["bound-by-a"]  # one binding of the till serial


def test_point_changes_of_two_processes_are_both_kept(
    url: str, opened: Callable[[str], Storage]
) -> None:
    a, b = services(url, opened)
    assert b.storage.get_point(POINT) == retail_point()  # cached in b before a's change
    inside = threading.Event()

    def a_renames_slowly() -> None:
        with a.storage.transaction():
            a.storage.lock_point(POINT)
            point = a.storage.get_point(POINT)
            assert point is not None
            inside.set()
            time.sleep(0.3)
            a.storage.update_point(dataclasses.replace(point, name="Renamed by a"))

    def b_turns_documents_off() -> None:
        assert inside.wait(5)
        b.update_point(POINT, RetailPointUpdate(internetDocsEnabled=False))

    race(a_renames_slowly, b_turns_documents_off)
    fresh = opened(url).get_point(POINT)
    assert fresh == retail_point(name="Renamed by a", internet_docs_enabled=False)
