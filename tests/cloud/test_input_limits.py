"""Strings the store API cannot keep, and its length limits (D55, D56): 400 with a message."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cloud_helpers import Point, assert_message, minimal_doc

from kkt_emulator.cloud.validation import (
    MAX_CONTACT,
    MAX_DOC_NUM,
    MAX_ID,
    MAX_NAME,
    MAX_PARTY_NAME,
)


async def post_raw(http: httpx.AsyncClient, point: Point, doc: dict[str, Any]) -> httpx.Response:
    # ensure_ascii keeps a lone surrogate as the JSON escape "\ud800": valid JSON, bad text.
    body = json.dumps(doc, ensure_ascii=True).encode()
    return await http.post("/api/fn/v2/doc", auth=point.assoc, content=body)


def with_position_name(name: str) -> dict[str, Any]:
    doc = minimal_doc()
    doc["inventPositions"][0]["name"] = name
    return doc


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (minimal_doc(id="\ud800"), "id"),
        (minimal_doc(docNum="№\udfff"), "docNum"),
        (minimal_doc(email="buyer\ud83d@example.com"), "email"),
        (with_position_name("Товар \ud800"), "inventPositions[0].name"),
        (minimal_doc(id="a\x00b"), "id"),
        (minimal_doc(docNum="\x00"), "docNum"),
    ],
)
async def test_unstorable_strings_are_refused_with_400(
    http: httpx.AsyncClient, point: Point, doc: dict[str, Any], field: str
) -> None:
    response = await post_raw(http, point, doc)
    assert_message(response, 400)
    assert field in response.json()["message"]
    listed = (await http.get("/api/cabinet/v1/documents")).json()
    assert listed == []


async def test_a_surrogate_in_a_key_is_refused(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    doc["\ud800"] = 1
    assert_message(await post_raw(http, point, doc), 400)


@pytest.mark.parametrize(
    ("doc", "field", "limit"),
    [
        (minimal_doc(id="i" * (MAX_ID + 1)), "id", MAX_ID),
        (minimal_doc(docNum="7" * (MAX_DOC_NUM + 1)), "docNum", MAX_DOC_NUM),
        (minimal_doc(email="a" * 100_000 + "@example.com"), "email", MAX_CONTACT),
        (with_position_name("Т" * (MAX_NAME + 1)), "inventPositions[0].name", MAX_NAME),
        (minimal_doc(clientName="О" * (MAX_PARTY_NAME + 1)), "clientName", MAX_PARTY_NAME),
    ],
)
async def test_strings_beyond_their_limit_are_refused(
    http: httpx.AsyncClient, point: Point, doc: dict[str, Any], field: str, limit: int
) -> None:
    response = await post_raw(http, point, doc)
    assert_message(response, 400)
    message = response.json()["message"]
    assert field in message
    assert str(limit) in message


async def test_strings_at_their_limit_are_accepted(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc(
        id="i" * MAX_ID,
        docNum="7" * MAX_DOC_NUM,
        email="b" * (MAX_CONTACT - len("@example.com")) + "@example.com",
        clientName="О" * MAX_PARTY_NAME,
    )
    doc["inventPositions"][0]["name"] = "Т" * MAX_NAME
    response = await post_raw(http, point, doc)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://shop.example/cb",
        "javascript:alert(1)",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http:///no-host",
        "/relative/callback",
        "https://" + "h" * 3000 + ".example/",
    ],
)
async def test_response_url_must_be_http_or_https(
    http: httpx.AsyncClient, point: Point, url: str
) -> None:
    response = await post_raw(http, point, minimal_doc(responseURL=url))
    assert_message(response, 400)
    assert "responseURL" in response.json()["message"]


@pytest.mark.parametrize("url", ["http://shop.example/cb?id=1", "HTTPS://shop.example:8443/cb"])
async def test_http_and_https_callbacks_are_accepted(
    http: httpx.AsyncClient, point: Point, url: str
) -> None:
    response = await post_raw(http, point, minimal_doc(responseURL=url))
    assert response.status_code == 200, response.text
