"""The till-facing API ``/api/device/v1`` (``till-protocol.md`` §1).

Calls: bind, heartbeat, lease, results, ofd-acks, outbox (results and OFD acknowledgements in
one exchange, D63), and cashdocs (the till's upload queue, ``orders-and-backoffice.md`` B9).

The long poll of ``lease`` waits on the clock's pacing (real time), never on business time, and
leases only after checking that its client is still connected, then answers at once: a handler
whose client left never takes documents it could not hand over. It waits on the :class:`Notifier`
of its retail point and re-checks only when that point changed or at its deadline (D66); holding
and renewing a long poll marks the till as seen (D67).
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBasic, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from kkt_emulator.cloud.cashdoc_ops import CashDocsRequest
from kkt_emulator.cloud.orders_ops import orders_key
from kkt_emulator.cloud.responses import JsonResponse
from kkt_emulator.cloud.schemas import (
    BindRequest,
    HeartbeatRequest,
    MessageSchema,
    OfdAck,
    OfdAcksRequest,
    ResultItem,
    ResultsRequest,
)
from kkt_emulator.cloud.till_ops import WATCH_SEEN_EVERY

if TYPE_CHECKING:
    from kkt_emulator.clock import Clock
    from kkt_emulator.cloud.service import CloudService

__all__ = [
    "MAX_WATCHED",
    "FallibleAnswer",
    "Notifier",
    "OutboxRequest",
    "WatchRequest",
    "bind_answer",
    "device_fast_path",
    "device_router",
    "lease_answer",
    "orders_answer",
    "outbox_answer",
]

FallibleAnswer = Callable[[Request], Awaitable[Response | None]]
"""A fast-path answer that may hand the request back to FastAPI (``None``), D123."""

MAX_WATCHED = 10000
"""The most tills one fleet watch may name (their tokens fit the body limit, D8)."""

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


class WatchRequest(BaseModel):
    """``POST /watch`` (D69): the bearer tokens of the tills one fleet process watches for."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(max_length=MAX_WATCHED)


_turns: dict[str, int] = {}
"""Per retail point, where the next fleet watch answer starts telling its tills (D112)."""


def _in_turn(point_id: str, indices: list[int], count: int) -> list[int]:
    """``count`` of a point's watched tills, taking turns across answers (D112).

    A document needs one till: a watch tells as many tills of a point as the point has documents
    to lease (each till leases up to its batch), not all of them, and the next answer starts with
    the till after the last one told, so work spreads over the point's tills.
    """
    if count <= 0 or not indices:
        return []
    if count >= len(indices):
        return indices
    start = _turns.get(point_id, 0) % len(indices)
    _turns[point_id] = start + count
    if len(_turns) > 100_000:  # points come and go; a fresh start only resets the turns
        _turns.clear()
    return (indices[start:] + indices[:start])[:count]


def _after(text: str, epoch: str) -> int:
    """The sequence number of a watch's ``after`` (``EPOCH:N``); -1 (everything) for another epoch."""
    mark, sep, number = text.partition(":")
    if not sep or mark != epoch or not number.isdigit():
        return -1
    return int(number)


class Notifier:
    """Wakes the long polls of one retail point when its documents may have become eligible (D66).

    Waiters are kept by retail point: :meth:`notify` with a point id wakes only the waits that
    name that point, ``None`` (anything may have changed) wakes all of them. A long poll re-checks
    only when woken or at its deadline; the timer pass notifies the points whose deadlines it fired,
    so no waiter needs a periodic re-check. Every notification takes the next number of a sequence
    (:meth:`changed_since` tells a fleet watch which points changed after the number it last saw,
    D69); :attr:`epoch` names this sequence, which starts again with the process. :attr:`wakeups`
    counts the waits a notification ended (tests and measurements read it).
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._changed: dict[str, int] = {}
        self._all_changed = 0
        self.seq = 0
        self.epoch = uuid.uuid4().hex[:12]
        self.wakeups = 0

    @property
    def waiting(self) -> dict[str, int]:
        """How many waits name each retail point now."""
        return {point: len(futures) for point, futures in self._waiters.items()}

    def notify(self, point_id: str | None) -> None:
        """Wake the waits of ``point_id``, or every wait for ``None``."""
        self.seq += 1
        if point_id is None:
            self._all_changed = self.seq
            groups = list(self._waiters.values())
            self._waiters.clear()
        else:
            self._changed[point_id] = self.seq
            waiters = self._waiters.pop(point_id, None)
            groups = [] if waiters is None else [waiters]
        for futures in groups:
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def changed_since(self, point_id: str, seq: int) -> bool:
        """Whether ``point_id`` was notified (by name or as "anything") after number ``seq``."""
        return max(self._changed.get(point_id, 0), self._all_changed) > seq

    async def wait(
        self,
        point_ids: str | Collection[str],
        clock: Clock,
        seconds: float,
        gone: asyncio.Future[None] | None = None,
    ) -> bool:
        """Wait for a notification of one of ``point_ids`` or ``seconds`` of pacing time.

        ``gone`` (the client left) ends the wait too. Returns whether a notification ended it.
        """
        points = (point_ids,) if isinstance(point_ids, str) else tuple(point_ids)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for point in points:
            self._waiters.setdefault(point, set()).add(woken)
        pacer = asyncio.ensure_future(clock.pace(seconds))
        try:
            waits: set[asyncio.Future[Any]] = {woken, pacer}
            if gone is not None:
                waits.add(gone)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pacer.cancel()
            for point in points:
                futures = self._waiters.get(point)
                if futures is not None:
                    futures.discard(woken)
                    if not futures:
                        del self._waiters[point]  # no waiter left: the point costs nothing
        if woken.done():
            self.wakeups += 1
            return True
        woken.cancel()
        return False


async def _disconnected(request: Request) -> None:
    """Return when the client of ``request`` (a long poll without a body) has gone away."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def lease_answer(
    service: CloudService,
    notifier: Notifier,
    request: Request,
    max_docs: int,
    wait: float,
    *,
    resume: bool,
) -> Response:
    """``POST /lease`` (validated), for the route and the fast path alike (D123)."""
    clock = service.clock
    device, point = service.authenticate_device(request.headers.get("authorization"))
    wait = min(wait, service.settings.max_lease_wait)
    deadline = clock.monotonic() + wait
    if wait > 0:
        service.mark_seen([device])  # a long poll is the idle till's sign of life (D67)
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
                return JsonResponse({"documents": [d.to_json() for d in documents]})
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                if wait > 0:
                    service.mark_seen([device])  # held to its end: the till was there all along
                return Response(status_code=204)
            if gone is None:
                gone = asyncio.ensure_future(_disconnected(request))
            # D66: only a change at this point, the deadline or the client leaving ends the
            # wait; there is no periodic re-check
            await notifier.wait(point.id, clock, remaining, gone)
    finally:
        if gone is not None:
            gone.cancel()


def outbox_answer(service: CloudService, request: Request, body: OutboxRequest) -> Response:
    """``POST /outbox`` (validated), for the route and the fast path alike (D123)."""
    device, point = service.authenticate_device(request.headers.get("authorization"))
    return JsonResponse(service.report(device, point, body.results, body.acks).to_json())


async def watch_answer(
    service: CloudService,
    notifier: Notifier,
    request: Request,
    body: WatchRequest,
    *,
    wait: float,
    after: str,
) -> Response:
    """``POST /watch`` (validated), for the route and the fast path alike (D123)."""
    clock = service.clock
    found, refused = service.watched(body.tokens)
    points: dict[str, list[int]] = {}
    for index, _, point in found:
        points.setdefault(point.id, []).append(index)
    # The watch also tells the tills whose point's orders changed (D116), so that a fleet's
    # tills hold no order long poll of their own.
    keys = [*points, *(orders_key(point_id) for point_id in points)]
    wait = min(wait, service.settings.max_lease_wait)
    deadline = clock.monotonic() + wait
    devices = [device for _, device, _ in found]
    if wait > 0:
        service.mark_seen(devices, WATCH_SEEN_EVERY)
    seen = _after(after, notifier.epoch)
    gone: asyncio.Future[None] | None = None
    try:
        while True:
            cursor = notifier.seq  # what this check covers: a later change is news
            ready = [
                index
                for point_id, indices in points.items()
                if notifier.changed_since(point_id, seen)
                for index in _in_turn(
                    point_id, indices, service.eligible_count(point_id, len(indices))
                )
            ]
            orders = [
                index
                for point_id, indices in points.items()
                if notifier.changed_since(orders_key(point_id), seen)
                # A cursor this cloud never gave counts every point as changed, but a point
                # that never had an order has nothing a till could have missed (D141).
                and (seen >= 0 or service.storage.orders_rev(point_id) > 0)
                for index in indices
            ]
            # A watch without a cursor of this cloud is answered at once, told or not: its
            # cursor comes back, and the tills learn that the cloud serves the watch (D141).
            foreign, seen = seen < 0, cursor
            remaining = deadline - clock.monotonic()
            if (
                ready
                or orders
                or refused
                or foreign
                or not points
                or remaining <= 0
                or (gone and gone.done())
            ):
                if remaining <= 0 and wait > 0:
                    service.mark_seen(devices, WATCH_SEEN_EVERY)
                return JsonResponse(
                    {
                        "ready": sorted(ready),
                        "orders": sorted(orders),
                        "refused": refused,
                        "after": f"{notifier.epoch}:{cursor}",
                    }
                )
            if gone is None:
                gone = asyncio.ensure_future(_disconnected(request))
            await notifier.wait(keys, clock, remaining, gone)
    finally:
        if gone is not None:
            gone.cancel()


def bind_answer(service: CloudService, request: Request, body: BindRequest) -> Response:
    """``POST /bind`` (validated), for the route and the fast path alike (D131)."""
    return JsonResponse(service.bind(request.headers.get("authorization"), body))


async def orders_answer(
    service: CloudService, notifier: Notifier, request: Request, since: int, wait: float
) -> Response:
    """``GET /orders`` of a till (validated), for the route and the fast path alike (D131).

    Without a wait the changed orders are read at once: the point's revision is read only to
    decide whether a long poll waits (orders-and-backoffice.md O7, D66).
    """
    clock = service.clock
    device, point = service.authenticate_device(request.headers.get("authorization"))
    wait = min(wait, service.settings.max_lease_wait)
    deadline = clock.monotonic() + wait
    gone: asyncio.Future[None] | None = None
    try:
        while True:
            if wait <= 0 or service.orders_rev(point) > since:
                return JsonResponse(service.device_orders(device, point, since))
            remaining = deadline - clock.monotonic()
            if remaining <= 0 or (gone is not None and gone.done()):
                return JsonResponse({"rev": since, "orders": []})
            if gone is None:
                gone = asyncio.ensure_future(_disconnected(request))
            await notifier.wait(orders_key(point.id), clock, remaining, gone)  # D66
    finally:
        if gone is not None:
            gone.cancel()


def heartbeat_answer(service: CloudService, request: Request, body: HeartbeatRequest) -> Response:
    """``POST /heartbeat`` (validated), for the route and the fast path alike (D123)."""
    device, point = service.authenticate_device(request.headers.get("authorization"))
    return JsonResponse(service.heartbeat(device, point, body))


_PREFIX: Final = "/api/device/v1"
_M = TypeVar("_M", bound=BaseModel)
_BOOLS: Final = {"1": True, "true": True, "0": False, "false": False}


_MAX_TEXT: Final = re.compile(r"[1-9][0-9]{0,2}")
_WAIT_TEXT: Final = re.compile(r"(?:0|[1-9][0-9]?)(?:\.[0-9]{1,6})?")


def _query(query: bytes, names: Collection[str]) -> dict[str, str] | None:
    """The ``names`` of a query string as Starlette reads it, or ``None`` if one is repeated."""
    found: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in names:
            if name in found:
                return None  # a repeated parameter: the route decides which one counts
            found[name] = value
    return found


def _wait(text: str | None) -> float | None:
    """A ``wait`` of 0–30 seconds written plainly (``5``, ``0.25``), else ``None``."""
    if text is None:
        return 0.0
    if _WAIT_TEXT.fullmatch(text) is None or float(text) > 30.0:
        return None
    return float(text)


def _lease_query(query: bytes) -> tuple[int, float, bool] | None:
    """``max``, ``wait`` and ``resume`` of a lease query, or ``None`` unless plainly valid."""
    found = _query(query, ("max", "wait", "resume"))
    if found is None:
        return None
    text = found.get("max", "1")
    wait = _wait(found.get("wait"))
    resume = found.get("resume", "0")
    if _MAX_TEXT.fullmatch(text) is None or int(text) > 100 or wait is None or resume not in _BOOLS:
        return None
    return int(text), wait, _BOOLS[resume]


_SINCE_TEXT: Final = re.compile(r"0|[1-9][0-9]{0,17}")


def _orders_query(query: bytes) -> tuple[int, float] | None:
    """``since`` and ``wait`` of an orders query, or ``None`` unless plainly valid."""
    found = _query(query, ("since", "wait"))
    if found is None:
        return None
    since = found.get("since", "0")
    wait = _wait(found.get("wait"))
    if _SINCE_TEXT.fullmatch(since) is None or wait is None:
        return None
    return int(since), wait


def _watch_query(query: bytes) -> tuple[float, str] | None:
    """``wait`` and ``after`` of a watch query, or ``None`` unless plainly valid."""
    found = _query(query, ("wait", "after"))
    if found is None:
        return None
    wait = _wait(found.get("wait"))
    after = found.get("after", "")
    if wait is None or len(after) > 64:
        return None
    return wait, after


def _json_body(request: Request) -> bool:
    """Whether the route would read the body as JSON (no type given, or a JSON type)."""
    kind = request.headers.get("content-type")
    return kind is None or kind.split(";", 1)[0].strip().lower() == "application/json"


async def _body(request: Request, model: type[_M]) -> _M | None:
    """The body as ``model`` if the route would read it so, else ``None`` (the route decides)."""
    if not _json_body(request):
        return None
    raw = await request.body()
    try:
        return model.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, PydanticValidationError):
        return None


def device_fast_path(
    service: CloudService, notifier: Notifier
) -> Callable[[str, str], FallibleAnswer | None]:
    """The till routes of every document, ``/lease`` and ``/outbox``, without the router (D123).

    As :func:`~kkt_emulator.cloud.store_api.store_fast_path`: the function names the answer of a
    method and path, or ``None``. An answer gives ``None`` for a request it does not take as
    plainly valid (a query or body the route would refuse or read another way); the request then
    goes to FastAPI with its body, so every refusal is the route's own.
    """

    async def lease(request: Request) -> Response | None:
        query = _lease_query(request.scope.get("query_string", b""))
        if query is None:
            return None
        max_docs, wait, resume = query
        return await lease_answer(service, notifier, request, max_docs, wait, resume=resume)

    async def outbox(request: Request) -> Response | None:
        body = await _body(request, OutboxRequest)
        return None if body is None else outbox_answer(service, request, body)

    async def heartbeat(request: Request) -> Response | None:
        body = await _body(request, HeartbeatRequest)
        return None if body is None else heartbeat_answer(service, request, body)

    async def bind(request: Request) -> Response | None:
        body = await _body(request, BindRequest)
        return None if body is None else bind_answer(service, request, body)

    async def orders(request: Request) -> Response | None:
        query = _orders_query(request.scope.get("query_string", b""))
        if query is None:
            return None
        since, wait = query
        return await orders_answer(service, notifier, request, since, wait)

    async def watch(request: Request) -> Response | None:
        query = _watch_query(request.scope.get("query_string", b""))
        if query is None:
            return None
        body = await _body(request, WatchRequest)
        if body is None:
            return None
        wait, after = query
        return await watch_answer(service, notifier, request, body, wait=wait, after=after)

    routes: dict[tuple[str, str], FallibleAnswer] = {
        ("POST", _PREFIX + "/lease"): lease,
        ("POST", _PREFIX + "/outbox"): outbox,
        ("POST", _PREFIX + "/heartbeat"): heartbeat,
        ("POST", _PREFIX + "/watch"): watch,
        ("POST", _PREFIX + "/bind"): bind,  # D131: a fleet's start-up binds every till
        ("GET", _PREFIX + "/orders"): orders,  # D131: and syncs its orders once
    }

    def match(method: str, path: str) -> FallibleAnswer | None:
        return routes.get((method, path))

    return match


def device_router(service: CloudService, notifier: Notifier) -> APIRouter:
    """Build the till routes over ``service``."""
    router = APIRouter(prefix=_PREFIX, tags=["till API"])

    @router.post(
        "/bind",
        dependencies=[Depends(_basic)],
        responses={**_ERRORS, 404: {"model": MessageSchema}},
        summary="Bind a till to a retail point; returns deviceId and a bearer token",
    )
    async def bind(request: Request, body: BindRequest) -> Response:
        return bind_answer(service, request, body)

    @router.post(
        "/heartbeat",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Till state; drives fnState and /v1/status dateTime (D40)",
        response_model=dict[str, Any],
    )
    async def heartbeat(request: Request, body: HeartbeatRequest) -> Response:
        return heartbeat_answer(service, request, body)

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
        return await lease_answer(service, notifier, request, max_docs, wait, resume=resume)

    @router.post(
        "/watch",
        responses={400: {"model": MessageSchema}},
        summary="A fleet process's one long poll for all its tills (D69): which of the named tills"
        " have documents waiting at their retail point since the last answer",
        response_model=dict[str, Any],
    )
    async def watch(
        request: Request,
        body: WatchRequest,
        wait: Annotated[float, Query(ge=0.0, le=30.0)] = 0.0,
        after: Annotated[str, Query(max_length=64)] = "",
    ) -> Response:
        return await watch_answer(service, notifier, request, body, wait=wait, after=after)

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
        response_model=dict[str, Any],
    )
    async def outbox(request: Request, body: OutboxRequest) -> Response:
        return outbox_answer(service, request, body)

    @router.post(
        "/ofd-acks",
        dependencies=[Depends(_bearer)],
        responses=_ERRORS,
        summary="Report OFD acknowledgements by fiscal document number",
    )
    async def ofd_acks(request: Request, body: OfdAcksRequest) -> dict[str, Any]:
        device, _ = service.authenticate_device(request.headers.get("authorization"))
        return service.ofd_acks(device, body.acks).to_json()

    @router.post(
        "/cashdocs",
        dependencies=[Depends(_bearer)],
        responses={**_ERRORS, 409: {"model": MessageSchema}},
        summary="The till's upload queue (orders-and-backoffice.md B7, B9): cash documents in"
        " FIFO order, stored in order, idempotent per document id",
    )
    async def cashdocs(request: Request, body: CashDocsRequest) -> dict[str, Any]:
        device, point = service.authenticate_device(request.headers.get("authorization"))
        return service.upload_cashdocs(device, point, body.documents)

    return router
