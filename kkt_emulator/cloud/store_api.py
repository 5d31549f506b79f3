"""The vendor's store API (``store-api.md`` §5), mounted under both ``/api/fn`` and ``/fn`` (D2).

Each route first awaits the login (``login_association``, or ``judge_credentials`` for master
credentials), so a password that needs deriving is derived off the event loop (D58), then runs its
synchronous operation and answers a :class:`~kkt_emulator.cloud.responses.JsonResponse` itself
(D60): FastAPI's response validation is skipped, while ``response_model`` keeps ``/openapi.json``
as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response

from kkt_emulator.cloud.responses import JsonResponse
from kkt_emulator.cloud.schemas import (
    DocumentSchema,
    DocumentStatusSchema,
    FnStatusSchema,
    MessageSchema,
    RetailPointAssociationSchema,
)

if TYPE_CHECKING:
    from kkt_emulator.cloud.records import StoreRoute
    from kkt_emulator.cloud.service import CloudService

__all__ = [
    "STORE_SECURITY_SCHEME",
    "Answer",
    "doc_status_answer",
    "status_answer",
    "store_fast_path",
    "store_router",
    "submit_answer",
]

# The Basic scheme in /openapi.json. The header is parsed by the service (D5), so the routes name
# the scheme through openapi_extra instead of a dependency, which cost every request a quarter of
# the stack's own time (D60); the app lists the scheme in the components (STORE_SECURITY_SCHEME).
STORE_SECURITY_SCHEME: dict[str, Any] = {
    "HTTPBasic": {
        "type": "http",
        "description": "Master or association credentials (D5)",
        "scheme": "basic",
    }
}
_SECURITY: dict[str, Any] = {"security": [{"HTTPBasic": []}]}

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageSchema, "description": "Missing or wrong credentials"},
    403: {"model": MessageSchema, "description": "No rights for the retail point"},
}
_DOC_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": MessageSchema, "description": "Unknown document id (D16)"},
}
_DOCUMENT_BODY: dict[str, Any] = {
    **_SECURITY,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DocumentSchema.model_json_schema()}},
    },
}


async def status_answer(service: CloudService, request: Request) -> Response:
    """``GET /v1/status``, for the route and the fast path alike."""
    assoc, point = await service.login_association(request.headers.get("authorization"))
    return JsonResponse(service.service_status(assoc, point))


async def submit_answer(service: CloudService, request: Request, route: StoreRoute) -> Response:
    """``POST /v1/doc`` and ``/v2/doc``; the service authenticates before it parses (D23)."""
    body = await request.body()
    assoc, point = await service.login_association(request.headers.get("authorization"))
    return JsonResponse(service.submit(assoc, point, body, route))


async def doc_status_answer(service: CloudService, request: Request, doc_id: str) -> Response:
    """``GET /v1/doc/{id}/status`` (D16, D17)."""
    _, point = await service.login_association(request.headers.get("authorization"))
    return JsonResponse(service.document_status(point, doc_id))


Answer = Callable[[Request], Awaitable[Response]]
"""A store request's answer, given the request."""

_PREFIXES: Final = ("/api/fn", "/fn")  # D2
_DOC: Final = "/v1/doc/"
_STATUS: Final = "/status"


def store_fast_path(service: CloudService) -> Callable[[str, str], Answer | None]:
    """The store API's busiest routes, matched without FastAPI's router (D60).

    The returned function takes a method and a path (``scope["path"]``) and gives the answer of
    ``GET /v1/status``, ``POST /v1/doc``, ``POST /v2/doc`` or ``GET /v1/doc/{id}/status`` under
    either prefix, exactly as the routes of :func:`store_router` match them, or ``None``: then
    FastAPI serves the request (every other route, and 404, 405 and redirects for these paths).
    """
    exact: dict[tuple[str, str], Answer] = {}
    for prefix in _PREFIXES:
        exact["GET", prefix + "/v1/status"] = functools.partial(status_answer, service)
        for route in ("v1", "v2"):
            exact["POST", f"{prefix}/{route}/doc"] = functools.partial(
                submit_answer, service, route=route
            )

    def match(method: str, path: str) -> Answer | None:
        answer = exact.get((method, path))
        if answer is not None or method != "GET" or not path.endswith(_STATUS):
            return answer
        for prefix in _PREFIXES:
            start = len(prefix) + len(_DOC)
            # {doc_id:path} is ".*" between ".../v1/doc/" and "/status", possibly empty
            if (
                path.startswith(prefix)
                and path.startswith(_DOC, len(prefix))
                and len(path) >= start + len(_STATUS)
            ):
                doc_id = path[start : len(path) - len(_STATUS)]
                return functools.partial(doc_status_answer, service, doc_id=doc_id)
        return None

    return match


def store_router(service: CloudService) -> APIRouter:
    """Build the store routes over ``service``; include the router once per prefix."""
    router = APIRouter(tags=["store API"])

    @router.post(
        "/v1/associate/{retail_point_id}",
        responses={
            200: {"model": RetailPointAssociationSchema},
            **_ERRORS,
            404: {"model": MessageSchema, "description": "Unknown retail point"},
        },
        summary="Create association credentials (master credentials; rotates the password)",
        openapi_extra=_SECURITY,
        response_model=dict[str, str],
    )
    async def associate(
        request: Request,
        retail_point_id: str,
        client_id: Annotated[str | None, Query(alias="clientId")] = None,
    ) -> Response:
        header = request.headers.get("authorization")
        await service.judge_credentials(header, master=True)
        return JsonResponse(service.associate(header, retail_point_id, client_id))

    @router.delete(
        "/v1/associate",
        responses=_ERRORS,
        summary="Remove the calling association's credentials",
        openapi_extra=_SECURITY,
        response_class=Response,
    )
    async def delete_associate(request: Request) -> Response:
        assoc, _ = await service.login_association(request.headers.get("authorization"))
        service.delete_association(assoc)
        return Response(status_code=200)

    @router.get(
        "/v1/status",
        responses={200: {"model": FnStatusSchema}, **_ERRORS},
        summary="Readiness of the fiscalisation service (D40)",
        openapi_extra=_SECURITY,
        response_model=dict[str, Any],
    )
    async def status(request: Request) -> Response:
        return await status_answer(service, request)

    def _post_doc(route: StoreRoute) -> Any:
        async def post_doc(request: Request) -> Response:
            return await submit_answer(service, request, route)

        return post_doc

    routes: tuple[StoreRoute, ...] = ("v1", "v2")
    for route in routes:
        router.add_api_route(
            f"/{route}/doc",
            _post_doc(route),
            methods=["POST"],
            responses={
                200: {"model": DocumentStatusSchema},
                400: {"model": MessageSchema, "description": "Validation failure (D23)"},
                **_ERRORS,
                409: {"model": MessageSchema, "description": "duplicate_policy = conflict"},
                413: {"model": MessageSchema, "description": "Body over 1 MiB"},
            },
            openapi_extra=_DOCUMENT_BODY,
            summary=f"Submit a document ({route}; D14)",
            response_model=dict[str, Any],
            name=f"post_doc_{route}",
        )

    @router.get(
        "/v1/doc/{doc_id:path}/status",
        responses={200: {"model": DocumentStatusSchema}, **_DOC_ERRORS},
        summary="Document status by the client's id (D16, D17)",
        openapi_extra=_SECURITY,
        response_model=dict[str, Any],
    )
    async def doc_status(request: Request, doc_id: str) -> Response:
        return await doc_status_answer(service, request, doc_id)

    @router.put(
        "/v1/doc/{doc_id:path}/re-queue",
        responses={
            200: {"model": DocumentStatusSchema},
            400: {"model": MessageSchema, "description": "Not FAILED (D18)"},
            **_DOC_ERRORS,
        },
        summary="Re-queue a FAILED document (D18, D33)",
        openapi_extra=_SECURITY,
        response_model=dict[str, Any],
    )
    async def requeue(request: Request, doc_id: str) -> Response:
        _, point = await service.login_association(request.headers.get("authorization"))
        return JsonResponse(service.requeue(point, doc_id))

    return router
