"""The cloud database on an embedded SQLite file (the default backend, D73).

One file in WAL mode (:func:`kkt_emulator.sqlite.open_database`, ``synchronous=NORMAL``, foreign
keys on), created on first start and reopened on the next. A transaction is ``BEGIN IMMEDIATE``:
one writer at a time, so this process is the file's only writer and needs no row locks, claims or
announcements (the methods for them do nothing). ``sqlite3`` errors become :class:`StorageError`.

Checkpoints run in a thread of their own (D115): the connection's automatic checkpoint is off, and
a :class:`_Checkpointer` with a second connection copies the WAL into the database (``PASSIVE``,
which never blocks the writer) whenever the WAL has grown past :data:`CHECKPOINT_BYTES`. An
automatic checkpoint would run inside whichever ``COMMIT`` crossed the threshold, on the event
loop, writing megabytes and syncing both files while every request waits. Closing stops the
thread and closes the main connection last, which checkpoints what is left.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from kkt_emulator.cloud.db import StorageError
from kkt_emulator.logging import get_logger
from kkt_emulator.sqlite import open_database

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["SqliteConnection"]

_VERSION_SQL: Final = "SELECT value FROM meta WHERE key = 'schema_version'"

CHECKPOINT_BYTES: Final = 4 * 1024 * 1024
"""WAL size past which the checkpointer copies it into the database (SQLite's default: 1000 pages)."""
CHECKPOINT_LOOK_S: Final = 0.25
"""How often the checkpointer looks at the WAL's size (one ``stat``)."""


class _Checkpointer:
    """A thread that checkpoints a WAL off the event loop (D115)."""

    def __init__(self, path: str) -> None:
        self._wal = Path(f"{path}-wal")
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kkt-cloud-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        log = get_logger()
        while not self._stop.wait(CHECKPOINT_LOOK_S):
            try:
                size = self._wal.stat().st_size
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cloud_checkpoint_stat_failed", error=str(exc))
                continue
            if size < CHECKPOINT_BYTES:
                continue
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # busy or failing disk: the next look tries again
                log.warning("cloud_checkpoint_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


class SqliteConnection:
    """A SQLite file as the :class:`~kkt_emulator.cloud.db.Connection` of a cloud."""

    kind: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: str, schema: str, version: int) -> None:
        self.path = path
        try:
            self._conn = open_database(
                path, schema=schema, synchronous="NORMAL", foreign_keys=True, row_factory=True
            )
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open cloud database {path}: {exc}") from exc
        try:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO NOTHING",
                (str(version),),
            )
            stored = int(self._conn.execute(_VERSION_SQL).fetchone()[0])
        except (sqlite3.Error, ValueError) as exc:
            self._conn.close()
            raise StorageError(f"cannot open cloud database {path}: {exc}") from exc
        if stored > version:
            self._conn.close()
            raise StorageError(
                f"cloud database {path} has schema version {stored}; this program knows {version}"
            )
        self._checkpointer: _Checkpointer | None = None
        if path != ":memory:":
            try:
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
                self._checkpointer = _Checkpointer(path)
            except sqlite3.Error as exc:
                self._conn.close()
                raise StorageError(f"cannot open cloud database {path}: {exc}") from exc

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run one statement."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"database error: {exc}") from exc

    def begin(self) -> None:
        """``BEGIN IMMEDIATE``: wait for (and then exclude) every other writer."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot begin a transaction: {exc}") from exc

    def commit(self, announcements: Sequence[str]) -> None:
        """``COMMIT``; a failed commit is rolled back, so no transaction stays open."""
        del announcements  # nobody else listens to a SQLite file
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.rollback()
            raise StorageError(f"cannot commit: {exc}") from exc

    def notify(self, announcements: Sequence[str]) -> None:
        """Nothing: no other process uses the file."""
        del announcements

    def rollback(self) -> None:
        """``ROLLBACK``, quietly: the error that caused it is what matters."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def try_claim(self, key: int) -> bool:
        """Always granted: this process is the file's only user."""
        del key
        return True

    def release(self, key: int) -> None:
        """Nothing to give back."""
        del key

    def listen(self, deliver: Callable[[str | None], None]) -> None:
        """Nothing to hear: no other process writes the file."""
        del deliver

    def stop_listening(self) -> None:
        """Nothing was heard."""

    def close(self) -> None:
        """Close the file (idempotent)."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.stop()
        # A connection that cannot even close has nothing left to lose; closing stays idempotent.
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
