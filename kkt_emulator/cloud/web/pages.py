"""The web cabinet (ЛК) at ``/cabinet/``: server-rendered pages over the cabinet's operations.

Every page reads the JSON views the cabinet API answers (``document_detail``, ``point_view``,
``devices``, ``cabinet_orders`` …) and every button is an HTML form that calls the same operation
the JSON route calls (``redrive``, ``mark_done``, ``update_point``, ``generate_credentials`` …), so
the web cabinet adds no rule of its own (D98). A form answers with a redirect to its page (post,
redirect, get), except «Сгенерировать логин и пароль», whose page shows the new password once and
keeps it nowhere. An operation's refusal (a 4xx ``CloudError``) is shown on the page with the
operation's own message and status.

Pages::

    /cabinet/documents?section=shop|orders|counter&status=…&q=ID&point=…   the document list
    /cabinet/documents/{point}/{doc}                                       a document
    /cabinet/points, /cabinet/points/{point}                               retail points
    /cabinet/tills                                                         tills by their heartbeats
    /cabinet/events                                                        server-sent events (D100)
    /cabinet/static/{name}                                                 the CSS and the script
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Final
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.orders_ops import orders_key
from kkt_emulator.cloud.schemas import RetailPointUpdate
from kkt_emulator.cloud.storage import DocumentFilter
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery
from kkt_emulator.cloud.texts import status_text
from kkt_emulator.cloud.web import present
from kkt_emulator.cloud.web.auth import judge, remember
from kkt_emulator.errors import CloudError, ValidationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from kkt_emulator.cloud.service import CloudService
    from kkt_emulator.cloud.web.hub import ChangeHub

__all__ = ["KEEPALIVE_SECONDS", "STREAM_SECONDS", "cabinet_web_router", "templates"]

BASE: Final = "/cabinet"
PAGE_SIZE: Final = 100
QUEUE_CAP: Final = 1000  # the till page counts a point's queue up to this, then shows «1000+»
KEEPALIVE_SECONDS: Final = 15.0
"""Pacing seconds between keep-alive comments of an idle event stream."""
STREAM_SECONDS: Final = 25.0
"""Pacing seconds one event stream lasts; the browser reconnects at once (D100)."""
COALESCE_SECONDS: Final = 0.2
"""Pacing seconds an event stream waits after an event, gathering the next ones into one."""
ONLINE_SECONDS: Final = 300.0
"""A till is «на связи» while its last heartbeat is at most this old in business time (D101)."""

SECTIONS: Final = {"shop": "Интернет-магазин", "orders": "Заказы", "counter": "Касса"}

_STATIC: Final = {"cabinet.css": "text/css; charset=utf-8", "cabinet.js": "text/javascript"}


def templates() -> jinja2.Environment:
    """The cabinet's Jinja2 environment: package templates, autoescaped, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kkt_emulator.cloud.web", "templates"),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=present.money,
        quantity=present.quantity,
        short_time=present.short_time,
        status_text=status_text,
        url=lambda value: quote(str(value), safe=""),
        as_json=_as_json,
    )
    env.globals.update(
        base=BASE,
        sections=SECTIONS,
        statuses=present.STATUS_CHOICES,
        ofd_texts=present.OFD_TEXTS,
        pickup_texts=present.PICKUP_TEXTS,
        order_state_texts=present.ORDER_STATE_TEXTS,
        cashdoc_type_texts=present.CASHDOC_TYPE_TEXTS,
    )
    return env


def _as_json(value: Any, indent: int | None = None) -> str:
    """JSON for people: Cyrillic as it is (the page escapes the HTML)."""
    return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=True, default=str)


def _static_files() -> dict[str, bytes]:
    folder = resources.files("kkt_emulator.cloud.web") / "static"
    return {name: (folder / name).read_bytes() for name in _STATIC}


async def _form(request: Request) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (the cabinet's forms send nothing else)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if body and kind not in ("application/x-www-form-urlencoded", ""):
        raise ValidationError("body", f"expected an HTML form, got {kind}")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise ValidationError("body", "the form is not UTF-8") from exc


def _doc_url(point_id: str, doc_id: str) -> str:
    return f"{BASE}/documents/{quote(point_id, safe='')}/{quote(doc_id, safe='')}"


def _point_url(point_id: str) -> str:
    return f"{BASE}/points/{quote(point_id, safe='')}"


def _refusal(exc: CloudError | ValidationError) -> tuple[int, str]:
    """The status and the text a page shows for a refused operation: a malformed form is a 400."""
    if isinstance(exc, CloudError):
        return exc.status, exc.message
    return 400, str(exc)


def cabinet_web_router(service: CloudService, hub: ChangeHub) -> APIRouter:
    """Build the web cabinet's routes over ``service``; ``hub`` feeds the live updates."""
    env = templates()
    static = _static_files()
    clock = service.clock
    router = APIRouter(prefix=BASE, include_in_schema=False)

    def render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("error", None)
        context.setdefault("keys", "")
        context.setdefault(
            "refresh_url",
            str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        )
        context.setdefault("poll_seconds", 0)
        html = env.get_template(name).render(
            now=present.short_time(clock.now().isoformat()), **context
        )
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})

    def gate(request: Request) -> Response | None:
        """``None`` when the request may see the cabinet; else the answer to send instead."""
        expected = service.settings.cabinet_token
        verdict = judge(request, expected)
        if not verdict.allowed:
            return render(request, "denied.html", 401, nav="")
        if verdict.from_query and expected is not None and request.method == "GET":
            return remember(request, expected)
        return None

    def refused(request: Request, exc: CloudError | ValidationError, **context: Any) -> Response:
        status, text = _refusal(exc)
        return render(
            request, "error.html", status, nav="", error=text, http_status=status, **context
        )

    # -- pages -------------------------------------------------------------------------------------

    @router.get("")
    @router.get("/")
    async def home(request: Request) -> Response:
        return gate(request) or RedirectResponse(f"{BASE}/documents", status_code=303)

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        if name not in static:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            static[name], media_type=_STATIC[name], headers={"Cache-Control": "no-cache"}
        )

    @router.get("/documents")
    async def documents(
        request: Request,
        *,
        section: Annotated[str, Query()] = "shop",
        status: Annotated[str, Query()] = "",
        q: Annotated[str, Query(max_length=200)] = "",
        point: Annotated[str, Query(max_length=64)] = "",
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        points = service.point_views()
        context: dict[str, Any] = {
            "nav": "documents",
            "section": section,
            "status": status,
            "q": q.strip(),
            "point": point,
            "points": points,
            "offset": offset,
            "page_size": PAGE_SIZE,
        }
        try:
            chosen = _rows(service, context, points)
        except (CloudError, ValidationError) as exc:
            return refused(request, exc)
        keys = [p["id"] for p in chosen] + [orders_key(p["id"]) for p in chosen]
        context["keys"] = "" if not point else " ".join(keys)
        return render(request, "documents.html", **context)

    @router.get("/documents/{point_id}/{doc_id:path}")
    async def document(request: Request, point_id: str, doc_id: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        return _document_page(request, point_id, doc_id)

    def _document_page(
        request: Request, point_id: str, doc_id: str, status: int = 200, error: str | None = None
    ) -> Response:
        try:
            detail = service.document_detail(service.find_document(point_id, doc_id))
        except CloudError as exc:
            return refused(request, exc)
        state = detail["status"]
        return render(
            request,
            "document.html",
            status,
            nav="documents",
            doc=detail,
            title=present.document_title(detail["document"], str(detail["number"])),
            positions=present.position_rows(detail["document"]),
            can_redrive=state == Status.FAILED.value,
            can_mark_done=state == Status.FAILED.value,
            receipt_url=(
                f"{BASE}/receipt/{quote(doc_id, safe='')}.svg" if detail["fiscalised"] else None
            ),
            action_base=_doc_url(point_id, doc_id),
            keys=point_id,
            refresh_url=_doc_url(point_id, doc_id),
            error=error,
        )

    def _document_action(
        request: Request, point_id: str, doc_id: str, action: Callable[[str, str], object]
    ) -> Response:
        """A document button: the operation, then its page again (its refusal shown there)."""
        if (denied := gate(request)) is not None:
            return denied
        try:
            action(point_id, doc_id)
        except CloudError as exc:
            return _document_page(request, point_id, doc_id, exc.status, exc.message)
        return RedirectResponse(_doc_url(point_id, doc_id), status_code=303)

    @router.post("/documents/{point_id}/{doc_id:path}/redrive")
    async def redrive(request: Request, point_id: str, doc_id: str) -> Response:
        # «Провести повторно» (T11, D33)
        return _document_action(request, point_id, doc_id, service.redrive)

    @router.post("/documents/{point_id}/{doc_id:path}/mark-done")
    async def mark_done(request: Request, point_id: str, doc_id: str) -> Response:
        # «Отметить как выполненный» (T12, D34)
        return _document_action(request, point_id, doc_id, service.mark_done)

    @router.post("/points/{point_id}/orders/{order_id}/unlock")
    async def unlock(request: Request, point_id: str, order_id: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        try:
            service.unlock_order(point_id, order_id)  # «Снять блокировку» (O5)
        except CloudError as exc:
            return refused(request, exc)
        target = f"{BASE}/documents?{urlencode({'section': 'orders', 'point': point_id})}"
        return RedirectResponse(target, status_code=303)

    @router.get("/points")
    async def points(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        return render(request, "points.html", nav="points", points=service.point_views())

    def _point_page(
        request: Request,
        point_id: str,
        status: int = 200,
        error: str | None = None,
        **shown: Any,
    ) -> Response:
        try:
            point = service.point_view(service.get_point(point_id))
            services = service.service_views(point["accountId"])
        except CloudError as exc:
            return refused(request, exc)
        return render(
            request,
            "point.html",
            status,
            nav="points",
            point=point,
            services=services,
            keys=point_id,
            refresh_url=_point_url(point_id),
            error=error,
            shown=shown.get("shown"),
        )

    @router.get("/points/{point_id}")
    async def point(request: Request, point_id: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        return _point_page(request, point_id)

    @router.post("/points/{point_id}")
    async def update_point(request: Request, point_id: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        try:
            service.update_point(point_id, _settings(await _form(request)))
        except (CloudError, ValidationError) as exc:
            return _point_page(request, point_id, *_refusal(exc))
        return RedirectResponse(_point_url(point_id), status_code=303)

    @router.post("/points/{point_id}/credentials")
    async def credentials(request: Request, point_id: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        try:
            pair = service.generate_credentials(point_id)  # «Чеки интернет-магазина» (D5)
        except CloudError as exc:
            return _point_page(request, point_id, exc.status, exc.message)
        shown = {"title": "Чеки интернет-магазина", **pair}
        return _point_page(request, point_id, shown=shown)

    @router.post("/points/{point_id}/services/{name}/credentials")
    async def service_credentials(request: Request, point_id: str, name: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        try:
            pair = service.generate_service_credentials(point_id, name)  # O2, O11
        except (CloudError, ValidationError) as exc:
            return _point_page(request, point_id, *_refusal(exc))
        return _point_page(request, point_id, shown=pair)

    @router.post("/points/{point_id}/services/{name}")
    async def switch_service(request: Request, point_id: str, name: str) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        try:
            form = await _form(request)
            account = service.get_point(point_id).account_id
            service.set_service_enabled(account, name, enabled="enabled" in form)
        except (CloudError, ValidationError) as exc:
            return _point_page(request, point_id, *_refusal(exc))
        return RedirectResponse(_point_url(point_id), status_code=303)

    @router.get("/tills")
    async def tills(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        now = clock.now()
        rows = []
        queues: dict[str, dict[str, int]] = {}
        for device in service.devices():
            point_id = device["retailPointId"]
            if point_id not in queues:
                queues[point_id] = _queue_counts(service, point_id)
            heartbeat = device.get("heartbeat") or {}
            last = device.get("lastHeartbeatAt")
            age = None
            if last:
                age = (now - datetime.fromisoformat(last)).total_seconds()
            rows.append(
                {
                    "device": device,
                    "online": age is not None and age <= ONLINE_SECONDS,
                    "heartbeat_age": age,
                    "power_saving": bool(heartbeat.get("powerSaving")),
                    "fn": present.drive_resources(heartbeat, now),
                    "upload": heartbeat.get("uploadQueue") or device.get("uploadQueue"),
                    "faults": heartbeat.get("faults"),
                    "queue": queues[point_id],
                }
            )
        return render(
            request, "tills.html", nav="tills", rows=rows, poll_seconds=5, queue_cap=QUEUE_CAP
        )

    # -- live updates ------------------------------------------------------------------------------

    @router.get("/events")
    async def events(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        return StreamingResponse(
            _stream(hub, clock),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


async def _stream(hub: ChangeHub, clock: Any) -> AsyncIterator[str]:
    """One browser's event stream (D100): ``change`` events with the keys announced.

    Ends after :data:`STREAM_SECONDS` (the browser's ``EventSource`` reconnects after the
    ``retry`` it was given), so a server that stops never waits on a browser for longer.
    """
    deadline = clock.monotonic() + STREAM_SECONDS
    with hub.subscribe() as subscription:
        yield "retry: 500\n: connected\n\n"
        while not hub.closed:
            left = deadline - clock.monotonic()
            if left <= 0:
                return
            waiter = asyncio.ensure_future(subscription.wait())
            pacer = asyncio.ensure_future(clock.pace(min(KEEPALIVE_SECONDS, left)))
            try:
                await asyncio.wait({waiter, pacer}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                pacer.cancel()
            keys = subscription.take()
            if not keys:
                yield ": keep-alive\n\n"
                continue
            yield f"event: change\ndata: {json.dumps({'keys': sorted(keys)})}\n\n"
            await clock.pace(COALESCE_SECONDS)


def _rows(
    service: CloudService, context: dict[str, Any], points: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Fill ``context["rows"]`` for its section; the retail points chosen."""
    section, point = context["section"], context["point"]
    if section not in SECTIONS:
        raise ValidationError("section", f"unknown section {section!r}")
    chosen = [p for p in points if not point or p["id"] == point]
    if point and not chosen:
        raise CloudError(404, f"Retail point not found: {point}")
    if section == "shop":
        context["rows"] = _shop_rows(service, context, chosen)
    elif section == "orders":
        context["rows"] = _order_rows(service, context, chosen)
    else:
        context["rows"] = _counter_rows(service, context, chosen)
    return chosen


def _settings(form: dict[str, list[str]]) -> RetailPointUpdate:
    """The retail point form as the cabinet API's update: the two flags and the pickup window.

    An unchecked checkbox sends nothing, so its absence means «off».
    """
    window = (form.get("pickupWindow") or ["3days"])[0]
    if window not in present.PICKUP_TEXTS:
        raise ValidationError("pickupWindow", f"unsupported value {window!r}")
    return RetailPointUpdate.model_validate(
        {
            "internetDocsEnabled": "internetDocsEnabled" in form,
            "stopOnErrors": "stopOnErrors" in form,
            "pickupWindow": window,
        }
    )


def _shop_rows(
    service: CloudService, context: dict[str, Any], points: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """«Документы → Интернет-магазин»: the store API's documents (the cabinet API's list)."""
    status = context["status"]
    if status and status not in Status.__members__:
        raise ValidationError("status", f"unsupported value {status}")
    point_id = points[0]["id"] if context["point"] else None
    records = service.list_documents(
        DocumentFilter(
            point_id,
            (status,) if status else (),
            context["q"] or None,
            limit=PAGE_SIZE + 1,
            offset=context["offset"],
        )
    )
    context["more"] = len(records) > PAGE_SIZE
    rows = []
    for record in records[:PAGE_SIZE]:
        summary = service.document_summary(record)
        summary["title"] = present.document_title(record.document, str(record.seq))
        summary["url"] = _doc_url(record.retail_point_id, record.doc_id)
        rows.append(summary)
    return rows


def _order_rows(
    service: CloudService, context: dict[str, Any], points: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """«Документы → Заказы»: the live orders of each point (O5)."""
    wanted, q = context["status"], context["q"]
    if wanted and wanted not in present.ORDER_STATE_TEXTS:
        raise ValidationError("status", f"unsupported order state {wanted}")
    rows = []
    for point in points:
        for view in service.cabinet_orders(point["id"]):
            order = view["order"]
            if wanted and view["state"] != wanted:
                continue
            if q and q not in (order.get("id"), order.get("documentNumber")):
                continue
            rows.append({**view, "retailPointId": point["id"], "pointName": point["name"]})
    context["more"] = False
    return rows


def _counter_rows(
    service: CloudService, context: dict[str, Any], points: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The counter's cash documents the tills uploaded (B7), newest first, per point."""
    q = context["q"]
    rows: list[dict[str, Any]] = []
    for point in points:
        records, _ = service.cash_documents(
            CashDocQuery(
                point["id"],
                doc_id=q or None,
                status=context["status"] or None,
                descending=True,
                count=PAGE_SIZE,
            )
        )
        rows.extend(
            {"doc": r.document, "type": r.doc_type, "status": r.status, "pointName": point["name"]}
            for r in records
        )
    context["more"] = False
    return rows


def _queue_counts(service: CloudService, point_id: str) -> dict[str, int]:
    """How many of the point's documents wait (В очереди) and are in a till's hands."""
    counts = {}
    for name, statuses in (
        ("queued", (Status.QUEUED.value, Status.REQUEUED.value)),
        ("pending", (Status.PENDING.value,)),
        ("failed", (Status.FAILED.value,)),
    ):
        found = service.list_documents(DocumentFilter(point_id, statuses, limit=QUEUE_CAP + 1))
        counts[name] = len(found)
    return counts
