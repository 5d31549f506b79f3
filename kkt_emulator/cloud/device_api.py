"""The till-facing API ``/api/device/v1`` (``till-protocol.md`` §1).

Calls: bind, heartbeat, lease, results, ofd-acks, and outbox (results and OFD acknowledgements in
one exchange, D63).

The long poll of ``lease`` waits on the clock's pacing (real time), never on business time, and
leases only after checking that its client is still connected, then answers at once: a handler
whose client left never takes documents it could not hand over.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from kkt_emulator.cloud.schemas import (
    BindRequest,
    HeartbeatRequest,
    MessageSchema,
    OfdAck,
    OfdAcksRequest,
    ResultItem,
    ResultsRequest,
)

if TYPE_CHECKING:
    from kkt_emulator.clock import Clock
    from kkt_emulator.cloud.service import CloudService

__all__ = ["Notifier", "OutboxRequest", "device_router"]

_basic = HTTPBasic(auto_error=False, description="The retail point's service credentials")
_bearer = HTTPBearer(auto_error=False, description="The token returned by /bind")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": MessageSchema},
    401: {"model": MessageSchema},
    403: {"model": MessageSchema},
}


class OutboxRequest(BaseModel):
    """``POST /outbox`` (D63): the till's whole outbox in one exchange, results before acks."""

    model_config = ConfigDict(extra="forbid")

    results: list[ResultItem] = Field(default_factory=list, max_length=1000)
    acks: list[OfdAck] = Field(default_factory=list, max_length=10000)


class Notifier:
    """Wakes long polls when documents may have become eligible."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, clock: Clock, seconds: float) -> None:
        """Wait for :meth:`notify` or ``seconds`` of pacing time, whichever comes first."""
        waiter = asyncio.ensure_future(self._event.wait())
        pacer = asyncio.ensure_future(clock.pace(seconds))
        try:
            await asyncio.wait({waiter, pacer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, pacer):
                task.cancel()


def device_router(service: CloudService, notifier: Notifier) -> APIRouter:
    """Build the till routes over ``service``."""
    router = APIRouter(prefix="/api/device/v1", tags=["till API"])
    clock = service.clock

    @router.post(
        "/bind",
        dependencies=[Depends(_basic)],
        responses={**_ERRORS, 404: {"model": MessageSchema}},
        summary="Bind a till to a retail point; returns deviceId and a bearer token",
    )
    async def bind(request: Request, body: BindRequest) -> dict[str, str]:
        return service.bind(request.headers.get("authorization"), body)

    @router.post(
        "/heartbeat",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Till state; drives fnState and /v1/status dateTime (D40)",
    )
    async def heartbeat(request: Request, body: HeartbeatRequest) -> dict[str, Any]:
        device, point = service.authenticate_device(request.headers.get("authorization"))
        return service.heartbeat(device, point, body)

    @router.post(
        "/lease",
        dependencies=[Depends(_bearer)],
        responses={**_ERRORS, 204: {"description": "Nothing to lease within the wait"}},
        summary="Lease up to max documents, oldest first; long-polls up to wait seconds;"
        " resume=1 (a till that has just started) hands back its own pending leases first",
    )
    async def lease(
        request: Request,
        max_docs: Annotated[int, Query(alias="max", ge=1, le=100)] = 1,
        wait: Annotated[float, Query(ge=0.0, le=30.0)] = 0.0,
        resume: Annotated[bool, Query()] = False,
    ) -> Any:
        device, point = service.authenticate_device(request.headers.get("authorization"))
        deadline = clock.monotonic() + min(wait, service.settings.max_lease_wait)
        while True:
            if await request.is_disconnected():
                return Response(status_code=204)
            # no await until answered; ``resume`` hands back this till's own pending leases
            documents = service.lease(device, point, max_docs, resume=resume)
            if documents:
                return {"documents": [d.to_json() for d in documents]}
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return Response(status_code=204)
            await notifier.wait(clock, min(remaining, 1.0))

    @router.post(
        "/results",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Report outcomes (idempotent per document and fiscal document number)",
    )
    async def results(request: Request, body: ResultsRequest) -> dict[str, Any]:
        device, point = service.authenticate_device(request.headers.get("authorization"))
        answers = service.results(device, point, body.results)
        return {"results": [a.to_json() for a in answers]}

    @router.post(
        "/outbox",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Report outcomes and OFD acknowledgements in one exchange (D63): the results"
        " are applied first, then the acknowledgements, in one transaction",
    )
    async def outbox(request: Request, body: OutboxRequest) -> dict[str, Any]:
        device, point = service.authenticate_device(request.headers.get("authorization"))
        return service.report(device, point, body.results, body.acks).to_json()

    @router.post(
        "/ofd-acks",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Report OFD acknowledgements by fiscal document number",
    )
    async def ofd_acks(request: Request, body: OfdAcksRequest) -> dict[str, Any]:
        device, _ = service.authenticate_device(request.headers.get("authorization"))
        return service.ofd_acks(device, body.acks).to_json()

    return router
