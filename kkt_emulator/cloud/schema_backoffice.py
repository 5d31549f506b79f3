"""The back office's tables in the cloud schema (``orders-and-backoffice.md`` §3.3, B8, B6).

:class:`~kkt_emulator.cloud.tables_backoffice.BackofficeTables` names them as its ``TABLES``, which
:class:`~kkt_emulator.cloud.db.Database` adds to the schema; SQLite's dialect, translated for PostgreSQL by :func:`kkt_emulator.cloud.db_postgres.postgres_schema`.

* ``catalog_items``: one row per catalogue entry of a retail point and catalogue type, keyed by
  the entry's code (B15); a deleted entry stays as a tombstone with the revision that deleted it,
  so a till's ``since`` pull learns of the deletion (B16).
* ``catalog_revisions``: the point's catalogue revision, raised once per applied change.
* ``integrations``: what the back office keeps of an account's integration services beside their
  switch (which is the service's, ``service_credentials``): the uuid and the webhook URL (B17).
* ``integration_events``: MoySklad webhook bodies as received (B8).
* ``feed_records``: the integration outbox (B6, B18, B19).
* ``onec_schedules``: an account's daily 1С report time (B23) and the instant its last report
  covered up to; ``onec_pending``: the shifts completed since then, waiting for that report.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BACKOFFICE_SCHEMA"]

BACKOFFICE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS catalog_items (
    retail_point_id TEXT NOT NULL,
    catalog_type TEXT NOT NULL,
    code TEXT NOT NULL,
    entity TEXT NOT NULL,
    rev INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (retail_point_id, catalog_type, code)
);
CREATE INDEX IF NOT EXISTS catalog_items_rev ON catalog_items (retail_point_id, rev);
CREATE TABLE IF NOT EXISTS catalog_revisions (
    retail_point_id TEXT PRIMARY KEY,
    rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS integrations (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    uuid TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE IF NOT EXISTS integration_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    account_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    received_at TEXT NOT NULL,
    content_type TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feed_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    retail_point_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_key TEXT NOT NULL,
    shift_id TEXT,
    shift_num INTEGER,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    url TEXT,
    first_at TEXT,
    next_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT,
    last_error TEXT,
    UNIQUE (retail_point_id, integration, source_key)
);
CREATE INDEX IF NOT EXISTS feed_records_due ON feed_records (next_at)
    WHERE next_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS feed_records_point ON feed_records (retail_point_id, seq);
CREATE TABLE IF NOT EXISTS onec_schedules (
    account_id TEXT PRIMARY KEY,
    daily_at TEXT NOT NULL,
    covered_to TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS onec_pending (
    shift_id TEXT PRIMARY KEY,
    retail_point_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    completed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS onec_pending_account ON onec_pending (account_id, completed_at);
"""
