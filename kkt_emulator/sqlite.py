"""The one SQLite set-up every store uses: WAL, explicit ``BEGIN IMMEDIATE`` transactions.

Each store (the cloud's database, the till's journal, the drive's archive, the OFD stand-in's
received documents) opens its file through :func:`open_database` and writes inside
:func:`immediate`, so the durability rules live in one place: autocommit off (``isolation_level``
``None``, so Python never opens a transaction behind our back), WAL so readers never block the
writer, and ``synchronous`` chosen by the store (``FULL`` where a lost write would lose a signed
document, ``NORMAL`` where WAL's guarantee after a process crash is enough).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

__all__ = ["Synchronous", "immediate", "open_database"]

Synchronous = Literal["FULL", "NORMAL", "OFF"]


def open_database(
    path: str | Path,
    *,
    schema: str = "",
    synchronous: Synchronous = "FULL",
    foreign_keys: bool = False,
    row_factory: bool = False,
    timeout: float = 10.0,
) -> sqlite3.Connection:
    """Open (creating folders and file) a database in WAL mode and apply ``schema``.

    Raises:
        sqlite3.Error: the file cannot be opened or the schema applied; OSError: the folder cannot
        be made. Callers translate both into their own error with the path.
    """
    name = str(path)
    if name != ":memory:":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(name, isolation_level=None, check_same_thread=False, timeout=timeout)
    try:
        if row_factory:
            conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        if schema:
            conn.executescript(schema)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ``ROLLBACK`` (and re-raise) on any exception.

    A failed ``COMMIT`` is rolled back too, so the connection is never left inside a transaction.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the original exception is what matters
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):  # re-raised below with the commit's error
            conn.execute("ROLLBACK")
        raise
