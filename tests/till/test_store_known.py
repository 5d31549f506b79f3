"""A store made just now from its template answers its reads without a statement (D122).

Every table of a new file is empty, and every write to it goes through the store, which keeps the
values it wrote (``put``, the acknowledgement mark) and forgets what it knew of a table it wrote
any other way, of every table on a write through :meth:`TillStore.transaction`, and of the whole
file when its connection is reopened. The statements are counted on SQLite's trace callback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.till.store import TillStore

# What a till's start reads of its store (till.py, drive_keeper.py, fiscal.py, loops.py).
_START_KEYS = (
    "kkt_serial",
    "fn_serial",
    "settings",
    "rnm",
    "token",
    "catalog",
    "orders_rev",
    "shift_opened_at",
)


def _traced(store: TillStore) -> list[str]:
    seen: list[str] = []
    store.connection.connection().set_trace_callback(seen.append)
    return seen


def _start_reads(store: TillStore) -> dict[str, Any]:
    return {
        "meta": {key: store.get(key) for key in _START_KEYS},
        "journal": store.journal_entries(),
        "outbox": store.outbox("result") + store.outbox("ofd"),
        "unreported": store.unreported_fds(),
        "outbox_size": store.outbox_size(),
        "cashdocs": store.cashdoc_queue(10),
        "cashdoc_state": store.cashdoc_queue_state(),
        "processed": store.processed("d1"),
        "shift": store.shift_cashdocs("s1"),
    }


def test_a_new_store_answers_a_start_without_a_statement(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        seen = _traced(store)
        reads = _start_reads(store)
        assert reads["meta"] == dict.fromkeys(_START_KEYS)
        assert reads["journal"] == reads["outbox"] == reads["cashdocs"] == reads["shift"] == []
        assert reads["unreported"] == set()
        assert reads["outbox_size"] == 0
        assert reads["cashdoc_state"] == (0, None)
        assert reads["processed"] is None
        store.put(kkt_serial="0001", settings={"online": True})
        store.put(rnm="r1")
        assert store.get("kkt_serial") == "0001"
        assert store.get("settings") == {"online": True}
        assert store.get("rnm") == "r1"
        assert store.get("token") is None
        assert [sql for sql in seen if not sql.startswith(("INSERT", "BEGIN", "COMMIT"))] == []
    finally:
        store.close()


def test_a_written_table_is_read_again(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        seen = _traced(store)
        store.journal("d1", "l1", 7, {"id": "d1"}, "t")
        assert [e.doc_id for e in store.journal_entries()] == ["d1"]
        assert store.unreported_fds() == {7}
        assert sum(sql.startswith("SELECT") for sql in seen) == 2
        assert store.outbox("result") == []  # the outbox is still known empty
        assert sum(sql.startswith("SELECT") for sql in seen) == 2
        store.record_result("d1", 7, {"docId": "d1", "outcome": "fiscalized"})
        assert [e.key for e in store.outbox("result")] == ["d1"]
        assert store.processed("d1") == {"docId": "d1", "outcome": "fiscalized"}
        assert store.journal_entries() == []
    finally:
        store.close()


def test_the_mark_is_kept_as_the_statement_leaves_it(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        seen = _traced(store)
        store.queue_ofd_ack(5, {"fnNumber": "F", "state": "acknowledged"})
        assert store.ofd_acked_mark("F") == 5
        store.set_ofd_acked_mark("F", 9)
        store.queue_ofd_ack(7, {"fnNumber": "F", "state": "acknowledged"})
        assert store.ofd_acked_mark("F") == 9  # the mark never goes down
        assert sum(sql.startswith("SELECT") for sql in seen) == 0
    finally:
        store.close()


def test_a_transaction_forgets_every_table(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        with store.transaction() as db:
            db.execute(
                "INSERT INTO till_cashdocs (doc_id, shift_id, doc_type, document, created_at)"
                " VALUES ('c1', 's1', 'cash_in', '{}', 't')"
            )
            db.execute("INSERT INTO till_meta (key, value) VALUES ('cash_shift', '\"s1\"')")
        assert [e.doc_id for e in store.cashdoc_queue(10)] == ["c1"]
        assert store.cashdoc_queue_state() == (1, "t")
        assert store.get("cash_shift") == "s1"
    finally:
        store.close()


def test_a_reopened_connection_knows_nothing(tmp_path: Path) -> None:
    path = tmp_path / "till.sqlite3"
    store = TillStore(path, idle=None)
    try:
        store.connection.close()  # an idle close; the file may be changed meanwhile
        other = TillStore(path, idle=None)
        other.put(rnm="r")
        other.journal("d1", None, 3, {"id": "d1"}, "t")
        other.close()
        assert store.get("rnm") == "r"
        assert [e.doc_id for e in store.journal_entries()] == ["d1"]
    finally:
        store.close()


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(["a", "b"]), st.integers(0, 3)),
        st.tuples(st.just("mark"), st.just("F"), st.integers(0, 9)),
        st.tuples(st.just("set_mark"), st.just("F"), st.integers(0, 9)),
        st.tuples(st.just("journal"), st.sampled_from(["d1", "d2"]), st.integers(1, 9)),
        st.tuples(st.just("result"), st.sampled_from(["d1", "d2"]), st.integers(1, 9)),
        st.tuples(st.just("delivered"), st.just(""), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS)
def test_what_the_store_knows_is_what_the_file_holds(tmp_path_factory: Any, ops: Any) -> None:
    path = tmp_path_factory.mktemp("known") / "till.sqlite3"
    store = TillStore(path, idle=None)
    try:
        for op, key, n in ops:
            if op == "put":
                store.put(**{key: n})
            elif op == "mark":
                store.queue_ofd_ack(n, {"fnNumber": key, "state": "acknowledged"})
            elif op == "set_mark":
                store.set_ofd_acked_mark(key, n)
            elif op == "journal":
                store.journal(key, None, n, {"id": key}, "t")
            elif op == "result":
                store.record_result(key, n, {"docId": key, "outcome": "fiscalized"})
            else:
                store.delivered(store.outbox("result"))
        known = {k: store.get(k) for k in ("a", "b", "ofd_acked:F")}
        journal = [(e.doc_id, e.expected_fd) for e in store.journal_entries()]
        outbox = [e.key for e in store.outbox("result")]
        fresh = TillStore(path, idle=None)  # an existing file: every read is a statement
        try:
            assert known == {k: fresh.get(k) for k in known}
            assert journal == [(e.doc_id, e.expected_fd) for e in fresh.journal_entries()]
            assert outbox == [e.key for e in fresh.outbox("result")]
            assert store.unreported_fds() == fresh.unreported_fds()
            assert store.outbox_size() == fresh.outbox_size()
        finally:
            fresh.close()
    finally:
        store.close()
