"""The cloud database's connection: which database, schema, transactions and error mapping.

Two backends keep one storage API (D73): an embedded SQLite file (the default,
:mod:`~kkt_emulator.cloud.db_sqlite`) and PostgreSQL (:mod:`~kkt_emulator.cloud.db_postgres`),
chosen by :func:`parse_target` from what ``--db`` says (D74). The table groups write their SQL
once, in SQLite's dialect; the PostgreSQL backend translates it in one place.

Every write runs inside :meth:`Database.transaction`; the process's one connection is shared and
guarded by a re-entrant lock, and a nested block joins the outer transaction, so the storage is
safe to use from the event loop and from worker threads alike. On SQLite a transaction is
``BEGIN IMMEDIATE`` (one writer at a time); on PostgreSQL it is ``READ COMMITTED``, and the rows a
transaction reads to change are locked (``FOR UPDATE``; ``SKIP LOCKED`` where another process may
already be handling them, D75), so several cloud processes on one database act as one cloud.

The table groups keep read caches of the rows every request needs (D59); a transaction that fails
drops them all, so a cache never holds a write that was rolled back. On PostgreSQL every write
that changes a cached row, and every document write, is announced to the other processes by
``NOTIFY`` from the writing transaction, and a listener thread drops what they cached and wakes
their long polls (D76). Driver errors are translated once, here and in the backends, into
:class:`StorageError`::

    EmulatorError
    └── StorageError        the database could not be opened, read or written

A ``--db`` value that names no database this project can serve is a
:class:`~kkt_emulator.errors.ConfigError` (:func:`parse_target`).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from urllib.parse import urlsplit

from kkt_emulator.errors import ConfigError, EmulatorError
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "Connection",
    "Cursor",
    "Database",
    "DatabaseTarget",
    "Row",
    "StorageError",
    "parse_target",
]

SCHEMA_VERSION: Final = 1

SCHEMA: Final = """
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
"""The schema in SQLite's dialect; :mod:`~kkt_emulator.cloud.db_postgres` translates it."""

_SCHEMES: Final = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite"}


class StorageError(EmulatorError):
    """The cloud database could not be opened, read or written."""


class Row(Protocol):
    """A result row: columns by name (``sqlite3.Row``, or psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any:
        """The value of one column."""
        ...


class Cursor(Protocol):
    """What the table groups read from an executed statement."""

    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        ...

    def fetchall(self) -> list[Any]:
        """The remaining rows."""
        ...


@dataclass(frozen=True)
class DatabaseTarget:
    """Which database a cloud uses: a SQLite file or a PostgreSQL URL (D74)."""

    kind: Literal["sqlite", "postgresql"]
    location: str  # the file path (or ":memory:"), or the PostgreSQL URL as given

    def __str__(self) -> str:
        """The location, with any password in a URL replaced by ``***`` (for logs and output)."""
        if self.kind == "sqlite":
            return self.location
        parts = urlsplit(self.location)
        if parts.password is None:
            return self.location
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()


def parse_target(value: str | Path) -> DatabaseTarget:
    """What ``--db`` names (D74): ``postgresql://`` or ``postgres://`` URLs, or a SQLite file.

    A plain path (no ``scheme:`` in front, or a one-letter Windows drive) or ``sqlite:///path``
    is a SQLite file; ``:memory:`` is a throwaway SQLite database.

    Raises:
        ConfigError: any other scheme (``mysql://…``), a scheme without ``//``
            (``postgresql:x``), or a PostgreSQL URL without a host or database.
    """
    if isinstance(value, Path):
        return DatabaseTarget("sqlite", str(value))
    text = value.strip()
    if text == ":memory:":
        return DatabaseTarget("sqlite", text)
    scheme, colon, rest = text.partition(":")
    plain_path = not colon or "/" in scheme or "\\" in scheme or len(scheme) == 1 or not scheme
    if plain_path:
        if not text:
            raise ConfigError("--db: empty database path")
        return DatabaseTarget("sqlite", text)
    kind = _SCHEMES.get(scheme.lower())
    if kind is None:
        raise ConfigError(
            f"--db: unsupported database URL scheme {scheme!r}: use postgresql://USER@HOST:PORT/DB,"
            " sqlite:///PATH or a file path"
        )
    if not rest.startswith("//"):
        raise ConfigError(f"--db: {scheme}: must be followed by // (for example {scheme}://…)")
    if kind == "sqlite":  # sqlite:///relative/path, sqlite:////absolute/path
        path = rest[3:] if rest.startswith("///") else ""
        if not path:
            raise ConfigError("--db: sqlite:/// needs a file path (sqlite:///path/to/cloud.db)")
        return DatabaseTarget("sqlite", path)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"--db: not a valid PostgreSQL URL: {exc}") from exc
    if not parts.hostname:
        raise ConfigError("--db: a PostgreSQL URL needs a host (postgresql://USER@HOST:PORT/DB)")
    if not parts.path.strip("/"):
        raise ConfigError("--db: a PostgreSQL URL needs a database name (…/DB)")
    del port  # checked for range only
    return DatabaseTarget("postgresql", text)


class Connection(Protocol):
    """One backend's connection, as :class:`Database` drives it.

    ``execute`` takes SQL in SQLite's dialect (``?`` and ``?N`` placeholders) and translates it.
    Driver errors come out of every method as :class:`StorageError`.
    """

    kind: Literal["sqlite", "postgresql"]

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement."""
        ...

    def begin(self) -> None:
        """Open a transaction."""
        ...

    def commit(self, announcements: Sequence[str]) -> None:
        """Send the announcements (``NOTIFY``, PostgreSQL only) and commit; roll back on failure."""
        ...

    def notify(self, announcements: Sequence[str]) -> None:
        """Send announcements outside a transaction (PostgreSQL only)."""
        ...

    def rollback(self) -> None:
        """Roll the open transaction back (quietly: the error that caused it is what matters)."""
        ...

    def try_claim(self, key: int) -> bool:
        """Take the process-wide claim ``key`` unless another process holds it."""
        ...

    def release(self, key: int) -> None:
        """Give a claim taken by :meth:`try_claim` back."""
        ...

    def listen(self, deliver: Callable[[str | None], None]) -> None:
        """Start delivering other processes' announcements (``None``: some may have been lost)."""
        ...

    def stop_listening(self) -> None:
        """Stop delivering announcements; returns once no delivery is under way (idempotent)."""
        ...

    def close(self) -> None:
        """Close the connection and stop listening (idempotent)."""
        ...


class Database:
    """The connection, its lock and the transaction depth; the table groups build on it.

    Args:
        target: a SQLite file path (``":memory:"`` for throwaway tests), a ``sqlite:///`` or
            ``postgresql://`` URL (D74), or a parsed :class:`DatabaseTarget`.

    Raises:
        ConfigError: from the constructor, for a URL of no supported database.
        StorageError: from the constructor and every method, for any driver failure.
    """

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        self.target = target if isinstance(target, DatabaseTarget) else parse_target(target)
        self.path = str(self.target)
        self._lock = threading.RLock()
        self._depth = 0
        self._caches: list[dict[Any, Any]] = []
        self._announcements: list[str] = []
        self._instance = uuid.uuid4().hex[:16]
        self._on_remote_change: Callable[[str | None], None] | None = None
        self._log = get_logger(component="cloud.db")
        self._conn: Connection
        # A table group of its own module adds its tables as a class attribute ``TABLES`` (SQL in
        # SQLite's dialect, ``CREATE … IF NOT EXISTS``), so it needs no line in :data:`SCHEMA`.
        schema = SCHEMA + "".join(
            str(cls.__dict__["TABLES"])
            for cls in reversed(type(self).__mro__)
            if "TABLES" in cls.__dict__
        )
        if self.target.kind == "postgresql":
            from kkt_emulator.cloud.db_postgres import PostgresConnection  # noqa: PLC0415

            self._conn = PostgresConnection(self.target.location, schema, SCHEMA_VERSION)
        else:
            from kkt_emulator.cloud.db_sqlite import SqliteConnection  # noqa: PLC0415

            self._conn = SqliteConnection(self.target.location, schema, SCHEMA_VERSION)

    def _listen(self) -> None:
        """Start hearing the other processes; called once every table group is set up."""
        self._conn.listen(self._heard)

    @property
    def shared(self) -> bool:
        """Whether other cloud processes may use this database too (PostgreSQL, D75)."""
        return self._conn.kind == "postgresql"

    def _cache(self) -> dict[Any, Any]:
        """A new read cache, emptied whenever a transaction fails (see :meth:`transaction`)."""
        cache: dict[Any, Any] = {}
        self._caches.append(cache)
        return cache

    def _drop_caches(self) -> None:
        for cache in self._caches:
            cache.clear()

    def close(self) -> None:
        """Stop hearing the other processes, then close the connection (idempotent)."""
        self._on_remote_change = None
        self._conn.stop_listening()  # not under the lock: the listener may be waiting for it
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one transaction; nested blocks join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.begin()
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._announcements.clear()
                self._conn.rollback()
                # Rolled back: cached rows may hold what the block wrote, so forget them all.
                self._drop_caches()
                raise
            self._depth = 0
            announcements, self._announcements = self._announcements, []
            try:
                self._conn.commit(announcements)
            except StorageError:
                self._drop_caches()
                raise

    # -- what other processes hear (D76) -----------------------------------------------------------

    def on_remote_change(self, callback: Callable[[str | None], None] | None) -> None:
        """Call ``callback(point_id)`` when another process wrote a document of that point.

        It is called from the listener thread, with ``None`` when announcements may have been
        lost. PostgreSQL only: with SQLite no other process writes.
        """
        self._on_remote_change = callback

    def _announce(self, kind: str, key: str = "") -> None:
        """Tell the other processes that a row of ``kind`` changed (with the transaction)."""
        if not self.shared:
            return
        message = f"{self._instance} {kind} {key}"
        if self._depth:
            if message not in self._announcements:
                self._announcements.append(message)
        else:
            self._conn.notify([message])  # outside a transaction: a statement of its own

    def _heard(self, message: str | None) -> None:
        """An announcement of another process, or ``None`` after the listener lost some."""
        try:
            self._hear(message)
        except Exception:  # noqa: BLE001 - the listener must go on whatever one message does; logged
            self._log.exception("announcement_not_applied", message=message)

    def _hear(self, message: str | None) -> None:
        if message is None:
            with self._lock:
                self._drop_caches()
            self._changed_elsewhere(None)
            return
        instance, _, rest = message.partition(" ")
        if instance == self._instance:
            return
        kind, _, key = rest.partition(" ")
        with self._lock:
            self._forget(kind, key)
        if kind == "change":
            self._changed_elsewhere(key or None)

    def _changed_elsewhere(self, point_id: str | None) -> None:
        callback = self._on_remote_change
        if callback is None:
            return
        try:
            callback(point_id)
        except Exception:  # noqa: BLE001 - the listener must go on whatever a callback does; logged
            self._log.exception("remote_change_callback_failed", retail_point_id=point_id)

    def _forget(self, kind: str, key: str) -> None:
        """Drop what the caches hold of a row another process changed; table groups extend it."""

    # -- low level ---------------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def _one(self, sql: str, params: Sequence[object] = ()) -> Row | None:
        with self._lock:
            row: Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _for_update(self, *, skip_locked: bool = False, of: str = "") -> str:
        """The row-lock clause for a read that a transaction goes on to change (PostgreSQL).

        Empty on SQLite (its transactions already exclude every other writer) and outside a
        transaction. ``skip_locked`` passes over rows another process is changing right now.
        """
        if not self.shared or not self._depth:
            return ""
        clause = " FOR UPDATE"
        if of:
            clause += f" OF {of}"
        if skip_locked:
            clause += " SKIP LOCKED"
        return clause
