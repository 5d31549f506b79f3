"""The store API: conformance examples of store-api.md §21, credentials, errors, duplicates."""

from __future__ import annotations

import copy
import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cloud_helpers import (
    FULL_V2_DOC,
    Point,
    assert_message,
    doc_status,
    make_point,
    minimal_doc,
    post_doc,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from kkt_emulator.cloud.app import Cloud

DOC_STATUS_KEYS = {"status", "fnState", "fiscalInfo", "failureInfo", "message", "timeStatusChanged"}


async def count_documents(http: httpx.AsyncClient) -> int:
    return len((await http.get("/api/cabinet/v1/documents")).json())


# -- §21.1 associate ---------------------------------------------------------------------------------


async def test_associate_returns_exactly_the_four_fields(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/api/cabinet/v1/retail-points",
        json={"name": 'ТЦ "Европа"', "address": "г.Москва", "inn": "7727401209"},
    )
    point_id = created.json()["id"]
    creds = (await http.post(f"/api/cabinet/v1/retail-points/{point_id}/credentials")).json()
    response = await http.post(
        f"/api/fn/v1/associate/{point_id}",
        params={"clientId": "my_crm"},
        auth=(creds["login"], creds["password"]),
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"userName", "password", "name", "address"}
    assert uuid.UUID(body["userName"])
    assert len(body["password"]) == 16
    assert body["password"].isalnum()
    assert body["name"] == 'ТЦ "Европа"'
    assert body["address"] == "г.Москва"


async def test_associate_rotates_the_password_and_keeps_the_user(
    http: httpx.AsyncClient, point: Point
) -> None:
    again = await http.post(f"/api/fn/v1/associate/{point.id}", auth=point.service)
    assert again.json()["userName"] == point.assoc[0]
    assert again.json()["password"] != point.assoc[1]
    old = await http.get("/api/fn/v1/status", auth=point.assoc)
    assert_message(old, 401, "Unauthorized")
    new = await http.get("/api/fn/v1/status", auth=(point.assoc[0], again.json()["password"]))
    assert new.status_code == 200


async def test_client_ids_get_separate_associations_sharing_one_id_space(
    http: httpx.AsyncClient, point: Point
) -> None:
    other = await http.post(
        f"/api/fn/v1/associate/{point.id}", params={"clientId": "yandex"}, auth=point.service
    )
    other_auth = (other.json()["userName"], other.json()["password"])
    assert other_auth[0] != point.assoc[0]
    doc = minimal_doc()
    assert (await post_doc(http, point, doc)).status_code == 200
    seen = await http.get(f"/api/fn/v1/doc/{doc['id']}/status", auth=other_auth)
    assert seen.status_code == 200  # D32: one id space per retail point


async def test_associate_errors(http: httpx.AsyncClient, point: Point) -> None:
    unknown = str(uuid.uuid4())
    assert_message(await http.post(f"/api/fn/v1/associate/{point.id}"), 401, "Unauthorized")
    assert_message(
        await http.post(f"/api/fn/v1/associate/{point.id}", auth=(point.service[0], "wrong")), 401
    )
    # Association credentials on /associate → 401 (D5).
    assert_message(await http.post(f"/api/fn/v1/associate/{point.id}", auth=point.assoc), 401)
    assert_message(
        await http.post(f"/api/fn/v1/associate/{unknown}", auth=point.service),
        404,
        "Retail point not found",
    )
    assert_message(
        await http.post("/api/fn/v1/associate/not-a-uuid", auth=point.service),
        404,
        "Retail point not found",
    )
    account = await http.post("/api/cabinet/v1/accounts", json={"name": "Other"})
    foreign = await make_point(http, accountId=account.json()["id"])
    assert_message(
        await http.post(f"/api/fn/v1/associate/{foreign.id}", auth=point.service),
        403,
        f"No rights for retail point {foreign.id}",
    )


async def test_account_login_works_as_master_credentials(http: httpx.AsyncClient) -> None:
    account = await http.post(
        "/api/cabinet/v1/accounts",
        json={"id": "shop-owner", "name": "Owner", "login": "owner@example.com", "password": "pw"},
    )
    assert account.status_code == 200
    created = await http.post(
        "/api/cabinet/v1/retail-points", json={"name": "P", "accountId": "shop-owner"}
    )
    response = await http.post(
        f"/api/fn/v1/associate/{created.json()['id']}", auth=("owner@example.com", "pw")
    )
    assert response.status_code == 200


# -- §5.2 delete associate ---------------------------------------------------------------------------


async def test_delete_associate_removes_only_the_caller(
    http: httpx.AsyncClient, point: Point
) -> None:
    other = await http.post(
        f"/api/fn/v1/associate/{point.id}", params={"clientId": "b"}, auth=point.service
    )
    other_auth = (other.json()["userName"], other.json()["password"])
    doc = minimal_doc()
    await post_doc(http, point, doc)
    response = await http.delete("/api/fn/v1/associate", auth=point.assoc)
    assert response.status_code == 200
    assert response.content == b""
    assert_message(await http.get("/api/fn/v1/status", auth=point.assoc), 401)
    assert (await http.get("/api/fn/v1/status", auth=other_auth)).status_code == 200
    assert (await http.get(f"/api/fn/v1/doc/{doc['id']}/status", auth=other_auth)).is_success
    assert_message(await http.delete("/api/fn/v1/associate", auth=point.assoc), 401)
    recreated = await http.post(f"/api/fn/v1/associate/{point.id}", auth=point.service)
    assert recreated.json()["userName"] != point.assoc[0]  # D6


async def test_delete_associate_without_v1_is_unknown(
    http: httpx.AsyncClient, point: Point
) -> None:
    assert_message(await http.delete("/api/fn/associate", auth=point.assoc), 404)  # D12


# -- §21.2 status --------------------------------------------------------------------------------------


async def test_status_is_associated_until_a_heartbeat(
    http: httpx.AsyncClient, point: Point
) -> None:
    response = await http.get("/api/fn/v1/status", auth=point.assoc)
    assert response.json() == {"status": "ASSOCIATED", "dateTime": "2024-05-01T09:00:00+00:00"}
    assert_message(await http.get("/api/fn/v1/status"), 401)
    assert_message(await http.get("/api/fn/v1/status", auth=point.service), 401)  # master → 401


async def test_status_403_after_the_point_is_deleted_or_moved(
    http: httpx.AsyncClient, point: Point
) -> None:
    other = await make_point(http)
    account = await http.post("/api/cabinet/v1/accounts", json={"name": "Other"})
    await http.patch(
        f"/api/cabinet/v1/retail-points/{other.id}", json={"accountId": account.json()["id"]}
    )
    assert_message(
        await http.get("/api/fn/v1/status", auth=other.assoc),
        403,
        f"No rights for retail point {other.id}",
    )
    await http.delete(f"/api/cabinet/v1/retail-points/{point.id}")
    assert_message(await http.get("/api/fn/v1/status", auth=point.assoc), 403)
    assert_message(await post_doc(http, point, minimal_doc()), 403)


# -- §21.3–§21.5 documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/fn", "/fn"])
async def test_full_v2_request_is_queued(
    http: httpx.AsyncClient, point: Point, prefix: str
) -> None:
    response = await http.post(f"{prefix}/v2/doc", auth=point.assoc, json=FULL_V2_DOC)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == DOC_STATUS_KEYS
    assert body == {
        "status": "QUEUED",
        "fnState": "ASSOCIATED",
        "fiscalInfo": None,
        "failureInfo": None,
        "message": "Document queued for printing",
        "timeStatusChanged": "2024-05-01T09:00:00+00:00",
    }
    status = await http.get(f"{prefix}/v1/doc/{FULL_V2_DOC['id']}/status", auth=point.assoc)
    assert status.json() == body


async def test_v1_route_drops_v2_fields(http: httpx.AsyncClient, point: Point) -> None:
    response = await post_doc(http, point, FULL_V2_DOC, route="v1")
    assert response.status_code == 200
    detail = await http.get(
        f"/api/cabinet/v1/retail-points/{point.id}/documents/{FULL_V2_DOC['id']}"
    )
    stored = detail.json()["document"]
    for key in ("agentInfo", "clientName", "clientInn"):
        assert key not in stored
    assert "supplierInfo" not in stored["inventPositions"][0]
    assert stored["cashierName"] == "Иванова А.А."


async def test_minimal_v1_request(http: httpx.AsyncClient, point: Point) -> None:
    response = await post_doc(http, point, minimal_doc(), route="v1")
    assert response.status_code == 200
    assert response.json()["status"] == "QUEUED"


async def test_number_ids_and_numeric_strings_are_coerced(
    http: httpx.AsyncClient, point: Point
) -> None:
    doc = minimal_doc()
    body = json.dumps(doc).replace(f'"{doc["id"]}"', "1714567890.1234")
    body = body.replace('"price": 100', '"price": "100.00"')
    response = await http.post("/api/fn/v2/doc", auth=point.assoc, content=body.encode())
    assert response.status_code == 200, response.text
    assert (await doc_status(http, point, "1714567890.1234"))["status"] == "QUEUED"


async def test_ids_with_slashes_are_percent_decoded(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc(id="order/42-abc")
    assert (await post_doc(http, point, doc)).status_code == 200
    response = await http.get("/api/fn/v1/doc/order%2F42-abc/status", auth=point.assoc)
    assert response.status_code == 200
    assert response.json()["status"] == "QUEUED"


async def test_unknown_document_is_404(http: httpx.AsyncClient, point: Point) -> None:
    doc_id = "4f4c789c-3863-41d3-aea9-c35b5a9e7f18"
    assert_message(
        await http.get(f"/api/fn/v1/doc/{doc_id}/status", auth=point.assoc),
        404,
        f"Document not found: {doc_id}",
    )
    assert_message(await http.put(f"/api/fn/v1/doc/{doc_id}/re-queue", auth=point.assoc), 404)
    assert_message(await http.get(f"/api/fn/v1/doc/{doc_id}/status"), 401)
    assert_message(await http.put(f"/api/fn/v1/doc/{doc_id}/re-queue"), 401)


async def test_other_points_documents_are_invisible(http: httpx.AsyncClient, point: Point) -> None:
    other = await make_point(http)
    doc = minimal_doc()
    await post_doc(http, point, doc)
    assert_message(await http.get(f"/api/fn/v1/doc/{doc['id']}/status", auth=other.assoc), 404)
    assert_message(await http.put(f"/api/fn/v1/doc/{doc['id']}/re-queue", auth=other.assoc), 404)
    same_id = await post_doc(http, other, doc)  # the same id at another point is another document
    assert same_id.status_code == 200
    assert await count_documents(http) == 2


async def test_requeue_of_a_queued_document_is_400(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc(id="4f4c789c-3863-41d3-aea9-c35b5a9e7f18")
    await post_doc(http, point, doc)
    assert_message(
        await http.put(f"/api/fn/v1/doc/{doc['id']}/re-queue", auth=point.assoc),
        400,
        "Document 4f4c789c-3863-41d3-aea9-c35b5a9e7f18 is QUEUED,"
        " only FAILED documents can be re-queued",
    )


async def test_doc_post_without_credentials_stores_nothing(
    http: httpx.AsyncClient, point: Point
) -> None:
    assert_message(await http.post("/api/fn/v2/doc", json=minimal_doc()), 401)
    assert_message(await http.post("/api/fn/v2/doc", json=minimal_doc(), auth=point.service), 401)
    assert_message(
        await http.post("/api/fn/v2/doc", json=minimal_doc(), auth=(point.assoc[0], "x")), 401
    )
    malformed = await http.post(
        "/api/fn/v2/doc", json=minimal_doc(), headers={"Authorization": "Basic !!!"}
    )
    assert_message(malformed, 401)
    assert await count_documents(http) == 0


# -- duplicates (D32) ------------------------------------------------------------------------------


async def test_resent_id_replays_the_stored_document(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    first = await post_doc(http, point, doc)
    resent = dict(doc, docNum="another-number")  # BILLmanager sends a fresh docNum every time
    again = await post_doc(http, point, resent)
    assert again.json() == first.json()
    assert await count_documents(http) == 1
    warnings = (await http.get("/api/cabinet/v1/warnings")).json()
    assert warnings == []


async def test_resent_id_with_other_content_warns(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    changed = copy.deepcopy(doc)
    changed["inventPositions"][0]["price"] = 50
    changed["moneyPositions"][0]["sum"] = 50
    again = await post_doc(http, point, changed)
    assert again.status_code == 200
    assert again.json()["status"] == "QUEUED"
    warnings = (await http.get("/api/cabinet/v1/warnings")).json()
    assert len(warnings) == 1
    assert "different content" in warnings[0]["warnings"][0]
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{doc['id']}")
    assert detail.json()["document"]["inventPositions"][0]["price"] == 100


async def test_numbers_compare_by_value(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    same = copy.deepcopy(doc)
    same["inventPositions"][0]["price"] = 100.0
    await post_doc(http, point, same)
    assert (await http.get("/api/cabinet/v1/warnings")).json() == []


async def test_conflict_policy_answers_409(http: httpx.AsyncClient) -> None:
    strict = await make_point(http, duplicatePolicy="conflict")
    doc = minimal_doc()
    await post_doc(http, strict, doc)
    changed = dict(doc, docType="RETURN")
    assert_message(
        await post_doc(http, strict, changed),
        409,
        f"Document {doc['id']} already exists with different content",
    )
    assert (await post_doc(http, strict, doc)).status_code == 200


async def test_two_integrations_with_same_docnum_and_sum_warn(
    http: httpx.AsyncClient, point: Point
) -> None:
    other = await http.post(
        f"/api/fn/v1/associate/{point.id}", params={"clientId": "yandex"}, auth=point.service
    )
    other_point = Point(
        point.id, point.service, (other.json()["userName"], other.json()["password"])
    )
    first = minimal_doc(docNum="A-1")
    second = minimal_doc(docNum="A-1")
    await post_doc(http, point, first)
    await post_doc(http, other_point, second)
    detail = await http.get(f"/api/cabinet/v1/retail-points/{point.id}/documents/{second['id']}")
    assert detail.json()["possibleDuplicateOf"] == first["id"]
    assert "double integration" in detail.json()["warnings"][0]


# -- validation (D23) -------------------------------------------------------------------------------------


def _drop(path: str) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[parts[-1]]

    return change


def _set(path: str, value: Any = None) -> Any:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return change


BAD_DOCS = [
    ("missing id", _drop("id"), "id: required field is missing"),
    ("null docNum", _set("docNum", None), "docNum: required field is missing"),
    ("empty id", _set("id", ""), "id: must not be empty"),
    ("missing docType", _drop("docType"), "docType: required field is missing"),
    (
        "correction type",
        _set("docType", "SALE_CORRECTION"),
        "docType: unsupported value SALE_CORRECTION",
    ),
    ("alias conflict", _set("documentType", "RETURN"), "docType: docType and documentType differ"),
    ("date without offset", _set("checkoutDateTime", "2024-05-01T12:00:00"), None),
    ("date without seconds", _set("checkoutDateTime", "2024-05-01T12:00+03:00"), None),
    ("bad month", _set("checkoutDateTime", "2024-13-01T12:00:00+03:00"), None),
    ("positions not array", _set("inventPositions", {}), "inventPositions: must be an array"),
    ("positions empty", _set("inventPositions", []), "inventPositions: must not be empty"),
    ("position not object", _set("inventPositions.0", 5), "inventPositions[0]: must be an object"),
    ("money missing", _drop("moneyPositions"), "moneyPositions: required field is missing"),
    (
        "name missing",
        _drop("inventPositions.0.name"),
        "inventPositions[0].name: required field is missing",
    ),
    (
        "price not number",
        _set("inventPositions.0.price", "abc"),
        "inventPositions[0].price: must be a number",
    ),
    (
        "price bool",
        _set("inventPositions.0.price", value=True),
        "inventPositions[0].price: must be a number",
    ),
    (
        "price 3 decimals",
        _set("inventPositions.0.price", 100.001),
        "inventPositions[0].price: has more than 2 decimal places",
    ),
    (
        "quantity zero",
        _set("inventPositions.0.quantity", 0),
        "inventPositions[0].quantity: must not be 0",
    ),
    (
        "negative discount",
        _set("inventPositions.0.discSum", -1),
        "inventPositions[0].discSum: must not be negative",
    ),
    (
        "vat 1109",
        _set("inventPositions.0.vatTag", 1109),
        "inventPositions[0].vatTag: unsupported value 1109",
    ),
    (
        "vat fraction",
        _set("inventPositions.0.vatTag", 1102.5),
        "inventPositions[0].vatTag: must be an integer",
    ),
    (
        "payment type",
        _set("moneyPositions.0.paymentType", "BITCOIN"),
        "moneyPositions[0].paymentType: unsupported value BITCOIN",
    ),
    (
        "payment object",
        _set("inventPositions.0.paymentObject", "thing"),
        "inventPositions[0].paymentObject: unsupported value thing",
    ),
    ("tax mode", _set("taxMode", "USN"), "taxMode: unsupported value USN"),
    ("printReceipt string", _set("printReceipt", "true"), "printReceipt: must be true or false"),
    ("cashierName long", _set("cashierName", "x" * 65), "cashierName: longer than 64 characters"),
    (
        "cashierPosition long",
        _set("cashierPosition", "x" * 65),
        "cashierPosition: longer than 64 characters",
    ),
    (
        "textToPrint long",
        _set("textToPrint", "x" * 3001),
        "textToPrint: longer than 3000 characters",
    ),
    ("cashier inn", _set("cashierInn", "123"), "cashierInn: must match 10 or 12 digits"),
    ("country code", _set("inventPositions.0.originCountryCode", "RUS"), None),
    ("nomenclature", _set("inventPositions.0.nomenclatureCode", "zz"), None),
    ("product mark", _set("inventPositions.0.productMark", "x" * 256), None),
    ("money sum 3 decimals", _set("moneyPositions.0.sum", 100.005), None),
    (
        "sum mismatch",
        _set("moneyPositions.0.sum", 150),
        "moneyPositions: sum of positions 100.00 does not match sum of payments 150.00",
    ),
    (
        "agent type",
        _set("agentInfo", {"types": ["pirate"]}),
        "agentInfo.types[0]: unsupported value pirate",
    ),
    ("agent phone", _set("agentInfo", {"payingAgent": {"phones": ["+7 999"]}}), None),
    ("agent operation", _set("agentInfo", {"payingAgent": {"operation": "x" * 25}}), None),
    ("supplier inn", _set("inventPositions.0.supplierInfo", {"inn": "12"}), None),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in BAD_DOCS], ids=[n for n, _, _ in BAD_DOCS]
)
async def test_invalid_documents_are_400_and_store_nothing(
    http: httpx.AsyncClient, point: Point, change: Any, message: str | None
) -> None:
    doc = minimal_doc()
    change(doc)
    response = await post_doc(http, point, doc)
    assert_message(response, 400, message)
    field = response.json()["message"].split(":")[0]
    assert field  # every message names its field
    assert await count_documents(http) == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"id": NaN}', b"{"],
    ids=["empty", "text", "array", "string", "not-utf8", "nan", "truncated"],
)
async def test_malformed_bodies_are_400(http: httpx.AsyncClient, point: Point, body: bytes) -> None:
    response = await http.post("/api/fn/v2/doc", auth=point.assoc, content=body)
    assert_message(response, 400)
    assert response.json()["message"].startswith("body:")
    assert await count_documents(http) == 0


async def test_d27_conditions_are_accepted(http: httpx.AsyncClient, point: Point) -> None:
    negative = minimal_doc()
    negative["inventPositions"][0]["price"] = -100
    negative["moneyPositions"][0]["sum"] = -100
    no_email = minimal_doc()
    del no_email["email"]
    agent = dict(FULL_V2_DOC, id=str(uuid.uuid4()), taxMode="PATENT")
    for doc in (negative, no_email, agent):
        assert (await post_doc(http, point, doc)).status_code == 200


async def test_d24_rounds_each_position_half_up(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    doc["inventPositions"] = [
        {"name": "a", "price": 0.05, "quantity": 0.5, "vatTag": 1105},  # 0.025 → 0.03
        {"name": "b", "price": 0.05, "quantity": 0.5, "vatTag": 1105},
    ]
    doc["moneyPositions"] = [{"paymentType": "CASH", "sum": 0.06}]
    assert (await post_doc(http, point, doc)).status_code == 200


async def test_documenttype_alias_is_accepted(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc()
    doc["documentType"] = doc.pop("docType")
    assert (await post_doc(http, point, doc)).status_code == 200


async def test_unknown_fields_are_ignored(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc(responseUrl="https://x/cb", vatRevision=2018, phone="+79990000000")
    doc["inventPositions"][0]["measure"] = "pcs"
    assert (await post_doc(http, point, doc)).status_code == 200


# -- HTTP behaviour (D7, D8) --------------------------------------------------------------------------------


async def test_body_over_one_mebibyte_is_413(http: httpx.AsyncClient, point: Point) -> None:
    doc = minimal_doc(textToPrint="x" * (1024 * 1024))
    response = await post_doc(http, point, doc)
    assert_message(response, 413)
    assert await count_documents(http) == 0


async def test_chunked_body_over_limit_is_413(http: httpx.AsyncClient, point: Point) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    response = await http.post("/api/fn/v2/doc", auth=point.assoc, content=chunks())
    assert_message(response, 413)


async def test_unknown_path_and_wrong_method(http: httpx.AsyncClient, point: Point) -> None:
    assert_message(await http.get("/api/fn/v3/doc", auth=point.assoc), 404)
    assert_message(await http.get("/api/fn/v2/doc", auth=point.assoc), 405)
    assert_message(await http.post("/api/v3/retail-point/x/order", auth=point.assoc), 404)
    # the orders API is served now (orders-and-backoffice.md supersedes D53): an association is
    # a right pair of no account API
    refused = await http.post("/api/v2/retail-point/x/order", auth=point.assoc)
    assert refused.status_code == 403
    assert refused.json()["error"] == "Forbidden"


async def test_any_host_header_is_accepted(http: httpx.AsyncClient, point: Point) -> None:
    response = await http.get(
        "/api/fn/v1/status", auth=point.assoc, headers={"Host": "my.modulkassa.ru"}
    )
    assert response.status_code == 200


async def test_openapi_describes_all_three_apis(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert "/api/fn/v2/doc" in paths
    assert "/api/fn/v1/doc/{doc_id}/status" in paths
    assert "/api/device/v1/lease" in paths
    assert "/api/cabinet/v1/retail-points" in paths
    body = spec["paths"]["/api/fn/v2/doc"]["post"]["requestBody"]
    assert "inventPositions" in json.dumps(body)

    store = {path: ops for path, ops in spec["paths"].items() if path.startswith("/api/fn/")}
    assert len(store) == 7
    for ops in store.values():  # named through openapi_extra, not a dependency (D60)
        for operation in ops.values():
            assert operation["security"] == [{"HTTPBasic": []}]
    assert spec["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"


# -- random JSON never breaks the server ------------------------------------------------------------------

# Strings no store can keep (lone surrogates, NUL) and strings beyond every length limit (D55).
_hostile_text = (
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
    | st.sampled_from(["\x00", "a\x00b", "Товар\ud800"])
    | st.integers(min_value=65, max_value=100_000).map(lambda n: "x" * n)
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | _hostile_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_doc_like = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        (
            "id",
            "docNum",
            "docType",
            "checkoutDateTime",
            "inventPositions",
            "moneyPositions",
            "taxMode",
            "email",
            "agentInfo",
        ),
        _json,
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        _json,
        _doc_like,
        st.builds(lambda d: {**minimal_doc(), **d}, _doc_like),
        st.binary(max_size=64),
    )
)
async def test_random_json_gets_200_or_4xx(cloud: Cloud, point: Point, body: Any) -> None:
    transport = httpx.ASGITransport(app=cloud.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        content = (
            body if isinstance(body, bytes) else json.dumps(body).encode()
        )  # may hold Infinity
        response = await client.post("/api/fn/v2/doc", auth=point.assoc, content=content)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        assert isinstance(response.json()["message"], str)
