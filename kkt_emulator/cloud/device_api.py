"""The till-facing API ``/api/device/v1`` (``till-protocol.md`` §1).

Calls: bind, heartbeat, lease, results, ofd-acks, and outbox (results and OFD acknowledgements in
one exchange, D63).

The long poll of ``lease`` waits on the clock's pacing (real time), never on business time, and
leases only after checking that its client is still connected, then answers at once: a handler
whose client left never takes documents it could not hand over. It waits on the :class:`Notifier`
of its retail point and re-checks only when that point changed or at its deadline (D66); holding
and renewing a long poll marks the till as seen (D67).
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
    """Wakes the long polls of one retail point when its documents may have become eligible (D66).

    Waiters are kept by retail point: :meth:`notify` with a point id wakes only that point's long
    polls, ``None`` (anything may have changed) wakes all of them. A long poll re-checks only when
    woken or at its deadline; the timer pass notifies the points whose deadlines it fired, so no
    waiter needs a periodic re-check. :attr:`wakeups` counts the waits a notification ended and
    :attr:`waiting` the long polls waiting now, per point (tests and measurements read them).
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self.waiting: dict[str, int] = {}
        self.wakeups = 0

    def notify(self, point_id: str | None) -> None:
        """Wake the long polls of ``point_id``, or every long poll for ``None``."""
        if point_id is None:
            events = list(self._events.values())
            self._events.clear()
        else:
            event = self._events.pop(point_id, None)
            events = [] if event is None else [event]
        for event in events:
            event.set()

    async def wait(
        self,
        point_id: str,
        clock: Clock,
        seconds: float,
        gone: asyncio.Future[None] | None = None,
    ) -> bool:
        """Wait for a notification of ``point_id`` or ``seconds`` of pacing time; whether woken.

        ``gone`` (the client left) ends the wait too.
        """
        event = self._events.get(point_id)
        if event is None:
            event = self._events[point_id] = asyncio.Event()
        self.waiting[point_id] = self.waiting.get(point_id, 0) + 1
        waiter = asyncio.ensure_future(event.wait())
        pacer = asyncio.ensure_future(clock.pace(seconds))
        try:
            waits: set[asyncio.Future[Any]] = {waiter, pacer}
            if gone is not None:
                waits.add(gone)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, pacer):
                task.cancel()
            left = self.waiting[point_id] - 1
            if left:
                self.waiting[point_id] = left
            else:
                del self.waiting[point_id]
                if self._events.get(point_id) is event and not event.is_set():
                    del self._events[point_id]  # no waiter left: the point costs nothing
        woken = event.is_set()
        if woken:
            self.wakeups += 1
        return woken


async def _disconnected(request: Request) -> None:
    """Return when the client of ``request`` (a long poll without a body) has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
        wait = min(wait, service.settings.max_lease_wait)
        deadline = clock.monotonic() + wait
        if wait > 0:
            service.mark_seen(device)  # a long poll is the idle till's sign of life (D67)
        gone: asyncio.Future[None] | None = None
        try:
            while True:
                # one reader of the client's messages at a time: the watcher, once it runs
                left = gone.done() if gone is not None else await request.is_disconnected()
                if left:
                    return Response(status_code=204)
                # no await until answered; ``resume`` hands back this till's own pending leases
                documents = service.lease(device, point, max_docs, resume=resume)
                if documents:
                    return {"documents": [d.to_json() for d in documents]}
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    if wait > 0:
                        service.mark_seen(device)  # held to its end: the till was there all along
                    return Response(status_code=204)
                if gone is None:
                    gone = asyncio.ensure_future(_disconnected(request))
                # D66: only a change at this point, the deadline or the client leaving ends the
                # wait; there is no periodic re-check
                await notifier.wait(point.id, clock, remaining, gone)
        finally:
            if gone is not None:
                gone.cancel()

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
