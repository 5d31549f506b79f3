"""SQLite storage of the cloud stand-in: accounts, retail points, credentials, devices, documents.

:class:`Storage` is the one object the service holds; it is built from the table groups::

    db.Database                 connection, lock, nested transactions, sqlite3 → StorageError
    ├── tables_directory        accounts, master credentials, retail points, associations, devices
    └── tables_documents        documents, history, lifecycle and callback deadlines

The rows are the frozen dataclasses of :mod:`kkt_emulator.cloud.records`, re-exported here.
"""

from __future__ import annotations

from kkt_emulator.cloud.db import SCHEMA_VERSION, StorageError
from kkt_emulator.cloud.records import (
    Account,
    Association,
    Device,
    DocumentFilter,
    DocumentRecord,
    DueTimer,
    HistoryEntry,
    MasterCredential,
    RetailPoint,
    TimerKind,
    from_db_time,
    to_db_time,
)
from kkt_emulator.cloud.tables_directory import DirectoryTables
from kkt_emulator.cloud.tables_documents import DocumentTables

__all__ = [
    "SCHEMA_VERSION",
    "Account",
    "Association",
    "Device",
    "DocumentFilter",
    "DocumentRecord",
    "DueTimer",
    "HistoryEntry",
    "MasterCredential",
    "RetailPoint",
    "Storage",
    "StorageError",
    "TimerKind",
    "from_db_time",
    "to_db_time",
]


class Storage(DirectoryTables, DocumentTables):
    """The cloud database. Open with a path (``":memory:"`` for throwaway tests) and :meth:`close`.

    Raises:
        StorageError: from the constructor and every method, for any ``sqlite3`` failure.
    """
