"""Lifecycle over the real till API on a manual clock: callbacks, the 15-minute and 235-second
rules, late results, stop-on-errors, re-drive and mark-done, restart.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cloud_helpers import (
    FULL_V2_DOC,
    T0,
    FakeShop,
    FakeTill,
    Point,
    doc_status,
    make_point,
    minimal_doc,
    post_doc,
)

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CallbackMethod, CloudSettings, FiscalDateFormat
from kkt_emulator.cloud.storage import DocumentRecord
from kkt_emulator.cloud.texts import PENDING_TIMEOUT_TEXT, PICKUP_TIMEOUT_TEXT

if TYPE_CHECKING:
    from pathlib import Path

CALLBACK = "https://your-callback-service.com/complete-doc?id=1"


@pytest.fixture
def db_path(any_db: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (the storage contract, D73)."""
    return any_db


async def advance(cloud: Cloud, clock: ManualClock, **delta: float) -> None:
    await clock.advance(timedelta(**delta))
    await cloud.wait_idle()


async def fiscalise(till: FakeTill, doc: dict[str, Any]) -> dict[str, Any]:
    leased = await till.lease()
    assert [d["docId"] for d in leased] == [doc["id"]]
    return await till.succeed(leased[0])


async def history(http: httpx.AsyncClient, point: Point, doc_id: str) -> list[tuple[str, str]]:
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc_id}")
    return [(h["at"][11:19], h["status"]) for h in detail.json()["history"]]


# -- callbacks (§10, D41–D46) ----------------------------------------------------------------------


async def test_callback_retries_until_200(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    shop: FakeShop,
    clock: ManualClock,
) -> None:
    shop.statuses = [500, 302, 200]
    doc = minimal_doc(responseURL=CALLBACK)
    await post_doc(http, point, doc)
    info = till.fiscal_info()
    leased = (await till.lease())[0]
    assert (await till.succeed(leased, info))["status"] == "WAIT_FOR_CALLBACK"
    await cloud.wait_idle()
    assert len(shop.requests) == 1
    expected = "https://your-callback-service.com/complete-doc?id=1&status=SUCCESS&qr=" + info[
        "qr"
    ].replace("=", "%3D").replace("&", "%26")
    assert str(shop.requests[0].url) == expected
    assert shop.requests[0].method == "GET"
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "WAIT_FOR_CALLBACK"
    assert status["message"] is None
    await advance(cloud, clock, seconds=59)
    assert len(shop.requests) == 1
    await advance(cloud, clock, seconds=1)  # +1 min
    assert len(shop.requests) == 2
    await advance(cloud, clock, minutes=2)  # +3 min
    assert len(shop.requests) == 3
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "COMPLETED"
    assert status["message"] == "Document successfully completed with callback"
    assert status["timeStatusChanged"] == "2024-05-01T09:03:00+00:00"
    await advance(cloud, clock, hours=5)
    assert len(shop.requests) == 3
    assert await history(http, point, doc["id"]) == [
        ("09:00:00", "QUEUED"),
        ("09:00:00", "PENDING"),
        ("09:00:00", "PRINTED"),
        ("09:00:00", "WAIT_FOR_CALLBACK"),
        ("09:00:00", "WAIT_FOR_CALLBACK"),
        ("09:01:00", "WAIT_FOR_CALLBACK"),
        ("09:03:00", "COMPLETED"),
    ]


async def test_callback_network_errors_count_as_not_delivered(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    shop: FakeShop,
    clock: ManualClock,
) -> None:
    shop.fail_with = httpx.ConnectError("refused")
    doc = minimal_doc(responseURL="http://shop.local/cb?")
    await post_doc(http, point, doc)
    await fiscalise(till, doc)
    await cloud.wait_idle()
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}")
    assert detail.json()["callback"]["lastError"].startswith("ConnectError")
    assert str(shop.requests[0].url).startswith("http://shop.local/cb?status=SUCCESS&qr=")
    shop.fail_with = None
    await advance(cloud, clock, minutes=1)
    assert (await doc_status(http, point, doc["id"]))["status"] == "COMPLETED"


async def test_callback_gives_up_after_three_days(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    shop: FakeShop,
    clock: ManualClock,
) -> None:
    shop.default_status = 503
    doc = minimal_doc(responseURL=CALLBACK)
    await post_doc(http, point, doc)
    await fiscalise(till, doc)
    for _ in range(80):
        await advance(cloud, clock, hours=1)
    assert len(shop.requests) == 77  # D44
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "WAIT_FOR_CALLBACK"  # D45
    assert status["fiscalInfo"] is not None
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}")
    assert detail.json()["callback"]["nextAttemptAt"] is None
    assert detail.json()["callback"]["attempts"] == 77


async def test_unusable_response_url_is_accepted_but_never_delivered(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, till: FakeTill, shop: FakeShop
) -> None:
    doc = minimal_doc(responseURL="not a url")
    # D56 refuses such a URL at the door now; a document stored before D56 may still carry one.
    assert (await post_doc(http, point, doc)).status_code == 400
    now = cloud.clock.now()
    with cloud.storage.transaction():
        cloud.storage.insert_document(
            DocumentRecord(
                seq=0,
                retail_point_id=point.id,
                doc_id=doc["id"],
                client_id="",
                route="v2",
                document=doc,
                content_key="{}",
                doc_num=doc["docNum"],
                total="100.00",
                response_url="not a url",
                created_at=now,
                state=lc.new_document(now, has_callback=True, pickup_window=None),
            )
        )
    await fiscalise(till, doc)
    await cloud.wait_idle()
    assert shop.requests == []
    assert (await doc_status(http, point, doc["id"]))["status"] == "WAIT_FOR_CALLBACK"


async def test_post_callbacks_carry_the_document_status(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(password_iterations=1000, callback_method=CallbackMethod.POST)
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            till = await FakeTill(http, point).bind()
            await post_doc(http, point, FULL_V2_DOC)
            await fiscalise(till, FULL_V2_DOC)
            await cloud.wait_idle()
    request = shop.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert str(request.url).startswith(CALLBACK + "&status=SUCCESS&qr=")
    body = json.loads(request.content)
    assert body["status"] == "WAIT_FOR_CALLBACK"
    assert body["fiscalInfo"]["qr"].startswith("t=20190904T141400")


async def test_printed_hold(db_path: Path, clock: ManualClock, shop: FakeShop) -> None:
    settings = CloudSettings(
        password_iterations=1000, callback_dispatch_delay=timedelta(seconds=30)
    )
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            till = await FakeTill(http, point).bind()
            doc = minimal_doc()
            await post_doc(http, point, doc)
            assert (await fiscalise(till, doc))["status"] == "PRINTED"  # D31
            assert (await doc_status(http, point, doc["id"]))["status"] == "PRINTED"
            await advance(cloud, clock, seconds=30)
            assert (await doc_status(http, point, doc["id"]))["status"] == "COMPLETED"


# -- the 15-minute rule and late results (D35, D36) ----------------------------------------------------


async def test_pending_timeout_then_late_success(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    shop: FakeShop,
    clock: ManualClock,
) -> None:
    doc = minimal_doc(responseURL=CALLBACK)
    await post_doc(http, point, doc)
    await advance(cloud, clock, seconds=5)
    leased = (await till.lease())[0]
    await advance(cloud, clock, minutes=14, seconds=59)
    assert (await doc_status(http, point, doc["id"]))["status"] == "PENDING"
    await advance(cloud, clock, seconds=1)
    status = await doc_status(http, point, doc["id"])
    assert status == {
        "status": "FAILED",
        "fnState": "ASSOCIATED",
        "fiscalInfo": None,
        "failureInfo": {"type": "NON_FN_FAILURE", "message": PENDING_TIMEOUT_TEXT},
        "message": PENDING_TIMEOUT_TEXT,
        "timeStatusChanged": "2024-05-01T09:15:05+00:00",
    }
    assert str(shop.requests[-1].url) == CALLBACK + "&status=FAILED"  # D46
    late_failure = await till.fail(leased)
    assert late_failure["outcome"] == "ignored"
    assert (await doc_status(http, point, doc["id"]))["failureInfo"]["message"] == (
        PENDING_TIMEOUT_TEXT
    )
    await advance(cloud, clock, minutes=5)
    answer = await till.succeed(leased)
    assert answer["outcome"] == "late_accepted"
    await cloud.wait_idle()
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "COMPLETED"
    assert status["failureInfo"] is None
    assert status["fiscalInfo"] is not None
    assert "status=SUCCESS" in str(shop.requests[-1].url)


async def test_late_success_cancels_a_newer_lease(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, clock: ManualClock
) -> None:
    first = await FakeTill(http, point).bind()
    second = await FakeTill(http, point).bind()
    doc = minimal_doc()
    await post_doc(http, point, doc)
    old = (await first.lease())[0]
    await advance(cloud, clock, minutes=15)
    requeued = await http.put(f"/api/fn/v1/doc/{doc['id']}/re-queue", auth=point.assoc)
    assert requeued.json() == {
        "status": "REQUEUED",
        "fnState": "ASSOCIATED",
        "fiscalInfo": None,
        "failureInfo": None,
        "message": None,
        "timeStatusChanged": "2024-05-01T09:15:00+00:00",
    }
    new = (await second.lease())[0]
    assert new["leaseId"] != old["leaseId"]
    assert (await first.succeed(old))["outcome"] == "late_accepted"
    assert (await second.fail(new))["outcome"] == "ignored"
    assert (await second.succeed(new))["outcome"] == "ignored_already_fiscalised"
    assert (await doc_status(http, point, doc["id"]))["status"] == "COMPLETED"


# -- the 235-second rule (D37) ------------------------------------------------------------------------------


async def test_pickup_deadline_in_5min_mode(
    cloud: Cloud, http: httpx.AsyncClient, shop: FakeShop, clock: ManualClock
) -> None:
    point = await make_point(http, pickupWindow="5min")
    late = minimal_doc(responseURL=CALLBACK)
    await post_doc(http, point, late)
    await advance(cloud, clock, seconds=234)
    assert (await doc_status(http, point, late["id"]))["status"] == "QUEUED"
    await advance(cloud, clock, seconds=1)
    status = await doc_status(http, point, late["id"])
    assert status == {
        "status": "FAILED",
        "fnState": "ASSOCIATED",
        "fiscalInfo": None,
        "failureInfo": {"type": "NON_FN_FAILURE", "message": PICKUP_TIMEOUT_TEXT},
        "message": PICKUP_TIMEOUT_TEXT,
        "timeStatusChanged": "2024-05-01T09:03:55+00:00",
    }
    assert str(shop.requests[-1].url) == CALLBACK + "&status=FAILED"
    till = await FakeTill(http, point).bind()
    assert await till.lease() == []  # no receipt for an abandoned payment
    in_time = minimal_doc()
    await post_doc(http, point, in_time)
    await advance(cloud, clock, seconds=100)
    assert [d["docId"] for d in await till.lease()] == [in_time["id"]]
    await advance(cloud, clock, seconds=200)
    assert (await doc_status(http, point, in_time["id"]))["status"] == "PENDING"


async def test_pickup_deadline_applies_with_the_flag_off_and_restarts_on_requeue(
    cloud: Cloud, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    point = await make_point(http, pickupWindow="5min", internetDocsEnabled=False)
    doc = minimal_doc()
    await post_doc(http, point, doc)
    await advance(cloud, clock, seconds=235)
    assert (await doc_status(http, point, doc["id"]))["status"] == "FAILED"
    await advance(cloud, clock, seconds=100)
    await http.put(f"/api/fn/v1/doc/{doc['id']}/re-queue", auth=point.assoc)
    await advance(cloud, clock, seconds=234)
    assert (await doc_status(http, point, doc["id"]))["status"] == "REQUEUED"
    await advance(cloud, clock, seconds=1)
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "FAILED"
    assert status["timeStatusChanged"] == "2024-05-01T09:09:30+00:00"


async def test_three_days_mode_has_no_pickup_deadline(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, clock: ManualClock
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    await advance(cloud, clock, days=10)
    assert (await doc_status(http, point, doc["id"]))["status"] == "QUEUED"  # D38


# -- stop-on-errors (D48) ---------------------------------------------------------------------------------


async def test_stop_on_errors_blocks_until_redrive(
    http: httpx.AsyncClient, clock: ManualClock
) -> None:
    point = await make_point(http, stopOnErrors=True)
    till = await FakeTill(http, point).bind()
    first, second, third = (minimal_doc(docNum=str(n)) for n in range(3))
    await post_doc(http, point, first)
    leased = (await till.lease())[0]
    await post_doc(http, point, second)
    await post_doc(http, point, third)
    await till.fail(leased)
    assert await till.lease() == []
    listed = await http.get(
        "/api/cabinet/v1/documents", params={"status": "FAILED", "retailPointId": point.id}
    )
    assert [(d["id"], d["blocking"]) for d in listed.json()] == [(first["id"], True)]
    redriven = await http.post(
        f"/api/cabinet/v1/retail-points/{point.id}/documents/{first['id']}/redrive"
    )
    assert redriven.json()["status"] == "REQUEUED"
    order = [d["docId"] for d in await till.lease(max_docs=10)]
    assert order == [first["id"], second["id"], third["id"]]  # the re-driven one keeps its place
    _ = clock


async def test_mark_done_and_switching_the_flag_off_lift_blocks(
    cloud: Cloud, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    point = await make_point(http, stopOnErrors=True, pickupWindow="5min")
    till = await FakeTill(http, point).bind()
    docs = [minimal_doc(docNum=str(n)) for n in range(3)]
    await post_doc(http, point, docs[0])
    await advance(cloud, clock, seconds=10)
    await post_doc(http, point, docs[1])
    await post_doc(http, point, docs[2])
    await advance(cloud, clock, seconds=225)  # docs[0] fails and blocks
    assert await till.lease() == []
    await advance(cloud, clock, seconds=10)  # the held-back ones fail too
    statuses = [(await doc_status(http, point, d["id"]))["status"] for d in docs]
    assert statuses == ["FAILED", "FAILED", "FAILED"]
    done = await http.post(
        f"/api/cabinet/v1/retail-points/{point.id}/documents/{docs[0]['id']}/mark-done"
    )
    body = done.json()
    assert body["status"] == "COMPLETED"
    assert body["markedDone"] is True
    store = await doc_status(http, point, docs[0]["id"])
    assert store["fiscalInfo"] is None
    assert store["failureInfo"]["message"] == PICKUP_TIMEOUT_TEXT  # D34: kept
    assert store["message"] is None
    await http.put(f"/api/fn/v1/doc/{docs[2]['id']}/re-queue", auth=point.assoc)
    assert await till.lease() == []  # docs[1] still blocks docs[2]
    await http.patch(f"/api/cabinet/v1/retail-points/{point.id}", json={"stopOnErrors": False})
    assert [d["docId"] for d in await till.lease()] == [docs[2]["id"]]
    again = await http.post(
        f"/api/cabinet/v1/retail-points/{point.id}/documents/{docs[0]['id']}/mark-done"
    )
    assert again.status_code == 400
    assert "only FAILED documents" in again.json()["message"]


# -- cabinet clock ----------------------------------------------------------------------------------------


async def test_cabinet_clock_advance_fires_timers(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    await till.lease()
    shown = (await http.get("/api/cabinet/v1/clock")).json()
    assert shown == {
        "now": "2024-05-01T09:00:00+00:00",
        "mode": "manual",
        "nextDeadline": "2024-05-01T09:15:00+00:00",
    }
    moved = await http.post("/api/cabinet/v1/clock/advance", json={"duration": "15m"})
    assert moved.json()["now"] == "2024-05-01T09:15:00+00:00"
    await cloud.wait_idle()
    assert (await doc_status(http, point, doc["id"]))["status"] == "FAILED"
    bad = await http.post("/api/cabinet/v1/clock/advance", json={"duration": "soon"})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("duration:")


# -- restart ---------------------------------------------------------------------------------------------


async def test_restart_loses_and_duplicates_nothing(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(password_iterations=1000)
    docs = [minimal_doc(docNum=str(n), responseURL=CALLBACK) for n in range(4)]
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            till = await FakeTill(http, point).bind()
            for doc in docs:
                await post_doc(http, point, doc)
            done = (await till.lease(max_docs=1))[0]
            await till.succeed(done)
            await cloud.wait_idle()
            pending = (await till.lease(max_docs=1))[0]
            before = [await doc_status(http, point, d["id"]) for d in docs]
    shop.requests.clear()
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            till.http = http
            after = [await doc_status(http, point, d["id"]) for d in docs]
            assert after == before
            assert [s["status"] for s in after] == ["COMPLETED", "PENDING", "QUEUED", "QUEUED"]
            for doc in docs:  # a client re-sending after the restart creates nothing new
                await post_doc(http, point, doc)
            listed = (await http.get("/api/cabinet/v1/documents")).json()
            assert len(listed) == 4
            assert (await till.succeed(pending))["outcome"] == "accepted"  # the token survived
            rest = [d["docId"] for d in await till.lease(max_docs=10)]
            assert rest == [docs[2]["id"], docs[3]["id"]]
            await advance(cloud, clock, minutes=15)  # timers resume from the database
            assert [(await doc_status(http, point, d))["status"] for d in rest] == [
                "FAILED",
                "FAILED",
            ]
            assert len(shop.requests) == 3  # one success callback and two failure callbacks
    assert clock.now() == T0 + timedelta(minutes=15)


async def test_format_switches_give_the_v2_doc_example_shape(
    db_path: Path, clock: ManualClock, shop: FakeShop
) -> None:
    settings = CloudSettings(
        password_iterations=1000,
        fiscal_date_format=FiscalDateFormat.MILLIS,
        fiscal_sum_as_string=True,
    )
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as cloud:
        transport = httpx.ASGITransport(app=cloud.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            point = await make_point(http)
            till = await FakeTill(http, point).bind()
            doc = minimal_doc()
            await post_doc(http, point, doc)
            leased = (await till.lease())[0]
            info = till.fiscal_info(total=57)
            info["date"] = "2020-02-26T07:31:19+07:00"
            await till.succeed(leased, info)
            fiscal = (await doc_status(http, point, doc["id"]))["fiscalInfo"]
    assert fiscal["date"] == "2020-02-26T00:31:19.000+0000"  # §21.7
    assert fiscal["sum"] == "57.00"
