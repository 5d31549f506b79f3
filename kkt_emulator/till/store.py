"""The till's durable memory: identity, settings, the journal and the outbox (``till-protocol.md`` §2).

It lives in its own SQLite file (WAL) next to the drive's archive; the connection closes after a
few idle seconds and reopens on use (:class:`~kkt_emulator.sqlite.IdleConnection`, D71). The rules
that make a crash harmless:

* before the final drive command the till writes a journal entry «about to fiscalise document X
  as fiscal document N»; it is committed before the command goes out;
* after the drive answers, one transaction records the result in ``processed``, queues it in the
  outbox and removes the journal entry;
* outbox entries go only when the cloud acknowledged them.

A shop document found in ``processed`` is never fiscalised again, whatever the cloud hands out.

Only the writes whose loss on a power cut could let a document be fiscalised twice (or a serial
be forgotten) wait for ``fsync`` (the WAL synced after the commit, as ``synchronous=FULL`` would,
D129): the journal entry made before the drive command, a failure, identity and settings. The rest
(leased documents, a success, OFD reports, the removal of delivered reports) only commit
(``synchronous=NORMAL``, the connection's one mode): WAL keeps them across a process crash, and
a power cut can only drop the newest of them, which the journal, the drive's archive,
the cloud's resumed leases or the acknowledgement mark give back on start (``till-protocol.md``
§2.1).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kkt_emulator.errors import ConfigError
from kkt_emulator.sqlite import IDLE_SECONDS, IdleConnection, immediate

__all__ = ["CashDocEntry", "JournalEntry", "OutboxEntry", "TillStore", "ofd_mark_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS till_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS till_journal (
    doc_id TEXT PRIMARY KEY,
    lease_id TEXT,
    expected_fd INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS till_processed (
    doc_id TEXT PRIMARY KEY,
    fd INTEGER,
    outcome TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS till_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (kind, key)
);
CREATE TABLE IF NOT EXISTS till_cashdocs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL UNIQUE,
    shift_id TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at TEXT NOT NULL,
    uploaded_at TEXT
);
CREATE INDEX IF NOT EXISTS till_cashdocs_queue ON till_cashdocs (seq) WHERE uploaded_at IS NULL;
CREATE INDEX IF NOT EXISTS till_cashdocs_shift ON till_cashdocs (shift_id, seq);
"""


_TABLES = ("till_meta", "till_journal", "till_processed", "till_outbox", "till_cashdocs")

# An exact key/value write: the store keeps the value it wrote (D122). The one statement object
# is compared by identity, so a statement that merely looks like it is never taken for it.
_PUT = "INSERT OR REPLACE INTO till_meta (key, value) VALUES (?, ?)"

# The reported-acknowledgement mark only ever grows (values are JSON integers).
_RAISE_MARK = (
    "INSERT INTO till_meta (key, value) VALUES (?, ?) ON CONFLICT (key)"
    " DO UPDATE SET value = excluded.value"
    " WHERE CAST(excluded.value AS INTEGER) > CAST(till_meta.value AS INTEGER)"
)


def ofd_mark_key(fn_serial: str) -> str:
    """The ``till_meta`` key of a drive's acknowledgement mark (see :meth:`TillStore.queue_ofd_ack`)."""
    return f"ofd_acked:{fn_serial}"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A document the till was about to fiscalise when it last wrote."""

    doc_id: str
    lease_id: str | None
    expected_fd: int
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A report waiting for the cloud: a document result or an OFD acknowledgement."""

    seq: int
    kind: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CashDocEntry:
    """A cash document in the upload queue (``orders-and-backoffice.md`` B7)."""

    seq: int
    doc_id: str
    document: dict[str, Any]
    created_at: str


class TillStore:
    """Journal, outbox, processed documents, identity and settings in one SQLite file."""

    def __init__(self, path: Path | str, *, idle: float | None = IDLE_SECONDS) -> None:
        self.path = Path(path)
        try:
            # NORMAL throughout: a write whose loss could let a signed receipt be fiscalised
            # again syncs the WAL after its commit, as FULL would (D129).
            self._handle = IdleConnection(
                self.path, schema=_SCHEMA, synchronous="NORMAL", idle=idle
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{self.path}: cannot open the till state: {exc}") from exc
        # ``till_meta`` texts read or written since the connection last changed a row in a way
        # the store cannot follow (D137, D122); ``_meta_whole``: the cache holds every row, so a
        # key it lacks is absent. ``_empty``: the tables known to hold no row (D122). Both hold
        # for the connection ``_meta_db`` only: a reopened one may see a file changed meanwhile.
        self._meta: dict[str, str | None] = {}
        self._meta_whole = False
        self._empty: set[str] = set()
        self._meta_db: sqlite3.Connection | None = None
        if self._handle.created:  # new from its template: every table is empty (D122)
            self._meta_db = self._handle.connection()
            self._meta_whole = True
            self._empty = set(_TABLES)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, reopened if it was closed for being idle (D71)."""
        try:
            return self._handle.connection()
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot reopen the till state: {exc}") from exc

    def _known(self) -> sqlite3.Connection:
        """:attr:`_db`, forgetting what the store knew of the file if it was reopened (D122)."""
        db = self._db
        if db is not self._meta_db:
            self._meta.clear()
            self._meta_whole = False
            self._empty.clear()
            self._meta_db = db
        return db

    def _is_empty(self, table: str) -> bool:
        """Whether ``table`` is known to hold no row (D122): made empty, nothing written since."""
        self._known()
        return table in self._empty

    @property
    def connection(self) -> IdleConnection:
        """The store's connection handle (open or closed for being idle)."""
        return self._handle

    def close(self) -> None:
        """Close the database."""
        self._handle.close()

    def _write(
        self, statements: list[tuple[str, tuple[Any, ...]]], *, durable: bool = True
    ) -> None:
        """Run ``statements`` in one transaction; ``durable`` waits for the disk.

        Every commit is ``NORMAL``: in the WAL, safe from a process crash. A ``durable`` one then
        syncs the WAL here, as ``FULL`` would have at the commit (D129); any other reaches the
        disk with the next sync, which takes every frame before its own, in order.
        """
        db = self._known()
        written = False
        try:
            with immediate(db):
                for sql, params in statements:
                    db.execute(sql, params)
            written = True
            if durable:
                self._handle.sync()
        finally:
            meta, empty = self._meta, self._empty
            for sql, params in statements:
                if "till_meta" in sql:  # every such statement names its key first (D137)
                    key = params[0]
                    if written and sql is _PUT:  # an exact value: kept as written (D122)
                        meta[key] = params[1]
                    elif written and sql is _RAISE_MARK and (key in meta or self._meta_whole):
                        old = meta.get(key)  # known: the mark as the statement found it
                        if old is None or int(params[1]) > int(old):
                            meta[key] = params[1]
                    else:
                        meta.pop(key, None)
                        self._meta_whole = False
                elif empty:
                    empty.difference_update([t for t in empty if t in sql])

    # ------------------------------------------------------------------ identity and settings

    def get(self, key: str) -> Any:
        """A stored value (JSON), or ``None``.

        The text read is kept until the store writes ``till_meta`` (D137): every write to this
        file goes through the store (the till's one process owns its state directory), and a
        write through :meth:`transaction`, or a reopened connection, forgets every kept text.
        """
        db = self._known()
        meta = self._meta
        if key in meta:
            text = meta[key]
            return json.loads(text) if text is not None else None
        if self._meta_whole:  # every row is known: this key has none (D122)
            return None
        row = db.execute("SELECT value FROM till_meta WHERE key = ?", (key,)).fetchone()
        text = row[0] if row else None
        meta[key] = text
        return json.loads(text) if text is not None else None

    def put(self, **values: Any) -> None:
        """Store values (JSON) in one transaction."""
        self._write(self._put_statements(values))

    async def put_synced(self, **values: Any) -> None:
        """:meth:`put`, its sync in a worker thread (D114, D118): the loop serves other tills.

        Returns once the values are on the disk, as :meth:`put` does: a till starting does not
        act on them (send its serials, use its token) before then.

        Raises:
            OSError: the sync failed.
        """
        self._write(self._put_statements(values), durable=False)
        await self._handle.durable()

    @staticmethod
    def _put_statements(values: dict[str, Any]) -> list[tuple[str, tuple[Any, ...]]]:
        return [(_PUT, (k, json.dumps(v))) for k, v in values.items()]

    # ------------------------------------------------------------------ journal

    def journal(
        self, doc_id: str, lease_id: str | None, expected_fd: int, document: dict[str, Any], at: str
    ) -> None:
        """Record «about to fiscalise ``doc_id`` as fiscal document ``expected_fd``»."""
        self._write(self._journal_statements(doc_id, lease_id, expected_fd, document, at))

    async def journal_synced(
        self, doc_id: str, lease_id: str | None, expected_fd: int, document: dict[str, Any], at: str
    ) -> None:
        """:meth:`journal`, its sync in a worker thread (D114): the loop serves other tills.

        Returns once the entry is on the disk, as :meth:`journal` does.

        Raises:
            OSError: the sync failed; the drive command must not go out.
        """
        self._write(
            self._journal_statements(doc_id, lease_id, expected_fd, document, at), durable=False
        )
        await self._handle.durable()

    @staticmethod
    def _journal_statements(
        doc_id: str, lease_id: str | None, expected_fd: int, document: dict[str, Any], at: str
    ) -> list[tuple[str, tuple[Any, ...]]]:
        return [
            (
                # Update in place: the entry keeps its position in the queue.
                (
                    "INSERT INTO till_journal (doc_id, lease_id, expected_fd, document, created_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (doc_id) DO UPDATE SET"
                    " lease_id = excluded.lease_id, expected_fd = excluded.expected_fd,"
                    " document = excluded.document"
                ),
                (doc_id, lease_id, expected_fd, json.dumps(document, ensure_ascii=False), at),
            )
        ]

    def journal_leased(self, items: list[tuple[str, str | None, dict[str, Any]]], at: str) -> None:
        """Record leased documents before any is processed (expected FD 0: not started yet).

        A till that dies holding a lease then picks its documents up again on restart instead of
        leaving them PENDING until the cloud's 15-minute rule fails them.
        """
        self._write(
            [
                (
                    (
                        "INSERT OR IGNORE INTO till_journal"
                        " (doc_id, lease_id, expected_fd, document, created_at) VALUES (?, ?, 0, ?, ?)"
                    ),
                    (doc_id, lease_id, json.dumps(document, ensure_ascii=False), at),
                )
                for doc_id, lease_id, document in items
            ],
            # A lease lost on a power cut comes back with the cloud's resumed leases (§1).
            durable=False,
        )

    def journal_entries(self) -> list[JournalEntry]:
        """Every journal entry, oldest first."""
        if self._is_empty("till_journal"):
            return []
        rows = self._db.execute(
            "SELECT doc_id, lease_id, expected_fd, document FROM till_journal ORDER BY created_at, rowid"
        ).fetchall()
        return [JournalEntry(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def drop_journal(self, doc_id: str) -> None:
        """Forget a journal entry whose document never reached the drive."""
        self._write([("DELETE FROM till_journal WHERE doc_id = ?", (doc_id,))])

    # ------------------------------------------------------------------ results

    def record_result(self, doc_id: str, fd: int | None, result: dict[str, Any]) -> None:
        """Atomically: remember the outcome, queue it for the cloud, close the journal entry."""
        payload = json.dumps(result, ensure_ascii=False)
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO till_processed (doc_id, fd, outcome, payload) VALUES (?, ?, ?, ?)",
                    (doc_id, fd, str(result["outcome"]), payload),
                ),
                (
                    "INSERT OR REPLACE INTO till_outbox (kind, key, payload) VALUES ('result', ?, ?)",
                    (doc_id, payload),
                ),
                ("DELETE FROM till_journal WHERE doc_id = ?", (doc_id,)),
            ],
            # A success lost on a power cut brings its journal entry back, and reconciliation
            # reads the same receipt from the drive's archive; a failure is kept at once, since
            # nothing else remembers it.
            durable=result["outcome"] != "fiscalized",
        )

    def processed(self, doc_id: str) -> dict[str, Any] | None:
        """The outcome recorded for ``doc_id``, if the till ever finished it."""
        if self._is_empty("till_processed"):
            return None
        row = self._db.execute(
            "SELECT payload FROM till_processed WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        result: dict[str, Any] | None = json.loads(row[0]) if row else None
        return result

    def requeue_result(self, doc_id: str) -> None:
        """Queue a recorded outcome again (the cloud handed the document out once more)."""
        if self._is_empty("till_processed"):
            return
        row = self._db.execute(
            "SELECT payload FROM till_processed WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        if row:
            self._write(
                [
                    (
                        "INSERT OR REPLACE INTO till_outbox (kind, key, payload) VALUES ('result', ?, ?)",
                        (doc_id, row[0]),
                    )
                ],
                durable=False,  # the result itself is in ``processed`` already
            )

    def forget_result(self, doc_id: str) -> None:
        """Allow a failed document to be tried again (the cloud re-drove it after a fix)."""
        self._write(
            [("DELETE FROM till_processed WHERE doc_id = ? AND outcome = 'failed'", (doc_id,))]
        )

    # ------------------------------------------------------------------ outbox

    def queue_ofd_ack(self, fd: int, payload: dict[str, Any]) -> None:
        """Queue an OFD report; an acknowledgement also moves the drive's reported mark.

        The OFD acknowledges a drive's documents in order, so the mark (``ofd_acked:<ФН>``) is
        the highest fiscal number whose acknowledgement is queued; it is written in the same
        transaction as the report.
        """
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT OR REPLACE INTO till_outbox (kind, key, payload) VALUES ('ofd', ?, ?)",
                (str(fd), json.dumps(payload)),
            )
        ]
        serial = payload.get("fnNumber")
        if payload.get("state") == "acknowledged" and serial:
            statements.append((_RAISE_MARK, (ofd_mark_key(serial), json.dumps(fd))))
        # Lost on a power cut together with its mark: the start-up check reports it again.
        self._write(statements, durable=False)

    def ofd_acked_mark(self, fn_serial: str) -> int | None:
        """The highest fiscal number of ``fn_serial`` whose acknowledgement was queued, if known."""
        value = self.get(ofd_mark_key(fn_serial))
        return int(value) if value is not None else None

    def set_ofd_acked_mark(self, fn_serial: str, fd: int) -> None:
        """Start the mark of a drive the till has not reported acknowledgements for yet."""
        self.put(**{ofd_mark_key(fn_serial): fd})

    async def set_ofd_acked_mark_synced(self, fn_serial: str, fd: int) -> None:
        """:meth:`set_ofd_acked_mark`, synced off the loop (D118)."""
        await self.put_synced(**{ofd_mark_key(fn_serial): fd})

    def outbox(self, kind: str, limit: int = 100) -> list[OutboxEntry]:
        """The oldest waiting reports of ``kind``."""
        if self._is_empty("till_outbox"):
            return []
        rows = self._db.execute(
            "SELECT seq, kind, key, payload FROM till_outbox WHERE kind = ? ORDER BY seq LIMIT ?",
            (kind, limit),
        ).fetchall()
        return [OutboxEntry(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def unreported_fds(self) -> set[int]:
        """Fiscal document numbers whose shop result the cloud has not taken yet.

        In flight in the journal (about to be signed, or signed and not yet recorded), or
        recorded and waiting in the outbox. An OFD acknowledgement of such a number waits, so it
        never reaches the cloud before the result that tells the cloud which document it is.
        """
        if self._is_empty("till_journal") and "till_outbox" in self._empty:
            return set()
        rows = self._db.execute(
            "SELECT expected_fd FROM till_journal WHERE expected_fd > 0"
            " UNION SELECT json_extract(payload, '$.fiscalInfo.fnDocNumber') FROM till_outbox"
            " WHERE kind = 'result'"
        ).fetchall()
        return {int(row[0]) for row in rows if isinstance(row[0], int)}

    def outbox_size(self) -> int:
        """How many reports wait for the cloud."""
        if self._is_empty("till_outbox"):
            return 0
        count: int = self._db.execute("SELECT COUNT(*) FROM till_outbox").fetchone()[0]
        return count

    def delivered(self, entries: list[OutboxEntry]) -> None:
        """Remove reports the cloud acknowledged."""
        # A removal lost on a power cut sends the report again; every report is idempotent.
        self._write(
            [("DELETE FROM till_outbox WHERE seq = ?", (e.seq,)) for e in entries], durable=False
        )

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction on the store's connection; ``durable`` waits for the disk.

        For writes that must commit together with a cash document queued for upload
        (:func:`kkt_emulator.till.outbox.enqueue_cashdoc` takes the connection it yields).
        """
        db = self._known()
        try:
            with immediate(db):
                yield db
            if durable:
                self._handle.sync()  # as FULL would have at the commit (D129)
        finally:
            # The caller may have written any table (D137, D122).
            self._meta.clear()
            self._meta_whole = False
            self._empty.clear()

    # ------------------------------------------------------------------ the upload queue (B7)

    def cashdoc_queue(self, limit: int) -> list[CashDocEntry]:
        """The oldest cash documents not yet uploaded, in FIFO order."""
        if self._is_empty("till_cashdocs"):
            return []
        rows = self._db.execute(
            "SELECT seq, doc_id, document, created_at FROM till_cashdocs"
            " WHERE uploaded_at IS NULL ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [CashDocEntry(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def cashdoc_queue_state(self) -> tuple[int, str | None]:
        """How many cash documents wait for upload, and when the oldest was made."""
        if self._is_empty("till_cashdocs"):
            return 0, None
        row = self._db.execute(
            "SELECT COUNT(*), MIN(created_at) FROM till_cashdocs WHERE uploaded_at IS NULL"
        ).fetchone()
        return int(row[0]), row[1]

    def cashdocs_uploaded(self, seqs: list[int], at: str) -> None:
        """Mark queued documents as taken by the cloud (kept for the shift's totals)."""
        # Lost on a power cut, they are uploaded again: the cloud answers «duplicate» (B9).
        self._write(
            [("UPDATE till_cashdocs SET uploaded_at = ? WHERE seq = ?", (at, seq)) for seq in seqs],
            durable=False,
        )

    def shift_cashdocs(self, shift_id: str) -> list[dict[str, Any]]:
        """Every cash document of a cashier shift, uploaded or not, in the order made."""
        if self._is_empty("till_cashdocs"):
            return []
        rows = self._db.execute(
            "SELECT document FROM till_cashdocs WHERE shift_id = ? ORDER BY seq", (shift_id,)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]
