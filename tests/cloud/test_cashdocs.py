"""``POST /api/device/v1/cashdocs`` and the cash-document storage (orders-and-backoffice.md B4–B12).

Runs on SQLite and on PostgreSQL: the upload, idempotence per id, the B4 shift object with the B5
totals computed from the uploaded documents, the listing filters of B3, and the listeners that run
in the storing transaction (B12).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import T0, FakeTill, Point, assert_message, make_point

from kkt_emulator.cloud.tables_cashdocs import CashDocQuery, CashDocRecord, CashShiftRecord

if TYPE_CHECKING:
    import httpx

    from kkt_emulator.clock import ManualClock
    from kkt_emulator.cloud.app import Cloud


@pytest.fixture
def db_path(any_db: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (the storage contract, D73)."""
    return any_db


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _doc(
    shift: dict[str, Any],
    num: int,
    doc_type: str,
    minutes: int,
    total: float,
    *,
    positions: list[tuple[str, float, float, int]] = (),  # type: ignore[assignment]
    payments: list[tuple[str, float]] = (),  # type: ignore[assignment]
    change: float = 0.0,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "docNum": str(num),
        "docType": doc_type,
        "status": "CLOSED",
        "beginDateTime": _at(minutes),
        "endDateTime": _at(minutes),
        "shift": shift,
        "inventPositions": [
            {
                "posNum": i + 1,
                "name": name,
                "quantity": qty,
                "price": price,
                "posSum": round(qty * price, 2),
                "vatTag": str(vat),
                "type": "MAIN",
            }
            for i, (name, qty, price, vat) in enumerate(positions)
        ],
        "moneyPositions": [{"paymentType": kind, "sum": value} for kind, value in payments],
        "baseSum": total,
        "actualSum": total,
        "change": change,
        **extra,
    }


def scripted_shift() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A shift with every kind of document; its totals are computed by hand in the test."""
    shift = {"id": str(uuid.uuid4()), "shiftNum": 7}
    kkm = {"serialNo": "0001000000001", "shiftNum": 57, "fiscalInfo": {"fnNo": "9999078900000001"}}
    docs = [
        _doc(shift, 0, "SHIFT_OPEN", 0, 0, kkmInfo=kkm),
        _doc(
            shift,
            1,
            "SALE",
            5,
            180,
            positions=[("Хлеб", 2, 50, 1102), ("Молоко", 1, 80, 1103)],
            payments=[("CASH", 200)],
            change=20,
        ),
        _doc(
            shift, 2, "SALE", 10, 300, positions=[("Сыр", 1, 300, 1102)], payments=[("CARD", 300)]
        ),
        _doc(
            shift,
            3,
            "SALE",
            15,
            500,
            positions=[("Чай", 1, 500, 1105)],
            payments=[("CARD", 200), ("CASH", 400)],
            change=100,
        ),
        _doc(
            shift, 4, "RETURN", 20, 50, positions=[("Хлеб", 1, 50, 1102)], payments=[("CARD", 50)]
        ),
        _doc(
            shift,
            5,
            "SALE_CORRECTION",
            25,
            70,
            positions=[("Товар", 1, 70, 1105)],
            payments=[("CASH", 70)],
        ),
        _doc(shift, 1, "CASH_IN", 30, 1000, payments=[("CASH", 1000)]),
        _doc(shift, 2, "CASH_OUT", 35, 300, payments=[("CASH", 300)]),
        _doc(
            shift,
            6,
            "SHIFT_CLOSE",
            40,
            0,
            kkmInfo={**kkm, "fiscalInfo": {"fnNo": "9999078900000001", "stalledDocCnt": 0}},
        ),
    ]
    return shift, docs


EXPECTED_TOTALS = {
    "sales": 980.0,
    "salesByCash": 480.0,
    "salesByCard": 500.0,
    "salesByOther": 0.0,
    "returns": 50.0,
    "returnsByCash": 0.0,
    "returnsByCard": 50.0,
    "returnsByOther": 0.0,
    "cashIns": 1000.0,
    "cashOuts": 300.0,
    "corrIns": 70.0,
    "corrOuts": 0.0,
    "salesCount": 3,
    "returnsCount": 1,
    "corrCount": 1,
    "vatTotals": [
        # 100/6 = 16.67 and 300/6 = 50.00 (rounded per position); 50/6 = 8.33
        {"vatTag": 1102, "sales": 400.0, "returns": 50.0, "vatSales": 66.67, "vatReturns": 8.33},
        {"vatTag": 1103, "sales": 80.0, "returns": 0.0, "vatSales": 7.27, "vatReturns": 0.0},
        {"vatTag": 1105, "sales": 500.0, "returns": 0.0, "vatSales": 0.0, "vatReturns": 0.0},
    ],
}


async def upload(http: httpx.AsyncClient, till: FakeTill, docs: list[dict[str, Any]]) -> Any:
    response = await http.post(
        "/api/device/v1/cashdocs", headers=till.headers, json={"documents": docs}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_shift_uploaded_gives_its_totals_and_listeners_fire_once(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, till: FakeTill, clock: ManualClock
) -> None:
    stored: list[CashDocRecord] = []
    completed: list[CashShiftRecord] = []
    cloud.storage.on_cashdoc_stored(stored.append)
    cloud.storage.on_shift_completed(completed.append)
    shift, docs = scripted_shift()
    await clock.advance(timedelta(minutes=45))

    # The first half: the shift is open and incomplete, no "shift completed" yet.
    answer = await upload(http, till, docs[:4])
    assert [r["outcome"] for r in answer["results"]] == ["stored"] * 4
    view = cloud.service.shift_by_id(point.id, shift["id"])
    assert view["status"] == "OPENED"
    assert view["complete"] is False
    assert view["closeDate"] is None
    assert completed == []

    # The rest, with the first half again (a retry after a lost answer): duplicates, nothing twice.
    answer = await upload(http, till, docs)
    assert [r["outcome"] for r in answer["results"]] == ["duplicate"] * 4 + ["stored"] * 5
    assert [r.doc_id for r in stored] == [d["id"] for d in docs]
    assert [s.id for s in completed] == [shift["id"]]

    view = cloud.service.shift_by_id(point.id, shift["id"])
    assert view["status"] == "CLOSED"
    assert view["complete"] is True
    assert view["shiftNum"] == 7
    assert view["kkmInfo"]["shiftNum"] == 57
    assert view["kkmInfo"]["fiscalInfo"]["stalledDocCnt"] == 0
    assert view["openDate"] == "2024-05-01T09:00:00+00:00"
    assert view["closeDate"] == "2024-05-01T09:40:00+00:00"
    assert view["lastCheckNum"] == 5
    assert view["lastMoneyCheckNum"] == 2
    assert view["shiftTotals"] == EXPECTED_TOTALS
    assert view["documentsCount"] == 7

    recent = cloud.service.recent_shifts(point.id, days=1)
    assert [s["id"] for s in recent] == [shift["id"]]
    await clock.advance(timedelta(days=2))
    assert cloud.service.recent_shifts(point.id, days=1) == []

    # The cabinet's till view: when the till last uploaded.
    tills = (await http.get("/api/cabinet/v1/heartbeats")).json()
    mine = next(t for t in tills if t["deviceId"] == till.device_id)
    assert mine["lastUploadAt"] == "2024-05-01T09:45:00+00:00"
    assert mine["uploadedDocuments"] == 9


async def test_listing_filters(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, till: FakeTill
) -> None:
    shift, docs = scripted_shift()
    order = str(uuid.uuid4())
    docs[2]["linkedDocId"] = order
    docs[3]["description"] = "Доставка курьером"
    await upload(http, till, docs)
    service = cloud.service

    def ids(**kwargs: Any) -> list[str]:
        records, total = service.cash_documents(CashDocQuery(point.id, **kwargs))
        assert total >= len(records)
        return [r.doc_id for r in records]

    every = [d["id"] for d in docs[1:-1]]  # the shift documents are not listed by default
    assert ids() == every
    assert ids(descending=True) == every[::-1]
    assert ids(doc_types=("SHIFT_OPEN", "SHIFT_CLOSE")) == [docs[0]["id"], docs[-1]["id"]]
    assert ids(doc_types=("SALE",)) == [docs[1]["id"], docs[2]["id"], docs[3]["id"]]
    assert ids(linked_doc_id=order) == [docs[2]["id"]]
    assert ids(doc_id=docs[4]["id"]) == [docs[4]["id"]]
    assert ids(doc_num="2") == [docs[2]["id"], docs[7]["id"]]
    assert ids(shift_id=shift["id"], count=2, start=1) == every[1:3]
    assert service.cash_documents(CashDocQuery(point.id, count=2))[1] == len(every)
    # beginDateTime period: [T0+10 min, T0+20 min)
    assert ids(begin_from=T0 + timedelta(minutes=10), begin_to=T0 + timedelta(minutes=20)) == [
        docs[2]["id"],
        docs[3]["id"],
    ]
    assert ids(quick_search="ХЛЕБ") == [docs[1]["id"], docs[4]["id"]]
    assert ids(quick_search="курьер") == [docs[3]["id"]]
    assert ids(quick_search="100%") == []
    money, total = service.money_documents(point.id)
    assert [r.doc_type for r in money] == ["CASH_IN", "CASH_OUT"]
    assert total == 2
    # Another point sees none of them.
    other = await make_point(http)
    assert service.cash_documents(CashDocQuery(other.id))[1] == 0


async def test_bad_uploads_are_refused_and_store_nothing(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, till: FakeTill
) -> None:
    shift, docs = scripted_shift()
    url = "/api/device/v1/cashdocs"
    response = await http.post(url, json={"documents": docs[:1]})
    assert_message(response, 401)
    bad_type = {**docs[1], "docType": "SELL"}
    response = await http.post(url, headers=till.headers, json={"documents": [docs[0], bad_type]})
    assert_message(response, 400)
    assert "docType" in response.json()["message"]
    naive = {**docs[1], "beginDateTime": "2024-05-01T09:05:00"}
    assert_message(await http.post(url, headers=till.headers, json={"documents": [naive]}), 400)
    not_uuid = {**docs[1], "id": "17"}
    assert_message(await http.post(url, headers=till.headers, json={"documents": [not_uuid]}), 400)
    assert_message(await http.post(url, headers=till.headers, json={"documents": []}), 400)
    records, total = cloud.service.cash_documents(CashDocQuery(point.id, doc_types=None))
    assert (records, total) == ([], 0)
    assert cloud.storage.get_shift(shift["id"]) is None


async def test_a_failing_listener_rolls_the_document_back(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, till: FakeTill
) -> None:
    _, docs = scripted_shift()
    calls: list[str] = []

    def flaky(record: CashDocRecord) -> None:
        calls.append(record.doc_id)
        if len(calls) == 2:
            raise RuntimeError("listener broke")

    cloud.storage.on_cashdoc_stored(flaky)
    response = await http.post(
        "/api/device/v1/cashdocs", headers=till.headers, json={"documents": docs[:3]}
    )
    assert_message(response, 503)
    # The first document was stored in its own transaction; the second rolled back with the
    # listener's failure, so the retry stores it (and the third) and the listener sees each once.
    answer = await upload(http, till, docs[:3])
    assert [r["outcome"] for r in answer["results"]] == ["duplicate", "stored", "stored"]
    assert calls == [docs[0]["id"], docs[1]["id"], docs[1]["id"], docs[2]["id"]]
    stored = cloud.service.cash_documents(CashDocQuery(point.id, doc_types=("SALE", "SHIFT_OPEN")))
    assert [r.doc_id for r in stored[0]] == [d["id"] for d in docs[:3]]
