"""``POST /api/device/v1/outbox`` (D63): results and OFD acknowledgements in one exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloud_helpers import FakeTill, Point, assert_message, minimal_doc, post_doc

if TYPE_CHECKING:
    import httpx


async def test_an_ack_travels_with_its_own_result(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = (await till.lease())[0]
    info = till.fiscal_info()
    result = {
        "docId": leased["docId"],
        "leaseId": leased["leaseId"],
        "outcome": "fiscalized",
        "fiscalInfo": info,
    }
    # The acknowledgement comes first in nothing but the body: results are applied first.
    body = {"acks": [{"fnDocNumber": info["fnDocNumber"]}], "results": [result]}
    response = await http.post("/api/device/v1/outbox", headers=till.headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "results": [{"docId": doc["id"], "outcome": "accepted", "status": "COMPLETED"}],
        "ofd": {"updated": 1, "unknown": []},
    }
    url = f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}"
    detail = (await http.get(url)).json()
    assert detail["status"] == "COMPLETED"
    assert detail["ofd"]["state"] == "acknowledged"
    # Repeating the exchange changes nothing (every write is idempotent).
    again = await http.post("/api/device/v1/outbox", headers=till.headers, json=body)
    assert again.json() == {
        "results": [{"docId": doc["id"], "outcome": "duplicate", "status": "COMPLETED"}],
        "ofd": {"updated": 0, "unknown": []},
    }


async def test_acks_alone_and_unknown_numbers_are_kept(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    leased = (await till.lease())[0]
    info = till.fiscal_info()
    # The acknowledgement overtakes its result: kept, and applied when the result comes.
    early = await http.post(
        "/api/device/v1/outbox",
        headers=till.headers,
        json={"acks": [{"fnDocNumber": info["fnDocNumber"]}]},
    )
    assert early.json() == {"results": [], "ofd": {"updated": 0, "unknown": [info["fnDocNumber"]]}}
    await till.succeed(leased, info)
    url = f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}"
    assert (await http.get(url)).json()["ofd"]["state"] == "acknowledged"


async def test_outbox_needs_a_token_and_a_valid_body(
    http: httpx.AsyncClient, till: FakeTill
) -> None:
    assert_message(await http.post("/api/device/v1/outbox", json={}), 401)
    assert_message(
        await http.post("/api/device/v1/outbox", headers=till.headers, json={"other": []}), 400
    )
    empty = await http.post("/api/device/v1/outbox", headers=till.headers, json={})
    assert empty.json() == {"results": [], "ofd": {"updated": 0, "unknown": []}}
