"""The one SQLite set-up every store uses: WAL, explicit ``BEGIN IMMEDIATE`` transactions.

Each store (the cloud's database, the till's journal, the drive's archive, the OFD stand-in's
received documents) opens its file through :func:`open_database` and writes inside
:func:`immediate`, so the durability rules live in one place: autocommit off (``isolation_level``
``None``, so Python never opens a transaction behind our back), WAL so readers never block the
writer, and ``synchronous`` chosen by the store (``FULL`` where a lost write would lose a signed
document, ``NORMAL`` where WAL's guarantee after a process crash is enough).

A new file is a copy of its schema's template (D111): the schema is made once per process in a
scratch file, and each new database is that image, written, synced and linked into place under its
name (so a crash leaves either no file or a whole one, and an existing file is never overwritten).
Making a file and its schema directly costs a journal-mode switch and a rollback journal with their
syncs, and the DDL itself: a thousand tills start with two thousand new files. The store's first
durable commit syncs the WAL with every frame before its own, as before.

:class:`IdleConnection` is a connection that closes itself after a few idle seconds and reopens on
the next use, so a thousand idle tills hold no SQLite descriptors (D71); the close (a checkpoint and
its syncs) runs in a worker thread, off the event loop (D111).

A durable commit on the event loop need not hold it for its sync (D114): the store commits with
``synchronous=NORMAL`` (the frames are in the WAL file, safe from a process crash) and awaits
:meth:`IdleConnection.durable`, which syncs the WAL (``fdatasync``) in a worker thread: every frame
written before it is then on the disk, as ``FULL`` would have made it, while the loop serves other
tills. The caller does not act on the commit (send the drive command, answer the frame) before the
await returns, so nothing outside the process can see a write a power cut could take back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

__all__ = [
    "IDLE_SECONDS",
    "IdleConnection",
    "Synchronous",
    "immediate",
    "open_database",
    "sync_wal",
]

IDLE_SECONDS = 1.0
"""How long an :class:`IdleConnection` stays open unused (between one and two such periods)."""

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
    conn, _ = _open_database(
        path,
        schema=schema,
        synchronous=synchronous,
        foreign_keys=foreign_keys,
        row_factory=row_factory,
        timeout=timeout,
    )
    return conn


def _open_database(
    path: str | Path,
    *,
    schema: str,
    synchronous: Synchronous,
    foreign_keys: bool,
    row_factory: bool = False,
    timeout: float = 10.0,
) -> tuple[sqlite3.Connection, bool]:
    """:func:`open_database`, and whether the file was made now from its template (D122)."""
    name = str(path)
    copied = False
    if name != ":memory:":
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        if schema and not Path(name).exists():
            copied = _create_from_template(Path(name), schema)
    conn = sqlite3.connect(name, isolation_level=None, check_same_thread=False, timeout=timeout)
    try:
        if row_factory:
            conn.row_factory = sqlite3.Row
        if not copied:  # a template copy is in WAL mode already
            conn.execute("PRAGMA journal_mode=WAL")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        if schema and not copied:
            # One transaction, not one fsync per table: nothing is lost if it is lost.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nCOMMIT;")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.Error:
        conn.close()
        raise
    return conn, copied


_templates: dict[str, bytes] = {}
_templates_lock = threading.Lock()


def _template(schema: str) -> bytes:
    """The image of a new WAL-mode database holding ``schema`` (made once per process)."""
    with _templates_lock:
        image = _templates.get(schema)
        if image is None:
            with tempfile.TemporaryDirectory(prefix="kkt-sqlite-") as scratch:
                path = Path(scratch) / "template.sqlite3"
                conn = sqlite3.connect(path, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=OFF")  # a scratch file: read back, then gone
                    conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nCOMMIT;")
                finally:
                    conn.close()  # checkpoints: the whole database is in the file
                image = _templates[schema] = path.read_bytes()
    return image


def _create_from_template(path: Path, schema: str) -> bool:
    """Write a new database at ``path`` from ``schema``'s template; ``False`` if one appeared.

    The image is written to a scratch name beside ``path``, synced (the WAL's first durable commit
    must never outlive the pages it builds on) and hard-linked to ``path``, which fails rather than
    replace a file another opener made meanwhile.
    """
    scratch = path.with_name(f".{path.name}.new-{os.getpid()}-{threading.get_ident()}")
    image = _template(schema)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            out.write(image)
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:  # macOS, Windows
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(scratch, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: make the file the slow way
        return False
    finally:
        scratch.unlink(missing_ok=True)
    return True


_closer: concurrent.futures.ThreadPoolExecutor | None = None
_closer_lock = threading.Lock()


def _close_off_loop(conn: sqlite3.Connection) -> None:
    """Close ``conn`` in the worker thread: its checkpoint and syncs do not hold the loop."""
    global _closer  # noqa: PLW0603 - one worker for the process, made on first use
    with _closer_lock:
        if _closer is None:
            _closer = concurrent.futures.ThreadPoolExecutor(1, "kkt-sqlite-close")
        closer = _closer
    try:
        closer.submit(conn.close)
    except RuntimeError:  # the interpreter is shutting down: close here
        conn.close()


SYNC_THREADS = 2
"""Worker threads that sync WAL files; each takes every request waiting when it looks (D114)."""


def _fdatasync_wal(path: str) -> None:
    try:
        fd = os.open(f"{path}-wal", os.O_RDONLY)
    except FileNotFoundError:
        return  # no WAL: the last close checkpointed it into the database and synced that
    try:
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:  # macOS, Windows
            os.fsync(fd)
    finally:
        os.close(fd)


_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class _WalSyncer:
    """Grouped WAL syncs: one hand-off to the loop a batch, not one a commit.

    A worker takes every waiting request, syncs each file once, then wakes each loop once for all
    of its waiters.

    A request is made after its commit, so a sync of that file started after the request was
    taken covers it; two requests for one file in one batch share its sync.
    """

    def __init__(self, threads: int) -> None:
        self._ready = threading.Condition()
        self._waiting: dict[str, list[_Waiter]] = {}
        for n in range(threads):
            threading.Thread(target=self._work, name=f"kkt-sqlite-sync-{n}", daemon=True).start()

    def request(self, path: str) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._ready:
            self._waiting.setdefault(path, []).append((loop, future))
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._waiting:
                    self._ready.wait()
                batch, self._waiting = self._waiting, {}
            done: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], OSError | None]]]
            done = {}
            for path, waiters in batch.items():
                error: OSError | None = None
                try:
                    _fdatasync_wal(path)
                except OSError as exc:  # handed to each waiter: its commit is not durable
                    error = exc
                for loop, future in waiters:
                    done.setdefault(loop, []).append((future, error))
            for loop, results in done.items():
                with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits
                    loop.call_soon_threadsafe(_resolve, results)


def _resolve(results: list[tuple[asyncio.Future[None], OSError | None]]) -> None:
    for future, error in results:
        if future.done():  # the waiter was cancelled
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


_syncer: _WalSyncer | None = None


async def sync_wal(path: str | Path) -> None:
    """Put every frame of ``path``'s WAL written so far on the disk, off the loop (D114).

    Raises:
        OSError: the sync failed (the disk is gone or full): the commits are not durable.
    """
    global _syncer  # noqa: PLW0603 - one syncer for the process, made on first use
    with _closer_lock:
        if _syncer is None:
            _syncer = _WalSyncer(SYNC_THREADS)
        syncer = _syncer
    await syncer.request(str(path))


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


class IdleConnection:
    """A store's connection that is closed when unused for a while and reopened on use.

    The first open applies the schema (:func:`open_database`); a reopen only connects and sets
    ``synchronous`` (and foreign keys) again: WAL mode is kept in the file. Closing checkpoints
    the WAL into the database and fsyncs it, so it only ever adds durability. Every use happens on
    the event loop between awaits (SQLite calls are synchronous), so a close never falls inside a
    transaction; one is refused all the same.

    Without a running event loop (a command-line tool, a synchronous test) nothing is timed: the
    connection stays open until :meth:`close`.

    Args:
        path: the database file.
        schema: applied on the first open.
        synchronous: the mode of the first open; :meth:`set_synchronous` changes it, and a
            reopened connection gets the current one.
        foreign_keys: enforce foreign keys (every open).
        idle: seconds unused before the connection closes; ``None``: never.

    Raises:
        sqlite3.Error, OSError: the first open failed (as :func:`open_database`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        schema: str = "",
        synchronous: Synchronous = "FULL",
        foreign_keys: bool = False,
        idle: float | None = IDLE_SECONDS,
    ) -> None:
        self.path = str(path)
        self.idle = idle
        self._synchronous: Synchronous = synchronous
        self._foreign_keys = foreign_keys
        # ``created``: this open made the file from its schema's template, so every table is
        # empty (D122); a store that writes its file only through its own methods knows it.
        self._conn: sqlite3.Connection | None
        self.created: bool
        self._conn, self.created = _open_database(
            path, schema=schema, synchronous=synchronous, foreign_keys=foreign_keys
        )
        self._used = True
        self._timer: asyncio.TimerHandle | None = None
        self.reopens = 0
        """How many times the connection was opened again after an idle close."""
        self.syncs = 0
        """How many times :meth:`sync` synced the WAL."""
        self._arm()

    @property
    def is_open(self) -> bool:
        """Whether the connection (and its file descriptors) is open now."""
        return self._conn is not None

    @property
    def synchronous(self) -> Synchronous:
        """The ``synchronous`` mode the connection commits with."""
        return self._synchronous

    def connection(self) -> sqlite3.Connection:
        """The open connection (reopened if an idle period closed it); marks it used.

        Raises:
            sqlite3.Error: the file cannot be opened again.
        """
        conn = self._conn
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            try:
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                if self._foreign_keys:
                    conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
            self.reopens += 1
        self._used = True
        if self._timer is None:
            self._arm()
        return conn

    def set_synchronous(self, mode: Synchronous) -> None:
        """Commit with ``mode`` from now on (this connection and any reopened one)."""
        if mode != self._synchronous:
            self.connection().execute(f"PRAGMA synchronous={mode}")
            self._synchronous = mode

    def sync(self) -> None:
        """Put every commit so far on the disk now, in the calling thread (D129).

        What ``synchronous=FULL`` does at a commit, for a connection that stays ``NORMAL``: the
        WAL is synced (``fdatasync``) after the commit, so the connection never switches its
        mode (a ``PRAGMA`` statement each way) between commits that wait and commits that do not.

        Raises:
            sqlite3.OperationalError: the sync failed (as a ``FULL`` commit's would): the commits
            are not durable.
        """
        self.syncs += 1
        if self.path == ":memory:":
            return
        try:
            _fdatasync_wal(self.path)
        except OSError as exc:
            raise sqlite3.OperationalError(f"disk I/O error: {exc}") from exc

    async def durable(self) -> None:
        """Wait until every commit so far is on the disk (D114): the WAL synced off the loop.

        For commits made with ``synchronous=NORMAL``; with ``FULL`` they are durable already.

        Raises:
            OSError: the sync failed.
        """
        if self.path != ":memory:":
            await sync_wal(self.path)

    def close(self) -> None:
        """Close the connection for good (a later :meth:`connection` opens it again)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _arm(self) -> None:
        if self.idle is None:
            return
        # Asked on every use while no timer runs: the look-up that answers None rather than
        # raising RuntimeError when there is no loop.
        loop = asyncio.events._get_running_loop()  # noqa: SLF001 - the non-raising form of get_running_loop
        if loop is None:  # no event loop: nothing times the connection, close() ends it
            return
        self._timer = loop.call_later(self.idle, self._expire)

    def _expire(self) -> None:
        self._timer = None
        conn = self._conn
        if conn is None:
            return
        if self._used or conn.in_transaction:
            self._used = False
            self._arm()  # used in the last period: look again after the next one
            return
        self._conn = None
        _close_off_loop(conn)
