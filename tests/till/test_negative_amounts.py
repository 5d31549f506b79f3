"""Negative payment sums and discounts through the real store API on a port and a real till.

The store API refuses what D23 lists (a negative ``discSum`` or ``vatSum``, totals that do not
match) with 400 and stores nothing; what D27 lets through (a negative payment ``sum`` whose totals
match) reaches the till, whose firmware fails it with «Сообщение ФН об ошибке: Negative» before the
drive sees it. A discount larger than its position's amount is the till's «Negative» too (D84), and
it must not jam the queue behind it.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from kkt_emulator.testing.stack import StackHarness

NEGATIVE = "Сообщение ФН об ошибке: Negative"


def _doc(positions: list[dict[str, Any]], payments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "docNum": "N-1",
        "docType": "SALE",
        "checkoutDateTime": "2026-04-01T12:00:00+03:00",
        "email": "buyer@example.com",
        "inventPositions": positions,
        "moneyPositions": payments,
    }


def _item(price: float, **more: Any) -> dict[str, Any]:
    return {"name": "Товар", "price": price, "quantity": 1, "vatTag": 1105, **more}


REFUSED = [
    (
        "negative discount",
        _doc([_item(100, discSum=-1)], [{"paymentType": "CARD", "sum": 101}]),
        "inventPositions[0].discSum: must not be negative",
    ),
    (
        "negative discount, second position",
        _doc(
            [_item(100), _item(50, discSum=-0.01)],
            [{"paymentType": "CARD", "sum": 150.01}],
        ),
        "inventPositions[1].discSum: must not be negative",
    ),
    (
        "negative VAT sum",
        _doc([_item(100, vatSum=-18)], [{"paymentType": "CASH", "sum": 100}]),
        "inventPositions[0].vatSum: must not be negative",
    ),
    (
        "negative payment against positive positions",
        _doc([_item(100)], [{"paymentType": "CASH", "sum": -100}]),
        "moneyPositions: sum of positions 100.00 does not match sum of payments -100.00",
    ),
    (
        "negative payment that a discount does not make up",
        _doc([_item(100, discSum=10)], [{"paymentType": "CARD", "sum": -90}]),
        "moneyPositions: sum of positions 90.00 does not match sum of payments -90.00",
    ),
]


@pytest.fixture
async def kkt(tmp_path: Path) -> Any:
    async with StackHarness.running(tmp_path) as harness:
        yield harness


async def _post(kkt: StackHarness, route: str, doc: dict[str, Any]) -> httpx.Response:
    return await kkt.http.post(
        f"{kkt.store_url}/{route}/doc", json=doc, auth=(kkt.login, kkt.password)
    )


async def test_refused_by_the_store_api_with_the_exact_text(kkt: StackHarness) -> None:
    assert kkt.store_url.startswith("http://127.0.0.1:")  # the real server on a port
    for route in ("v1", "v2"):
        for name, doc, text in REFUSED:
            response = await _post(kkt, route, doc)
            assert (response.status_code, response.json()) == (400, {"message": text}), name
    assert await kkt.cabinet("GET", "/documents") == []  # nothing was stored


async def _failed(kkt: StackHarness, doc: dict[str, Any]) -> dict[str, Any]:
    response = await _post(kkt, "v2", doc)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "QUEUED"
    status = await kkt.wait_for_status(doc["id"])
    assert status["status"] == "FAILED"
    assert status["failureInfo"] == {"type": "NON_FN_FAILURE", "message": NEGATIVE}
    assert status["message"] == NEGATIVE
    assert status["fiscalInfo"] is None
    detail: dict[str, Any] = await kkt.document_detail(doc["id"])
    return detail


async def test_accepted_then_refused_by_the_till(kkt: StackHarness) -> None:
    # A card payment with a negative cash part: the totals match, the firmware says «Negative».
    split = _doc(
        [_item(100)], [{"paymentType": "CARD", "sum": 150}, {"paymentType": "CASH", "sum": -50}]
    )
    detail = await _failed(kkt, split)
    assert detail["errorDetail"]["detail"] == {"moneyPosition": 1, "field": "sum", "value": -50}
    # A return of a negative amount: price and payment both negative.
    both = _doc([_item(-100)], [{"paymentType": "CASH", "sum": -100}])
    both["docType"] = "RETURN"
    detail = await _failed(kkt, both)
    assert detail["errorDetail"]["detail"] == {"position": 0, "field": "price", "value": -100}
    # A discount larger than its position's amount, made up by another position (D84).
    over = _doc([_item(100, discSum=150), _item(200)], [{"paymentType": "CARD", "sum": 150}])
    detail = await _failed(kkt, over)
    assert detail["errorDetail"]["detail"] == {"position": 0, "field": "discSum", "value": 150}
    assert detail["failureText"] == NEGATIVE
    # The queue behind them still flows; a discount equal to the amount is a free position.
    free = _doc([_item(100, discSum=100), _item(30)], [{"paymentType": "CASH", "sum": 30}])
    assert (await _post(kkt, "v2", free)).status_code == 200
    done = await kkt.wait_for_status(free["id"])
    assert done["status"] == "COMPLETED", done
    assert done["fiscalInfo"]["sum"] == 30
    # The firmware refused the three before the drive: one receipt in the drive, the free one.
    assert kkt.till.counters["fiscalized"] == 1
