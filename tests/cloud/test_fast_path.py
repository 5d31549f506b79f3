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
    from cloud_helpers import Point

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
