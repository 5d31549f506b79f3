"""The drive's archive on disk: one SQLite database (WAL, ``synchronous=FULL``) per drive.

The file is opened and written through :mod:`kkt_emulator.sqlite` (``open_database``,
``immediate``), like every other store.

It holds the drive's state row, every signed document (TLV bytes), the OFD acknowledgements and a
metadata row naming the drive (serial, profile), so reopening the file restores the exact drive.
Every :meth:`SqliteStore.commit` is one transaction: a crash at any instruction leaves either the
state before the command or the state after it, never a document without its counters.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from kkt_emulator.errors import ConfigError, DriveError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.fn.state import ArchivedDocument, DriveState, OfdAck
from kkt_emulator.sqlite import immediate, open_database

__all__ = ["SqliteStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drive_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
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
        self, path: Path | str, serial: str | None = None, profile: str | None = None
    ) -> None:
        self.path = Path(path)
        try:
            self._db = open_database(
                self.path, schema=_SCHEMA, synchronous="FULL", foreign_keys=True
            )
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{self.path}: cannot open the drive archive: {exc}") from exc
        if meta.get("serial") and serial and meta["serial"] != serial:
            self._db.close()
            raise ConfigError(f"{self.path} holds drive {meta['serial']}, not {serial}")
        if not meta:
            self._set_meta(
                {"schema": str(SCHEMA_VERSION), "serial": serial or "", "profile": profile or ""}
            )
        self.meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())

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

    def _set_meta(self, values: dict[str, str]) -> None:
        with immediate(self._db) as db:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def load_state(self) -> DriveState | None:
        """The saved state, or ``None`` for a new drive."""
        row = self._db.execute("SELECT state FROM drive_state WHERE id = 1").fetchone()
        return DriveState.from_json(json.loads(row[0])) if row else None

    def get_document(self, fd: int) -> ArchivedDocument | None:
        """One archived document."""
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
            details=json.loads(row[5]),
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

        Raises:
            DriveError: 03h (drive failure) if the database refuses the write.
        """
        try:
            with immediate(self._db) as db:
                db.execute(
                    "INSERT OR REPLACE INTO drive_state (id, state) VALUES (1, ?)",
                    (json.dumps(state.to_json(), ensure_ascii=False),),
                )
                db.executemany(
                    "INSERT INTO documents (fd, doc_code, doc_time, fpd, tlv, details) VALUES (?, ?, ?, ?, ?, ?)",
                    [_doc_row(d) for d in documents],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO ofd_acks (fd, ack_time, operator_sign, ofd_code) VALUES (?, ?, ?, ?)",
                    [(a.fd, a.when.isoformat(), a.operator_sign, a.ofd_code) for a in acks],
                )
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive write failed: {exc}") from exc

    def wipe(self) -> None:
        """Erase state, documents and acknowledgements (the debug reset 60h).

        Raises:
            DriveError: 03h (drive failure) if the database refuses the write.
        """
        try:
            with immediate(self._db) as db:
                db.execute("DELETE FROM ofd_acks")
                db.execute("DELETE FROM documents")
                db.execute("DELETE FROM drive_state")
        except sqlite3.Error as exc:
            raise DriveError(ResultCode.FN_FAILURE, detail=f"archive wipe failed: {exc}") from exc


def _doc_row(doc: ArchivedDocument) -> tuple[Any, ...]:
    fd, code, when, fpd, tlv, details = doc.to_row()
    return (fd, code, when, fpd, tlv, json.dumps(details, ensure_ascii=False))
