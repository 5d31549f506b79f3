"""The cloud database's document tables: documents, their history, and the timer queries.

With several cloud processes on one PostgreSQL database (D75), the reads that a transaction goes
on to change lock their rows (:meth:`~kkt_emulator.cloud.db.Database._for_update`): a lease takes
only documents no other process is leasing (``SKIP LOCKED``), a due deadline is fired by the one
process that locks its row first (:meth:`DocumentTables.claim_document`), and a callback attempt
is made by the one process that holds its claim (:meth:`DocumentTables.due_callbacks`). Every
document write is announced, so the other processes wake their long polls and timers (D76).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.records import (
    STATE_COLUMNS,
    DocumentFilter,
    DocumentRecord,
    DueTimer,
    HistoryEntry,
    OfdState,
    TimerKind,
    document_from_row,
    dumps,
    from_db_time,
    loads,
    opt_db_time,
    state_values,
    to_db_time,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kkt_emulator.cloud.db import DatabaseTarget

__all__ = ["DocumentTables"]

_HELD_RECHECK: Final = timedelta(seconds=2)
"""How soon a callback another process holds is looked at again (that process may have died)."""

_INSERT_COLUMNS: Final = (
    "retail_point_id",
    "doc_id",
    "client_id",
    "route",
    "document",
    "content_key",
    "doc_num",
    "total",
    "response_url",
    "created_at",
    "warnings",
    "possible_duplicate_of",
    *STATE_COLUMNS,
)
_INSERT_DOCUMENT: Final = (
    f"INSERT INTO documents ({', '.join(_INSERT_COLUMNS)})"  # noqa: S608 - column names are constants
    f" VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})"
    " ON CONFLICT (retail_point_id, doc_id) DO NOTHING RETURNING seq"
)


_UPDATE_COLUMNS: Final = (
    *STATE_COLUMNS,
    "fiscal_info",
    "failure_detail",
    "lease_device_id",
    "callback_last_error",
    "fn_number",
    "fn_doc_number",
    "ofd_state",
    "ofd_changed_at",
    "warnings",
    "possible_duplicate_of",
)
"""The columns :meth:`DocumentTables.update_document` writes: all but the accepted document's."""
_UPDATE_DOCUMENT: Final = (
    f"UPDATE documents SET {', '.join(f'{c} = ?' for c in _UPDATE_COLUMNS)} WHERE seq = ?"  # noqa: S608 - column names are constants
)
_PARTIAL_UPDATES: dict[tuple[int, ...], str] = {}  # changed column positions -> statement
_PARTIAL_UPDATES_KEPT: Final = 256


def _update_values(record: DocumentRecord) -> tuple[object, ...]:
    """The values of :data:`_UPDATE_COLUMNS` for ``record``, in that order."""
    return (
        *state_values(record.state),
        None if record.fiscal_info is None else dumps(record.fiscal_info),
        None if record.failure_detail is None else dumps(record.failure_detail),
        record.lease_device_id,
        record.callback_last_error,
        record.fn_number,
        record.fn_doc_number,
        record.ofd_state,
        opt_db_time(record.ofd_changed_at),
        dumps(list(record.warnings)),
        record.possible_duplicate_of,
    )


def _document_values(record: DocumentRecord) -> tuple[object, ...]:
    """The values of :data:`_INSERT_COLUMNS` for a new document, in that order."""
    return (
        record.retail_point_id,
        record.doc_id,
        record.client_id,
        record.route,
        dumps(record.document),
        record.content_key,
        record.doc_num,
        record.total,
        record.response_url,
        to_db_time(record.created_at),
        dumps(list(record.warnings)),
        record.possible_duplicate_of,
        *state_values(record.state),
    )


class DocumentTables(Database):
    """The documents with their lifecycle state, history and deadlines."""

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        super().__init__(target)
        self._claimed: set[int] = set()  # callbacks this process holds the claim of
        self._held_elsewhere: dict[int, datetime] = {}  # due, claimed elsewhere: when last tried

    # -- documents ---------------------------------------------------------------------------------

    def insert_document(self, record: DocumentRecord) -> int | None:
        """Store a new document; returns its queue position (``seq``).

        ``None`` when the point already has a document with this id: another cloud process on
        the same database stored it first (the caller answers as for a repeated id, D32).
        """
        with self._lock:
            row = self._execute(_INSERT_DOCUMENT, _document_values(record)).fetchone()
            if row is None:
                return None
            self._announce("change", record.retail_point_id)
            return int(row["seq"])

    def update_document(
        self, record: DocumentRecord, previous: DocumentRecord | None = None
    ) -> None:
        """Write a document's state and cabinet facts back.

        ``previous`` is the document as this transaction read (or last wrote) it; then only the
        columns whose values differ are written (D126): every other column already holds the
        record's value, and an index whose columns are not written is left alone. Without it
        every column is written.
        """
        values = _update_values(record)
        self._announce("change", record.retail_point_id)
        if previous is None:
            self._execute(_UPDATE_DOCUMENT, (*values, record.seq))
            return
        old = _update_values(previous)
        changed = [i for i, value in enumerate(values) if value != old[i]]
        if not changed:
            return
        sql = _PARTIAL_UPDATES.get(tuple(changed))
        if sql is None:
            assignments = ", ".join(f"{_UPDATE_COLUMNS[i]} = ?" for i in changed)
            sql = f"UPDATE documents SET {assignments} WHERE seq = ?"  # noqa: S608 - column names are constants
            if len(_PARTIAL_UPDATES) < _PARTIAL_UPDATES_KEPT:
                _PARTIAL_UPDATES[tuple(changed)] = sql
        self._execute(sql, (*(values[i] for i in changed), record.seq))

    def get_document(self, point_id: str, doc_id: str) -> DocumentRecord | None:
        """The document ``doc_id`` of a retail point, if any."""
        row = self._one(
            "SELECT * FROM documents WHERE retail_point_id = ? AND doc_id = ?"  # noqa: S608 - a constant lock clause
            + self._for_update(),
            (point_id, doc_id),
        )
        return None if row is None else document_from_row(row)

    def get_document_by_seq(self, seq: int) -> DocumentRecord | None:
        """The document at queue position ``seq``, if any."""
        row = self._one("SELECT * FROM documents WHERE seq = ?" + self._for_update(), (seq,))  # noqa: S608 - a constant lock clause
        return None if row is None else document_from_row(row)

    def claim_document(self, seq: int) -> DocumentRecord | None:
        """The document at ``seq``, locked for this transaction, if any.

        ``None`` also when another process is changing it right now (PostgreSQL:
        ``FOR UPDATE SKIP LOCKED``).
        """
        row = self._one(
            "SELECT * FROM documents WHERE seq = ?" + self._for_update(skip_locked=True),  # noqa: S608 - a constant lock clause
            (seq,),
        )
        return None if row is None else document_from_row(row)

    def find_by_fiscal_number(self, fn_number: str, fn_doc_number: int) -> DocumentRecord | None:
        """The document fiscalised as ФД ``fn_doc_number`` on drive ``fn_number``, if any."""
        row = self._one(
            "SELECT * FROM documents WHERE fn_number = ? AND fn_doc_number = ?"  # noqa: S608 - a constant lock clause
            + self._for_update(),
            (fn_number, fn_doc_number),
        )
        return None if row is None else document_from_row(row)

    def eligible_for_lease(self, point_id: str, limit: int) -> list[DocumentRecord]:
        """The oldest documents a till of the point may lease now (D39, D47, D48).

        Inside a transaction on PostgreSQL they are locked, and documents another process is
        leasing right now are passed over (D75): each is leased to exactly one till.
        """
        rows = self._all(
            "SELECT d.* FROM documents d JOIN retail_points p ON p.id = d.retail_point_id"  # noqa: S608 - a constant lock clause
            " WHERE d.retail_point_id = ? AND d.status IN ('QUEUED', 'REQUEUED')"
            " AND p.internet_docs_enabled = 1 AND p.deleted = 0"
            " AND NOT (p.stop_on_errors = 1 AND EXISTS (SELECT 1 FROM documents b"
            "   WHERE b.retail_point_id = d.retail_point_id AND b.blocking = 1 AND b.seq < d.seq))"
            " ORDER BY d.seq LIMIT ?" + self._for_update(of="d", skip_locked=True),
            (point_id, limit),
        )
        return [document_from_row(r) for r in rows]

    def leased_to(self, device_id: str, point_id: str, limit: int) -> list[DocumentRecord]:
        """The point's documents still PENDING under a lease of this till, oldest first."""
        rows = self._all(
            "SELECT * FROM documents WHERE status = 'PENDING' AND lease_device_id = ?"  # noqa: S608 - a constant lock clause
            " AND retail_point_id = ? ORDER BY seq LIMIT ?" + self._for_update(),
            (device_id, point_id, limit),
        )
        return [document_from_row(r) for r in rows]

    def park_ofd_ack(self, fn_number: str, fd: int, state: str, at: datetime | None) -> None:
        """Keep an OFD report for a fiscal number no document has yet; the furthest state wins."""
        self._execute(
            "INSERT INTO ofd_parked (fn_number, fn_doc_number, state, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (fn_number, fn_doc_number) DO UPDATE SET state = excluded.state,"
            " at = excluded.at WHERE excluded.state = 'acknowledged' OR ofd_parked.state = 'sent'",
            (fn_number, fd, state, None if at is None else to_db_time(at)),
        )

    def take_parked_ofd_ack(
        self, fn_number: str, fd: int
    ) -> tuple[OfdState, datetime | None] | None:
        """The parked OFD report of a fiscal number, removed; ``None`` if there is none."""
        row = self._one(
            "SELECT state, at FROM ofd_parked WHERE fn_number = ? AND fn_doc_number = ?"  # noqa: S608 - a constant lock clause
            + self._for_update(),
            (fn_number, fd),
        )
        if row is None:
            return None
        self._execute(
            "DELETE FROM ofd_parked WHERE fn_number = ? AND fn_doc_number = ?", (fn_number, fd)
        )
        state: OfdState = "acknowledged" if row["state"] == "acknowledged" else "sent"
        return state, None if row["at"] is None else from_db_time(row["at"])

    def queued_before(self, moment: datetime, limit: int = 500) -> list[DocumentRecord]:
        """QUEUED or REQUEUED documents of any point accepted at or before ``moment``, oldest first."""
        rows = self._all(
            "SELECT * FROM documents WHERE status IN ('QUEUED', 'REQUEUED') AND created_at <= ?"
            " ORDER BY seq LIMIT ?",
            (to_db_time(moment), limit),
        )
        return [document_from_row(r) for r in rows]

    def oldest_queued_at(self) -> datetime | None:
        """Acceptance time of the oldest QUEUED or REQUEUED document, if any."""
        row = self._one(
            "SELECT MIN(created_at) AS t FROM documents WHERE status IN ('QUEUED', 'REQUEUED')"
        )
        return None if row is None or row["t"] is None else from_db_time(row["t"])

    def blocking_documents(self, point_id: str) -> list[DocumentRecord]:
        """The point's documents that block the queue (stop-on-errors)."""
        rows = self._all(
            "SELECT * FROM documents WHERE retail_point_id = ? AND blocking = 1 ORDER BY seq",
            (point_id,),
        )
        return [document_from_row(r) for r in rows]

    def due_timers(self, now: datetime, limit: int = 500) -> list[DueTimer]:
        """Lifecycle deadlines due at ``now``, earliest first (see :class:`TimerKind`)."""
        at = to_db_time(now)
        rows = self._all(
            "SELECT lease_expires_at AS t, 'lease' AS k, seq FROM documents"
            " WHERE status = 'PENDING' AND lease_expires_at <= ?"
            " UNION ALL SELECT pickup_deadline, 'pickup', seq FROM documents"
            " WHERE pickup_deadline IS NOT NULL AND pickup_deadline <= ?"
            " UNION ALL SELECT dispatch_at, 'dispatch', seq FROM documents"
            " WHERE dispatch_at IS NOT NULL AND dispatch_at <= ? AND status = 'PRINTED'"
            " ORDER BY t, seq LIMIT ?",
            (at, at, at, limit),
        )
        return [DueTimer(from_db_time(r["t"]), TimerKind(r["k"]), r["seq"]) for r in rows]

    def due_callbacks(
        self, now: datetime, exclude: Sequence[int] = (), limit: int = 100
    ) -> list[DocumentRecord]:
        """Documents whose next callback attempt is due, earliest first, claimed for this process.

        On PostgreSQL each is claimed (:meth:`release_callback` gives the claim back) and read
        again under the claim, so one attempt is made by one process only, and a document whose
        attempt another process has in flight is left out (D75). SQLite grants every claim.
        """
        marks = ", ".join("?" for _ in exclude) or "-1"  # NOT IN (NULL) would match nothing
        at = to_db_time(now)
        with self._lock:
            rows = self._all(
                "SELECT * FROM documents WHERE callback_next_at IS NOT NULL"  # noqa: S608 - placeholders only
                f" AND callback_next_at <= ? AND seq NOT IN ({marks})"
                " ORDER BY callback_next_at, seq LIMIT ?",
                (at, *exclude, limit),
            )
            if not self.shared:
                return [document_from_row(r) for r in rows]
            claimed: list[DocumentRecord] = []
            held: dict[int, datetime] = {}
            for row in rows:
                seq = int(row["seq"])
                if seq not in self._claimed:
                    if not self._conn.try_claim(seq):
                        held[seq] = now
                        continue
                    self._claimed.add(seq)
                fresh = self._one(  # what it is now that nobody else can start it
                    "SELECT * FROM documents WHERE seq = ? AND callback_next_at IS NOT NULL"
                    " AND callback_next_at <= ?",
                    (seq, at),
                )
                if fresh is None:  # another process made the attempt meanwhile
                    self.release_callback(seq)
                    continue
                claimed.append(document_from_row(fresh))
            self._held_elsewhere = held
            return claimed

    def release_callback(self, seq: int) -> None:
        """Give back the claim :meth:`due_callbacks` took on a document's callback attempt."""
        with self._lock:
            if seq in self._claimed:
                self._claimed.discard(seq)
                self._conn.release(seq)

    def next_deadline(self, exclude_callbacks: Sequence[int] = ()) -> datetime | None:
        """The earliest pending deadline of any timer (lifecycle or callback).

        Callbacks another process holds count from when they are to be looked at again.
        """
        held = self._held_elsewhere
        exclude_callbacks = (*exclude_callbacks, *held)
        marks = ", ".join("?" for _ in exclude_callbacks) or "-1"
        row = self._one(
            "SELECT MIN(t) AS t FROM ("  # noqa: S608 - placeholders only
            " SELECT MIN(lease_expires_at) AS t FROM documents WHERE status = 'PENDING'"
            " UNION ALL SELECT MIN(pickup_deadline) FROM documents"
            " WHERE pickup_deadline IS NOT NULL"
            " UNION ALL SELECT MIN(dispatch_at) FROM documents"
            " WHERE dispatch_at IS NOT NULL AND status = 'PRINTED'"
            " UNION ALL SELECT MIN(callback_next_at) FROM documents"
            f" WHERE callback_next_at IS NOT NULL AND seq NOT IN ({marks})) AS due",
            tuple(exclude_callbacks),
        )
        found = None if row is None or row["t"] is None else from_db_time(row["t"])
        if held:
            recheck = min(held.values()) + _HELD_RECHECK
            found = recheck if found is None else min(found, recheck)
        return found

    def list_documents(self, flt: DocumentFilter) -> list[DocumentRecord]:
        """Documents matching the cabinet's filters, oldest first."""
        where: list[str] = []
        params: list[object] = []
        if flt.retail_point_id is not None:
            where.append("retail_point_id = ?")
            params.append(flt.retail_point_id)
        if flt.statuses:
            where.append(f"status IN ({', '.join('?' for _ in flt.statuses)})")
            params.extend(flt.statuses)
        if flt.doc_id is not None:
            where.append("doc_id = ?")
            params.append(flt.doc_id)
        if flt.since is not None:
            where.append("created_at >= ?")
            params.append(to_db_time(flt.since))
        if flt.until is not None:
            where.append("created_at < ?")
            params.append(to_db_time(flt.until))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._all(
            f"SELECT * FROM documents{clause} ORDER BY seq LIMIT ? OFFSET ?",  # noqa: S608 - clauses are constants
            (*params, flt.limit, flt.offset),
        )
        return [document_from_row(r) for r in rows]

    def recent_with_doc_num(
        self, point_id: str, doc_num: str, total: str, since: datetime, client_id: str
    ) -> DocumentRecord | None:
        """The latest document of another integration with the same ``docNum`` and total.

        ``client_id != ?`` as two ranges, so the ``documents_twin`` index finds only the other
        integrations' documents: a shop that reuses one ``docNum`` does not make every later
        document scan all earlier ones (D62).
        """
        row = self._one(
            "SELECT seq FROM documents WHERE retail_point_id = ?1 AND doc_num = ?2 AND total = ?3"
            " AND client_id < ?4 AND created_at >= ?5"
            " UNION ALL SELECT seq FROM documents WHERE retail_point_id = ?1 AND doc_num = ?2"
            " AND total = ?3 AND client_id > ?4 AND created_at >= ?5 ORDER BY seq DESC LIMIT 1",
            (point_id, doc_num, total, client_id, to_db_time(since)),
        )
        if row is None:
            return None
        twin = self._one("SELECT * FROM documents WHERE seq = ?", (row["seq"],))  # read, not locked
        return None if twin is None else document_from_row(twin)

    def documents_with_warnings(self) -> list[DocumentRecord]:
        """Documents that carry cabinet warnings, oldest first."""
        rows = self._all("SELECT * FROM documents WHERE warnings != '[]' ORDER BY seq")
        return [document_from_row(r) for r in rows]

    def add_history(
        self,
        seq: int,
        at: datetime,
        status: Status,
        event: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append a line to a document's history."""
        self._execute(
            "INSERT INTO history (seq, at, status, event, detail) VALUES (?, ?, ?, ?, ?)",
            (seq, to_db_time(at), status.value, event, None if detail is None else dumps(detail)),
        )

    def history(self, seq: int) -> list[HistoryEntry]:
        """A document's history, in the order it happened."""
        rows = self._all("SELECT * FROM history WHERE seq = ? ORDER BY id", (seq,))
        return [
            HistoryEntry(from_db_time(r["at"]), Status(r["status"]), r["event"], loads(r["detail"]))
            for r in rows
        ]

    def count_documents(self) -> int:
        """How many documents are stored."""
        row = self._one("SELECT COUNT(*) AS n FROM documents")
        return 0 if row is None else int(row["n"])
