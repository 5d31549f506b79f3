"""The back office's operations: catalogues, integration switches, the MoySklad webhook, feeds.

``orders-and-backoffice.md`` §3.3: the catalogue of each retail point and its revision (B8, B15,
B16), the cabinet's back-office services per point (B17), the MoySklad webhook (B8), and the
integration outbox: one record per enabled integration when a shift is complete (B6, B18),
delivered to the integration's webhook URL with the callback rules D43/D44 (B19); with a daily
1С time set, the ``onec`` record is one a day per point instead (B23).

Every method runs its storage work in one transaction; errors are
:class:`~kkt_emulator.errors.CloudError` and :class:`~kkt_emulator.errors.ValidationError`, as in
the other operation groups.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from kkt_emulator.cashdocs import SHIFT_DOC_TYPES
from kkt_emulator.cloud.backoffice_query import parse_q, parse_sort
from kkt_emulator.cloud.cashdoc_ops import CashDocOperations, cashdoc_view, shift_object
from kkt_emulator.cloud.catalog import CATALOG_TYPES, check_entity, entry_key, parse_changes
from kkt_emulator.cloud.feeds import FEED_BUILDERS, INTEGRATION_TITLES, INTEGRATIONS, onec_payload
from kkt_emulator.cloud.lifecycle import CALLBACK_WINDOW, callback_offset
from kkt_emulator.cloud.service_auth import ServiceCredentialOperations
from kkt_emulator.cloud.tables_backoffice import FeedRecord, Integration, OnecSchedule
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery
from kkt_emulator.cloud.views import format_time, opt_format
from kkt_emulator.errors import CloudError, ServiceApiError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kkt_emulator.cloud.catalog import CatalogCommand
    from kkt_emulator.cloud.storage import RetailPoint
    from kkt_emulator.cloud.tables_backoffice import CatalogEntry, IntegrationEvent
    from kkt_emulator.cloud.tables_cashdocs import CashShiftRecord
    from kkt_emulator.cloud.views import JsonObject

__all__ = [
    "MAX_PAGE",
    "ONEC_ZONE",
    "BackofficeOperations",
    "FeedDelivery",
    "feed_envelope",
    "next_daily",
    "parse_daily_at",
]

MAX_PAGE: Final = 1000
"""The largest ``count`` of a listing (B3)."""
_MAX_URL: Final = 2048
ONEC_ZONE: Final = timezone(timedelta(hours=3))
"""The zone of the daily 1С time (B23): UTC+3, the tills' default local time."""
_DAILY_AT: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


def parse_daily_at(value: str) -> str:
    """A daily 1С time ``HH:MM`` (B23), checked; 400 naming ``dailyAt`` otherwise."""
    if not _DAILY_AT.fullmatch(value):
        raise ValidationError(
            "dailyAt", f"must be a time of day HH:MM, 00:00–23:59 (UTC+3): {value!r}"
        )
    return value


def next_daily(after: datetime, daily_at: str) -> datetime:
    """The first instant strictly after ``after`` whose UTC+3 time of day is ``daily_at``."""
    hour, minute = (int(part) for part in daily_at.split(":"))
    local = after.astimezone(ONEC_ZONE)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= local:
        due += timedelta(days=1)
    return due.astimezone(UTC)


@dataclass(frozen=True)
class FeedDelivery:
    """One delivery attempt of a feed record to its webhook (B19): POST the envelope as JSON."""

    seq: int
    record_id: str
    retail_point_id: str
    integration: str
    url: str
    body: JsonObject
    due_at: datetime


def feed_envelope(record: FeedRecord) -> JsonObject:
    """The record as the cabinet lists it and the webhook receives it (orders-and-backoffice.md §4.5)."""
    return {
        "id": record.id,
        "integration": record.integration,
        "retailPointId": record.retail_point_id,
        "kind": record.kind,
        "shiftId": record.shift_id,
        "shiftNum": record.shift_num,
        "createdAt": format_time(record.created_at),
        "payload": record.payload,
    }


def _feed_view(record: FeedRecord) -> JsonObject:
    view = feed_envelope(record)
    view["delivery"] = {
        "url": record.url,
        "attempts": record.attempts,
        "firstAttemptAt": opt_format(record.first_at),
        "nextAttemptAt": opt_format(record.next_at),
        "deliveredAt": opt_format(record.delivered_at),
        "lastError": record.last_error,
        "state": _delivery_state(record),
    }
    return view


def _delivery_state(record: FeedRecord) -> str:
    if record.delivered_at is not None:
        return "delivered"
    if record.url is None:
        return "no_url"
    if record.next_at is None:
        return "gave_up"
    return "pending"


def _first_due(schedule: OnecSchedule) -> datetime:
    """The schedule's next report: its time after the last report or the last change (B23)."""
    return next_daily(max(schedule.covered_to, schedule.changed_at), schedule.daily_at)


def _entry_view(entry: CatalogEntry) -> JsonObject:
    return dict(entry.entity)


def _check_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if len(url) > _MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("webhookUrl", "must be an http(s) URL with a host")
    return url


def _page(start: int, count: int) -> None:
    if start < 0:
        raise ValidationError("start", "must be ≥ 0")
    if not 1 <= count <= MAX_PAGE:
        raise ValidationError("count", f"must be 1–{MAX_PAGE}")


class BackofficeOperations(CashDocOperations, ServiceCredentialOperations):
    """Catalogues, integrations, webhook events, the integration outbox and the v1 reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # B19: the shift's records are written in the transaction that completes it.
        self.storage.on_shift_completed(self._shift_completed)

    def _shift_completed(self, shift: CashShiftRecord) -> None:
        """The "shift completed" listener (B12): one feed record per enabled integration."""
        documents = [r.document for r in self.storage.shift_documents(shift.id)]
        view = shift_object(shift, documents, self.clock.now())
        self.record_shift_feeds(shift.retail_point_id, view, documents)

    # -- back-office reads (B1–B4) -----------------------------------------------------------------

    def backoffice_point(self, point: RetailPoint) -> JsonObject:
        """A retail point as ``GET /api/v1/retail-point/{rp}`` shows it (orders-and-backoffice.md §3.2, B20)."""
        devices = self.storage.list_devices(point.id)
        state, _ = self.fn_state(point)
        kkm = None
        if devices:
            device = devices[0]
            kkm = {
                "serialNo": device.till_serial,
                "modelName": device.model,
                "fiscalInfo": {"fnNo": device.fn_serial or None},
            }
        return {
            "id": point.id,
            "name": point.name,
            "address": point.address,
            "fullAddress": point.address,
            "inn": point.inn,
            "phone": None,
            "timeZoneId": None,
            "type": "RETAIL",
            "kktStatus": state.value,
            "kkmInfo": kkm,
            "settings": {
                "internetDocsEnabled": point.internet_docs_enabled,
                "defaultTaxMode": point.default_tax_mode.value,
            },
        }

    def backoffice_points(self, account_id: str) -> list[JsonObject]:
        """``GET /api/v1/retail-points``: the account's points, oldest first (a plain array)."""
        return [
            self.backoffice_point(p)
            for p in self.storage.list_points()
            if p.account_id == account_id and not p.deleted
        ]

    def backoffice_shifts(self, point_id: str, start: int, count: int) -> JsonObject:
        """``GET …/shift``: every shift of the point, newest first, ``{data, pos, total_count}``."""
        _page(start, count)
        shifts = self.storage.list_shifts(point_id)
        page = shifts[start : start + count]
        return {
            "data": [self.shift_view(s) for s in page],
            "pos": start,
            "total_count": len(shifts),
        }

    def backoffice_shift_cashdocs(self, point_id: str, shift_id: str) -> list[JsonObject]:
        """``GET …/shift/{id}/cashdoc``: the shift's documents, full, in upload order (array)."""
        shift = self.storage.get_shift(shift_id)
        if shift is None or shift.retail_point_id != point_id:
            raise CloudError(404, f"Shift not found: {shift_id}")
        return [
            cashdoc_view(r)
            for r in self.storage.shift_documents(shift_id)
            if r.doc_type not in SHIFT_DOC_TYPES
        ]

    def backoffice_shift_cashdoc(self, point_id: str, shift_id: str, doc_id: str) -> JsonObject:
        """``GET …/shift/{id}/cashdoc/{doc}``: one document of the shift."""
        record = self.storage.get_cashdoc(doc_id)
        if (
            record is None
            or record.retail_point_id != point_id
            or record.shift_id != shift_id
            or record.doc_type in SHIFT_DOC_TYPES
        ):
            raise CloudError(404, f"Cash document not found: {doc_id}")
        return cashdoc_view(record)

    def backoffice_cashdocs(
        self,
        point_id: str,
        *,
        q: str | None,
        sort_field: str | None,
        sort_direction: str | None,
        start: int,
        count: int,
    ) -> JsonObject:
        """``GET …/cashdocs`` (B3): filtered, sorted, one page, ``{data, pos, total_count}``."""
        _page(start, count)
        field, descending = parse_sort(sort_field, sort_direction)
        query = CashDocQuery(
            point_id,
            sort_field=field,
            descending=descending,
            start=start,
            count=count,
            **parse_q(q),
        )
        records, total = self.cash_documents(query)
        return {"data": [cashdoc_view(r) for r in records], "pos": start, "total_count": total}

    def backoffice_moneydocs(self, point_id: str, start: int, count: int) -> JsonObject:
        """``GET …/moneydocs``: cash in and out, oldest first, ``{data, pos, total_count}``."""
        _page(start, count)
        records, total = self.money_documents(point_id, start=start, count=count)
        return {"data": [cashdoc_view(r) for r in records], "pos": start, "total_count": total}

    def onec_export(self, point_id: str, period_from: datetime, period_to: datetime) -> JsonObject:
        """«Выгрузить за период» (B6): a ``onec`` record of the documents begun in the period.

        The period is ``[period_from, period_to)``; the record is delivered like a shift's.
        """
        records, _ = self.cash_documents(
            CashDocQuery(point_id, begin_from=period_from, begin_to=period_to, count=None)
        )
        return self.record_onec_export(
            point_id, period_from, period_to, [r.document for r in records]
        )

    # -- catalogues (B8, B15, B16) -----------------------------------------------------------------

    def _catalog_point(self, point_id: str) -> None:
        self._point(point_id)

    @staticmethod
    def _catalog_type(value: str) -> str:
        if value not in CATALOG_TYPES:
            raise CloudError(404, f"Unknown catalogue type: {value}")
        return value

    def catalog_page(self, point_id: str, catalog_type: str, start: int, count: int) -> JsonObject:
        """``GET …/catalog/{TYPE}``: ``{data, pos, total_count}``, entries ordered by code (B3)."""
        self._catalog_point(point_id)
        kind = self._catalog_type(catalog_type)
        _page(start, count)
        entries, total = self.storage.list_catalog(point_id, kind, start, count)
        return {"data": [_entry_view(e) for e in entries], "pos": start, "total_count": total}

    def put_catalog(self, point_id: str, entities: Any) -> JsonObject:
        """``POST``/``PUT …/catalog``: upsert one entry or a list of them, in one revision."""
        self._catalog_point(point_id)
        items = entities if isinstance(entities, list) else [entities]
        if not items:
            raise ValidationError("body", "no catalogue entry given")
        checked = [
            check_entity(e, f"[{i}]" if isinstance(entities, list) else "body")
            for i, e in enumerate(items)
        ]
        with self.storage.transaction():
            rev = self.storage.next_catalog_revision(point_id)
            for entity in checked:
                kind = entity["catalogType"]
                self.storage.put_catalog_entry(point_id, kind, entity[entry_key(kind)], entity, rev)
        self.log.info(
            "catalog_changed", retail_point_id=point_id, revision=rev, entries=len(checked)
        )
        return {"revision": rev, "applied": len(checked)}

    def apply_catalog_changes(self, point_id: str, text: str) -> JsonObject:
        """``POST …/catalog-changes``: the whole batch in order, in one transaction (B8, B16).

        Parsed and checked before anything is written; a bad batch changes nothing (400 naming
        the line). The batch raises the revision once.
        """
        self._catalog_point(point_id)
        commands = parse_changes(text)
        with self.storage.transaction():
            rev = self._apply_commands(point_id, commands)
        self.log.info(
            "catalog_changes_applied",
            retail_point_id=point_id,
            revision=rev,
            commands=len(commands),
        )
        return {"revision": rev, "applied": len(commands)}

    def _apply_commands(self, point_id: str, commands: Sequence[CatalogCommand]) -> int:
        rev = self.storage.next_catalog_revision(point_id)
        for command in commands:
            if command.verb == "clear":
                for kind in command.catalogs:
                    self.storage.clear_catalog(point_id, kind, rev)
            elif command.verb == "delete":
                self.storage.delete_catalog_entry(point_id, command.catalog_type, command.code, rev)
            else:
                entity = command.entity
                assert entity is not None
                kind = command.catalog_type
                self.storage.put_catalog_entry(point_id, kind, entity[entry_key(kind)], entity, rev)
        return rev

    def catalog_revision(self, point_id: str) -> int:
        """The point's catalogue revision (the heartbeat answer carries it, B16)."""
        return self.storage.catalog_revision(point_id)

    def catalog_for_till(self, point_id: str, since: int) -> JsonObject:
        """``GET /api/device/v1/catalog?since=REV`` (B16): what changed after ``since``.

        ``full`` is true for ``since`` 0 (every live entry; the till replaces its copy), else the
        entries changed since, tombstones as ``deleted: true``. ``revision`` is what the till
        asks from next time. A ``since`` beyond the point's revision (another cloud's database,
        a restored till) gets the full catalogue.
        """
        with self.storage.transaction():  # one snapshot: the revision and its entries together
            revision = self.storage.catalog_revision(point_id)
            full = since <= 0 or since > revision
            entries = self.storage.catalog_since(point_id, 0 if full else since)
        return {
            "revision": revision,
            "full": full,
            "entries": [
                {
                    "catalogType": e.catalog_type,
                    "code": e.code,
                    "deleted": e.deleted,
                    "entity": None if e.deleted else e.entity,
                }
                for e in entries
            ],
        }

    # -- integrations (B17) ------------------------------------------------------------------------

    @staticmethod
    def _integration_name(name: str) -> str:
        if name not in INTEGRATIONS:
            raise CloudError(404, f"Unknown integration: {name} ({', '.join(INTEGRATIONS)})")
        return name

    def _integration_view(
        self, account_id: str, name: str, found: Integration | None
    ) -> JsonObject:
        return {
            "name": name,
            "title": INTEGRATION_TITLES[name],
            "accountId": account_id,
            "enabled": self.service_enabled(account_id, name),
            "uuid": found.uuid if found else None,
            "webhookUrl": found.webhook_url if found else None,
            "moyskladWebhookPath": (
                f"/api/v1/moysklad/webhook/{found.uuid}" if found and name == "moysklad" else None
            ),
            "changedAt": format_time(found.changed_at) if found else None,
            **self._daily_view(account_id, name),
        }

    def _daily_view(self, account_id: str, name: str) -> JsonObject:
        """``dailyAt`` (UTC+3 ``HH:MM``, ``null``: per shift) and ``nextDailyAt`` of 1С (B23)."""
        schedule = self.storage.onec_schedules().get(account_id) if name == "onec" else None
        if schedule is None:
            return {"dailyAt": None, "nextDailyAt": None}
        return {
            "dailyAt": schedule.daily_at,
            "nextDailyAt": format_time(_first_due(schedule)),
        }

    def integrations(self, point_id: str) -> list[JsonObject]:
        """The four services of the point's account (☐ МойСклад ☐ Обмен с 1С ☐ Моё Дело ☐ Контур.Эльба)."""
        account_id = self._point(point_id).account_id
        found = {i.name: i for i in self.storage.list_integrations(account_id)}
        return [self._integration_view(account_id, n, found.get(n)) for n in INTEGRATIONS]

    def set_integration(
        self,
        point_id: str,
        name: str,
        *,
        enabled: bool | None,
        webhook_url: str | None,
        url_given: bool,
        daily_at: str | None = None,
        daily_given: bool = False,
    ) -> JsonObject:
        """Switch a service of the point's account on or off and set its webhook URL (B17).

        The switch is the account service's (O11), so the service's Basic pair works exactly
        while it is on; the uuid is made the first time and kept. Switching МойСклад on (from
        off) empties the ``INVENTORY`` catalogue of every point of the account in the same
        transaction (B8: MoySklad is the master of the goods and sends them again).
        ``daily_at`` (with ``daily_given``) sets 1С's daily report time or, ``None``, returns it
        to a record per shift (B23).
        """
        account_id = self._point(point_id).account_id
        name = self._integration_name(name)
        url = _check_url(webhook_url) if url_given else None
        if daily_given and name != "onec":
            raise ValidationError("dailyAt", "only «Обмен с 1С» (onec) has a daily report time")
        daily = parse_daily_at(daily_at) if daily_given and daily_at is not None else None
        now = self.clock.now()
        cleared: list[str] = []
        with self.storage.transaction():
            if daily_given:
                self._set_daily(account_id, daily, now)
            self.storage.lock_point(point_id)
            was_on = self.service_enabled(account_id, name)
            old = self.storage.get_integration(account_id, name)
            new = Integration(
                account_id=account_id,
                name=name,
                uuid=old.uuid if old else str(uuid.uuid4()),
                webhook_url=url if url_given else (old.webhook_url if old else None),
                changed_at=now,
            )
            self.storage.put_integration(new)
            if enabled is not None and enabled != was_on:
                _, cleared = self._switch(account_id, name, enabled=enabled)
        self.log.info(
            "integration_set",
            account_id=account_id,
            integration=name,
            enabled=self.service_enabled(account_id, name),
            inventory_cleared=cleared,
        )
        if daily_given:
            self.on_change(point_id)  # the timer task's next deadline may have moved (B23)
        return self._integration_view(account_id, name, new)

    # -- the daily 1С report (B23) -----------------------------------------------------------------

    def _set_daily(self, account_id: str, daily_at: str | None, now: datetime) -> None:
        """Set the daily time (a new schedule covers from now) or unset it (inside a transaction).

        Unset, the shifts still waiting for a daily report get their per-shift records now, so
        no shift is left out of 1С.
        """
        if daily_at is not None:
            self.storage.put_onec_schedule(OnecSchedule(account_id, daily_at, now, now))
            self.log.info("onec_daily_set", account_id=account_id, daily_at=daily_at)
            return
        if not self.storage.delete_onec_schedule(account_id):
            return
        pending = self.storage.onec_pending(account_id)
        self.storage.drop_onec_pending([shift_id for _, shift_id in pending])
        integration = self._enabled(account_id, "onec")
        for point_id, shift_id in pending:
            shift = self.storage.get_shift(shift_id)
            if integration is None or shift is None:
                continue
            documents = [r.document for r in self.storage.shift_documents(shift_id)]
            view = shift_object(shift, documents, now)
            self._shift_record(integration, point_id, view, documents, now)
        self.log.info("onec_daily_unset", account_id=account_id, flushed=len(pending))

    def _enabled(self, account_id: str, name: str) -> Integration | None:
        return next((i for i in self.enabled_integrations(account_id) if i.name == name), None)

    def run_onec_schedules(self, now: datetime) -> int:
        """Make the daily 1С reports due at ``now`` (the timer task's pass); how many were made.

        Each due instant is claimed by moving its schedule's ``covered_to`` there (one process
        wins); a cloud that was stopped makes the missed days' reports in order.
        """
        made = 0
        for schedule in list(self.storage.onec_schedules().values()):
            covered = schedule.covered_to
            due = _first_due(schedule)
            while due <= now:
                made += self._daily_onec(schedule.account_id, covered, due, now)
                covered, due = due, next_daily(due, schedule.daily_at)
        return made

    def _daily_onec(self, account_id: str, covered: datetime, due: datetime, now: datetime) -> int:
        """One day's report: a ``daily`` record per point with shifts completed in the day."""
        made: list[FeedRecord] = []
        with self.storage.transaction():
            if not self.storage.advance_onec_schedule(account_id, covered, due):
                return 0  # made by another process, or the schedule changed meanwhile
            pending = self.storage.onec_pending(account_id)
            self.storage.drop_onec_pending([shift_id for _, shift_id in pending])
            integration = self._enabled(account_id, "onec")
            by_point: dict[str, list[str]] = {}
            for point_id, shift_id in pending:
                by_point.setdefault(point_id, []).append(shift_id)
            day = due.astimezone(ONEC_ZONE).date().isoformat()
            for point_id, shift_ids in by_point.items():
                if integration is None:
                    break  # 1С switched off meanwhile: as for a shift completed while off
                documents: list[JsonObject] = []
                shifts: list[JsonObject] = []
                for shift_id in shift_ids:
                    documents += [r.document for r in self.storage.shift_documents(shift_id)]
                    shift = self.storage.get_shift(shift_id)
                    shifts.append({"id": shift_id, "shiftNum": shift.shift_num if shift else None})
                payload = onec_payload(documents, format_time(covered), format_time(due))
                payload["shifts"] = shifts
                record = self._new_record(
                    integration,
                    point_id,
                    kind="daily",
                    source_key=f"daily:{day}",
                    shift_id=None,
                    shift_num=None,
                    payload=payload,
                    now=now,
                )
                if self.storage.insert_feed_record(record):
                    made.append(record)
        for record in made:
            self.log.info(
                "onec_daily_made",
                retail_point_id=record.retail_point_id,
                day=day,
                shifts=len(record.payload["shifts"]),
            )
            self.on_change(record.retail_point_id)
        return len(made)

    def next_onec_deadline(self) -> datetime | None:
        """When the next daily 1С report falls due (any account)."""
        dues = [_first_due(s) for s in self.storage.onec_schedules().values()]
        return min(dues, default=None)

    # -- МойСклад switched on empties INVENTORY, whichever way (B8, B21) --------------------------

    def set_service_enabled(
        self, account_id: str, service: str, *, enabled: bool
    ) -> dict[str, Any]:
        """Switch an account service; МойСклад switched on from off empties INVENTORY (B21)."""
        return self._switch(account_id, service, enabled=enabled)[0]

    def _switch(
        self, account_id: str, service: str, *, enabled: bool
    ) -> tuple[dict[str, Any], list[str]]:
        """The switch and the points whose ``INVENTORY`` it emptied, in one transaction."""
        with self.storage.transaction():
            was_on = self.service_enabled(account_id, service)
            view = super().set_service_enabled(account_id, service, enabled=enabled)
            cleared = self._moysklad_on(account_id, service, was_on=was_on, now_on=enabled)
        return view, cleared

    def generate_service_credentials(self, point_id: str, service: str) -> dict[str, Any]:
        """«Сгенерировать логин и пароль»; for МойСклад off until now it empties INVENTORY (B21)."""
        with self.storage.transaction():
            account_id = self._point(point_id).account_id
            was_on = self.service_enabled(account_id, service)
            answer = super().generate_service_credentials(point_id, service)
            self._moysklad_on(account_id, service, was_on=was_on, now_on=True)
        return answer

    def _moysklad_on(
        self, account_id: str, service: str, *, was_on: bool, now_on: bool
    ) -> list[str]:
        """Empty the account's points' ``INVENTORY`` when МойСклад has just been switched on.

        Called inside the transaction that switched it, so the switch and the wipe commit
        together; each point's catalogue revision moves once (B16) and its tills pull the
        tombstones. Returns the points emptied.
        """
        if service != "moysklad" or was_on or not now_on:
            return []
        cleared = []
        for point in self.storage.list_points():
            if point.account_id == account_id and not point.deleted:
                rev = self.storage.next_catalog_revision(point.id)
                self.storage.clear_catalog(point.id, "INVENTORY", rev)
                cleared.append(point.id)
        self.log.info("moysklad_inventory_cleared", account_id=account_id, points=cleared)
        return cleared

    def enabled_integrations(self, account_id: str) -> list[Integration]:
        """The account's integration services switched on, in the cabinet's order.

        A service switched on without the back office ever setting it (a generated pair) gets
        its uuid now.
        """
        found = {i.name: i for i in self.storage.list_integrations(account_id)}
        enabled = []
        for name in INTEGRATIONS:
            if not self.service_enabled(account_id, name):
                continue
            integration = found.get(name)
            if integration is None:
                integration = Integration(
                    account_id, name, str(uuid.uuid4()), None, self.clock.now()
                )
                self.storage.put_integration(integration)
            enabled.append(integration)
        return enabled

    def moysklad_webhook(self, hook_uuid: str, content_type: str | None, body: bytes) -> int:
        """``POST /api/v1/moysklad/webhook/{uuid}`` (B8): record the body; 404 unless enabled."""
        integration = self.storage.get_integration_by_uuid(hook_uuid)
        if (
            integration is None
            or integration.name != "moysklad"
            or not self.service_enabled(integration.account_id, "moysklad")
        ):
            raise ServiceApiError(404, f"Webhook not found: {hook_uuid}")
        text = body.decode("utf-8", "replace")
        with self.storage.transaction():
            seq = self.storage.add_integration_event(
                integration, self.clock.now(), content_type, text
            )
        self.log.info("moysklad_webhook_recorded", account_id=integration.account_id, event_seq=seq)
        return seq

    def integration_events(self, point_id: str, limit: int = 100) -> list[JsonObject]:
        """The webhook bodies recorded for the point's account, newest first."""
        account_id = self._point(point_id).account_id
        return [_event_view(e) for e in self.storage.list_integration_events(account_id, limit)]

    # -- the integration outbox (B6, B18, B19) -----------------------------------------------------

    def record_shift_feeds(
        self, point_id: str, shift: JsonObject, documents: Iterable[JsonObject]
    ) -> list[str]:
        """One record per enabled integration for a complete shift; the new records' ids.

        Called inside the transaction that stores the shift's close document, so the records
        exist exactly when the shift is complete: a crash before the commit loses both, one
        after it keeps both, and a repeated call finds the records there (unique per point,
        integration and shift) and adds none (B19).
        """
        docs = list(documents)
        shift_id = str(shift.get("id"))
        now = self.clock.now()
        made: list[str] = []
        account_id = self._point(point_id).account_id
        with self.storage.transaction():
            daily = self.storage.get_onec_schedule(account_id) is not None
            for integration in self.enabled_integrations(account_id):
                if integration.name == "onec" and daily:  # B23: the day's report takes it
                    self.storage.add_onec_pending(shift_id, point_id, account_id, now)
                    continue
                made += self._shift_record(integration, point_id, shift, docs, now)
        if made:
            self.log.info(
                "feed_records_made", retail_point_id=point_id, shift_id=shift_id, count=len(made)
            )
            self.on_change(point_id)
        return made

    def _shift_record(
        self,
        integration: Integration,
        point_id: str,
        shift: JsonObject,
        documents: Sequence[JsonObject],
        now: datetime,
    ) -> list[str]:
        """The shift's record of one integration (B18); its id, or none if it exists already."""
        number = shift.get("shiftNum")
        shift_id = str(shift.get("id"))
        record = self._new_record(
            integration,
            point_id,
            kind="shift",
            source_key=f"shift:{shift_id}",
            shift_id=shift_id,
            shift_num=None if number is None else int(number),
            payload=FEED_BUILDERS[integration.name](documents, shift),
            now=now,
        )
        return [record.id] if self.storage.insert_feed_record(record) else []

    @staticmethod
    def _new_record(
        integration: Integration,
        point_id: str,
        *,
        kind: str,
        source_key: str,
        shift_id: str | None,
        shift_num: int | None,
        payload: JsonObject,
        now: datetime,
    ) -> FeedRecord:
        url = integration.webhook_url
        return FeedRecord(
            seq=0,
            id=str(uuid.uuid4()),
            retail_point_id=point_id,
            integration=integration.name,
            kind=kind,
            source_key=source_key,
            shift_id=shift_id,
            shift_num=shift_num,
            created_at=now,
            payload=payload,
            url=url,
            first_at=now if url else None,
            next_at=now if url else None,
            attempts=0,
            delivered_at=None,
            last_error=None,
        )

    def record_onec_export(
        self,
        point_id: str,
        period_from: datetime,
        period_to: datetime,
        documents: Iterable[JsonObject],
    ) -> JsonObject:
        """«Выгрузить за период»: a ``onec`` record of the documents given for the period.

        Needs the 1С service on (400 otherwise); delivered like a shift's record.
        """
        account_id = self._point(point_id).account_id
        if period_to <= period_from:
            raise ValidationError("to", "must be after from")
        with self.storage.transaction():
            integration = next(
                (i for i in self.enabled_integrations(account_id) if i.name == "onec"), None
            )
        if integration is None:
            raise CloudError(400, "The «Обмен с 1С» service is not enabled for this retail point")
        payload = onec_payload(documents, format_time(period_from), format_time(period_to))
        now = self.clock.now()
        with self.storage.transaction():
            number = self.storage.count_period_exports(point_id) + 1
            record = self._new_record(
                integration,
                point_id,
                kind="period",
                source_key=f"period:{format_time(period_from)}/{format_time(period_to)}:{number}",
                shift_id=None,
                shift_num=None,
                payload=payload,
                now=now,
            )
            self.storage.insert_feed_record(record)
        self.on_change(point_id)
        return _feed_view(record)

    def feed_records(
        self, point_id: str, integration: str | None, start: int, count: int
    ) -> JsonObject:
        """The cabinet's list of the point's feed records, oldest first (``{data,pos,total_count}``)."""
        self._point(point_id)
        if integration is not None:
            self._integration_name(integration)
        _page(start, count)
        records, total = self.storage.list_feed_records(point_id, integration, start, count)
        return {"data": [_feed_view(r) for r in records], "pos": start, "total_count": total}

    def _feed_record(self, point_id: str, record_id: str) -> FeedRecord:
        record = self.storage.get_feed_record(record_id)
        if record is None or record.retail_point_id != point_id:
            raise CloudError(404, f"Feed record not found: {record_id}")
        return record

    def feed_record(self, point_id: str, record_id: str) -> JsonObject:
        """One record with its delivery state."""
        self._point(point_id)
        return _feed_view(self._feed_record(point_id, record_id))

    def resend_feed_record(self, point_id: str, record_id: str) -> JsonObject:
        """«Отправить повторно»: deliver again from now, to the integration's current URL (B19)."""
        self._point(point_id)
        now = self.clock.now()
        with self.storage.transaction():
            record = self._feed_record(point_id, record_id)
            account_id = self._point(point_id).account_id
            integration = self.storage.get_integration(account_id, record.integration)
            url = integration.webhook_url if integration else None
            if url is None:
                raise CloudError(400, f"The {record.integration} service has no webhook URL")
            if url != record.url:
                self.storage.set_feed_url(record.seq, url)
            self.storage.set_feed_delivery(
                record.seq,
                first_at=now,
                next_at=now,
                attempts=0,
                delivered_at=None,
                last_error=None,
            )
            record = self._feed_record(point_id, record_id)
        self.on_change(point_id)
        return _feed_view(record)

    def due_feed_deliveries(
        self, now: datetime, in_flight: Sequence[int] = ()
    ) -> list[FeedDelivery]:
        """Feed deliveries due at ``now``, not counting those in flight (for the timer task).

        The daily 1С reports due are made first (B23), so they go out in the same pass.
        """
        self.run_onec_schedules(now)
        return [
            FeedDelivery(
                seq=r.seq,
                record_id=r.id,
                retail_point_id=r.retail_point_id,
                integration=r.integration,
                url=r.url or "",
                body=feed_envelope(r),
                due_at=r.next_at or now,
            )
            for r in self.storage.due_feed_records(now, in_flight)
        ]

    def next_feed_deadline(self, in_flight: Sequence[int] = ()) -> datetime | None:
        """When the next feed delivery, or daily 1С report (B23), falls due."""
        feed = self.storage.next_feed_deadline(in_flight)
        daily = self.next_onec_deadline()
        if feed is None or (daily is not None and daily < feed):
            return daily
        return feed

    def feed_delivery_finished(
        self, delivery: FeedDelivery, *, delivered: bool, error: str
    ) -> None:
        """Record one attempt's outcome (D43, D44 as B19), then give its claim back."""
        try:
            self._record_feed_attempt(delivery, delivered=delivered, error=error)
        finally:
            self.storage.release_feed(delivery.seq)

    def _record_feed_attempt(self, delivery: FeedDelivery, *, delivered: bool, error: str) -> None:
        now = self.clock.now()
        at = max(now, delivery.due_at)
        with self.storage.transaction():
            record = self.storage.get_feed_record(delivery.record_id)
            if record is None or record.next_at is None or record.delivered_at is not None:
                return  # resent, delivered or given up meanwhile
            attempts = record.attempts + 1
            first = record.first_at or delivery.due_at
            next_at = None
            if not delivered:
                offset = callback_offset(attempts)
                if offset <= CALLBACK_WINDOW:
                    next_at = first + offset
            self.storage.set_feed_delivery(
                record.seq,
                first_at=first,
                next_at=next_at,
                attempts=attempts,
                delivered_at=at if delivered else None,
                last_error=None if delivered else error or None,
            )
        log = self.log.bind(retail_point_id=record.retail_point_id, feed_record=record.id)
        if delivered:
            log.info("feed_delivered", integration=record.integration, attempts=attempts)
        elif next_at is None:
            log.warning("feed_delivery_gave_up", integration=record.integration, error=error)
        self.on_change(record.retail_point_id)


def _event_view(event: IntegrationEvent) -> JsonObject:
    return {
        "seq": event.seq,
        "integration": event.integration,
        "uuid": event.uuid,
        "receivedAt": format_time(event.received_at),
        "contentType": event.content_type,
        "body": event.body,
    }
