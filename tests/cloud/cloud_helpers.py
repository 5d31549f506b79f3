"""Helpers for cloud tests: conformance bodies, a fake shop, a scripted till over the till API."""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

# store-api.md §21.4: what most plugins send.
MINIMAL_DOC: dict[str, Any] = {
    "id": "<uuid>",
    "docNum": "1001",
    "docType": "SALE",
    "checkoutDateTime": "2024-05-01T12:00:00+03:00",
    "email": "buyer@example.com",
    "printReceipt": False,
    "inventPositions": [
        {"name": "Товар", "price": 100, "quantity": 1, "vatTag": 1105, "discSum": 0}
    ],
    "moneyPositions": [{"paymentType": "CARD", "sum": 100}],
}

# store-api.md §21.3: the full v2 request.
FULL_V2_DOC: dict[str, Any] = {
    "id": "4f4c789c-3863-41d3-aea9-c35b5a9e7f18",
    "docNum": "SALE-12345",
    "docType": "SALE",
    "checkoutDateTime": "2020-02-26T06:41:04+07:00",
    "email": "client@myshop.ru",
    "cashierName": "Иванова А.А.",
    "cashierInn": "0123456789",
    "cashierPosition": "Кассир",
    "taxMode": "COMMON",
    "textToPrint": "Текст для печати на чеке",
    "clientName": "Заказчик",
    "clientInn": "9876543210",
    "inventPositions": [
        {
            "barcode": "123456789",
            "name": "Товар 1",
            "description": "Описание товара",
            "paymentObject": "service",
            "paymentMethod": "partial_payment",
            "price": 100.00,
            "quantity": 1.0,
            "vatTag": 1102,
            "customsDeclarationNumber": "123456",
            "originCountryCode": "643",
            "supplierInfo": {
                "phones": ["+79999999999"],
                "name": "Название организации поставщика",
                "inn": "8233362424",
            },
        },
        {
            "inventCode": "GOOD-124",
            "barcode": "987654321",
            "name": "Товар 2",
            "paymentObject": "commodity",
            "paymentMethod": "full_payment",
            "price": 100.00,
            "vatTag": 1102,
            "quantity": 1.0,
        },
    ],
    "moneyPositions": [{"paymentType": "CASH", "sum": 200.00}],
    "responseURL": "https://your-callback-service.com/complete-doc?id=1",
    "agentInfo": {
        "types": ["another"],
        "payingAgent": {"operation": "Наименование операции", "phones": ["+79999999999"]},
        "receivePaymentsOperator": {"phones": ["+79999999999"]},
        "moneyTransferOperator": {
            "phones": ["+79999999999"],
            "name": "Наименование оператора перевода",
            "address": "г. Москва, ул. Пушкина, д. 1",
            "inn": "8233362424",
        },
    },
}


def minimal_doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL_DOC)
    doc["id"] = str(uuid.uuid4())
    doc.update(changes)
    return doc


@dataclass
class FakeShop:
    """The shop's callback endpoint behind an httpx MockTransport."""

    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    requests: list[httpx.Request] = field(default_factory=list)
    fail_with: Exception | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        status = self.statuses.pop(0) if self.statuses else self.default_status
        return httpx.Response(status, text="OK")

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


_serials = itertools.count(1)


@dataclass
class Point:
    """A retail point with its service credentials and one association."""

    id: str
    service: tuple[str, str]
    assoc: tuple[str, str]


async def make_point(http: httpx.AsyncClient, **settings: Any) -> Point:
    body = {"name": 'ТЦ "Европа"', "address": "г.Москва", "inn": "7727401209", **settings}
    response = await http.post("/api/cabinet/v1/retail-points", json=body)
    assert response.status_code == 200, response.text
    point_id = response.json()["id"]
    creds = (await http.post(f"/api/cabinet/v1/retail-points/{point_id}/credentials")).json()
    service = (creds["login"], creds["password"])
    response = await http.post(f"/api/fn/v1/associate/{point_id}", auth=service)
    assert response.status_code == 200, response.text
    assoc = (response.json()["userName"], response.json()["password"])
    return Point(point_id, service, assoc)


class FakeTill:
    """A scripted till over the real till API (no dependency on the till package)."""

    def __init__(self, http: httpx.AsyncClient, point: Point) -> None:
        self.http = http
        self.point = point
        self.serial = f"00010{next(_serials):07d}"
        self.fn_serial = f"99990789{next(_serials):08d}"
        self.token = ""
        self.device_id = ""
        self.fd = 100

    async def bind(self) -> FakeTill:
        response = await self.http.post(
            "/api/device/v1/bind",
            auth=self.point.service,
            json={"tillSerial": self.serial, "fnSerial": self.fn_serial, "model": "virtual"},
        )
        assert response.status_code == 200, response.text
        self.token = response.json()["token"]
        self.device_id = response.json()["deviceId"]
        return self

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def heartbeat(self, fn_state: str = "READY") -> dict[str, Any]:
        response = await self.http.post(
            "/api/device/v1/heartbeat",
            headers=self.headers,
            json={"fnState": fn_state, "fnSerial": self.fn_serial, "powerSaving": False},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def lease(
        self, max_docs: int = 10, wait: float = 0, *, resume: bool = False
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"max": max_docs, "wait": wait}
        if resume:
            params["resume"] = 1
        response = await self.http.post("/api/device/v1/lease", headers=self.headers, params=params)
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.text
        documents: list[dict[str, Any]] = response.json()["documents"]
        return documents

    def fiscal_info(self, total: float = 100) -> dict[str, Any]:
        self.fd += 1
        return {
            "shiftNumber": 8,
            "checkNumber": 1,
            "kktNumber": "199036005916",
            "fnNumber": self.fn_serial,
            "fnDocNumber": self.fd,
            "fnDocMark": 3125146288,
            "date": "2019-09-04T07:14:00+00:00",
            "sum": total,
            "checkType": "SALE",
            "qr": f"t=20190904T141400&s={total:.2f}&fn={self.fn_serial}&i={self.fd:010d}&fp=3125146288&n=1",
            "ecrRegistrationNumber": "0000000000028799",
        }

    async def report(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        response = await self.http.post(
            "/api/device/v1/results", headers=self.headers, json={"results": items}
        )
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    async def succeed(
        self, leased: dict[str, Any], info: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        item = {
            "docId": leased["docId"],
            "leaseId": leased["leaseId"],
            "outcome": "fiscalized",
            "fiscalInfo": info or self.fiscal_info(),
        }
        return (await self.report([item]))[0]

    async def fail(
        self, leased: dict[str, Any], failure_type: str = "FN_MEMORY_OVERFLOW", message: str = ""
    ) -> dict[str, Any]:
        item = {
            "docId": leased["docId"],
            "leaseId": leased["leaseId"],
            "outcome": "failed",
            "failureInfo": {
                "type": failure_type,
                "message": message or "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН",
            },
            "resultCode": 0x14,
        }
        return (await self.report([item]))[0]


async def post_doc(
    http: httpx.AsyncClient, point: Point, doc: dict[str, Any], route: str = "v2"
) -> httpx.Response:
    return await http.post(f"/api/fn/{route}/doc", auth=point.assoc, json=doc)


async def doc_status(http: httpx.AsyncClient, point: Point, doc_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/fn/v1/doc/{doc_id}/status", auth=point.assoc)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def assert_message(response: httpx.Response, status: int, text: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"message"}
    assert isinstance(body["message"], str)
    if text is not None:
        assert body["message"] == text
