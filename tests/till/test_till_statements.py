"""What the till's store reads per receipt: ``till_meta`` values are read once until written (D137).

The shift's opening time, the address turn and the acknowledgement mark are read on every
receipt; the statements the store's connection runs are counted on SQLite's trace callback.
"""

from __future__ import annotations

from pathlib import Path

from kkt_emulator.till.store import TillStore


def _selects(seen: list[str]) -> int:
    return sum(1 for sql in seen if sql.startswith("SELECT value FROM till_meta"))


def _traced(store: TillStore) -> list[str]:
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # the statements the store runs
    return seen


def test_a_value_is_read_once_until_it_is_written(tmp_path: Path) -> None:
    TillStore(tmp_path / "till.sqlite3", idle=None).close()  # an existing file: rows unknown
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        store.put(shift_opened_at="2026-01-12T09:00:00", address_turn=1)
        seen = _traced(store)
        for _ in range(5):
            assert store.get("shift_opened_at") == "2026-01-12T09:00:00"
            assert store.get("missing") is None
            # A receipt's other writes (journal, result, outbox, the mark) keep what was read.
            store.journal("d", "l", 7, {"id": "d"}, "t")
            store.record_result("d", 7, {"docId": "d", "outcome": "fiscalized"})
            store.queue_ofd_ack(7, {"fnNumber": "F", "state": "acknowledged"})
        assert _selects(seen) == 1  # the value written is kept as written (D122)
        store.put(address_turn=2)
        assert store.get("shift_opened_at") == "2026-01-12T09:00:00"
        assert _selects(seen) == 1  # another key written: this one is still known
        assert store.ofd_acked_mark("F") == 7
        store.queue_ofd_ack(8, {"fnNumber": "F", "state": "acknowledged"})
        assert store.ofd_acked_mark("F") == 8  # the mark's own write is seen at once
        store.put(shift_opened_at=None)
        assert store.get("shift_opened_at") is None
    finally:
        store.close()


def test_a_write_through_a_transaction_is_seen(tmp_path: Path) -> None:
    store = TillStore(tmp_path / "till.sqlite3", idle=None)
    try:
        store.put(cash_shift={"id": "s1"})
        assert store.get("cash_shift") == {"id": "s1"}
        with store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO till_meta (key, value) VALUES ('cash_shift', ?)",
                ('{"id": "s2"}',),
            )
        assert store.get("cash_shift") == {"id": "s2"}
    finally:
        store.close()


def test_a_reopened_connection_reads_again(tmp_path: Path) -> None:
    path = tmp_path / "till.sqlite3"
    store = TillStore(path, idle=None)
    try:
        store.put(rnm="a")
        assert store.get("rnm") == "a"
        store.connection.close()  # an idle close; the file may have been replaced meanwhile
        other = TillStore(path, idle=None)
        other.put(rnm="b")
        other.close()
        assert store.get("rnm") == "b"
    finally:
        store.close()
