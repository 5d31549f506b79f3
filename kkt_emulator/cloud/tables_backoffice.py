"""The cloud database's back-office tables: catalogues, integrations, webhook events, feed records.

The schema is :data:`~kkt_emulator.cloud.schema_backoffice.BACKOFFICE_SCHEMA`. A point's
catalogue revision is raised by ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` in the writing
transaction, which on PostgreSQL locks the point's revision row until the commit, so two cloud
processes applying changes to one point do it one after the other (D75).

Feed records are delivered by the cloud's timer task like ``responseURL`` callbacks: on
PostgreSQL each due record is claimed by an advisory lock in a key range of its own
(:data:`FEED_CLAIM_BASE` + ``seq``, apart from the documents' callback claims), so one delivery
attempt is made by one process at a time (D75, B19).

A daily 1С report (B23) is claimed by moving its schedule's ``covered_to`` forward with a
compare-and-set ``UPDATE … RETURNING`` (the row stays locked until the commit on PostgreSQL, as
D75's counters do), and its record is unique per point and local date like every record (B19).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.records import dumps, from_db_time, loads, opt_db_time, opt_time, to_db_time
from kkt_emulator.cloud.schema_backoffice import BACKOFFICE_SCHEMA

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kkt_emulator.cloud.db import DatabaseTarget, Row

__all__ = [
    "FEED_CLAIM_BASE",
    "BackofficeTables",
    "CatalogEntry",
    "FeedRecord",
    "Integration",
    "IntegrationEvent",
    "OnecSchedule",
]

FEED_CLAIM_BASE: Final = 0x40000000
"""Feed-delivery claims are ``FEED_CLAIM_BASE + seq``: documents' callback claims stay below."""
_HELD_RECHECK: Final = timedelta(seconds=2)


@dataclass(frozen=True)
class CatalogEntry:
    """One catalogue entry of a retail point; ``deleted`` entries are tombstones (B16)."""

    catalog_type: str
    code: str
    entity: dict[str, Any]
    rev: int
    deleted: bool


@dataclass(frozen=True)
class Integration:
    """An account's integration service as the back office keeps it (B17): its uuid and URL.

    Whether it is on is the service's switch (``service_credentials``, O11).
    """

    account_id: str
    name: str
    uuid: str
    webhook_url: str | None
    changed_at: datetime


@dataclass(frozen=True)
class IntegrationEvent:
    """A webhook body received for an integration (B8)."""

    seq: int
    uuid: str
    account_id: str
    integration: str
    received_at: datetime
    content_type: str | None
    body: str


@dataclass(frozen=True)
class FeedRecord:
    """One record of the integration outbox (B6, B18) with its delivery state (B19).

    ``source_key`` makes it unique per point and integration: ``shift:<shift id>`` for a shift's
    record, ``period:<from>/<to>:<n>`` for an on-demand export, ``daily:<UTC+3 date>`` for a
    daily 1С report (B23).
    """

    seq: int
    id: str
    retail_point_id: str
    integration: str
    kind: str
    source_key: str
    shift_id: str | None
    shift_num: int | None
    created_at: datetime
    payload: dict[str, Any]
    url: str | None
    first_at: datetime | None
    next_at: datetime | None
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class OnecSchedule:
    """An account's daily 1С report (B23): the local time ``HH:MM`` and how far it has covered."""

    account_id: str
    daily_at: str
    covered_to: datetime
    changed_at: datetime


def _schedule(row: Row) -> OnecSchedule:
    return OnecSchedule(
        row["account_id"],
        row["daily_at"],
        from_db_time(row["covered_to"]),
        from_db_time(row["changed_at"]),
    )


def _entry(row: Row) -> CatalogEntry:
    return CatalogEntry(
        row["catalog_type"],
        row["code"],
        loads(row["entity"]),
        int(row["rev"]),
        bool(row["deleted"]),
    )


def _integration(row: Row) -> Integration:
    return Integration(
        row["account_id"],
        row["name"],
        row["uuid"],
        row["webhook_url"],
        from_db_time(row["changed_at"]),
    )


def _event(row: Row) -> IntegrationEvent:
    return IntegrationEvent(
        int(row["seq"]),
        row["uuid"],
        row["account_id"],
        row["integration"],
        from_db_time(row["received_at"]),
        row["content_type"],
        row["body"],
    )


def _feed(row: Row) -> FeedRecord:
    return FeedRecord(
        seq=int(row["seq"]),
        id=row["id"],
        retail_point_id=row["retail_point_id"],
        integration=row["integration"],
        kind=row["kind"],
        source_key=row["source_key"],
        shift_id=row["shift_id"],
        shift_num=None if row["shift_num"] is None else int(row["shift_num"]),
        created_at=from_db_time(row["created_at"]),
        payload=loads(row["payload"]),
        url=row["url"],
        first_at=opt_time(row["first_at"]),
        next_at=opt_time(row["next_at"]),
        attempts=int(row["attempts"]),
        delivered_at=opt_time(row["delivered_at"]),
        last_error=row["last_error"],
    )


class BackofficeTables(Database):
    """Catalogues, integrations, webhook events and the integration outbox."""

    TABLES = BACKOFFICE_SCHEMA  # added to the schema by Database (no line in db.SCHEMA)

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        super().__init__(target)
        self._catalog_revisions: dict[str, int] = self._cache()  # by point (every heartbeat, B16)
        self._feeds_claimed: set[int] = set()
        self._feeds_held_elsewhere: dict[int, datetime] = {}
        self._onec_schedules: dict[str, dict[str, OnecSchedule]] = self._cache()  # every pass

    def _forget(self, kind: str, key: str) -> None:
        """Drop the cached revision of a point whose catalogue another process changed (D76)."""
        super()._forget(kind, key)
        if kind == "catalog":
            self._catalog_revisions.pop(key, None)
        elif kind == "onec":
            self._onec_schedules.clear()

    # -- catalogues --------------------------------------------------------------------------------

    def catalog_revision(self, point_id: str) -> int:
        """The point's catalogue revision (0: nothing was ever changed); cached (D59, D76)."""
        cached = self._catalog_revisions.get(point_id)
        if cached is not None:
            return cached
        with self._lock:  # read and fill at once, so that no write falls in between
            row = self._one(
                "SELECT rev FROM catalog_revisions WHERE retail_point_id = ?", (point_id,)
            )
            rev = self._catalog_revisions[point_id] = 0 if row is None else int(row["rev"])
            return rev

    def next_catalog_revision(self, point_id: str) -> int:
        """Raise the point's revision by one and return it (inside the writing transaction)."""
        with self._lock:
            self._catalog_revisions.pop(point_id, None)
            self._announce("catalog", point_id)
            row = self._execute(
                "INSERT INTO catalog_revisions (retail_point_id, rev) VALUES (?, 1)"
                " ON CONFLICT (retail_point_id) DO UPDATE SET rev = catalog_revisions.rev + 1"
                " RETURNING rev",
                (point_id,),
            ).fetchone()
        return int(row["rev"])

    def get_catalog_entry(self, point_id: str, catalog_type: str, code: str) -> CatalogEntry | None:
        """One entry (tombstones included), if any."""
        row = self._one(
            "SELECT * FROM catalog_items WHERE retail_point_id = ? AND catalog_type = ? AND code = ?",
            (point_id, catalog_type, code),
        )
        return None if row is None else _entry(row)

    def put_catalog_entry(
        self, point_id: str, catalog_type: str, code: str, entity: dict[str, Any], rev: int
    ) -> None:
        """Insert or replace an entry (a tombstone comes back to life)."""
        self._execute(
            "INSERT INTO catalog_items (retail_point_id, catalog_type, code, entity, rev, deleted)"
            " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (retail_point_id, catalog_type, code)"
            " DO UPDATE SET entity = excluded.entity, rev = excluded.rev, deleted = 0",
            (point_id, catalog_type, code, dumps(entity), rev),
        )

    def delete_catalog_entry(self, point_id: str, catalog_type: str, code: str, rev: int) -> bool:
        """Make a live entry a tombstone; whether there was one."""
        cursor = self._execute(
            "UPDATE catalog_items SET deleted = 1, rev = ? WHERE retail_point_id = ?"
            " AND catalog_type = ? AND code = ? AND deleted = 0 RETURNING code",
            (rev, point_id, catalog_type, code),
        )
        return cursor.fetchone() is not None

    def clear_catalog(self, point_id: str, catalog_type: str, rev: int) -> int:
        """Make every live entry of one type a tombstone; how many there were."""
        rows = self._execute(
            "UPDATE catalog_items SET deleted = 1, rev = ? WHERE retail_point_id = ?"
            " AND catalog_type = ? AND deleted = 0 RETURNING code",
            (rev, point_id, catalog_type),
        ).fetchall()
        return len(rows)

    def list_catalog(
        self, point_id: str, catalog_type: str, start: int, count: int
    ) -> tuple[list[CatalogEntry], int]:
        """Live entries of one type ordered by code, one page, and how many there are in all."""
        total = self._one(
            "SELECT COUNT(*) AS n FROM catalog_items WHERE retail_point_id = ? AND catalog_type = ?"
            " AND deleted = 0",
            (point_id, catalog_type),
        )
        rows = self._all(
            "SELECT * FROM catalog_items WHERE retail_point_id = ? AND catalog_type = ?"
            " AND deleted = 0 ORDER BY code LIMIT ? OFFSET ?",
            (point_id, catalog_type, count, start),
        )
        return [_entry(r) for r in rows], 0 if total is None else int(total["n"])

    def catalog_since(self, point_id: str, since: int) -> list[CatalogEntry]:
        """Entries changed after revision ``since`` (tombstones too); live entries only for 0."""
        if since <= 0:
            rows = self._all(
                "SELECT * FROM catalog_items WHERE retail_point_id = ? AND deleted = 0"
                " ORDER BY catalog_type, code",
                (point_id,),
            )
        else:
            rows = self._all(
                "SELECT * FROM catalog_items WHERE retail_point_id = ? AND rev > ?"
                " ORDER BY rev, catalog_type, code",
                (point_id, since),
            )
        return [_entry(r) for r in rows]

    # -- integrations ------------------------------------------------------------------------------

    def get_integration(self, account_id: str, name: str) -> Integration | None:
        """The account's integration of this name, if it was ever set."""
        row = self._one(
            "SELECT * FROM integrations WHERE account_id = ? AND name = ?"  # noqa: S608 - a constant lock clause
            + self._for_update(),
            (account_id, name),
        )
        return None if row is None else _integration(row)

    def get_integration_by_uuid(self, uuid: str) -> Integration | None:
        """The integration with this uuid, if any."""
        row = self._one("SELECT * FROM integrations WHERE uuid = ?", (uuid,))
        return None if row is None else _integration(row)

    def list_integrations(self, account_id: str) -> list[Integration]:
        """The account's integrations that were ever set."""
        rows = self._all(
            "SELECT * FROM integrations WHERE account_id = ? ORDER BY name", (account_id,)
        )
        return [_integration(r) for r in rows]

    def put_integration(self, integration: Integration) -> None:
        """Store an integration's URL and uuid."""
        self._execute(
            "INSERT INTO integrations (account_id, name, uuid, webhook_url, changed_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, name) DO UPDATE SET"
            " webhook_url = excluded.webhook_url, changed_at = excluded.changed_at",
            (
                integration.account_id,
                integration.name,
                integration.uuid,
                integration.webhook_url,
                to_db_time(integration.changed_at),
            ),
        )

    def add_integration_event(
        self, integration: Integration, at: datetime, content_type: str | None, body: str
    ) -> int:
        """Record a webhook body; its number."""
        row = self._execute(
            "INSERT INTO integration_events (uuid, account_id, integration, received_at,"
            " content_type, body) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            (
                integration.uuid,
                integration.account_id,
                integration.name,
                to_db_time(at),
                content_type,
                body,
            ),
        ).fetchone()
        return int(row["seq"])

    def list_integration_events(self, account_id: str, limit: int = 100) -> list[IntegrationEvent]:
        """The account's recorded webhook bodies, newest first."""
        rows = self._all(
            "SELECT * FROM integration_events WHERE account_id = ? ORDER BY seq DESC LIMIT ?",
            (account_id, limit),
        )
        return [_event(r) for r in rows]

    # -- the integration outbox --------------------------------------------------------------------

    def insert_feed_record(self, record: FeedRecord) -> bool:
        """Store a new record; ``False`` if the point already has one for its source (B19)."""
        row = self._execute(
            "INSERT INTO feed_records (id, retail_point_id, integration, kind, source_key,"
            " shift_id, shift_num, created_at, payload, url, first_at, next_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (retail_point_id, integration, source_key) DO NOTHING RETURNING seq",
            (
                record.id,
                record.retail_point_id,
                record.integration,
                record.kind,
                record.source_key,
                record.shift_id,
                record.shift_num,
                to_db_time(record.created_at),
                dumps(record.payload),
                record.url,
                opt_db_time(record.first_at),
                opt_db_time(record.next_at),
            ),
        ).fetchone()
        if row is not None:
            self._announce("change", record.retail_point_id)  # wakes the other timers (D76)
        return row is not None

    def count_period_exports(self, point_id: str) -> int:
        """How many on-demand exports the point has (numbers the next one)."""
        row = self._one(
            "SELECT COUNT(*) AS n FROM feed_records WHERE retail_point_id = ? AND kind = 'period'",
            (point_id,),
        )
        return 0 if row is None else int(row["n"])

    def get_feed_record(self, record_id: str) -> FeedRecord | None:
        """A record by its id."""
        row = self._one(
            "SELECT * FROM feed_records WHERE id = ?"  # noqa: S608 - a constant lock clause
            + self._for_update(),
            (record_id,),
        )
        return None if row is None else _feed(row)

    def list_feed_records(
        self, point_id: str, integration: str | None, start: int, count: int
    ) -> tuple[list[FeedRecord], int]:
        """The point's records, oldest first, one page, and how many match in all."""
        where, params = "retail_point_id = ?", [point_id]
        if integration is not None:
            where += " AND integration = ?"
            params.append(integration)
        total = self._one(f"SELECT COUNT(*) AS n FROM feed_records WHERE {where}", params)  # noqa: S608 - constant clauses
        rows = self._all(
            f"SELECT * FROM feed_records WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",  # noqa: S608 - constant clauses
            (*params, count, start),
        )
        return [_feed(r) for r in rows], 0 if total is None else int(total["n"])

    def set_feed_delivery(
        self,
        seq: int,
        *,
        first_at: datetime | None,
        next_at: datetime | None,
        attempts: int,
        delivered_at: datetime | None,
        last_error: str | None,
    ) -> None:
        """Write a record's delivery state."""
        self._execute(
            "UPDATE feed_records SET first_at = ?, next_at = ?, attempts = ?, delivered_at = ?,"
            " last_error = ? WHERE seq = ?",
            (
                opt_db_time(first_at),
                opt_db_time(next_at),
                attempts,
                opt_db_time(delivered_at),
                last_error,
                seq,
            ),
        )
        self._announce("change", "")

    def set_feed_url(self, seq: int, url: str | None) -> None:
        """Point a record at another webhook URL (a resend to the integration's current one)."""
        self._execute("UPDATE feed_records SET url = ? WHERE seq = ?", (url, seq))

    def due_feed_records(self, now: datetime, in_flight: Sequence[int] = ()) -> list[FeedRecord]:
        """Records whose next attempt is due, earliest first, each claimed for this process.

        A record another process holds is passed over and looked at again after a moment (that
        process may have died, and then the database freed its claim). :meth:`release_feed`
        gives a claim back.
        """
        with self._lock:
            rows = self._all(
                "SELECT seq FROM feed_records WHERE next_at IS NOT NULL AND next_at <= ?"
                " ORDER BY next_at, seq LIMIT 100",
                (to_db_time(now),),
            )
            claimed: list[FeedRecord] = []
            for row in rows:
                seq = int(row["seq"])
                if seq in in_flight:
                    continue
                if seq not in self._feeds_claimed:
                    if not self._conn.try_claim(FEED_CLAIM_BASE + seq):
                        self._feeds_held_elsewhere[seq] = now
                        continue
                    self._feeds_claimed.add(seq)
                self._feeds_held_elsewhere.pop(seq, None)
                fresh = self._one("SELECT * FROM feed_records WHERE seq = ?", (seq,))
                if fresh is None or fresh["next_at"] is None or fresh["next_at"] > to_db_time(now):
                    self.release_feed(seq)  # delivered by another process meanwhile
                    continue
                claimed.append(_feed(fresh))
            return claimed

    def release_feed(self, seq: int) -> None:
        """Give back the claim :meth:`due_feed_records` took."""
        with self._lock:
            if seq in self._feeds_claimed:
                self._feeds_claimed.discard(seq)
                self._conn.release(FEED_CLAIM_BASE + seq)

    def next_feed_deadline(self, in_flight: Sequence[int] = ()) -> datetime | None:
        """The earliest next attempt of a record not in flight (held elsewhere: a moment later)."""
        rows = self._all(
            "SELECT seq, next_at FROM feed_records WHERE next_at IS NOT NULL"
            " ORDER BY next_at, seq LIMIT ?",
            (len(in_flight) + len(self._feeds_held_elsewhere) + 1,),
        )
        best: datetime | None = None
        for row in rows:
            seq = int(row["seq"])
            if seq in in_flight:
                continue
            due = from_db_time(row["next_at"])
            tried = self._feeds_held_elsewhere.get(seq)
            if tried is not None:
                due = max(due, tried + _HELD_RECHECK)
            best = due if best is None else min(best, due)
        return best

    # -- the daily 1С report (B23) -----------------------------------------------------------------

    def onec_schedules(self) -> dict[str, OnecSchedule]:
        """Every account's 1С schedule by account; cached (the timer asks on every pass, D61)."""
        cached = self._onec_schedules.get("all")
        if cached is not None:
            return cached
        with self._lock:  # read and fill at once, so that no write falls in between
            rows = self._all("SELECT * FROM onec_schedules ORDER BY account_id")
            found = self._onec_schedules["all"] = {r["account_id"]: _schedule(r) for r in rows}
            return found

    def get_onec_schedule(self, account_id: str) -> OnecSchedule | None:
        """The account's 1С schedule, read from the database (not the cache)."""
        row = self._one("SELECT * FROM onec_schedules WHERE account_id = ?", (account_id,))
        return None if row is None else _schedule(row)

    def _schedules_changed(self) -> None:
        with self._lock:
            self._onec_schedules.clear()
            self._announce("onec")
            self._announce("change", "")  # wakes the other timers (D76)

    def put_onec_schedule(self, schedule: OnecSchedule) -> None:
        """Set the account's daily time; ``covered_to`` moves only for a new schedule."""
        self._execute(
            "INSERT INTO onec_schedules (account_id, daily_at, covered_to, changed_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET"
            " daily_at = excluded.daily_at, changed_at = excluded.changed_at",
            (
                schedule.account_id,
                schedule.daily_at,
                to_db_time(schedule.covered_to),
                to_db_time(schedule.changed_at),
            ),
        )
        self._schedules_changed()

    def delete_onec_schedule(self, account_id: str) -> bool:
        """Remove the account's schedule; whether it had one."""
        row = self._execute(
            "DELETE FROM onec_schedules WHERE account_id = ? RETURNING account_id", (account_id,)
        ).fetchone()
        self._schedules_changed()
        return row is not None

    def advance_onec_schedule(self, account_id: str, covered_from: datetime, to: datetime) -> bool:
        """Claim the report ending at ``to``: move ``covered_to`` there if it still is ``covered_from``.

        Exactly one caller wins, in one process or several (the row is locked until the commit).
        """
        row = self._execute(
            "UPDATE onec_schedules SET covered_to = ? WHERE account_id = ? AND covered_to = ?"
            " RETURNING account_id",
            (to_db_time(to), account_id, to_db_time(covered_from)),
        ).fetchone()
        if row is not None:
            self._schedules_changed()
        return row is not None

    def add_onec_pending(self, shift_id: str, point_id: str, account_id: str, at: datetime) -> None:
        """Keep a completed shift for the account's next daily report (once per shift)."""
        self._execute(
            "INSERT INTO onec_pending (shift_id, retail_point_id, account_id, completed_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (shift_id) DO NOTHING",
            (shift_id, point_id, account_id, to_db_time(at)),
        )

    def onec_pending(self, account_id: str) -> list[tuple[str, str]]:
        """The account's shifts waiting for a daily report: (point, shift), in completion order."""
        rows = self._all(
            "SELECT retail_point_id, shift_id FROM onec_pending WHERE account_id = ?"  # noqa: S608 - a constant lock clause
            " ORDER BY completed_at, shift_id" + self._for_update(),
            (account_id,),
        )
        return [(r["retail_point_id"], r["shift_id"]) for r in rows]

    def drop_onec_pending(self, shift_ids: Sequence[str]) -> None:
        """Forget shifts a report (or a per-shift record) now covers."""
        for shift_id in shift_ids:
            self._execute("DELETE FROM onec_pending WHERE shift_id = ?", (shift_id,))
