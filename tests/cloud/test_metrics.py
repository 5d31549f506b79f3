"""``/metrics``: state read at scrape time, latencies observed when they happen (D103)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from cloud_helpers import (
    FakeShop,
    FakeTill,
    Point,
    assert_message,
    make_point,
    minimal_doc,
    post_doc,
)
from prometheus_client.parser import text_string_to_metric_families

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.clock import ManualClock
    from kkt_emulator.testing.plugin import Documents, KktStack


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(
    http: httpx.AsyncClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_queue_depth_age_and_latencies_follow_the_documents(
    http: httpx.AsyncClient, point: Point, till: FakeTill, clock: ManualClock
) -> None:
    before = await scrape(http)
    assert value(before, "kkt_cloud_queue_depth", retail_point=point.id) == 0
    assert value(before, "kkt_cloud_tills", retail_point=point.id) == 1
    assert value(before, "kkt_cloud_tills_online", retail_point=point.id) == 0  # no heartbeat yet
    await till.heartbeat()
    docs = [minimal_doc(), minimal_doc()]
    for doc in docs:
        await post_doc(http, point, doc)
    await clock.advance(timedelta(seconds=30))
    queued = await scrape(http)
    assert value(queued, "kkt_cloud_queue_depth", retail_point=point.id) == 2
    assert value(queued, "kkt_cloud_queue_oldest_age_seconds", retail_point=point.id) == 30
    assert (
        value(
            queued,
            "kkt_cloud_documents",
            section="internet_shop",
            status="QUEUED",
            retail_point=point.id,
        )
        == 2
    )
    assert value(queued, "kkt_cloud_tills_online", retail_point=point.id) == 1
    assert value(queued, "kkt_till_fn_ok", device_id=till.device_id, retail_point=point.id) == 1

    leased = await till.lease()
    await clock.advance(timedelta(seconds=2))
    for item in leased:
        await till.succeed(item)
    done = await scrape(http)
    assert value(done, "kkt_cloud_queue_depth", retail_point=point.id) == 0
    assert (
        value(
            done,
            "kkt_cloud_documents",
            section="internet_shop",
            status="COMPLETED",
            retail_point=point.id,
        )
        == 2
    )
    assert value(done, "kkt_cloud_lease_latency_seconds_count") == 2
    assert value(done, "kkt_cloud_lease_latency_seconds_sum") == 60  # each waited 30 s
    assert value(done, "kkt_cloud_fiscalisation_latency_seconds_count") == 2
    assert value(done, "kkt_cloud_fiscalisation_latency_seconds_sum") == 64
    assert value(done, "kkt_cloud_fiscalisation_latency_seconds_bucket", le="30.0") == 0
    assert value(done, "kkt_cloud_fiscalisation_latency_seconds_bucket", le="60.0") == 2

    await clock.advance(timedelta(minutes=11))  # no contact for longer than ONLINE_WITHIN
    late = await scrape(http)
    assert value(late, "kkt_cloud_tills_online", retail_point=point.id) == 0
    assert (
        value(
            late,
            "kkt_till_last_contact_age_seconds",
            device_id=till.device_id,
            retail_point=point.id,
        )
        == 32 + 660
    )


async def test_drive_resources_come_from_the_heartbeat(
    http: httpx.AsyncClient, point: Point, till: FakeTill, clock: ManualClock
) -> None:
    now = clock.now()
    response = await http.post(
        "/api/device/v1/heartbeat",
        headers=till.headers,
        json={
            "fnState": "FAILED",
            "fnSerial": till.fn_serial,
            "fn": {
                "unsent": 4,
                "oldestUnsent": (now - timedelta(hours=2)).isoformat(),
                "lastFd": 250,
                "documentsLeft": 750,
                "expiry": (now + timedelta(days=10)).isoformat(),
            },
            "uploadQueue": {"size": 3, "oldestAt": None, "lastError": None},
        },
    )
    assert response.status_code == 200, response.text
    found = await scrape(http)
    key = {"device_id": till.device_id, "retail_point": point.id}
    assert value(found, "kkt_till_fn_ok", **key) == 0
    assert value(found, "kkt_till_fn_ofd_unsent", **key) == 4
    assert value(found, "kkt_till_fn_ofd_oldest_unsent_age_seconds", **key) == 7200
    assert value(found, "kkt_till_fn_memory_used_ratio", **key) == 0.25
    assert value(found, "kkt_till_fn_days_to_expiry", **key) == 10
    assert value(found, "kkt_till_upload_queue", **key) == 3


async def test_two_clouds_in_one_process_keep_their_own_figures(
    tmp_path: Path, clock: ManualClock, settings: CloudSettings
) -> None:
    async with (
        Cloud(tmp_path / "a.db", clock, settings) as first,
        Cloud(tmp_path / "b.db", clock, settings) as second,
    ):
        assert first.metrics.registry is not second.metrics.registry
        first.metrics.lease_latency.observe(1.0)
        assert b"kkt_cloud_lease_latency_seconds_count 1.0" in first.metrics.render()
        assert b"kkt_cloud_lease_latency_seconds_count 0.0" in second.metrics.render()


async def test_the_cabinet_token_guards_the_metrics(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(password_iterations=1000, cabinet_token="s3cret")  # noqa: S106 - a test token
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            assert_message(await http.get("/metrics"), 401)
            found = await scrape(http, Authorization="Bearer s3cret")
            assert value(found, "kkt_cloud_lease_latency_seconds_count") == 0


async def test_a_running_installation_shows_the_figures_changing(
    kkt_stack: KktStack, kkt_documents: Documents
) -> None:
    base = kkt_stack.store_url.removesuffix("/api/fn")
    point = kkt_stack.retail_point_id
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        before = await scrape(http)
        doc: dict[str, Any] = kkt_documents.sale(total=45.50)
        await kkt_stack.post_document(doc)
        await kkt_stack.wait_for_status(doc["id"], "COMPLETED")
        after = await scrape(http)
    completed = {"section": "internet_shop", "status": "COMPLETED", "retail_point": point}
    assert (
        value(after, "kkt_cloud_documents", **completed)
        == value(before, "kkt_cloud_documents", **completed) + 1
    )
    for name in (
        "kkt_cloud_lease_latency_seconds_count",
        "kkt_cloud_fiscalisation_latency_seconds_count",
    ):
        assert value(after, name) == value(before, name) + 1
    assert value(after, "kkt_cloud_tills_online", retail_point=point) >= 1
    device = kkt_stack.till.ctx.device_id
    assert value(after, "kkt_till_fn_days_to_expiry", device_id=device, retail_point=point) > 300
    assert value(after, "kkt_till_fn_memory_used_ratio", device_id=device, retail_point=point) > 0


async def test_the_scrape_queries_run_on_both_databases(
    any_db: str, clock: ManualClock, settings: CloudSettings
) -> None:
    async with Cloud(any_db, clock, settings) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            await post_doc(http, point, minimal_doc())
            await clock.advance(timedelta(seconds=5))
            found = await scrape(http)
    assert value(found, "kkt_cloud_queue_depth", retail_point=point.id) == 1
    assert value(found, "kkt_cloud_queue_oldest_age_seconds", retail_point=point.id) == 5
    queued = {"section": "internet_shop", "status": "QUEUED", "retail_point": point.id}
    assert value(found, "kkt_cloud_documents", **queued) == 1
