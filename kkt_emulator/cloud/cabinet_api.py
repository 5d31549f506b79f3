"""The cabinet (ЛК) API ``/api/cabinet/v1``: retail points, documents, actions, clock.

Accounts, retail points and their flags, service credentials, documents with history, «Провести
повторно», «Отметить как выполненный», heartbeats, warnings, and the clock of a cloud that runs
alone.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer

from kkt_emulator.clock import parse_duration
from kkt_emulator.cloud.core import UNAUTHORIZED
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.schemas import (
    AccountCreate,
    ClockAdvance,
    MessageSchema,
    RetailPointCreate,
    RetailPointUpdate,
)
from kkt_emulator.cloud.security import CABINET_COOKIE, cabinet_cookie_value, parse_bearer
from kkt_emulator.cloud.storage import DocumentFilter
from kkt_emulator.cloud.views import account_view, format_time
from kkt_emulator.errors import CloudError, ConfigError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kkt_emulator.cloud.service import CloudService

__all__ = ["cabinet_router", "cabinet_token_check"]

_bearer = HTTPBearer(auto_error=False, description="Only when the cloud has a cabinet token")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": MessageSchema},
    401: {"model": MessageSchema},
    404: {"model": MessageSchema},
}


def cabinet_token_check(service: CloudService) -> Callable[[Request], None]:
    """The dependency that guards every cabinet route: the bearer cabinet token, where set (D57)."""

    def check_token(request: Request) -> None:
        expected = service.settings.cabinet_token
        if expected is None:
            return
        token = parse_bearer(request.headers.get("authorization"))
        if token is None and (cookie := request.cookies.get(CABINET_COOKIE)) is not None:
            # The web cabinet's cookie (D99): a page's <img> of a receipt cannot send a header.
            if hmac.compare_digest(cookie.encode(), cabinet_cookie_value(expected).encode()):
                return
            raise CloudError(401, UNAUTHORIZED)
        if not hmac.compare_digest((token or "").encode(), expected.encode()):
            raise CloudError(401, UNAUTHORIZED)

    return check_token


def cabinet_router(service: CloudService) -> APIRouter:
    """Build the cabinet routes over ``service``."""
    router = APIRouter(
        prefix="/api/cabinet/v1",
        tags=["cabinet API"],
        dependencies=[Depends(_bearer), Depends(cabinet_token_check(service))],
        responses=_ERRORS,
    )

    @router.post("/accounts", summary="Create an account (optionally with an ЛК login)")
    async def create_account(body: AccountCreate) -> dict[str, Any]:
        if (body.login is None) != (body.password is None):
            raise ValidationError("login", "login and password go together")
        account = service.create_account(body.id, body.name)
        if body.login is not None and body.password is not None:
            service.set_account_login(account.id, body.login, body.password)
        return account_view(account)

    @router.get("/accounts", summary="List accounts")
    async def list_accounts() -> list[dict[str, Any]]:
        return service.accounts()

    @router.post("/retail-points", summary="Create a retail point (name, address, INN)")
    async def create_point(body: RetailPointCreate) -> dict[str, Any]:
        return service.point_view(service.create_point(body))

    @router.get("/retail-points", summary="List retail points with their flags and fnState")
    async def list_points() -> list[dict[str, Any]]:
        return service.point_views()

    @router.get("/retail-points/{point_id}", summary="Show a retail point")
    async def get_point(point_id: str) -> dict[str, Any]:
        return service.point_view(service.get_point(point_id))

    @router.patch(
        "/retail-points/{point_id}",
        summary="Change flags (internet documents, stop-on-errors, pickup window) and details",
    )
    async def update_point(point_id: str, body: RetailPointUpdate) -> dict[str, Any]:
        return service.point_view(service.update_point(point_id, body))

    @router.delete("/retail-points/{point_id}", summary="Delete a retail point")
    async def delete_point(point_id: str) -> Response:
        service.delete_point(point_id)
        return Response(status_code=204)

    @router.post(
        "/retail-points/{point_id}/credentials",
        summary="«Сгенерировать логин и пароль»: new service credentials (shown once)",
    )
    async def credentials(point_id: str) -> dict[str, str]:
        return service.generate_credentials(point_id)

    @router.get("/documents", summary="List documents with filters")
    async def list_documents(
        *,
        status: Annotated[list[str] | None, Query()] = None,
        retail_point_id: Annotated[str | None, Query(alias="retailPointId")] = None,
        doc_id: Annotated[str | None, Query(alias="id")] = None,
        since: Annotated[datetime | None, Query()] = None,
        until: Annotated[datetime | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
        history: Annotated[bool, Query()] = False,
    ) -> list[dict[str, Any]]:
        statuses = tuple(status or ())
        for value in statuses:
            if value not in Status.__members__:
                raise ValidationError("status", f"unsupported value {value}")
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise ValidationError(name, "needs a UTC offset")
        records = service.list_documents(
            DocumentFilter(retail_point_id, statuses, doc_id, since, until, limit, offset)
        )
        if history:
            return [service.document_detail(r) for r in records]
        return [service.document_summary(r) for r in records]

    @router.get(
        "/retail-points/{point_id}/documents/{doc_id:path}",
        summary="Document detail: history, OFD delivery, error detail, warnings",
    )
    async def document(point_id: str, doc_id: str) -> dict[str, Any]:
        return service.document_detail(service.find_document(point_id, doc_id))

    @router.post(
        "/retail-points/{point_id}/documents/{doc_id:path}/redrive",
        summary="«Провести повторно»: re-queue a FAILED document",
    )
    async def redrive(point_id: str, doc_id: str) -> dict[str, Any]:
        return service.document_detail(service.redrive(point_id, doc_id))

    @router.post(
        "/retail-points/{point_id}/documents/{doc_id:path}/mark-done",
        summary="«Отметить как выполненный»: complete a FAILED document without a receipt",
    )
    async def mark_done(point_id: str, doc_id: str) -> dict[str, Any]:
        return service.document_detail(service.mark_done(point_id, doc_id))

    @router.get("/heartbeats", summary="Tills with their last heartbeat")
    async def heartbeats() -> list[dict[str, Any]]:
        return service.devices()

    @router.get("/warnings", summary="Duplicate and double-integration warnings")
    async def warnings() -> list[dict[str, Any]]:
        return service.warning_summaries()

    @router.get("/clock", summary="The cloud clock")
    async def clock_show() -> dict[str, Any]:
        deadline = service.next_deadline()
        return {
            "now": format_time(service.clock.now()),
            "mode": service.clock.mode,
            "nextDeadline": format_time(deadline) if deadline else None,
        }

    @router.post("/clock/advance", summary="Advance the cloud clock (fires due timers in order)")
    async def clock_advance(body: ClockAdvance) -> dict[str, Any]:
        try:
            delta = parse_duration(body.duration)
        except ConfigError as exc:
            raise ValidationError("duration", str(exc)) from exc
        await service.clock.advance(delta)
        service.sweep(service.clock.now())
        return await clock_show()

    return router
