"""The back office over HTTP: ``/api/v1`` (B1–B3, B8), its cabinet routes, the till's catalogue.

Three routers over one :class:`~kkt_emulator.cloud.service.CloudService`:

* :func:`backoffice_router` — the back-office API under ``/api/v1`` (Basic auth B2 through
  :data:`~kkt_emulator.cloud.service_auth.BackofficePrincipal`; refusals with the O3 body):
  catalogues (``catalog/{TYPE}``, ``catalog``, ``catalog-changes``) and the MoySklad webhook,
  which needs no auth;
* :func:`backoffice_cabinet_router` — the cabinet's integration switches (B17), the recorded
  webhook bodies and the integration outbox (list, detail, re-send, B6, B19);
* :func:`catalog_device_router` — ``GET /api/device/v1/catalog?since=REV`` (B16).
"""

from __future__ import annotations

import contextlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from kkt_emulator.cloud.backoffice_query import parse_q
from kkt_emulator.cloud.core import UNAUTHORIZED
from kkt_emulator.cloud.security import parse_bearer
from kkt_emulator.cloud.service_auth import BACKOFFICE_FORBIDDEN, BackofficePrincipal
from kkt_emulator.errors import CloudError, ServiceApiError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kkt_emulator.cloud.service import CloudService

__all__ = [
    "IntegrationUpdate",
    "backoffice_cabinet_router",
    "backoffice_router",
    "catalog_device_router",
    "o3_errors",
]

_bearer = HTTPBearer(auto_error=False, description="Only when the cloud has a cabinet token")


@contextlib.contextmanager
def o3_errors() -> Iterator[None]:
    """Answer the operations' errors with the O3 body, as every ``/api/v1`` refusal is (B2)."""
    try:
        yield
    except ServiceApiError:
        raise
    except ValidationError as exc:
        raise ServiceApiError(
            400,
            f"{exc.field}: {exc.reason}" if exc.field else exc.reason,
            errors=[
                {
                    "defaultMessage": exc.reason,
                    "rejectedValue": None,
                    "code": "Invalid",
                    "objectName": "catalog",
                    "field": exc.field,
                }
            ],
        ) from exc
    except CloudError as exc:
        raise ServiceApiError(exc.status, exc.message) from exc


def _json_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationError("body", f"malformed JSON: {exc}") from exc


def backoffice_router(service: CloudService) -> APIRouter:
    """Build the ``/api/v1`` back-office routes (B1, B8)."""
    router = APIRouter(prefix="/api/v1", tags=["back-office API"])

    @router.get(
        "/retail-point/{rp}/catalog/{catalog_type}",
        summary="A catalogue of the point: {data, pos, total_count} (B3, B15)",
    )
    async def catalog(
        rp: str,
        catalog_type: str,
        who: BackofficePrincipal,
        start: Annotated[int, Query()] = 0,
        count: Annotated[int, Query()] = 100,
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.catalog_page(point.id, catalog_type, start, count)

    async def upsert(rp: str, who: Any, request: Request) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.put_catalog(point.id, _json_body(await request.body()))

    @router.post(
        "/retail-point/{rp}/catalog",
        summary="Add or replace catalogue entries (one object or a list), keyed by code (B15)",
    )
    async def catalog_post(rp: str, who: BackofficePrincipal, request: Request) -> dict[str, Any]:
        return await upsert(rp, who, request)

    @router.put("/retail-point/{rp}/catalog", summary="The same as POST …/catalog")
    async def catalog_put(rp: str, who: BackofficePrincipal, request: Request) -> dict[str, Any]:
        return await upsert(rp, who, request)

    @router.post(
        "/retail-point/{rp}/catalog-changes",
        summary="A text batch of catalogue commands, applied in order and all or nothing (B8)",
    )
    async def catalog_changes(
        rp: str, who: BackofficePrincipal, request: Request
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            raw = await request.body()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError("body", "the batch is not UTF-8 text") from exc
            return service.apply_catalog_changes(point.id, text)

    # -- reads (B1–B4) -----------------------------------------------------------------------------

    @router.get("/retail-points", summary="The account's retail points (a plain array)")
    async def retail_points(who: BackofficePrincipal) -> list[dict[str, Any]]:
        return service.backoffice_points(who.account_id)

    @router.get("/retail-point/{rp}", summary="One retail point")
    async def retail_point(rp: str, who: BackofficePrincipal) -> dict[str, Any]:
        with o3_errors():
            return service.backoffice_point(
                service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            )

    @router.get(
        "/retail-point/{rp}/get-recent-shifts",
        summary="Shifts opened in the last days × 24 h plus any still open, newest first (B3)",
    )
    async def recent_shifts(
        rp: str, who: BackofficePrincipal, days: Annotated[float, Query(gt=0, le=3660)] = 1
    ) -> list[dict[str, Any]]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.recent_shifts(point.id, days)

    @router.get("/retail-point/{rp}/shift", summary="Every shift, newest first (B3 envelope)")
    async def shifts(
        rp: str,
        who: BackofficePrincipal,
        start: Annotated[int, Query()] = 0,
        count: Annotated[int, Query()] = 100,
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.backoffice_shifts(point.id, start, count)

    @router.get("/retail-point/{rp}/shift/{shift_id}", summary="One shift with its totals (B4, B5)")
    async def shift(rp: str, shift_id: str, who: BackofficePrincipal) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.shift_by_id(point.id, shift_id)

    @router.get(
        "/retail-point/{rp}/shift/{shift_id}/cashdoc",
        summary="The shift's cash documents, full, in upload order (a plain array)",
    )
    async def shift_cashdocs(
        rp: str, shift_id: str, who: BackofficePrincipal
    ) -> list[dict[str, Any]]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.backoffice_shift_cashdocs(point.id, shift_id)

    @router.get("/retail-point/{rp}/shift/{shift_id}/cashdoc/{doc_id}", summary="One cash document")
    async def shift_cashdoc(
        rp: str, shift_id: str, doc_id: str, who: BackofficePrincipal
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.backoffice_shift_cashdoc(point.id, shift_id, doc_id)

    @router.get(
        "/retail-point/{rp}/cashdocs",
        summary="Cash documents: q filters (==, beginDateTime=ge=/=lt=, :quickSearch), sort, page",
    )
    async def cashdocs(
        rp: str,
        who: BackofficePrincipal,
        *,
        q: Annotated[str | None, Query(max_length=2048)] = None,
        sort_field: Annotated[str | None, Query(alias="sortField")] = None,
        sort_direction: Annotated[str | None, Query(alias="sortDirection")] = None,
        start: Annotated[int, Query()] = 0,
        count: Annotated[int, Query()] = 100,
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            if parse_q(q).get("shift_id") == ":external":  # the orders as cash documents (O10)
                return service.external_cashdocs(who, point.id, start, count)
            return service.backoffice_cashdocs(
                point.id,
                q=q,
                sort_field=sort_field,
                sort_direction=sort_direction,
                start=start,
                count=count,
            )

    @router.get("/retail-point/{rp}/moneydocs", summary="Cash in and cash out (B3 envelope)")
    async def moneydocs(
        rp: str,
        who: BackofficePrincipal,
        start: Annotated[int, Query()] = 0,
        count: Annotated[int, Query()] = 100,
    ) -> dict[str, Any]:
        with o3_errors():
            point = service.authorized_point(who, rp, forbidden=BACKOFFICE_FORBIDDEN)
            return service.backoffice_moneydocs(point.id, start, count)

    @router.post(
        "/moysklad/webhook/{hook_uuid}",
        summary="MoySklad → МодульКасса: recorded for an enabled МойСклад integration (B8)",
    )
    async def moysklad_webhook(hook_uuid: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        seq = service.moysklad_webhook(hook_uuid, request.headers.get("content-type"), body)
        return {"received": seq}

    return router


class IntegrationUpdate(BaseModel):
    """``PUT …/integrations/{name}``: the switch and the webhook URL; absent keys stay."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    webhookUrl: str | None = Field(default=None, max_length=2048)  # noqa: N815 - wire name
    dailyAt: str | None = Field(default=None, max_length=16)  # noqa: N815 - wire name (B23)


class OnecExport(BaseModel):
    """``POST …/feeds/onec/export``: the period «выгрузить за период» covers, ``[from, to)``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period_from: str = Field(alias="from", max_length=64)
    period_to: str = Field(alias="to", max_length=64)


def backoffice_cabinet_router(service: CloudService) -> APIRouter:
    """Build the cabinet's back-office routes (integrations, webhook bodies, feeds)."""

    def check_token(request: Request) -> None:  # as cabinet_api's: the cabinet token, if set
        expected = service.settings.cabinet_token
        if expected is None:
            return
        token = parse_bearer(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise CloudError(401, UNAUTHORIZED)

    router = APIRouter(
        prefix="/api/cabinet/v1/retail-points/{point_id}",
        tags=["cabinet API"],
        dependencies=[Depends(_bearer), Depends(check_token)],
    )

    @router.get("/integrations", summary="☐ МойСклад ☐ Обмен с 1С ☐ Моё Дело ☐ Контур.Эльба (B17)")
    async def integrations(point_id: str) -> list[dict[str, Any]]:
        return service.integrations(point_id)

    @router.put(
        "/integrations/{name}",
        summary="Switch an integration on or off, set its webhook URL (B17) and 1С's daily time"
        " (B23); МойСклад on empties INVENTORY",
    )
    async def set_integration(point_id: str, name: str, body: IntegrationUpdate) -> dict[str, Any]:
        return service.set_integration(
            point_id,
            name,
            enabled=body.enabled,
            webhook_url=body.webhookUrl,
            url_given="webhookUrl" in body.model_fields_set,
            daily_at=body.dailyAt,
            daily_given="dailyAt" in body.model_fields_set,
        )

    @router.get("/integration-events", summary="Webhook bodies received (newest first)")
    async def integration_events(
        point_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        return service.integration_events(point_id, limit)

    @router.get("/feeds", summary="The integration outbox: {data, pos, total_count} (B6)")
    async def feeds(
        point_id: str,
        integration: Annotated[str | None, Query()] = None,
        start: Annotated[int, Query()] = 0,
        count: Annotated[int, Query()] = 100,
    ) -> dict[str, Any]:
        return service.feed_records(point_id, integration, start, count)

    @router.post(
        "/feeds/onec/export",
        summary="«Выгрузить за период»: a 1С report of the cash documents begun in [from, to)",
    )
    async def onec_export(point_id: str, body: OnecExport) -> dict[str, Any]:
        moments = []
        for name, text in (("from", body.period_from), ("to", body.period_to)):
            try:
                moment = datetime.fromisoformat(text)
            except ValueError as exc:
                raise ValidationError(name, "not an ISO 8601 date-time") from exc
            if moment.tzinfo is None:
                raise ValidationError(name, "needs a UTC offset")
            moments.append(moment)
        return service.onec_export(point_id, moments[0], moments[1])

    @router.get("/feeds/{record_id}", summary="One feed record with its delivery state")
    async def feed(point_id: str, record_id: str) -> dict[str, Any]:
        return service.feed_record(point_id, record_id)

    @router.post(
        "/feeds/{record_id}/resend",
        summary="Deliver a record again from now, to the integration's current URL (B19)",
    )
    async def resend(point_id: str, record_id: str) -> dict[str, Any]:
        return service.resend_feed_record(point_id, record_id)

    return router


def catalog_device_router(service: CloudService) -> APIRouter:
    """Build ``GET /api/device/v1/catalog`` (B16)."""
    router = APIRouter(prefix="/api/device/v1", tags=["till API"])

    @router.get(
        "/catalog",
        dependencies=[Depends(HTTPBearer(auto_error=False))],
        summary="The point's catalogue changed after revision since (0: all of it) (B16)",
    )
    async def catalog(request: Request, since: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        _, point = service.authenticate_device(request.headers.get("authorization"))
        return service.catalog_for_till(point.id, since)

    return router
