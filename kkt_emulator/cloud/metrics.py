"""``GET /metrics``: the cloud's figures in the Prometheus text format (D103).

One :class:`CloudMetrics` per cloud, with a registry of its own (never the process-wide default
one), so several clouds in one process (tests) keep their figures apart. Two kinds of figures:

* read at scrape time by :class:`StateCollector` from the database, a few aggregate queries per
  scrape and none per document: documents by section and status, queue depth and the oldest
  queued document's age per retail point, tills and tills online, and per till what its last
  heartbeat reported of its drive (days to expiry, unsent OFD documents and the oldest one's age,
  memory used, ФН ok) and of its upload queue;
* observed when they happen, through the service's ``on_status`` hook (one histogram observation
  in the transaction that makes the step): lease latency (queued → leased) and fiscalisation
  latency (accepted → COMPLETED with fiscal data), in business time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kkt_emulator.cloud.cabinet_api import cabinet_token_check
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.records import from_db_time

if TYPE_CHECKING:
    from kkt_emulator.cloud.records import Device, DocumentRecord
    from kkt_emulator.cloud.service import CloudService

__all__ = [
    "LATENCY_BUCKETS",
    "ONLINE_WITHIN",
    "CloudMetrics",
    "StateCollector",
    "metrics_router",
]

LATENCY_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    86400.0,
)
"""Seconds: from a till's millisecond turn-around to a queue that waited a day."""

ONLINE_WITHIN: Final = timedelta(seconds=660)
"""A till is online while its last contact is at most this old: the idle heartbeat (600 s) and a
minute."""

DRIVE_UTC_OFFSET: Final = timedelta(hours=3)
"""The drive's wall times in a heartbeat have no zone; the tills' default offset (UTC+3)."""

_QUEUED: Final = (Status.QUEUED.value, Status.REQUEUED.value)


def _drive_time(text: object) -> datetime | None:
    """A time from a heartbeat: aware as given, or the drive's wall time at UTC+3."""
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = (value - DRIVE_UTC_OFFSET).replace(tzinfo=UTC)
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class StateCollector(Collector):
    """Reads the cloud's state at scrape time (aggregate queries, the device list).

    Args:
        service: the cloud's operations (storage and clock).
    """

    def __init__(self, service: CloudService) -> None:
        self.service = service

    def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        # Aggregates for the scrape only, on the storage's own connection and lock.
        return self.service.storage._all(sql, params)  # noqa: SLF001 - read-only aggregates at scrape time

    def collect(self) -> Iterator[Metric]:
        """Yield every figure of the cloud's state now."""
        now = self.service.clock.now()
        yield self._documents()
        yield from self._queues(now)
        yield from self._tills(now)

    def _documents(self) -> Metric:
        family = GaugeMetricFamily(
            "kkt_cloud_documents",
            "Documents by section (internet_shop, orders, counter), status and retail point",
            labels=["section", "status", "retail_point"],
        )
        queries = (
            (
                "internet_shop",
                "SELECT retail_point_id AS p, status AS s, COUNT(*) AS n FROM documents GROUP BY retail_point_id, status",
            ),
            (
                "orders",
                "SELECT retail_point_id AS p, state AS s, COUNT(*) AS n FROM orders GROUP BY retail_point_id, state",
            ),
            (
                "counter",
                "SELECT retail_point_id AS p, doc_type AS s, COUNT(*) AS n FROM cash_documents GROUP BY retail_point_id, doc_type",
            ),
        )
        for section, sql in queries:
            for row in self._rows(sql):
                family.add_metric([section, str(row["s"]), str(row["p"])], int(row["n"]))
        return family

    def _queues(self, now: datetime) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "kkt_cloud_queue_depth",
            "Documents waiting for a till (QUEUED and REQUEUED) per retail point",
            labels=["retail_point"],
        )
        age = GaugeMetricFamily(
            "kkt_cloud_queue_oldest_age_seconds",
            "Age of the oldest waiting document per retail point (business time since acceptance)",
            labels=["retail_point"],
        )
        counted = {
            str(row["p"]): (int(row["n"]), str(row["t"]))
            for row in self._rows(
                "SELECT retail_point_id AS p, COUNT(*) AS n, MIN(created_at) AS t FROM documents"
                " WHERE status IN (?, ?) GROUP BY retail_point_id",
                _QUEUED,
            )
        }
        for point in self.service.storage.list_points():
            if point.deleted:
                continue
            count, oldest = counted.get(point.id, (0, None))
            depth.add_metric([point.id], count)
            age.add_metric(
                [point.id],
                max(0.0, (now - from_db_time(oldest)).total_seconds()) if oldest else 0.0,
            )
        yield depth
        yield age

    def _tills(self, now: datetime) -> Iterator[Metric]:
        tills = GaugeMetricFamily(
            "kkt_cloud_tills", "Bound tills per retail point", labels=["retail_point"]
        )
        online = GaugeMetricFamily(
            "kkt_cloud_tills_online",
            f"Tills whose last contact is at most {int(ONLINE_WITHIN.total_seconds())} s old",
            labels=["retail_point"],
        )
        labels = ["device_id", "retail_point"]
        per_till = {
            "ok": GaugeMetricFamily(
                "kkt_till_fn_ok",
                "1 when the till's last heartbeat said its ФН is ready",
                labels=labels,
            ),
            "expiry": GaugeMetricFamily(
                "kkt_till_fn_days_to_expiry", "Days until the ФН expires", labels=labels
            ),
            "unsent": GaugeMetricFamily(
                "kkt_till_fn_ofd_unsent",
                "Documents on the ФН not yet acknowledged by the OFD",
                labels=labels,
            ),
            "oldest": GaugeMetricFamily(
                "kkt_till_fn_ofd_oldest_unsent_age_seconds",
                "Age of the oldest document the OFD has not acknowledged",
                labels=labels,
            ),
            "memory": GaugeMetricFamily(
                "kkt_till_fn_memory_used_ratio",
                "Share of the ФН's document capacity used",
                labels=labels,
            ),
            "upload": GaugeMetricFamily(
                "kkt_till_upload_queue",
                "Cash documents waiting in the till's upload queue",
                labels=labels,
            ),
            "contact": GaugeMetricFamily(
                "kkt_till_last_contact_age_seconds",
                "Seconds since the till's last contact",
                labels=labels,
            ),
        }
        counts: dict[str, list[int]] = {}
        for device in self.service.storage.list_devices():
            point = device.retail_point_id
            count = counts.setdefault(point, [0, 0])
            count[0] += 1
            key = [device.device_id, point]
            if device.last_heartbeat_at is not None:
                since = (now - device.last_heartbeat_at).total_seconds()
                per_till["contact"].add_metric(key, max(0.0, since))
                if since <= ONLINE_WITHIN.total_seconds():
                    count[1] += 1
            self._drive(device, now, key, per_till)
        for point, (bound, alive) in sorted(counts.items()):
            tills.add_metric([point], bound)
            online.add_metric([point], alive)
        yield tills
        yield online
        yield from per_till.values()

    @staticmethod
    def _drive(
        device: Device, now: datetime, key: list[str], out: dict[str, GaugeMetricFamily]
    ) -> None:
        """The drive and upload queue figures of a till's last heartbeat, those it reported."""
        heartbeat = device.heartbeat or {}
        if device.fn_ok is not None:
            out["ok"].add_metric(key, 1.0 if device.fn_ok else 0.0)
        fn = heartbeat.get("fn")
        if isinstance(fn, dict):
            expiry = _drive_time(fn.get("expiry"))
            if expiry is not None:
                out["expiry"].add_metric(key, (expiry - now).total_seconds() / 86400)
            unsent = _number(fn.get("unsent"))
            if unsent is not None:
                out["unsent"].add_metric(key, unsent)
                oldest = _drive_time(fn.get("oldestUnsent"))
                age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
                out["oldest"].add_metric(key, age)
            used, left = _number(fn.get("lastFd")), _number(fn.get("documentsLeft"))
            if used is not None and left is not None and used + left > 0:
                out["memory"].add_metric(key, used / (used + left))
        queue = heartbeat.get("uploadQueue")
        if isinstance(queue, dict):
            size = _number(queue.get("size"))
            if size is not None:
                out["upload"].add_metric(key, size)


class CloudMetrics:
    """The metrics of one cloud: its registry, the state collector and the two histograms.

    Args:
        service: the cloud's operations; its ``on_status`` hook is set to :meth:`observe`.
    """

    def __init__(self, service: CloudService) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.lease_latency = Histogram(
            "kkt_cloud_lease_latency_seconds",
            "Business time from QUEUED or REQUEUED to the lease by a till",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fiscalisation_latency = Histogram(
            "kkt_cloud_fiscalisation_latency_seconds",
            "Business time from acceptance to COMPLETED with fiscal data",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StateCollector(service))
        service.on_status = self.observe

    def observe(self, before: DocumentRecord, after: DocumentRecord, at: datetime) -> None:
        """A document changed status: observe the latencies this step completes."""
        old, new = before.state.status, after.state.status
        if new is Status.PENDING and old in (Status.QUEUED, Status.REQUEUED):
            self.lease_latency.observe(max(0.0, (at - before.state.changed_at).total_seconds()))
        elif new is Status.COMPLETED and after.fiscal_info:
            self.fiscalisation_latency.observe(max(0.0, (at - after.created_at).total_seconds()))

    def render(self) -> bytes:
        """Every figure now, in the Prometheus text format."""
        return generate_latest(self.registry)


def metrics_router(metrics: CloudMetrics, service: CloudService) -> APIRouter:
    """``GET /metrics`` over ``metrics``, guarded by the cabinet token where one is set."""
    router = APIRouter(
        tags=["metrics"],
        dependencies=[
            Depends(HTTPBearer(auto_error=False, description="Only with a cabinet token")),
            Depends(cabinet_token_check(service)),
        ],
    )

    @router.get(
        "/metrics",
        summary="Prometheus metrics: documents, queues, tills, drive resources, latencies",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def scrape() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
