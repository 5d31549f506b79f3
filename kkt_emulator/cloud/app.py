"""The cloud stand-in as one object: storage, service, timers, callbacks and the FastAPI app.

::

    async with Cloud("cloud.db", clock) as cloud:     # starts the timer task
        config = uvicorn.Config(cloud.app, lifespan="off", ...)
        await uvicorn.Server(config).serve()

Under uvicorn alone, the app's lifespan enters the cloud itself. The timer task sleeps on the
clock until the earliest deadline (15-minute lease, 235-second pickup, D31 dispatch hold, callback
retry) or until a write moves one (the service's ``on_change``, which also wakes the long polls of
the retail point it names, D66); with a :class:`~kkt_emulator.clock.ManualClock`, ``advance``
wakes it at each deadline in order. Each deadline fires at its own business time, even if the task
runs late, so history times never depend on scheduling. A pass that fails, for whatever reason, is
logged with its traceback and the task goes on: the next pass comes with the next write or after
``timer_retry_seconds`` of pacing time.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from kkt_emulator.clock import Clock, RealClock
from kkt_emulator.cloud.backoffice_api import (
    backoffice_cabinet_router,
    backoffice_router,
    catalog_device_router,
)
from kkt_emulator.cloud.cabinet_api import cabinet_router
from kkt_emulator.cloud.callback_client import CallbackClient
from kkt_emulator.cloud.device_api import (
    FallibleAnswer,
    Notifier,
    device_fast_path,
    device_router,
)
from kkt_emulator.cloud.metrics import CloudMetrics, metrics_router
from kkt_emulator.cloud.orders_api import orders_cabinet_router, orders_routers
from kkt_emulator.cloud.receipt_api import receipt_router
from kkt_emulator.cloud.responses import JsonResponse
from kkt_emulator.cloud.responses import message as _message
from kkt_emulator.cloud.service import CallbackRequest, CloudService
from kkt_emulator.cloud.service_auth import service_cabinet_router, spring_body
from kkt_emulator.cloud.settings import MAX_BODY_BYTES, CloudSettings
from kkt_emulator.cloud.storage import DatabaseTarget, Storage, StorageError
from kkt_emulator.cloud.store_api import STORE_SECURITY_SCHEME, store_fast_path, store_router
from kkt_emulator.cloud.web import ChangeHub, cabinet_web_router
from kkt_emulator.errors import CloudError, ServiceApiError, TransportError, ValidationError
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from datetime import datetime
    from pathlib import Path
    from types import TracebackType

    from starlette.types import ASGIApp, Message, Receive, Scope, Send
    from structlog.typing import FilteringBoundLogger

    from kkt_emulator.cloud.backoffice_ops import FeedDelivery
    from kkt_emulator.cloud.store_api import Answer

__all__ = ["Cloud", "JsonResponse", "create_app"]


class BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes get 413 before anything parses them (D8).

    A declared ``Content-Length`` is checked against the limit and the request passes straight
    through (the server delivers no more than it declares); only a body of unknown length
    (chunked) is buffered up to the limit and replayed.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, or buffer a chunked body up to the limit and replay it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths: list[bytes] = []
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                chunked = True
        if len(lengths) == 1 and lengths[0].isdigit() and int(lengths[0]) > self.limit:
            await self._too_large(scope, receive, send)
            return
        if not chunked and (not lengths or (len(lengths) == 1 and lengths[0].isdigit())):
            # The server delivers exactly Content-Length bytes (none without the header), and
            # that is within the limit: nothing to count, so the app reads the body itself.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        first: Message | None = None
        while more:
            message = await receive()
            if message["type"] != "http.request":
                first = message
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed, first
            if not replayed:
                replayed = True
                if first is not None:
                    pending, first = first, None
                    return pending
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _message(413, f"Request body is larger than {self.limit} bytes")
        await response(scope, receive, send)


def _error_answer(
    exc: CloudError | ValidationError | StorageError, log: FilteringBoundLogger
) -> JsonResponse:
    """The answer to an error the operations raise (D7), for the app's handlers and the fast path."""
    if isinstance(exc, CloudError):
        headers = {"WWW-Authenticate": 'Basic realm="fn"'} if exc.status == 401 else None
        return _message(exc.status, exc.message, headers)
    if isinstance(exc, ValidationError):
        return _message(400, str(exc))
    log.error("storage_error", error=str(exc), exc_info=exc)
    return _message(500, "Internal storage error")


class StoreFastPath:
    """ASGI middleware: the busiest routes answered without FastAPI's router (D60, D123).

    ``match`` (:func:`~kkt_emulator.cloud.store_api.store_fast_path`, then
    :func:`~kkt_emulator.cloud.device_api.device_fast_path`) names the answer of a method and
    path exactly as the routes would match them; the answer is the same function the route calls,
    and its errors get the app's error answers. An answer may decline (``None``: a till request
    it does not take as plainly valid); FastAPI then serves the request, with the body the answer
    read replayed. Everything else goes to FastAPI. FastAPI's routing, dependency solving and
    exception middleware cost the status request about half of its time in the stack; the routes
    stay for ``/openapi.json`` and as the path taken when the fast path does not match (another
    root path, another method).
    """

    def __init__(
        self,
        app: ASGIApp,
        match: Callable[[str, str], Answer | FallibleAnswer | None],
        log: FilteringBoundLogger,
    ) -> None:
        self.app = app
        self.match = match
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a matched request, or hand the request to FastAPI."""
        if scope["type"] == "http" and not scope.get("root_path"):
            answer = self.match(scope["method"], scope["path"])
            if answer is not None:
                consumed: list[Message] = []

                async def recording() -> Message:
                    message = await receive()
                    consumed.append(message)
                    return message

                response: Response | None
                try:
                    response = await answer(Request(scope, recording))
                except (CloudError, ValidationError, StorageError) as exc:
                    response = _error_answer(exc, self.log)
                if response is not None:
                    await response(scope, receive, send)
                    return

                async def replay() -> Message:
                    return consumed.pop(0) if consumed else await receive()

                await self.app(scope, replay, send)
                return
        await self.app(scope, receive, send)


def fast_paths(
    *matches: Callable[[str, str], Answer | FallibleAnswer | None],
) -> Callable[[str, str], Answer | FallibleAnswer | None]:
    """One match of several: the first that names an answer."""

    def match(method: str, path: str) -> Answer | FallibleAnswer | None:
        for one in matches:
            answer = one(method, path)
            if answer is not None:
                return answer
        return None

    return match


def _validation_message(exc: RequestValidationError) -> str:
    errors: Sequence[Any] = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    field = ".".join(location) or "body"
    text = str(first.get("msg", "invalid value"))
    return f"{field}: {text}"


class Cloud:
    """One cloud instance: reusable as an async context manager once, not re-entrant.

    Args:
        db_path: the SQLite file (created on first start), ``":memory:"``, or a
            ``postgresql://`` URL (D74).
        clock: the shared emulator clock (real time by default).
        settings: instance settings.
        callback_transport: an httpx transport for ``responseURL`` callbacks (tests inject
            ``httpx.MockTransport``); real network by default.
    """

    def __init__(
        self,
        db_path: str | Path | DatabaseTarget,
        clock: Clock | None = None,
        settings: CloudSettings | None = None,
        *,
        callback_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.clock = clock or RealClock()
        self.settings = settings or CloudSettings()
        self.storage = Storage(db_path)
        self.notifier = Notifier()
        self.web_hub = ChangeHub()  # the web cabinet's live updates (D100)
        self.service = CloudService(self.storage, self.clock, self.settings, self._changed)
        self.metrics = CloudMetrics(self.service)  # a registry of this cloud's own (D103)
        self.log = get_logger(component="cloud")
        self._callback_transport = callback_transport
        self._http: CallbackClient | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._feeds_in_flight: dict[int, asyncio.Task[None]] = {}  # B19, by feed record
        self._loop: asyncio.AbstractEventLoop | None = None
        self.running = False
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.running:
            raise RuntimeError("the cloud is already running")
        self.running = True
        self._http = CallbackClient(  # D43: no redirects, the timeout, TLS as configured
            timeout=self.settings.callback_timeout,
            verify_tls=self.settings.callback_verify_tls,
            transport=self._callback_transport,
        )
        self._loop = asyncio.get_running_loop()
        self._timer = asyncio.create_task(self._timer_loop(), name="cloud-timers")
        # Writes of other cloud processes on the same database wake this one's polls (D76);
        # ``_changed`` hands a call from the listener thread over to the loop.
        self.storage.on_remote_change(self._changed)
        self.log.info("cloud_started", db=self.storage.path, clock=self.clock.mode)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks = [
            t
            for t in (self._timer, *self._in_flight.values(), *self._feeds_in_flight.values())
            if t is not None
        ]
        self.web_hub.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._in_flight.clear()
        self._feeds_in_flight.clear()
        if self._http is not None:
            await self._http.aclose()
        self.service.hasher.close()
        self.storage.on_remote_change(None)
        self.storage.close()
        self._loop = None
        self.running = False
        self.log.info("cloud_stopped")

    def _changed(self, point_id: str | None) -> None:
        """The service's ``on_change`` (D66): wake the timer task and that point's long polls.

        Safe from any thread: a caller off the event loop (a listener of another cloud process's
        changes) is handed over to the loop.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._changed, point_id)
                return
        self._wake.set()
        self.notifier.notify(point_id)
        self.web_hub.publish(point_id)

    async def wait_idle(self) -> None:
        """Wait until no callback attempt is in flight and due timers have fired (for tests)."""
        for _ in range(1000):
            for _ in range(5):
                await self.clock.pace(0)
            if not self._in_flight and not self._feeds_in_flight:
                due = self._next_deadline()
                if due is None or due > self.clock.now():
                    return
            await asyncio.gather(
                *self._in_flight.values(), *self._feeds_in_flight.values(), return_exceptions=True
            )

    # -- timers ------------------------------------------------------------------------------------

    def _timer_pass(self) -> datetime | None:
        """One pass: fire due deadlines, run the demo till, start due callbacks; the next wake-up.

        Every write wakes the timer task, so a pass first asks for the earliest deadline (one
        query) and does the work only when one is due (D61).
        """
        now = self.clock.now()
        deadline = self._next_deadline()
        if deadline is None or deadline > now:
            return deadline
        self.service.sweep(now)
        self.service.demo_pump(now)
        for request in self.service.due_callbacks(now, tuple(self._in_flight)):
            self._in_flight[request.seq] = asyncio.create_task(
                self._attempt(request), name=f"callback-{request.seq}"
            )
        for delivery in self.service.due_feed_deliveries(now, tuple(self._feeds_in_flight)):
            self._feeds_in_flight[delivery.seq] = asyncio.create_task(
                self._deliver_feed(delivery), name=f"feed-{delivery.seq}"
            )
        return self._next_deadline()

    def _next_deadline(self) -> datetime | None:
        """The earliest deadline: lifecycle timers, callbacks and feed deliveries not in flight."""
        deadline = self.service.next_deadline(tuple(self._in_flight))
        feed = self.service.next_feed_deadline(tuple(self._feeds_in_flight))
        if feed is not None and (deadline is None or feed < deadline):
            return feed
        return deadline

    async def _timer_loop(self) -> None:
        # The sleep towards the next deadline is kept while a pass finds the same deadline, so a
        # write that moves no deadline costs the pass's one query and no new tasks.
        sleeper: asyncio.Future[None] | None = None
        sleeping_until: datetime | None = None
        waiter: asyncio.Future[Any] | None = None
        try:
            while True:
                self._wake.clear()
                failed = False
                try:
                    deadline = self._timer_pass()
                except Exception:
                    # The HTTP side keeps answering whatever went wrong; without this the 15-minute
                    # and 235-second rules and the callbacks would stop for good.
                    self.log.exception("timer_pass_failed", db=self.storage.path)
                    deadline, failed = None, True
                if sleeper is not None and (sleeper.done() or deadline != sleeping_until):
                    sleeper.cancel()
                    sleeper = None
                if deadline is not None and sleeper is None:
                    sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
                    sleeping_until = deadline
                if waiter is None or waiter.done():
                    waiter = asyncio.ensure_future(self._wake.wait())
                waits: set[asyncio.Future[Any]] = {waiter}
                if sleeper is not None:
                    waits.add(sleeper)
                retry: asyncio.Future[None] | None = None
                if failed:  # retry after a pause (pacing time), not in a hot loop
                    retry = asyncio.ensure_future(
                        self.clock.pace(self.settings.timer_retry_seconds)
                    )
                    waits.add(retry)
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if retry is not None:
                        retry.cancel()
        finally:
            for task in (sleeper, waiter):
                if task is not None:
                    task.cancel()

    async def _attempt(self, request: CallbackRequest) -> None:
        delivered, error = False, ""
        try:
            parts = urlsplit(request.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                error = "unusable responseURL"  # D43: accepted, but never delivered
            else:
                assert self._http is not None
                status = await self._http.send(request.method, parts, request.body)
                delivered = status == 200  # D43: only exactly 200 counts
                if not delivered:
                    error = f"HTTP {status}"
        except TransportError as exc:  # no HTTP answer; the text names why, as httpx would
            error = str(exc)
        except ValueError as exc:  # urlsplit: a URL it cannot split
            error = f"{type(exc).__name__}: {exc}"
        try:
            self.service.callback_finished(request, delivered=delivered, error=error)
        except Exception:
            # Logged with its traceback; the attempt's deadline is unchanged, so it is made again.
            self.log.exception(
                "callback_result_not_recorded",
                doc_id=request.doc_id,
                kind=request.kind.value,
                delivered=delivered,
            )
        finally:
            self._in_flight.pop(request.seq, None)
            self._wake.set()

    async def _deliver_feed(self, delivery: FeedDelivery) -> None:
        """One feed delivery attempt: POST the record's JSON to its URL (B19: D43, D44)."""
        delivered, error = False, ""
        try:
            parts = urlsplit(delivery.url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                error = "unusable webhook URL"
            else:
                assert self._http is not None
                body = orjson.dumps(delivery.body)
                status = await self._http.send("POST", parts, body)
                delivered = status == 200
                if not delivered:
                    error = f"HTTP {status}"
        except TransportError as exc:
            error = str(exc)
        except ValueError as exc:
            error = f"{type(exc).__name__}: {exc}"
        try:
            self.service.feed_delivery_finished(delivery, delivered=delivered, error=error)
        except Exception:
            # Logged with its traceback; the record's deadline is unchanged, so it is tried again.
            self.log.exception(
                "feed_result_not_recorded",
                retail_point_id=delivery.retail_point_id,
                feed_record=delivery.record_id,
                delivered=delivered,
            )
        finally:
            self._feeds_in_flight.pop(delivery.seq, None)
            self._wake.set()

    # -- the FastAPI app ---------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        cloud = self

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            if cloud.running:
                yield
                return
            async with cloud:
                yield

        # Swagger UI and ReDoc with their assets served from here, not a CDN (D104).
        app = FastAPIOffline(
            title="kkt_emulator cloud stand-in",
            version="1",
            description=(
                "The МодульКасса store API (`/api/fn` and, identically, `/fn`), the till API"
                " (`/api/device/v1`), the cabinet API (`/api/cabinet/v1`) and the web cabinet"
                " (`/cabinet/`)."
            ),
            default_response_class=JsonResponse,
            lifespan=lifespan,
        )
        app.state.service = self.service  # for the account-level APIs' auth (service_auth)
        # Added first, so it runs inside BodyLimit: the 413 applies to the fast path too.
        app.add_middleware(
            StoreFastPath,
            match=fast_paths(
                store_fast_path(self.service), device_fast_path(self.service, self.notifier)
            ),
            log=self.log,
        )
        app.add_middleware(BodyLimit)

        @app.exception_handler(CloudError)
        async def cloud_error(_: Request, exc: CloudError) -> JsonResponse:
            return _error_answer(exc, cloud.log)

        @app.exception_handler(ServiceApiError)
        async def service_api_error(request: Request, exc: ServiceApiError) -> JsonResponse:
            headers = {"WWW-Authenticate": 'Basic realm="api"'} if exc.status == 401 else None
            body = spring_body(exc, request.url.path, cloud.clock.now())  # O3
            return JsonResponse(body, status_code=exc.status, headers=headers)

        @app.exception_handler(ValidationError)
        async def validation_error(_: Request, exc: ValidationError) -> JsonResponse:
            return _error_answer(exc, cloud.log)

        @app.exception_handler(RequestValidationError)
        async def request_validation_error(_: Request, exc: RequestValidationError) -> JsonResponse:
            return _message(400, _validation_message(exc))

        @app.exception_handler(StarletteHTTPException)
        async def http_error(_: Request, exc: StarletteHTTPException) -> JsonResponse:
            return _message(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)

        @app.exception_handler(StorageError)
        async def storage_error(_: Request, exc: StorageError) -> JsonResponse:
            return _error_answer(exc, cloud.log)

        store = store_router(self.service)
        app.include_router(store, prefix="/api/fn")
        app.include_router(store, prefix="/fn", include_in_schema=False)  # D2
        app.include_router(device_router(self.service, self.notifier))
        app.include_router(cabinet_router(self.service))
        app.include_router(receipt_router(self.service))
        app.include_router(metrics_router(self.metrics, self.service))
        services = service_cabinet_router(self.service)
        services.include_router(orders_cabinet_router(self.service))
        app.include_router(services)
        for router in orders_routers(self.service, self.notifier):  # before any /shift/{id} route
            app.include_router(router)
        app.include_router(backoffice_router(self.service))  # after the :external façade (O10)
        app.include_router(backoffice_cabinet_router(self.service))
        app.include_router(catalog_device_router(self.service))
        app.include_router(cabinet_web_router(self.service, self.web_hub))  # /cabinet/ (D98)
        generate = app.openapi

        def openapi() -> dict[str, Any]:
            schema = generate()  # built once, then cached by FastAPI
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            for name, scheme in STORE_SECURITY_SCHEME.items():
                schemes.setdefault(name, scheme)
            return schema

        app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
        return app


def create_app(
    db_path: str | Path, clock: Clock | None = None, settings: CloudSettings | None = None
) -> FastAPI:
    """A FastAPI app for ``db_path``; its lifespan starts and stops the cloud's timers."""
    return Cloud(db_path, clock, settings).app
