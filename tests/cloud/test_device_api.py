"""The till API: bind, heartbeat, lease, results, ofd-acks, driven by a scripted fake till."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from cloud_helpers import (
    FakeTill,
    Point,
    assert_message,
    doc_status,
    make_point,
    minimal_doc,
    post_doc,
)

if TYPE_CHECKING:
    import httpx


# -- bind ------------------------------------------------------------------------------------------


@pytest.fixture
def db_path(any_db: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (the storage contract, D73)."""
    return any_db


async def test_bind_is_idempotent_per_till_serial(http: httpx.AsyncClient, point: Point) -> None:
    till = await FakeTill(http, point).bind()
    first_token, device_id = till.token, till.device_id
    await till.bind()
    assert till.device_id == device_id
    assert till.token != first_token
    assert_message(
        await http.post(
            "/api/device/v1/heartbeat",
            headers={"Authorization": f"Bearer {first_token}"},
            json={"fnState": "READY"},
        ),
        401,
    )
    await till.heartbeat()


async def test_bind_errors(http: httpx.AsyncClient, point: Point) -> None:
    body = {"tillSerial": "0001"}
    assert_message(await http.post("/api/device/v1/bind", json=body), 401, "Unauthorized")
    assert_message(await http.post("/api/device/v1/bind", json=body, auth=point.assoc), 401)
    assert_message(
        await http.post("/api/device/v1/bind", json={}, auth=point.service),
        400,
        "tillSerial: Field required",
    )
    assert_message(await http.post("/api/device/v1/bind", content=b"{", auth=point.service), 400)
    unknown = {"tillSerial": "1", "retailPointId": "3769574b-d082-4fe2-8cf0-dee21f9a7e0f"}
    assert_message(await http.post("/api/device/v1/bind", json=unknown, auth=point.service), 404)
    account = await http.post("/api/cabinet/v1/accounts", json={"name": "Other"})
    foreign = await make_point(http, accountId=account.json()["id"])
    other = {"tillSerial": "1", "retailPointId": foreign.id}
    assert_message(await http.post("/api/device/v1/bind", json=other, auth=point.service), 403)


async def test_bearer_routes_need_a_token(http: httpx.AsyncClient, till: FakeTill) -> None:
    for path, body in (
        ("heartbeat", {"fnState": "READY"}),
        ("lease", None),
        ("results", {"results": []}),
        ("ofd-acks", {"acks": []}),
    ):
        assert_message(await http.post(f"/api/device/v1/{path}", json=body), 401)
        assert_message(
            await http.post(
                f"/api/device/v1/{path}", json=body, headers={"Authorization": "Bearer nope"}
            ),
            401,
        )
    await http.delete(f"/api/cabinet/v1/retail-points/{till.point.id}")
    assert_message(await http.post("/api/device/v1/lease", headers=till.headers), 403)


# -- heartbeat and fnState (D40) ------------------------------------------------------------------


async def test_fn_state_follows_heartbeats_and_the_flag(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    async def status() -> str:
        response = await http.get("/api/fn/v1/status", auth=point.assoc)
        result: str = response.json()["status"]
        return result

    doc = minimal_doc()
    await post_doc(http, point, doc)
    assert await status() == "ASSOCIATED"
    answer = await till.heartbeat("READY")
    assert answer["settings"] == {
        "internetDocsEnabled": True,
        "stopOnErrors": False,
        "pickupWindow": "3days",
        "defaultTaxMode": "COMMON",
    }
    assert answer["serverTime"] == "2024-05-01T09:00:00+00:00"
    assert await status() == "READY"
    await till.heartbeat("FAILED")
    assert await status() == "FAILED"
    assert (await doc_status(http, point, doc["id"]))["fnState"] == "FAILED"  # D28
    await http.patch(
        f"/api/cabinet/v1/retail-points/{point.id}", json={"internetDocsEnabled": False}
    )
    assert await status() == "DISABLED"
    assert (await doc_status(http, point, doc["id"]))["fnState"] == "DISABLED"
    await http.patch(
        f"/api/cabinet/v1/retail-points/{point.id}", json={"internetDocsEnabled": True}
    )
    await till.heartbeat("READY")
    assert await status() == "READY"
    heartbeats = (await http.get("/api/cabinet/v1/heartbeats")).json()
    assert heartbeats[0]["deviceId"] == till.device_id
    assert heartbeats[0]["heartbeat"]["fnState"] == "READY"


async def test_a_bind_carries_the_first_heartbeat(http: httpx.AsyncClient, point: Point) -> None:
    """D134: the heartbeat a bind carries is stored with the binding and answered as /heartbeat."""
    body = {
        "tillSerial": "000000000134",
        "fnSerial": "9999078900000134",
        "heartbeat": {"fnState": "READY", "fnSerial": "9999078900000134", "appVersion": "x"},
    }
    bound = await http.post("/api/device/v1/bind", json=body, auth=point.service)
    assert bound.status_code == 200, bound.text
    answer = bound.json()
    beat = answer["heartbeat"]
    assert beat["deviceId"] == answer["deviceId"]
    assert beat["retailPointId"] == point.id
    assert beat["serverTime"] == "2024-05-01T09:00:00+00:00"
    assert beat["settings"]["internetDocsEnabled"] is True
    assert "catalogRevision" in beat
    status = await http.get("/api/fn/v1/status", auth=point.assoc)
    assert status.json()["status"] == "READY"  # no longer ASSOCIATED: a heartbeat was stored
    heartbeats = (await http.get("/api/cabinet/v1/heartbeats")).json()
    mine = [h for h in heartbeats if h["deviceId"] == answer["deviceId"]]
    assert mine[0]["heartbeat"]["appVersion"] == "x"
    # Without one, the bind answers no heartbeat and the till stays ASSOCIATED until it sends one.
    other = await http.post(
        "/api/device/v1/bind", json={"tillSerial": "000000000135"}, auth=point.service
    )
    assert "heartbeat" not in other.json()
    bad = {**body, "heartbeat": {"fnState": "BROKEN"}}
    response = await http.post("/api/device/v1/bind", json=bad, auth=point.service)
    assert_message(response, 400)
    assert response.json()["message"].startswith("heartbeat.fnState:")


async def test_heartbeat_validation(http: httpx.AsyncClient, till: FakeTill) -> None:
    response = await http.post(
        "/api/device/v1/heartbeat", headers=till.headers, json={"fnState": "BROKEN"}
    )
    assert_message(response, 400)
    assert response.json()["message"].startswith("fnState:")


# -- lease (D39) -----------------------------------------------------------------------------------


async def test_lease_is_oldest_first_and_respects_max(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    docs = [minimal_doc(docNum=str(n)) for n in range(5)]
    for doc in docs:
        await post_doc(http, point, doc)
    first = await till.lease(max_docs=2)
    assert [d["docId"] for d in first] == [docs[0]["id"], docs[1]["id"]]
    assert first[0]["leaseExpiresAt"] == "2024-05-01T09:15:00+00:00"
    assert first[0]["document"]["taxMode"] == "COMMON"  # D21
    rest = await till.lease(max_docs=10)
    assert [d["docId"] for d in rest] == [d["id"] for d in docs[2:]]
    assert await till.lease() == []
    assert (await doc_status(http, point, docs[0]["id"]))["status"] == "PENDING"


async def test_lease_query_validation(http: httpx.AsyncClient, till: FakeTill) -> None:
    for params in ({"max": 0}, {"max": 101}, {"wait": 31}, {"wait": "soon"}):
        response = await http.post("/api/device/v1/lease", headers=till.headers, params=params)
        assert_message(response, 400)


async def test_long_poll_is_woken_by_a_new_document(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    waiting = asyncio.create_task(till.lease(wait=30))
    for _ in range(20):
        await http.get("/api/cabinet/v1/clock")  # lets the long polls run
    assert not waiting.done()
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = await waiting
    assert [d["docId"] for d in leased] == [doc["id"]]


async def test_flag_off_leases_nothing_until_switched_on(
    http: httpx.AsyncClient, till: FakeTill
) -> None:
    point = till.point
    await http.patch(
        f"/api/cabinet/v1/retail-points/{point.id}", json={"internetDocsEnabled": False}
    )
    doc = minimal_doc()
    response = await post_doc(http, point, doc)
    assert response.json()["status"] == "QUEUED"
    assert response.json()["fnState"] == "DISABLED"
    assert await till.lease() == []
    await http.patch(
        f"/api/cabinet/v1/retail-points/{point.id}", json={"internetDocsEnabled": True}
    )
    assert [d["docId"] for d in await till.lease()] == [doc["id"]]


async def test_tills_lease_only_their_own_points_documents(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    other_point = await make_point(http)
    other_till = await FakeTill(http, other_point).bind()
    await post_doc(http, point, minimal_doc())
    assert await other_till.lease() == []
    assert len(await till.lease()) == 1


async def test_concurrent_tills_never_share_a_document(
    http: httpx.AsyncClient, point: Point
) -> None:
    tills = [await FakeTill(http, point).bind() for _ in range(5)]
    docs = [minimal_doc(docNum=str(n)) for n in range(60)]
    for doc in docs:
        await post_doc(http, point, doc)

    async def drain(till: FakeTill) -> list[str]:
        got: list[str] = []
        while batch := await till.lease(max_docs=3):
            got.extend(d["docId"] for d in batch)
        return got

    batches = await asyncio.gather(*(drain(t) for t in tills))
    handed = [doc_id for batch in batches for doc_id in batch]
    assert sorted(handed) == sorted(d["id"] for d in docs)
    assert len(handed) == len(set(handed))


async def test_concurrent_long_polls_share_new_documents_exactly_once(
    http: httpx.AsyncClient, point: Point
) -> None:
    tills = [await FakeTill(http, point).bind() for _ in range(4)]
    waiting = [asyncio.create_task(t.lease(max_docs=1, wait=2)) for t in tills]
    for _ in range(20):
        await http.get("/api/cabinet/v1/clock")  # lets the long polls run
    docs = [minimal_doc(docNum=str(n)) for n in range(3)]
    for doc in docs:
        await post_doc(http, point, doc)
    results = await asyncio.gather(*waiting)
    handed = [d["docId"] for batch in results for d in batch]
    assert len(handed) == len(set(handed))
    assert set(handed) <= {d["id"] for d in docs}
    for till in tills:
        handed.extend(d["docId"] for d in await till.lease(max_docs=10))
    assert sorted(handed) == sorted(d["id"] for d in docs)


# -- results (D36) ---------------------------------------------------------------------------------


async def test_success_without_callback_completes(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = (await till.lease())[0]
    info = till.fiscal_info()
    answer = await till.succeed(leased, info)
    assert answer == {"docId": doc["id"], "outcome": "accepted", "status": "COMPLETED"}
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "COMPLETED"
    assert status["message"] is None  # D29: completed without a callback
    assert status["fiscalInfo"]["fnDocNumber"] == info["fnDocNumber"]
    assert status["fiscalInfo"]["sum"] == 100
    again = await till.succeed(leased, info)
    assert again["outcome"] == "duplicate"
    other = await till.succeed(leased)  # another ФД for the same document
    assert other["outcome"] == "ignored_already_fiscalised"
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}")
    assert any("double fiscalisation" in w for w in detail.json()["warnings"])
    events = [h["event"] for h in detail.json()["history"]]
    assert events == ["accepted", "lease", "success", "dispatch", "double_fiscalisation_alarm"]


async def test_failure_is_stored_and_idempotent(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = (await till.lease())[0]
    answer = await till.fail(leased)
    assert answer["status"] == "FAILED"
    assert (await till.fail(leased))["outcome"] == "duplicate"
    status = await doc_status(http, point, doc["id"])
    assert status == {
        "status": "FAILED",
        "fnState": "ASSOCIATED",
        "fiscalInfo": None,
        "failureInfo": {
            "type": "FN_MEMORY_OVERFLOW",
            "message": "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН",
        },
        "message": "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН",
        "timeStatusChanged": "2024-05-01T09:00:00+00:00",
    }
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}")
    assert detail.json()["errorDetail"]["resultCode"] == 0x14


async def test_results_validation_and_unknown_documents(
    http: httpx.AsyncClient, till: FakeTill
) -> None:
    response = await http.post(
        "/api/device/v1/results",
        headers=till.headers,
        json={"results": [{"docId": "x", "outcome": "fiscalized"}]},
    )
    assert_message(response, 400)
    assert "fiscalInfo is required" in response.json()["message"]
    response = await http.post(
        "/api/device/v1/results",
        headers=till.headers,
        json={"results": [{"docId": "x", "outcome": "burnt"}]},
    )
    assert_message(response, 400)
    unknown = await till.report(
        [
            {
                "docId": "nope",
                "outcome": "failed",
                "failureInfo": {"type": "NON_FN_FAILURE", "message": "m"},
            }
        ]
    )
    assert unknown == [{"docId": "nope", "outcome": "unknown_document", "status": None}]


async def test_ofd_acks_are_tracked_apart_from_completed(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = (await till.lease())[0]
    info = till.fiscal_info()
    await till.succeed(leased, info)
    url = f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}"
    assert (await http.get(url)).json()["ofd"]["state"] == "not_sent"
    response = await http.post(
        "/api/device/v1/ofd-acks",
        headers=till.headers,
        json={"acks": [{"fnDocNumber": info["fnDocNumber"]}, {"fnDocNumber": 9999}]},
    )
    assert response.json() == {"updated": 1, "unknown": [9999]}
    detail = (await http.get(url)).json()
    assert detail["status"] == "COMPLETED"
    assert detail["ofd"]["state"] == "acknowledged"
    store = await doc_status(http, point, doc["id"])
    assert "ofd" not in store  # D1


@pytest.mark.parametrize("wait", [0, 0.5])
async def test_lease_answers_204_when_empty(till: FakeTill, wait: float) -> None:
    assert await till.lease(wait=wait) == []
