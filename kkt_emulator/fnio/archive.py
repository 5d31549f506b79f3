"""The drive's archive on disk: one SQLite database (WAL) per drive.

The file is opened and written through :mod:`kkt_emulator.sqlite` (``IdleConnection``,
``immediate``), like every other store; the connection closes after a few idle seconds and reopens
on the next command (D71), so an idle drive holds no file descriptors.

It holds the drive's state, every signed document (TLV bytes), the OFD acknowledgements and a
metadata row naming the drive (serial, profile), so reopening the file restores the exact drive.
A file made just now from its template is read by nobody (it holds no row) and is named by its
first transaction (D130).
Every :meth:`SqliteStore.commit` is one transaction: a crash at any instruction leaves either the
state before the command or the state after it, never a document without its counters.

A command writes only what it changed (fn-protocol.md §13, item 11): the small core of the state
(:meth:`~kkt_emulator.fn.state.DriveState.core_json`) in one row, a registration report only when
one is signed, and the OFD queue as rows pushed and popped at its ends, never the whole 30-day
queue. A commit that holds a signed document, an OFD acknowledgement or a new registration is
written with ``synchronous=FULL`` (the WAL is fsynced before the answer exists, so a power loss
keeps it and every commit before it); the other steps (15h opening a receipt, its 07h data,
transport and read flags, cursors) with ``synchronous=NORMAL``, which survives a process crash
and, after a power loss, at worst rolls the drive back to the last signed document. While a
document is open its steps (15h, 07h) write nothing: the core row is held and written by the next
commit that writes, a reload or a close (D136), so a crash mid-document leaves the drive as before
it was opened, which a power loss could always do.

A drive served on a pipe (:class:`~kkt_emulator.fnio.server.DriveServer`) defers those syncs
(D114): :attr:`SqliteStore.defer_sync` makes such a commit ``NORMAL`` and marks the store
:attr:`~SqliteStore.unsynced`; the server awaits :meth:`SqliteStore.settle` (the WAL synced in a
worker thread) before the answer frame leaves, so the answer still never exists before the
document is on the disk, and the event loop serves other tills meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from kkt_emulator.errors import ConfigError, DriveError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.fn.state import (
    ArchivedDocument,
    DriveState,
    OfdAck,
    RegistrationRecord,
    UnsentEntry,
    queue_change,
)
from kkt_emulator.logging import get_logger
from kkt_emulator.sqlite import IDLE_SECONDS, IdleConnection, Synchronous, immediate

__all__ = ["SqliteStore"]

_log = get_logger(__name__)

SCHEMA_VERSION = 2
"""2: registrations and the OFD queue in their own tables; 1 kept them in the state row (still read)."""
RECENT_DOCUMENTS = 8
"""Documents a store keeps as it committed them, for the reads that follow (D124)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drive_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registrations (ordinal INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unsent (
    seq INTEGER PRIMARY KEY,
    fd INTEGER NOT NULL,
    doc_time TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    fd INTEGER PRIMARY KEY,
    doc_code INTEGER NOT NULL,
    doc_time TEXT NOT NULL,
    fpd INTEGER NOT NULL,
    tlv BLOB NOT NULL,
    details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ofd_acks (
    fd INTEGER PRIMARY KEY REFERENCES documents(fd),
    ack_time TEXT NOT NULL,
    operator_sign BLOB NOT NULL,
    ofd_code INTEGER NOT NULL
);
"""


class SqliteStore:
    """A :class:`~kkt_emulator.fn.state.DriveStore` in one SQLite file.

    Args:
        path: the database file (created with its parent directory if missing).
        serial: the drive serial this file belongs to; reopening a file of another drive is refused.
        profile: the firmware profile name, kept as metadata.

    Raises:
        ConfigError: the file cannot be opened, is not a drive archive, or belongs to another drive.
    """

    def __init__(
        self,
        path: Path | str,
        serial: str | None = None,
        profile: str | None = None,
        *,
        idle: float | None = IDLE_SECONDS,
        synchronous: Synchronous = "FULL",
    ) -> None:
        self.path = Path(path)
        self.defer_sync = False
        """Commit signed documents with ``NORMAL`` and leave the sync to :meth:`settle` (D114)."""
        self.unsynced = False
        """A deferred commit waits for :meth:`settle`."""
        try:
            self._handle = IdleConnection(
                self.path, schema=_SCHEMA, synchronous=synchronous, foreign_keys=True, idle=idle
            )
            # A file new from its template holds no row at all (D130): nothing to read.
            self._fresh = self._handle.created
            meta = {} if self._fresh else self._read_meta()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{self.path}: cannot open the drive archive: {exc}") from exc
        self.meta: dict[str, str] = meta
        # Metadata of a file that has none yet, written by the next transaction that writes
        # (D130): lost together with that transaction, it leaves a file that holds nothing, which
        # the next open names again.
        self._pending_meta: dict[str, str] | None = None
        try:
            self.claim(serial, profile)
        except ConfigError:
            self._handle.close()
            raise
        # What the file holds, as the objects of the state last loaded or committed: a commit
        # compares the drive's state with these to write only what changed.
        self._saved_core: str | None = None
        self._saved_registrations: list[RegistrationRecord] = []
        self._saved_unsent: deque[UnsentEntry] = deque()
        self._unsent_head = 1  # the seq of _saved_unsent[0] (or of the next entry if empty)
        self._rewrite = False  # the file is not in the layout above: rewrite all at the next commit
        # The core row of an open document's steps, not yet written (D136): the next commit
        # that writes anything writes the row as it then is; a reload or a close writes it first.
        self._held_core: str | None = None
        # The documents this store committed last, as committed: the till reads a document for
        # the OFD right after 16h signed it, twice (D124). Archived documents never change.
        self._recent: dict[int, ArchivedDocument] = {}
        if self._fresh:
            return  # the saved state above is what the file holds: nothing
        try:
            self._read()
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            self._handle.close()
            raise ConfigError(f"{self.path}: the drive state cannot be read: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, reopened if it was closed for being idle (D71).

        Raises:
            DriveError: 03h (drive failure) if the file cannot be opened again.
        """
        try:
            return self._handle.connection()
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive reopen failed: {exc}") from exc

    @property
    def connection(self) -> IdleConnection:
        """The archive's connection handle (open or closed for being idle)."""
        return self._handle

    @classmethod
    def read_meta(cls, path: Path | str) -> dict[str, str]:
        """Read the drive serial and profile name stored in an archive file."""
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return dict(db.execute("SELECT key, value FROM meta").fetchall())
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: not a drive archive: {exc}") from exc

    def _read_meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def claim(self, serial: str | None, profile: str | None) -> None:
        """Name the drive this file belongs to; a file without a name takes this one (D130).

        Raises:
            ConfigError: the file belongs to another drive.
        """
        meta = self.meta
        if meta.get("serial") and serial and meta["serial"] != serial:
            raise ConfigError(f"{self.path} holds drive {meta['serial']}, not {serial}")
        if not meta or self._pending_meta is not None:
            self.meta = {
                "schema": str(SCHEMA_VERSION),
                "serial": serial or "",
                "profile": profile or "",
            }
            self._pending_meta = dict(self.meta)

    def _write_meta(self, db: sqlite3.Connection) -> None:
        """Write the pending metadata (D130) in the caller's transaction."""
        pending = self._pending_meta
        if pending is not None:
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", pending.items()
            )

    def close(self) -> None:
        """Close the database (the held core row and pending metadata written first)."""
        self._write_held()
        if self._pending_meta is not None:
            try:
                with immediate(self._db) as db:
                    self._write_meta(db)
                self._pending_meta = None
            except (sqlite3.Error, DriveError):  # the file stays unnamed: the next open names it
                _log.warning("archive_meta_write_failed", path=str(self.path), exc_info=True)
        self._recent.clear()
        self._handle.close()

    def load_state(self) -> DriveState | None:
        """The saved state, or ``None`` for a new drive."""
        self._write_held()
        self._recent.clear()  # what the file holds now is what counts
        if self._fresh:  # nothing was written since the file was made (D130)
            return None
        return self._read()

    def _read(self) -> DriveState | None:
        """Read the state from the file and remember it as what the file holds."""
        db = self._db
        row = db.execute("SELECT state FROM drive_state WHERE id = 1").fetchone()
        regs = [
            RegistrationRecord.from_json(orjson.loads(record))
            for (record,) in db.execute("SELECT record FROM registrations ORDER BY ordinal")
        ]
        rows = db.execute("SELECT seq, fd, doc_time, size FROM unsent ORDER BY seq").fetchall()
        unsent = [UnsentEntry(fd, datetime.fromisoformat(when), size) for _, fd, when, size in rows]
        self._saved_core = row[0] if row else None
        self._saved_registrations = regs
        self._saved_unsent = deque(unsent)
        self._unsent_head = rows[0][0] if rows else 1
        # Entries are addressed by seq = head + position; anything else is rewritten.
        self._rewrite = bool(rows) and rows[-1][0] - rows[0][0] != len(rows) - 1
        if row is None:
            return None
        data = orjson.loads(row[0])
        if "unsent" in data:
            # Schema 1 kept the registrations and the queue in the state row: take them from
            # there, and let the next commit write the file in the current layout.
            self._rewrite = True
            return DriveState.from_json(data)
        return DriveState.from_json(data, regs, unsent)

    def get_document(self, fd: int) -> ArchivedDocument | None:
        """One archived document."""
        recent = self._recent.get(fd)
        if recent is not None:
            return recent
        row = self._db.execute(
            "SELECT fd, doc_code, doc_time, fpd, tlv, details FROM documents WHERE fd = ?", (fd,)
        ).fetchone()
        if row is None:
            return None
        return ArchivedDocument(
            fd=row[0],
            doc_code=row[1],
            when=datetime.fromisoformat(row[2]),
            fpd=row[3],
            tlv=bytes(row[4]),
            details=orjson.loads(row[5]),
        )

    def get_ack(self, fd: int) -> OfdAck | None:
        """The OFD acknowledgement of one document."""
        row = self._db.execute(
            "SELECT fd, ack_time, operator_sign, ofd_code FROM ofd_acks WHERE fd = ?", (fd,)
        ).fetchone()
        if row is None:
            return None
        return OfdAck(
            fd=row[0],
            when=datetime.fromisoformat(row[1]),
            operator_sign=bytes(row[2]),
            ofd_code=row[3],
        )

    def document_count(self) -> int:
        """How many documents the archive holds."""
        count: int = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        return count

    def documents(self, first: int = 1, last: int | None = None) -> list[ArchivedDocument]:
        """Documents with fiscal numbers in ``first..last``, in order."""
        rows = self._db.execute(
            "SELECT fd FROM documents WHERE fd >= ? AND fd <= ? ORDER BY fd",
            (first, last if last is not None else 2**31),
        ).fetchall()
        return [doc for (fd,) in rows if (doc := self.get_document(fd)) is not None]

    def commit(
        self,
        state: DriveState,
        documents: tuple[ArchivedDocument, ...] = (),
        acks: tuple[OfdAck, ...] = (),
    ) -> None:
        """Save the state with new documents and acknowledgements in one transaction.

        Only what changed since the last commit is written (see the module docstring); a commit
        with a document, an acknowledgement or a new registration is fsynced before it returns
        (``synchronous=FULL``), any other with ``synchronous=NORMAL``.

        Raises:
            DriveError: 03h (drive failure) if the database refuses the write.
        """
        core = orjson.dumps(state.core_json()).decode()
        regs = state.registrations
        saved_regs = self._saved_registrations
        rewrite = self._rewrite
        if not (documents or acks or rewrite) and self._saved_core is not None:
            unsent, saved_unsent = state.unsent, self._saved_unsent
            if (
                len(unsent) == len(saved_unsent)
                and (
                    not unsent or (unsent[0] is saved_unsent[0] and unsent[-1] is saved_unsent[-1])
                )
                and regs == saved_regs
            ):
                # Only the core row changed (15h, 07h, flags, cursors: most commands): one
                # statement, which SQLite runs as a transaction of its own (autocommit), with
                # synchronous=NORMAL as below (D107). While a document is open (15h, its 07h)
                # the row is held and written by the next commit that writes (D136).
                if core == self._saved_core:
                    self._held_core = None
                elif state.open_doc is not None:
                    self._held_core = core
                else:
                    self._commit_core(core)
                return
        elif (
            self._saved_core is None
            and state.open_doc is not None
            and not (documents or acks or rewrite or regs or state.unsent)
        ):
            # The first document of a file that holds no state yet: held as above (D136, D130),
            # the file keeps the drive as it was before it, a new one.
            self._held_core = core
            return
        regs_kept = not rewrite and regs[: len(saved_regs)] == saved_regs
        new_regs = regs[len(saved_regs) :] if regs_kept else regs
        change = None if rewrite else queue_change(self._saved_unsent, state.unsent)
        pushed: Sequence[UnsentEntry]
        if change is None:
            popped, pushed = len(self._saved_unsent), state.unsent
        else:
            popped, pushed = change
        if (
            core == self._saved_core
            and not (documents or acks or new_regs or popped or pushed)
            and regs_kept
            and change is not None
        ):
            self._held_core = None
            return  # nothing to write: the file already holds this state
        self._fresh = False
        try:
            durable = bool(documents or acks or new_regs or not regs_kept)
            self._synchronous("FULL" if durable and not self.defer_sync else "NORMAL")
            with immediate(self._db) as db:
                self._write_meta(db)
                if self._saved_core is None or rewrite:
                    db.execute(
                        "INSERT OR REPLACE INTO drive_state (id, state) VALUES (1, ?)", (core,)
                    )
                elif core != self._saved_core:
                    # The row exists (it was read or written): an UPDATE rewrites it in place,
                    # where REPLACE deletes and inserts it.
                    db.execute("UPDATE drive_state SET state = ? WHERE id = 1", (core,))
                if not regs_kept:
                    db.execute("DELETE FROM registrations")
                if new_regs:
                    first = len(saved_regs) + 1 if regs_kept else 1
                    db.executemany(
                        "INSERT INTO registrations (ordinal, record) VALUES (?, ?)",
                        [
                            (ordinal, orjson.dumps(r.to_json()).decode())
                            for ordinal, r in enumerate(new_regs, first)
                        ],
                    )
                head = self._unsent_head
                if change is None:
                    db.execute("DELETE FROM unsent")
                    head = 1
                    tail = 1
                else:
                    if popped:
                        db.execute("DELETE FROM unsent WHERE seq < ?", (head + popped,))
                    tail = head + len(self._saved_unsent)
                    head += popped
                # One signed document per command is the rule: execute, not executemany, for one.
                rows = [
                    (seq, u.fd, u.when.isoformat(), u.size) for seq, u in enumerate(pushed, tail)
                ]
                _insert(
                    db, "INSERT INTO unsent (seq, fd, doc_time, size) VALUES (?, ?, ?, ?)", rows
                )
                _insert(
                    db,
                    "INSERT INTO documents (fd, doc_code, doc_time, fpd, tlv, details) VALUES (?, ?, ?, ?, ?, ?)",
                    [_doc_row(d) for d in documents],
                )
                if acks:
                    db.executemany(
                        "INSERT OR REPLACE INTO ofd_acks (fd, ack_time, operator_sign, ofd_code) VALUES (?, ?, ?, ?)",
                        [(a.fd, a.when.isoformat(), a.operator_sign, a.ofd_code) for a in acks],
                    )
                if rewrite:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
                        (str(SCHEMA_VERSION),),
                    )
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive write failed: {exc}") from exc
        # Written: the file now holds this state.
        self._pending_meta = None
        recent = self._recent
        for doc in documents:
            recent[doc.fd] = doc
        while len(recent) > RECENT_DOCUMENTS:
            del recent[next(iter(recent))]
        if durable and self.defer_sync:
            self.unsynced = True  # the server settles it before the answer leaves (D114)
        self._saved_core = core
        self._held_core = None
        if regs_kept:
            saved_regs.extend(new_regs)
        else:
            self._saved_registrations = list(regs)
        if change is None:
            self._saved_unsent = deque(state.unsent)
        else:
            saved = self._saved_unsent
            for _ in range(popped):
                saved.popleft()
            saved.extend(pushed)
        self._unsent_head = head
        self._rewrite = False

    def _commit_core(self, core: str) -> None:
        """Rewrite the core row alone (written first if the file has none); see :meth:`commit`.

        Raises:
            DriveError: 03h (drive failure) if the database refuses the write.
        """
        self._fresh = False
        self._synchronous("NORMAL")
        try:
            if self._saved_core is None:  # the row is new: with the file's name, if pending
                with immediate(self._db) as db:
                    self._write_meta(db)
                    db.execute(
                        "INSERT OR REPLACE INTO drive_state (id, state) VALUES (1, ?)", (core,)
                    )
                self._pending_meta = None
            else:
                self._db.execute("UPDATE drive_state SET state = ? WHERE id = 1", (core,))
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive write failed: {exc}") from exc
        self._saved_core = core
        self._held_core = None

    def _write_held(self) -> None:
        """Write the held core row (D136), if any; a refused write leaves the file as it was."""
        held = self._held_core
        if held is None:
            return
        self._held_core = None
        try:
            self._commit_core(held)
        except DriveError:
            # The file keeps the state before the open document, as a power cut would leave it.
            return

    @property
    def synchronous(self) -> Synchronous:
        """The ``synchronous`` mode of the latest write (``FULL`` or ``NORMAL``)."""
        return self._handle.synchronous

    async def settle(self) -> None:
        """Put the deferred commits on the disk (D114); returns at once when none waits.

        Raises:
            DriveError: 03h (drive failure) if the sync failed.
        """
        if not self.unsynced:
            return
        self.unsynced = False  # a commit made during the sync marks the store again
        try:
            await self._handle.durable()
        except OSError as exc:
            self.unsynced = True
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive sync failed: {exc}") from exc

    def _synchronous(self, mode: Synchronous) -> None:
        """Set ``PRAGMA synchronous`` for the next transaction (only when it changes)."""
        try:
            self._handle.set_synchronous(mode)
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive reopen failed: {exc}") from exc

    def wipe(self) -> None:
        """Erase state, documents and acknowledgements (the debug reset 60h).

        Raises:
            DriveError: 03h (drive failure) if the database refuses the write.
        """
        self._fresh = False
        try:
            self._synchronous("FULL")
            with immediate(self._db) as db:
                self._write_meta(db)
                db.execute("DELETE FROM ofd_acks")
                db.execute("DELETE FROM documents")
                db.execute("DELETE FROM unsent")
                db.execute("DELETE FROM registrations")
                db.execute("DELETE FROM drive_state")
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive wipe failed: {exc}") from exc
        self._pending_meta = None
        self._saved_core = None
        self._held_core = None
        self._recent.clear()
        self._saved_registrations = []
        self._saved_unsent = deque()
        self._unsent_head = 1
        self._rewrite = False


def _insert(db: sqlite3.Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if len(rows) == 1:
        db.execute(sql, rows[0])
    elif rows:
        db.executemany(sql, rows)


def _doc_row(doc: ArchivedDocument) -> tuple[Any, ...]:
    fd, code, when, fpd, tlv, details = doc.to_row()
    return (fd, code, when, fpd, tlv, orjson.dumps(details).decode())
