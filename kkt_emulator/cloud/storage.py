"""Storage of the cloud stand-in: accounts, retail points, credentials, devices, documents.

:class:`Storage` is the one object the service holds; it is built from the table groups, on
SQLite (the embedded default) or PostgreSQL (D73)::

    db.Database                 which database, lock, nested transactions, announcements
    ├── db_sqlite               a SQLite file: WAL, BEGIN IMMEDIATE, sqlite3 → StorageError
    ├── db_postgres             PostgreSQL: dialect, advisory claims, NOTIFY/LISTEN, psycopg → StorageError
    ├── tables_directory        accounts, master credentials, retail points, associations, devices
    ├── tables_documents        documents, history, lifecycle and callback deadlines
    ├── tables_cashdocs         cash documents tills upload, cashier shifts, upload marks (B7)
    ├── service_auth_tables     account services and their generated pairs (O2, B2, O11)
    ├── orders_tables           orders of the orders API, their state and callbacks (O5, O9)
    └── tables_backoffice       catalogues, integrations, webhook events, the integration outbox

The rows are the frozen dataclasses of :mod:`kkt_emulator.cloud.records`, re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kkt_emulator.cloud.db import SCHEMA_VERSION, DatabaseTarget, StorageError, parse_target
from kkt_emulator.cloud.orders_tables import OrderTables
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
from kkt_emulator.cloud.service_auth_tables import ServiceCredentialTables
from kkt_emulator.cloud.tables_backoffice import BackofficeTables
from kkt_emulator.cloud.tables_cashdocs import CashDocTables
from kkt_emulator.cloud.tables_directory import DirectoryTables
from kkt_emulator.cloud.tables_documents import DocumentTables

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "SCHEMA_VERSION",
    "Account",
    "Association",
    "DatabaseTarget",
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
    "parse_target",
    "to_db_time",
]


class Storage(
    DirectoryTables,
    DocumentTables,
    CashDocTables,
    ServiceCredentialTables,
    OrderTables,
    BackofficeTables,
):
    """The cloud database: a path (``":memory:"`` for tests) or ``postgresql://`` URL (D74).

    Close it with :meth:`close`.

    Raises:
        ConfigError: from the constructor, for a URL of no supported database.
        StorageError: from the constructor and every method, for any driver failure.
    """

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        super().__init__(target)
        self._listen()  # only now: every cache an announcement may touch exists
