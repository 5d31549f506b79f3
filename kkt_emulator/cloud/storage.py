"""SQLite storage of the cloud stand-in: accounts, retail points, credentials, devices, documents.

One database file in WAL mode, created on first start and reopened on the next. Every write runs
inside :meth:`Storage.transaction` (``BEGIN IMMEDIATE`` … ``COMMIT``); the connection is shared and
guarded by a re-entrant lock, so the storage is safe to use from the event loop and from worker
threads alike. ``sqlite3`` errors are translated once, here, into :class:`StorageError`::

    EmulatorError
    └── StorageError        the database could not be opened, read or written

Times are stored as UTC ISO-8601 text with microseconds, so that text order is time order.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cloud.lifecycle import CallbackKind, DocState, FailureInfo, FailureType, Status
from kkt_emulator.errors import EmulatorError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = [
    "Account",
    "Association",
    "Device",
    "DocumentRecord",
    "HistoryEntry",
    "MasterCredential",
    "RetailPoint",
    "Storage",
    "StorageError",
    "from_db_time",
    "to_db_time",
]

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
CREATE INDEX IF NOT EXISTS documents_docnum ON documents (retail_point_id, doc_num);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL REFERENCES documents(seq),
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS history_seq ON history (seq, id);
"""


class StorageError(EmulatorError):
    """The cloud database could not be opened, read or written."""


def to_db_time(value: datetime) -> str:
    """Serialise a timezone-aware time as sortable UTC text."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(value: str) -> datetime:
    """Parse a time written by :func:`to_db_time`."""
    return datetime.fromisoformat(value)


def _opt_time(value: str | None) -> datetime | None:
    return None if value is None else from_db_time(value)


def _opt_db_time(value: datetime | None) -> str | None:
    return None if value is None else to_db_time(value)


@dataclass(frozen=True)
class Account:
    """An account of the personal cabinet (ЛК): it owns retail points and master credentials."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class MasterCredential:
    """A master login: service credentials («Сгенерировать логин и пароль») or an ЛК login."""

    login: str
    account_id: str
    retail_point_id: str | None
    kind: str
    salt: bytes
    hash: bytes


@dataclass(frozen=True)
class RetailPoint:
    """A retail point (точка продаж) with its cabinet settings (``store-api.md`` §11)."""

    id: str
    account_id: str
    name: str
    address: str
    inn: str
    internet_docs_enabled: bool
    stop_on_errors: bool
    pickup_window: str
    default_tax_mode: str
    duplicate_policy: str
    deleted: bool
    created_at: datetime


@dataclass(frozen=True)
class Association:
    """Association credentials bound to ``(retail_point_id, client_id)`` (D6)."""

    user_name: str
    retail_point_id: str
    client_id: str
    account_id: str
    salt: bytes
    hash: bytes
    created_at: datetime
    rotated_at: datetime


@dataclass(frozen=True)
class Device:
    """A till bound to a retail point, with its last heartbeat."""

    device_id: str
    till_serial: str
    retail_point_id: str
    fn_serial: str
    model: str
    firmware_profile: str
    token_hash: str
    bound_at: datetime
    last_heartbeat_at: datetime | None
    fn_ok: bool | None
    heartbeat: dict[str, Any] | None


@dataclass(frozen=True)
class DocumentRecord:
    """A stored document: the accepted body, its lifecycle state and the cabinet's extra facts."""

    seq: int
    retail_point_id: str
    doc_id: str
    client_id: str
    route: str
    document: dict[str, Any]
    content_key: str
    doc_num: str
    total: str
    response_url: str | None
    created_at: datetime
    state: DocState
    fiscal_info: dict[str, Any] | None = None
    failure_detail: dict[str, Any] | None = None
    lease_device_id: str | None = None
    callback_last_error: str | None = None
    fn_number: str | None = None
    fn_doc_number: int | None = None
    ofd_state: str = "not_sent"
    ofd_changed_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    possible_duplicate_of: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a document's history: a status reached, or a notable event."""

    at: datetime
    status: Status
    event: str
    detail: dict[str, Any] | None


_STATE_COLUMNS: Final = (
    "status",
    "changed_at",
    "has_callback",
    "failure_type",
    "failure_message",
    "lease_id",
    "lease_expires_at",
    "leases",
    "pickup_deadline",
    "dispatch_at",
    "callback",
    "callback_first_at",
    "callback_attempts",
    "callback_next_at",
    "blocking",
    "completed_with_callback",
    "redrives",
    "marked_done",
)


def _state_values(state: DocState) -> tuple[object, ...]:
    return (
        state.status.value,
        to_db_time(state.changed_at),
        int(state.has_callback),
        state.failure.type.value if state.failure else None,
        state.failure.message if state.failure else None,
        state.lease_id,
        _opt_db_time(state.lease_expires_at),
        state.leases,
        _opt_db_time(state.pickup_deadline),
        _opt_db_time(state.dispatch_at),
        state.callback.value if state.callback else None,
        _opt_db_time(state.callback_first_at),
        state.callback_attempts,
        _opt_db_time(state.callback_next_at),
        int(state.blocking),
        int(state.completed_with_callback),
        state.redrives,
        int(state.marked_done),
    )


def _state_from_row(row: sqlite3.Row) -> DocState:
    failure = (
        FailureInfo(FailureType(row["failure_type"]), row["failure_message"])
        if row["failure_type"] is not None
        else None
    )
    return DocState(
        status=Status(row["status"]),
        changed_at=from_db_time(row["changed_at"]),
        has_callback=bool(row["has_callback"]),
        fiscalised=row["fiscal_info"] is not None,
        failure=failure,
        lease_id=row["lease_id"],
        lease_expires_at=_opt_time(row["lease_expires_at"]),
        leases=row["leases"],
        pickup_deadline=_opt_time(row["pickup_deadline"]),
        dispatch_at=_opt_time(row["dispatch_at"]),
        callback=CallbackKind(row["callback"]) if row["callback"] else None,
        callback_first_at=_opt_time(row["callback_first_at"]),
        callback_attempts=row["callback_attempts"],
        callback_next_at=_opt_time(row["callback_next_at"]),
        blocking=bool(row["blocking"]),
        completed_with_callback=bool(row["completed_with_callback"]),
        redrives=row["redrives"],
        marked_done=bool(row["marked_done"]),
    )


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _document_from_row(row: sqlite3.Row) -> DocumentRecord:
    return DocumentRecord(
        seq=row["seq"],
        retail_point_id=row["retail_point_id"],
        doc_id=row["doc_id"],
        client_id=row["client_id"],
        route=row["route"],
        document=json.loads(row["document"]),
        content_key=row["content_key"],
        doc_num=row["doc_num"],
        total=row["total"],
        response_url=row["response_url"],
        created_at=from_db_time(row["created_at"]),
        state=_state_from_row(row),
        fiscal_info=_loads(row["fiscal_info"]),
        failure_detail=_loads(row["failure_detail"]),
        lease_device_id=row["lease_device_id"],
        callback_last_error=row["callback_last_error"],
        fn_number=row["fn_number"],
        fn_doc_number=row["fn_doc_number"],
        ofd_state=row["ofd_state"],
        ofd_changed_at=_opt_time(row["ofd_changed_at"]),
        warnings=tuple(json.loads(row["warnings"])),
        possible_duplicate_of=row["possible_duplicate_of"],
    )


def _point_from_row(row: sqlite3.Row) -> RetailPoint:
    return RetailPoint(
        id=row["id"],
        account_id=row["account_id"],
        name=row["name"],
        address=row["address"],
        inn=row["inn"],
        internet_docs_enabled=bool(row["internet_docs_enabled"]),
        stop_on_errors=bool(row["stop_on_errors"]),
        pickup_window=row["pickup_window"],
        default_tax_mode=row["default_tax_mode"],
        duplicate_policy=row["duplicate_policy"],
        deleted=bool(row["deleted"]),
        created_at=from_db_time(row["created_at"]),
    )


def _device_from_row(row: sqlite3.Row) -> Device:
    return Device(
        device_id=row["device_id"],
        till_serial=row["till_serial"],
        retail_point_id=row["retail_point_id"],
        fn_serial=row["fn_serial"],
        model=row["model"],
        firmware_profile=row["firmware_profile"],
        token_hash=row["token_hash"],
        bound_at=from_db_time(row["bound_at"]),
        last_heartbeat_at=_opt_time(row["last_heartbeat_at"]),
        fn_ok=None if row["fn_ok"] is None else bool(row["fn_ok"]),
        heartbeat=_loads(row["heartbeat"]),
    )


def _association_from_row(row: sqlite3.Row) -> Association:
    return Association(
        user_name=row["user_name"],
        retail_point_id=row["retail_point_id"],
        client_id=row["client_id"],
        account_id=row["account_id"],
        salt=row["salt"],
        hash=row["hash"],
        created_at=from_db_time(row["created_at"]),
        rotated_at=from_db_time(row["rotated_at"]),
    )


@dataclass(frozen=True)
class DocumentFilter:
    """Filters of the cabinet's document list."""

    retail_point_id: str | None = None
    statuses: tuple[str, ...] = ()
    doc_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


class Storage:
    """The cloud database. Open with a path (``":memory:"`` for throwaway tests) and :meth:`close`.

    Raises:
        StorageError: from the constructor and every method, for any ``sqlite3`` failure.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open cloud database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
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
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot begin a transaction: {exc}") from exc
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise StorageError(f"cannot commit: {exc}") from exc

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

    # -- accounts and master credentials -----------------------------------------------------------

    def insert_account(self, account: Account) -> None:
        """Store a new account."""
        self._execute(
            "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
            (account.id, account.name, to_db_time(account.created_at)),
        )

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, if any."""
        row = self._one("SELECT * FROM accounts WHERE id = ?", (account_id,))
        if row is None:
            return None
        return Account(row["id"], row["name"], from_db_time(row["created_at"]))

    def list_accounts(self) -> list[Account]:
        """Every account, oldest first."""
        rows = self._all("SELECT * FROM accounts ORDER BY rowid")
        return [Account(r["id"], r["name"], from_db_time(r["created_at"])) for r in rows]

    def upsert_master_credential(self, cred: MasterCredential, now: datetime) -> None:
        """Store a master login, replacing the password of an existing one."""
        self._execute(
            "INSERT INTO master_credentials"
            " (login, account_id, retail_point_id, kind, salt, hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (login) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,"
            " account_id = excluded.account_id, retail_point_id = excluded.retail_point_id",
            (
                cred.login,
                cred.account_id,
                cred.retail_point_id,
                cred.kind,
                cred.salt,
                cred.hash,
                to_db_time(now),
            ),
        )

    def get_master_credential(self, login: str) -> MasterCredential | None:
        """The master login with this name, if any."""
        row = self._one("SELECT * FROM master_credentials WHERE login = ?", (login,))
        if row is None:
            return None
        return MasterCredential(
            row["login"],
            row["account_id"],
            row["retail_point_id"],
            row["kind"],
            row["salt"],
            row["hash"],
        )

    # -- retail points -----------------------------------------------------------------------------

    def insert_point(self, point: RetailPoint) -> None:
        """Store a new retail point."""
        self._execute(
            "INSERT INTO retail_points (id, account_id, name, address, inn, internet_docs_enabled,"
            " stop_on_errors, pickup_window, default_tax_mode, duplicate_policy, deleted, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                point.id,
                point.account_id,
                point.name,
                point.address,
                point.inn,
                int(point.internet_docs_enabled),
                int(point.stop_on_errors),
                point.pickup_window,
                point.default_tax_mode,
                point.duplicate_policy,
                int(point.deleted),
                to_db_time(point.created_at),
            ),
        )

    def update_point(self, point: RetailPoint) -> None:
        """Write every setting of an existing retail point."""
        self._execute(
            "UPDATE retail_points SET account_id = ?, name = ?, address = ?, inn = ?,"
            " internet_docs_enabled = ?, stop_on_errors = ?, pickup_window = ?,"
            " default_tax_mode = ?, duplicate_policy = ?, deleted = ? WHERE id = ?",
            (
                point.account_id,
                point.name,
                point.address,
                point.inn,
                int(point.internet_docs_enabled),
                int(point.stop_on_errors),
                point.pickup_window,
                point.default_tax_mode,
                point.duplicate_policy,
                int(point.deleted),
                point.id,
            ),
        )

    def get_point(self, point_id: str) -> RetailPoint | None:
        """The retail point with this id (deleted ones included), if any."""
        row = self._one("SELECT * FROM retail_points WHERE id = ?", (point_id,))
        return None if row is None else _point_from_row(row)

    def list_points(self) -> list[RetailPoint]:
        """Every retail point, oldest first."""
        rows = self._all("SELECT * FROM retail_points ORDER BY rowid")
        return [_point_from_row(r) for r in rows]

    # -- associations ------------------------------------------------------------------------------

    def get_association(self, user_name: str) -> Association | None:
        """The association with this ``userName``, if any."""
        row = self._one("SELECT * FROM associations WHERE user_name = ?", (user_name,))
        return None if row is None else _association_from_row(row)

    def get_association_for(self, point_id: str, client_id: str) -> Association | None:
        """The association of ``(retailPointId, clientId)``, if any."""
        row = self._one(
            "SELECT * FROM associations WHERE retail_point_id = ? AND client_id = ?",
            (point_id, client_id),
        )
        return None if row is None else _association_from_row(row)

    def upsert_association(self, assoc: Association) -> None:
        """Store an association, or rotate the password of an existing one."""
        self._execute(
            "INSERT INTO associations (user_name, retail_point_id, client_id, account_id, salt,"
            " hash, created_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_name) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,"
            " account_id = excluded.account_id, rotated_at = excluded.rotated_at",
            (
                assoc.user_name,
                assoc.retail_point_id,
                assoc.client_id,
                assoc.account_id,
                assoc.salt,
                assoc.hash,
                to_db_time(assoc.created_at),
                to_db_time(assoc.rotated_at),
            ),
        )

    def delete_association(self, user_name: str) -> None:
        """Remove an association; its documents stay (D6)."""
        self._execute("DELETE FROM associations WHERE user_name = ?", (user_name,))

    # -- devices -----------------------------------------------------------------------------------

    def get_device_by_serial(self, till_serial: str) -> Device | None:
        """The device bound with this till serial, if any."""
        row = self._one("SELECT * FROM devices WHERE till_serial = ?", (till_serial,))
        return None if row is None else _device_from_row(row)

    def get_device_by_token(self, token_hash: str) -> Device | None:
        """The device whose bearer token hashes to ``token_hash``, if any."""
        row = self._one("SELECT * FROM devices WHERE token_hash = ?", (token_hash,))
        return None if row is None else _device_from_row(row)

    def get_device(self, device_id: str) -> Device | None:
        """The device with this id, if any."""
        row = self._one("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else _device_from_row(row)

    def upsert_device(self, device: Device) -> None:
        """Store a device binding (a repeated bind replaces the token and the till's details)."""
        self._execute(
            "INSERT INTO devices (device_id, till_serial, retail_point_id, fn_serial, model,"
            " firmware_profile, token_hash, bound_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET retail_point_id = excluded.retail_point_id,"
            " fn_serial = excluded.fn_serial, model = excluded.model,"
            " firmware_profile = excluded.firmware_profile, token_hash = excluded.token_hash,"
            " bound_at = excluded.bound_at",
            (
                device.device_id,
                device.till_serial,
                device.retail_point_id,
                device.fn_serial,
                device.model,
                device.firmware_profile,
                device.token_hash,
                to_db_time(device.bound_at),
            ),
        )

    def record_heartbeat(
        self, device_id: str, at: datetime, *, fn_ok: bool, body: dict[str, Any], fn_serial: str
    ) -> None:
        """Store a device's latest heartbeat."""
        self._execute(
            "UPDATE devices SET last_heartbeat_at = ?, fn_ok = ?, heartbeat = ?,"
            " fn_serial = CASE WHEN ? = '' THEN fn_serial ELSE ? END WHERE device_id = ?",
            (to_db_time(at), int(fn_ok), _dumps(body), fn_serial, fn_serial, device_id),
        )

    def list_devices(self, point_id: str | None = None) -> list[Device]:
        """Every bound device, optionally of one retail point."""
        if point_id is None:
            rows = self._all("SELECT * FROM devices ORDER BY bound_at, device_id")
        else:
            rows = self._all(
                "SELECT * FROM devices WHERE retail_point_id = ? ORDER BY bound_at, device_id",
                (point_id,),
            )
        return [_device_from_row(r) for r in rows]

    def last_heartbeat(self, point_id: str) -> tuple[datetime, bool] | None:
        """Time and ФН state of the most recent heartbeat of the point's tills (D40)."""
        row = self._one(
            "SELECT last_heartbeat_at, fn_ok FROM devices WHERE retail_point_id = ?"
            " AND last_heartbeat_at IS NOT NULL ORDER BY last_heartbeat_at DESC LIMIT 1",
            (point_id,),
        )
        if row is None:
            return None
        return from_db_time(row["last_heartbeat_at"]), bool(row["fn_ok"])

    # -- documents ---------------------------------------------------------------------------------

    def insert_document(self, record: DocumentRecord) -> int:
        """Store a new document; returns its queue position (``seq``)."""
        columns = (
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
            *_STATE_COLUMNS,
        )
        values = (
            record.retail_point_id,
            record.doc_id,
            record.client_id,
            record.route,
            _dumps(record.document),
            record.content_key,
            record.doc_num,
            record.total,
            record.response_url,
            to_db_time(record.created_at),
            _dumps(list(record.warnings)),
            record.possible_duplicate_of,
            *_state_values(record.state),
        )
        marks = ", ".join("?" for _ in columns)
        cursor = self._execute(
            f"INSERT INTO documents ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608 - column names are constants  # noqa: S608 - column names are constants
            values,
        )
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    def update_document(self, record: DocumentRecord) -> None:
        """Write a document's state and cabinet facts back."""
        assignments = ", ".join(
            f"{c} = ?"
            for c in (
                *_STATE_COLUMNS,
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
        )
        self._execute(
            f"UPDATE documents SET {assignments} WHERE seq = ?",  # noqa: S608 - column names are constants  # noqa: S608 - column names are constants
            (
                *_state_values(record.state),
                None if record.fiscal_info is None else _dumps(record.fiscal_info),
                None if record.failure_detail is None else _dumps(record.failure_detail),
                record.lease_device_id,
                record.callback_last_error,
                record.fn_number,
                record.fn_doc_number,
                record.ofd_state,
                _opt_db_time(record.ofd_changed_at),
                _dumps(list(record.warnings)),
                record.possible_duplicate_of,
                record.seq,
            ),
        )

    def get_document(self, point_id: str, doc_id: str) -> DocumentRecord | None:
        """The document ``doc_id`` of a retail point, if any."""
        row = self._one(
            "SELECT * FROM documents WHERE retail_point_id = ? AND doc_id = ?", (point_id, doc_id)
        )
        return None if row is None else _document_from_row(row)

    def get_document_by_seq(self, seq: int) -> DocumentRecord | None:
        """The document at queue position ``seq``, if any."""
        row = self._one("SELECT * FROM documents WHERE seq = ?", (seq,))
        return None if row is None else _document_from_row(row)

    def find_by_fiscal_number(self, fn_number: str, fn_doc_number: int) -> DocumentRecord | None:
        """The document fiscalised as ФД ``fn_doc_number`` on drive ``fn_number``, if any."""
        row = self._one(
            "SELECT * FROM documents WHERE fn_number = ? AND fn_doc_number = ?",
            (fn_number, fn_doc_number),
        )
        return None if row is None else _document_from_row(row)

    def eligible_for_lease(self, point_id: str, limit: int) -> list[DocumentRecord]:
        """The oldest documents a till of the point may lease now (D39, D47, D48)."""
        rows = self._all(
            "SELECT d.* FROM documents d JOIN retail_points p ON p.id = d.retail_point_id"
            " WHERE d.retail_point_id = ? AND d.status IN ('QUEUED', 'REQUEUED')"
            " AND p.internet_docs_enabled = 1 AND p.deleted = 0"
            " AND NOT (p.stop_on_errors = 1 AND EXISTS (SELECT 1 FROM documents b"
            "   WHERE b.retail_point_id = d.retail_point_id AND b.blocking = 1 AND b.seq < d.seq))"
            " ORDER BY d.seq LIMIT ?",
            (point_id, limit),
        )
        return [_document_from_row(r) for r in rows]

    def queued_before(self, moment: datetime, limit: int = 500) -> list[DocumentRecord]:
        """QUEUED or REQUEUED documents of any point accepted at or before ``moment``, oldest first."""
        rows = self._all(
            "SELECT * FROM documents WHERE status IN ('QUEUED', 'REQUEUED') AND created_at <= ?"
            " ORDER BY seq LIMIT ?",
            (to_db_time(moment), limit),
        )
        return [_document_from_row(r) for r in rows]

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
        return [_document_from_row(r) for r in rows]

    def due_timers(self, now: datetime, limit: int = 500) -> list[tuple[datetime, str, int]]:
        """Lifecycle deadlines due at ``now``: ``(deadline, kind, seq)``, earliest first.

        Kinds: ``lease`` (15-minute rule), ``pickup`` (235-second rule), ``dispatch`` (D31 hold).
        """
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
        return [(from_db_time(r["t"]), r["k"], r["seq"]) for r in rows]

    def due_callbacks(
        self, now: datetime, exclude: Sequence[int] = (), limit: int = 100
    ) -> list[DocumentRecord]:
        """Documents whose next callback attempt is due, earliest first."""
        marks = ", ".join("?" for _ in exclude) or "-1"  # NOT IN (NULL) would match nothing
        rows = self._all(
            "SELECT * FROM documents WHERE callback_next_at IS NOT NULL AND callback_next_at <= ?"  # noqa: S608 - placeholders only
            f" AND seq NOT IN ({marks}) ORDER BY callback_next_at, seq LIMIT ?",
            (to_db_time(now), *exclude, limit),
        )
        return [_document_from_row(r) for r in rows]

    def next_deadline(self, exclude_callbacks: Sequence[int] = ()) -> datetime | None:
        """The earliest pending deadline of any timer (lifecycle or callback)."""
        marks = ", ".join("?" for _ in exclude_callbacks) or "-1"
        row = self._one(
            "SELECT MIN(t) AS t FROM ("  # noqa: S608 - placeholders only
            " SELECT MIN(lease_expires_at) AS t FROM documents WHERE status = 'PENDING'"
            " UNION ALL SELECT MIN(pickup_deadline) FROM documents"
            " WHERE pickup_deadline IS NOT NULL"
            " UNION ALL SELECT MIN(dispatch_at) FROM documents"
            " WHERE dispatch_at IS NOT NULL AND status = 'PRINTED'"
            " UNION ALL SELECT MIN(callback_next_at) FROM documents"
            f" WHERE callback_next_at IS NOT NULL AND seq NOT IN ({marks}))",
            tuple(exclude_callbacks),
        )
        if row is None or row["t"] is None:
            return None
        return from_db_time(row["t"])

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
            f"SELECT * FROM documents{clause} ORDER BY seq LIMIT ? OFFSET ?",  # noqa: S608 - clauses are constants  # noqa: S608 - clauses are constants
            (*params, flt.limit, flt.offset),
        )
        return [_document_from_row(r) for r in rows]

    def recent_with_doc_num(
        self, point_id: str, doc_num: str, total: str, since: datetime, client_id: str
    ) -> DocumentRecord | None:
        """The latest document of another integration with the same ``docNum`` and total."""
        row = self._one(
            "SELECT * FROM documents WHERE retail_point_id = ? AND doc_num = ? AND total = ?"
            " AND client_id != ? AND created_at >= ? ORDER BY seq DESC LIMIT 1",
            (point_id, doc_num, total, client_id, to_db_time(since)),
        )
        return None if row is None else _document_from_row(row)

    def documents_with_warnings(self) -> list[DocumentRecord]:
        """Documents that carry cabinet warnings, oldest first."""
        rows = self._all("SELECT * FROM documents WHERE warnings != '[]' ORDER BY seq")
        return [_document_from_row(r) for r in rows]

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
            (seq, to_db_time(at), status.value, event, None if detail is None else _dumps(detail)),
        )

    def history(self, seq: int) -> list[HistoryEntry]:
        """A document's history, in the order it happened."""
        rows = self._all("SELECT * FROM history WHERE seq = ? ORDER BY id", (seq,))
        return [
            HistoryEntry(
                from_db_time(r["at"]), Status(r["status"]), r["event"], _loads(r["detail"])
            )
            for r in rows
        ]

    def count_documents(self) -> int:
        """How many documents are stored."""
        row = self._one("SELECT COUNT(*) AS n FROM documents")
        return 0 if row is None else int(row["n"])
