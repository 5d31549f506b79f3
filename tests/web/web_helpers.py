"""Shared pieces of the web cabinet's tests: a cloud in process with a point and a scripted till."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

SALE: dict[str, Any] = {
    "docNum": "5727",
    "docType": "SALE",
    "checkoutDateTime": "2026-01-01T12:00:00+03:00",
    "email": "buyer@example.com",
    "taxMode": "COMMON",
    "inventPositions": [
        {"name": "Коляска Joie Chrome DLX", "price": 19900, "quantity": 1, "vatTag": 1105},
        {"name": "Чехол для ног JOIE", "price": 1950, "quantity": 1, "vatTag": 1105},
    ],
    "moneyPositions": [{"paymentType": "CARD", "sum": 21850}],
}

STORAGE_TEXT = "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН"


def sale(**changes: Any) -> dict[str, Any]:
    """The deck's two-position sale with a fresh id."""
    return {**SALE, "id": str(uuid.uuid4()), **changes}


@dataclass
class Shop:
    """A retail point, its association (for the store API) and a bound till (for the till API)."""

    http: httpx.AsyncClient
    point_id: str
    assoc: tuple[str, str]
    till_token: str
    cabinet: dict[str, str]

    async def post(self, doc: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/api/fn/v2/doc", auth=self.assoc, json=doc)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def lease(self) -> list[dict[str, Any]]:
        response = await self.http.post(
            "/api/device/v1/lease",
            headers={"Authorization": f"Bearer {self.till_token}"},
            params={"max": 10, "wait": 0},
        )
        if response.status_code == 204:
            return []
        assert response.status_code == 200, response.text
        documents: list[dict[str, Any]] = response.json()["documents"]
        return documents

    async def report(self, item: dict[str, Any]) -> None:
        response = await self.http.post(
            "/api/device/v1/results",
            headers={"Authorization": f"Bearer {self.till_token}"},
            json={"results": [item]},
        )
        assert response.status_code == 200, response.text

    async def fail_next(self, message: str = STORAGE_TEXT) -> str:
        (leased,) = await self.lease()
        await self.report(
            {
                "docId": leased["docId"],
                "leaseId": leased["leaseId"],
                "outcome": "failed",
                "failureInfo": {"type": "FN_MEMORY_OVERFLOW", "message": message},
                "resultCode": 0x14,
            }
        )
        doc_id: str = leased["docId"]
        return doc_id

    async def succeed_next(self) -> str:
        (leased,) = await self.lease()
        await self.report(
            {
                "docId": leased["docId"],
                "leaseId": leased["leaseId"],
                "outcome": "fiscalized",
                "fiscalInfo": {
                    "shiftNumber": 8,
                    "checkNumber": 1,
                    "kktNumber": "199036005916",
                    "fnNumber": "9999078900000001",
                    "fnDocNumber": 101,
                    "fnDocMark": 3125146288,
                    "date": "2019-09-04T07:14:00+00:00",
                    "sum": 21850,
                    "checkType": "SALE",
                    "qr": "t=20190904T141400&s=21850.00&fn=9999078900000001&i=101&fp=3125146288&n=1",
                    "ecrRegistrationNumber": "0000000000028799",
                },
            }
        )
        doc_id: str = leased["docId"]
        return doc_id

    async def heartbeat(self, body: dict[str, Any]) -> None:
        response = await self.http.post(
            "/api/device/v1/heartbeat",
            headers={"Authorization": f"Bearer {self.till_token}"},
            json=body,
        )
        assert response.status_code == 200, response.text


async def open_shop(http: httpx.AsyncClient, cabinet: dict[str, str] | None = None) -> Shop:
    """A retail point with an association and a bound till, through the APIs."""
    headers = cabinet or {}
    body = {"name": 'ТЦ "Европа"', "address": "г.Москва", "inn": "7727401209"}
    response = await http.post("/api/cabinet/v1/retail-points", json=body, headers=headers)
    assert response.status_code == 200, response.text
    point_id = response.json()["id"]
    response = await http.post(
        f"/api/cabinet/v1/retail-points/{point_id}/credentials", headers=headers
    )
    service = (response.json()["login"], response.json()["password"])
    response = await http.post(f"/api/fn/v1/associate/{point_id}", auth=service)
    assert response.status_code == 200, response.text
    assoc = (response.json()["userName"], response.json()["password"])
    response = await http.post(
        "/api/device/v1/bind",
        auth=service,
        json={"tillSerial": "000100000001", "fnSerial": "9999078900000001", "model": "virtual"},
    )
    assert response.status_code == 200, response.text
    return Shop(http, point_id, assoc, response.json()["token"], headers)
