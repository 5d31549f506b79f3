"""Holes the chaos harness found: a lease whose answer was lost, an acknowledgement before its result.

* A till killed between the cloud's commit of a lease and its own journal write asks, when it
  starts again, for its own pending leases (``resume=1``): it gets them back with the same lease,
  and no other till ever does.
* An OFD acknowledgement that reaches the cloud before the result naming its fiscal number is
  kept and applied when the result arrives, never dropped as unknown.
"""

from __future__ import annotations

import httpx
import pytest
from cloud_helpers import FakeTill, Point, minimal_doc, post_doc


@pytest.fixture
def db_path(any_db: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (the storage contract, D73)."""
    return any_db


async def document_detail(http: httpx.AsyncClient, point: Point, doc_id: str) -> dict[str, object]:
    response = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc_id}")
    assert response.status_code == 200, response.text
    detail: dict[str, object] = response.json()
    return detail


async def test_a_restarted_till_gets_its_own_pending_leases_back(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    docs = [minimal_doc() for _ in range(3)]
    for doc in docs:
        assert (await post_doc(http, point, doc)).status_code == 200
    first = await till.lease(max_docs=2)  # the answer the killed till never journalled
    assert [d["docId"] for d in first] == [docs[0]["id"], docs[1]["id"]]
    third = await till.lease(max_docs=10)
    assert [d["docId"] for d in third] == [docs[2]["id"]]

    other = await FakeTill(http, point).bind()
    assert await other.lease(max_docs=10, resume=True) == []  # never another till's leases

    resumed = await till.lease(max_docs=10, resume=True)
    assert [(d["docId"], d["leaseId"]) for d in resumed] == [
        (d["docId"], d["leaseId"]) for d in [*first, *third]
    ]
    assert await till.lease(max_docs=10) == []  # a plain lease never repeats a pending one
    for leased in resumed:
        assert (await till.succeed(leased))["outcome"] == "accepted"
    statuses = [
        (await http.get(f"/api/fn/v1/doc/{d['id']}/status", auth=point.assoc)).json()["status"]
        for d in docs
    ]
    assert statuses == ["COMPLETED"] * 3
    assert await till.lease(max_docs=10, resume=True) == []  # nothing pending is left to resume


async def test_resume_fills_up_with_queued_documents_and_respects_max(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    docs = [minimal_doc() for _ in range(3)]
    for doc in docs:
        assert (await post_doc(http, point, doc)).status_code == 200
    first = await till.lease(max_docs=1)
    resumed = await till.lease(max_docs=2, resume=True)
    assert [d["docId"] for d in resumed] == [docs[0]["id"], docs[1]["id"]]
    assert resumed[0]["leaseId"] == first[0]["leaseId"]
    assert [d["docId"] for d in await till.lease(max_docs=5)] == [docs[2]["id"]]


async def test_an_acknowledgement_before_its_result_is_kept_and_applied(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    assert (await post_doc(http, point, doc)).status_code == 200
    (leased,) = await till.lease()
    info = till.fiscal_info()
    early = await http.post(
        "/api/device/v1/ofd-acks",
        headers=till.headers,
        json={"acks": [{"fnDocNumber": info["fnDocNumber"], "state": "acknowledged"}]},
    )
    assert early.status_code == 200
    assert early.json() == {"updated": 0, "unknown": [info["fnDocNumber"]]}  # kept, not lost
    assert (await till.succeed(leased, info))["outcome"] == "accepted"
    detail = await document_detail(http, point, doc["id"])
    ofd = detail["ofd"]
    assert isinstance(ofd, dict)
    assert ofd["state"] == "acknowledged"


async def test_a_parked_sent_report_never_overrides_a_parked_acknowledgement(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    assert (await post_doc(http, point, doc)).status_code == 200
    (leased,) = await till.lease()
    info = till.fiscal_info()
    fd = info["fnDocNumber"]
    for state in ("acknowledged", "sent"):
        answer = await http.post(
            "/api/device/v1/ofd-acks",
            headers=till.headers,
            json={"acks": [{"fnDocNumber": fd, "state": state}]},
        )
        assert answer.status_code == 200
    await till.succeed(leased, info)
    ofd = (await document_detail(http, point, doc["id"]))["ofd"]
    assert isinstance(ofd, dict)
    assert ofd["state"] == "acknowledged"
