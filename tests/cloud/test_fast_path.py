"""The store API's fast path (D60) answers exactly as the FastAPI routes do."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import minimal_doc

from kkt_emulator.cloud.app import StoreFastPath
from kkt_emulator.cloud.store_api import store_fast_path

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from cloud_helpers import FakeTill, Point

    from kkt_emulator.cloud.app import Cloud


def _fast_path(cloud: Cloud) -> StoreFastPath:
    layer: Any = cloud.app.middleware_stack
    while not isinstance(layer, StoreFastPath):
        layer = layer.app
    return layer


async def _both(
    cloud: Cloud, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response, str]:
    fast = _fast_path(cloud)
    match = fast.match
    seen: list[str] = []

    def spying(m: str, p: str) -> Any:
        answer = match(m, p)
        seen.append("fast" if answer is not None else "slow")
        return answer

    fast.match = spying
    first = await http.request(method, url, **kwargs)
    fast.match = lambda _m, _p: None  # FastAPI's routes only
    second = await http.request(method, url, **kwargs)
    fast.match = match
    return first, second, seen[0]


def _auth(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("prefix", ["/api/fn", "/fn"])
async def test_every_answer_is_the_routes_answer(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, prefix: str
) -> None:
    await http.get("/api/fn/v1/status")  # builds the middleware stack
    doc = minimal_doc(id="a/b c/status")  # D17: a slash, a space and "/status" inside the id
    body = json.dumps(doc, ensure_ascii=False).encode()
    good, wrong = _auth(*point.assoc), _auth(point.assoc[0], "wrong")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"{prefix}/v2/doc", {"content": body, "headers": good}),  # new, then replayed
        ("POST", f"{prefix}/v1/doc", {"content": body, "headers": good}),
        ("POST", f"{prefix}/v2/doc", {"content": b"{", "headers": good}),
        ("POST", f"{prefix}/v2/doc", {"content": b"{}", "headers": good}),
        ("POST", f"{prefix}/v2/doc", {"content": body, "headers": wrong}),
        ("POST", f"{prefix}/v2/doc", {"content": body}),
        ("GET", f"{prefix}/v1/status", {"headers": good}),
        ("GET", f"{prefix}/v1/status?x=1", {"headers": good}),
        ("GET", f"{prefix}/v1/status", {"headers": wrong}),
        ("GET", f"{prefix}/v1/status", {"headers": {"Authorization": "Basic !!"}}),
        ("GET", f"{prefix}/v1/status/", {"headers": good}),
        ("POST", f"{prefix}/v1/status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc/a%2Fb%20c%2Fstatus/status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc/a/b c/status/status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc/unknown/status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc//status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc/status", {"headers": good}),
        ("GET", f"{prefix}/v1/doc/x/status", {"headers": wrong}),
    ]
    taken = []
    for method, url, kwargs in cases:
        fast, slow, path = await _both(cloud, http, method, url, **kwargs)
        taken.append(path)
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content), url
        assert fast.headers.multi_items() == slow.headers.multi_items(), url
    assert taken.count("fast") == 15  # the others are FastAPI's, with or without the fast path


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/fn/v1/status", "status"),
        ("GET", "/fn/v1/status", "status"),
        ("POST", "/api/fn/v2/doc", "doc"),
        ("POST", "/fn/v1/doc", "doc"),
        ("GET", "/api/fn/v1/doc/x/status", "x"),
        ("GET", "/api/fn/v1/doc//status", ""),
        ("GET", "/fn/v1/doc/a/status/status", "a/status"),
        ("GET", "/api/fn/v1/doc/status", None),
        ("HEAD", "/api/fn/v1/status", None),
        ("PUT", "/api/fn/v1/doc/x/re-queue", None),
        ("GET", "/api/fn/v1/status/", None),
        ("GET", "/api/device/v1/status", None),
        ("GET", "/xapi/fn/v1/doc/x/status", None),
    ],
)
def test_what_the_fast_path_claims(
    cloud: Cloud, method: str, path: str, expected: str | None
) -> None:
    answer: Callable[..., Any] | None = store_fast_path(cloud.service)(method, path)
    if expected is None:
        assert answer is None
        return
    assert answer is not None
    keywords = getattr(answer, "keywords", {})
    if expected in ("status", "doc"):
        assert "doc_id" not in keywords
    else:
        assert keywords["doc_id"] == expected


async def _both_device(
    cloud: Cloud, http: httpx.AsyncClient, url: str, method: str = "POST", **kwargs: Any
) -> tuple[httpx.Response, httpx.Response, str]:
    """The answer with the fast path, then FastAPI's alone, and whether the fast path answered."""
    fast = _fast_path(cloud)
    match = fast.match
    taken: list[str] = []

    def spying(m: str, p: str) -> Any:
        answer = match(m, p)
        if answer is None:
            taken.append("slow")
            return None

        async def recorded(request: Any) -> Any:
            try:
                response = await answer(request)
            except Exception:
                taken.append("fast")  # refused by the answer itself: the fast path's error
                raise
            taken.append("slow" if response is None else "fast")
            return response

        return recorded

    fast.match = spying
    first = await http.request(method, url, **kwargs)
    fast.match = lambda _m, _p: None
    second = await http.request(method, url, **kwargs)
    fast.match = match
    return first, second, taken[0]


async def test_the_till_routes_answer_as_the_routes_do(
    cloud: Cloud, http: httpx.AsyncClient, till: FakeTill
) -> None:
    """D123: what the fast path answers is FastAPI's answer; what it declines goes to FastAPI."""
    await http.get("/api/fn/v1/status")
    good = till.headers
    lease, outbox = "/api/device/v1/lease", "/api/device/v1/outbox"
    heartbeat, watch = "/api/device/v1/heartbeat", "/api/device/v1/watch"
    beat = {"fnState": "READY", "fnSerial": till.fn_serial, "powerSaving": False}
    result = {
        "docId": "unknown-doc",
        "outcome": "failed",
        "failureInfo": {"type": "FN_MEMORY_OVERFLOW", "message": "Исчерпан"},
    }
    cases: list[tuple[str, dict[str, Any], str]] = [
        (lease, {"headers": good}, "fast"),  # nothing queued: 204
        (f"{lease}?max=3&wait=0&resume=0", {"headers": good}, "fast"),
        (f"{lease}?max=1&unknown=x", {"headers": good}, "fast"),
        (lease, {"headers": {"Authorization": "Bearer wrong"}}, "fast"),
        (lease, {}, "fast"),
        (f"{lease}?max=0", {"headers": good}, "slow"),
        (f"{lease}?max=101", {"headers": good}, "slow"),
        (f"{lease}?max=abc", {"headers": good}, "slow"),
        (f"{lease}?max=%EF%BC%91", {"headers": good}, "slow"),  # a full-width digit one
        (f"{lease}?wait=-1", {"headers": good}, "slow"),
        (f"{lease}?wait=nan", {"headers": good}, "slow"),
        (f"{lease}?wait=31", {"headers": good}, "slow"),
        (f"{lease}?resume=yes", {"headers": good}, "slow"),
        (f"{lease}?max=1&max=2", {"headers": good}, "slow"),
        (f"{lease}?max=", {"headers": good}, "slow"),  # a blank value is a value to the route
        (f"{lease}?max=007", {"headers": good}, "slow"),
        (f"{lease}?wait=1e-9", {"headers": good}, "slow"),  # the route reads these two
        (f"{lease}?wait=%200", {"headers": good}, "slow"),
        (f"{lease}?wait=0.01&resume=true", {"headers": good}, "fast"),
        (heartbeat, {"headers": good, "json": beat}, "fast"),
        (heartbeat, {"headers": {"Authorization": "Bearer wrong"}, "json": beat}, "fast"),
        (heartbeat, {"headers": good, "json": {**beat, "fnState": "nonsense"}}, "slow"),
        (heartbeat, {"headers": good, "content": b"[]"}, "slow"),
        (watch, {"json": {"tokens": [till.token, "unknown"]}}, "fast"),
        (f"{watch}?wait=0&after=x", {"json": {"tokens": [till.token]}}, "fast"),
        (f"{watch}?after={'a' * 65}", {"json": {"tokens": [till.token]}}, "slow"),
        (f"{watch}?wait=-1", {"json": {"tokens": [till.token]}}, "slow"),
        (watch, {"json": {"tokens": "x"}}, "slow"),
        (watch, {"json": {}}, "slow"),
        (outbox, {"headers": good, "json": {}}, "fast"),
        (outbox, {"headers": good, "json": {"results": [result]}}, "fast"),
        (outbox, {"headers": {"Authorization": "Bearer wrong"}, "json": {}}, "fast"),
        (outbox, {"headers": good, "content": b"{"}, "slow"),
        (outbox, {"headers": good, "content": b""}, "slow"),
        (outbox, {"headers": good, "json": {"results": 5}}, "slow"),
        (outbox, {"headers": good, "json": {"extra": 1}}, "slow"),
        (outbox, {"headers": good, "json": {"results": [{**result, "outcome": "x"}]}}, "slow"),
        (
            outbox,
            {"headers": {**good, "Content-Type": "text/plain"}, "content": b"{}"},
            "slow",
        ),
    ]
    for url, kwargs, expected in cases:
        fast, slow, taken = await _both_device(cloud, http, url, **kwargs)
        assert taken == expected, (url, kwargs)
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content), (url, kwargs)
        assert fast.headers.multi_items() == slow.headers.multi_items(), (url, kwargs)


async def test_bind_and_order_syncs_answer_as_the_routes_do(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    """D131: a fleet's start-up binds and syncs orders beside the router, with its answers."""
    await http.get("/api/fn/v1/status")
    good = till.headers
    orders = "/api/device/v1/orders"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (orders, {"headers": good}, "fast"),
        (f"{orders}?since=0&wait=0", {"headers": good}, "fast"),
        (f"{orders}?since=5&wait=0.01", {"headers": good}, "fast"),  # a long poll run out
        (orders, {"headers": {"Authorization": "Bearer wrong"}}, "fast"),
        (orders, {}, "fast"),
        (f"{orders}?since=-1", {"headers": good}, "slow"),
        (f"{orders}?since=007", {"headers": good}, "slow"),
        (f"{orders}?since=x", {"headers": good}, "slow"),
        (f"{orders}?since=1&since=2", {"headers": good}, "slow"),
        (f"{orders}?wait=31", {"headers": good}, "slow"),
    ]
    for url, kwargs, expected in cases:
        fast, slow, taken = await _both_device(cloud, http, url, "GET", **kwargs)
        assert taken == expected, (url, kwargs)
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content), (url, kwargs)
        assert fast.headers.multi_items() == slow.headers.multi_items(), (url, kwargs)

    bind = "/api/device/v1/bind"
    body = {"tillSerial": till.serial, "fnSerial": till.fn_serial, "model": "virtual"}
    service = _auth(*point.service)
    binds: list[tuple[dict[str, Any], str]] = [
        ({"headers": service, "json": body}, "fast"),
        ({"headers": _auth("nobody", "x"), "json": body}, "fast"),
        ({"json": body}, "fast"),
        ({"headers": service, "json": {**body, "retailPointId": "unknown"}}, "fast"),
        ({"headers": service, "json": {"fnSerial": "1"}}, "slow"),
        ({"headers": service, "json": {**body, "extra": 1}}, "slow"),
        ({"headers": service, "content": b"{"}, "slow"),
    ]
    for kwargs, expected in binds:
        fast, slow, taken = await _both_device(cloud, http, bind, **kwargs)
        assert taken == expected, kwargs
        assert fast.status_code == slow.status_code, kwargs
        if fast.status_code == 200:  # each bind gives a new token: the same device and point
            assert (
                fast.json().keys() == slow.json().keys() == {"deviceId", "token", "retailPointId"}
            )
            assert fast.json()["deviceId"] == slow.json()["deviceId"] == till.device_id
            assert fast.headers["content-type"] == slow.headers["content-type"]
        else:
            assert fast.content == slow.content, kwargs
            assert fast.headers.multi_items() == slow.headers.multi_items(), kwargs


async def test_a_lease_and_its_report_by_either_path(
    cloud: Cloud, http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    """D123: a document leased and reported by the fast path looks as one by the routes."""
    await http.get("/api/fn/v1/status")
    fast = _fast_path(cloud)
    match = fast.match
    answers: dict[str, list[dict[str, Any]]] = {}
    for path in ("fast", "slow"):
        fast.match = match if path == "fast" else (lambda _m, _p: None)
        posted = await http.post("/api/fn/v2/doc", auth=point.assoc, json=minimal_doc(id=path))
        assert posted.status_code == 200, posted.text
        leased = await till.lease(max_docs=5)
        assert [d["docId"] for d in leased] == [path]
        item = {
            "docId": path,
            "leaseId": leased[0]["leaseId"],
            "outcome": "fiscalized",
            "fiscalInfo": till.fiscal_info(),
        }
        reply = await http.post(
            "/api/device/v1/outbox", headers=till.headers, json={"results": [item]}
        )
        assert reply.status_code == 200, reply.text
        answers[path] = [_without_ids(leased[0]), _without_ids(reply.json())]
    fast.match = match
    assert answers["fast"] == answers["slow"]


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_ids(v)
            for k, v in value.items()
            if k not in ("docId", "leaseId", "id", "leasedUntil", "fnDocNumber")
        }
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value
