"""The cloud database's connection: schema, WAL set-up, transactions and ``sqlite3`` error mapping.

One database file in WAL mode (:func:`kkt_emulator.sqlite.open_database`, ``synchronous=NORMAL``,
foreign keys on), created on first start and reopened on the next. Every write runs inside
:meth:`Database.transaction` (``BEGIN IMMEDIATE`` … ``COMMIT`` through
:func:`kkt_emulator.sqlite.immediate`); the connection is shared and guarded by a re-entrant lock,
and a nested block joins the outer transaction, so the storage is safe to use from the event loop
and from worker threads alike. The table groups keep read caches of the rows every request needs
(D59); a transaction that fails drops them all, so a cache never holds a write that was rolled
back. ``sqlite3`` errors are translated once, here, into :class:`StorageError`::

    EmulatorError
    └── StorageError        the database could not be opened, read or written
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.errors import EmulatorError
from kkt_emulator.sqlite import immediate, open_database

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

__all__ = ["SCHEMA_VERSION", "Database", "StorageError"]

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS master_credentials (
    login TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    retail_point_id TEXT,
    kind TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retail_points (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    inn TEXT NOT NULL,
    internet_docs_enabled INTEGER NOT NULL,
    stop_on_errors INTEGER NOT NULL,
    pickup_window TEXT NOT NULL,
    default_tax_mode TEXT NOT NULL,
    duplicate_policy TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS associations (
    user_name TEXT PRIMARY KEY,
    retail_point_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT NOT NULL,
    UNIQUE (retail_point_id, client_id)
);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    till_serial TEXT NOT NULL UNIQUE,
    retail_point_id TEXT NOT NULL,
    fn_serial TEXT NOT NULL,
    model TEXT NOT NULL,
    firmware_profile TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    bound_at TEXT NOT NULL,
    last_heartbeat_at TEXT,
    fn_ok INTEGER,
    heartbeat TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    retail_point_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    route TEXT NOT NULL,
    document TEXT NOT NULL,
    content_key TEXT NOT NULL,
    doc_num TEXT NOT NULL,
    total TEXT NOT NULL,
    response_url TEXT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    has_callback INTEGER NOT NULL,
    fiscal_info TEXT,
    failure_type TEXT,
    failure_message TEXT,
    failure_detail TEXT,
    lease_id TEXT,
    lease_device_id TEXT,
    lease_expires_at TEXT,
    leases INTEGER NOT NULL DEFAULT 0,
    pickup_deadline TEXT,
    dispatch_at TEXT,
    callback TEXT,
    callback_first_at TEXT,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_next_at TEXT,
    callback_last_error TEXT,
    blocking INTEGER NOT NULL DEFAULT 0,
    completed_with_callback INTEGER NOT NULL DEFAULT 0,
    redrives INTEGER NOT NULL DEFAULT 0,
    marked_done INTEGER NOT NULL DEFAULT 0,
    fn_number TEXT,
    fn_doc_number INTEGER,
    ofd_state TEXT NOT NULL DEFAULT 'not_sent',
    ofd_changed_at TEXT,
    warnings TEXT NOT NULL DEFAULT '[]',
    possible_duplicate_of TEXT,
    UNIQUE (retail_point_id, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_queue ON documents (retail_point_id, status, seq);
CREATE INDEX IF NOT EXISTS documents_lease ON documents (lease_expires_at) WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS documents_pickup ON documents (pickup_deadline)
    WHERE pickup_deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_dispatch ON documents (dispatch_at)
    WHERE dispatch_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_callback ON documents (callback_next_at)
    WHERE callback_next_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_fiscal ON documents (fn_number, fn_doc_number);
DROP INDEX IF EXISTS documents_docnum;
CREATE INDEX IF NOT EXISTS documents_twin
    ON documents (retail_point_id, doc_num, total, client_id, created_at);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL REFERENCES documents(seq),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS history_seq ON history (seq, id);
CREATE INDEX IF NOT EXISTS documents_leased_to ON documents (lease_device_id, seq)
    WHERE status = 'PENDING';
CREATE TABLE IF NOT EXISTS ofd_parked (
    fn_number TEXT NOT NULL,
    fn_doc_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    at TEXT,
    PRIMARY KEY (fn_number, fn_doc_number)
);
"""


class StorageError(EmulatorError):
    """The cloud database could not be opened, read or written."""


class Database:
    """The connection, its lock and the transaction depth; the table groups build on it.

    Raises:
        StorageError: from the constructor and every method, for any ``sqlite3`` failure.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        self._caches: list[dict[Any, Any]] = []
        try:
            self._conn = open_database(
                self.path,
                schema=_SCHEMA,
                synchronous="NORMAL",
                foreign_keys=True,
                row_factory=True,
            )
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open cloud database {self.path}: {exc}") from exc

    def _cache(self) -> dict[Any, Any]:
        """A new read cache, emptied whenever a transaction fails (see :meth:`transaction`)."""
        cache: dict[Any, Any] = {}
        self._caches.append(cache)
        return cache

    def _drop_caches(self) -> None:
        for cache in self._caches:
            cache.clear()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        # A connection that cannot even close has nothing left to lose; closing stays idempotent.
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction; nested blocks join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            stage = "begin a transaction"
            try:
                with immediate(self._conn):
                    stage = "body"
                    self._depth = 1
                    try:
                        yield
                    finally:
                        self._depth = 0
                    stage = "commit"
            except BaseException as exc:
                # Rolled back: cached rows may hold what the block wrote, so forget them all.
                self._drop_caches()
                if stage == "body" or not isinstance(exc, sqlite3.Error):
                    raise  # the block's own error, already rolled back: unchanged
                raise StorageError(f"cannot {stage}: {exc}") from exc

    # -- low level ---------------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._conn.execute(sql, params)
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc

    def _one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        with self._lock:
            try:
                row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc
            return row

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"database error: {exc}") from exc
