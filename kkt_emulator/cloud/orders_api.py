"""Routes of the orders desk: the orders API, its v1 façade, the tills' order calls, the cabinet.

* ``/api/v2/retail-point/{rp}/order[/{id}]`` — the vendor's orders API (O1–O6), Basic auth of
  :mod:`~kkt_emulator.cloud.service_auth` (O2), errors with the Spring-style body (O3);
* ``/api/v1/retail-point/{rp}/shift/:external/cashdoc[/{id}]`` and ``…/next-extdoc-docnum`` — the
  façade for SC-style modules and the cabinet (O10);
* ``/api/device/v1/orders?since=&wait=``, ``…/orders/{id}/claim``, ``…/release`` — the courier's
  till (O7): the long poll waits on the :class:`~kkt_emulator.cloud.device_api.Notifier` of the
  till's retail point, woken by every order write (``ServiceCore.on_change``, D66);
* ``/api/cabinet/v1/retail-points/{rp}/orders[/{id}/unlock]`` — «Документы → Заказы» (O5).

The façade's routes are registered before any ``…/shift/{shiftId}/…`` route of the back office,
so ``:external`` is never read as a shift id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPBearer

from kkt_emulator.cloud.device_api import orders_answer
from kkt_emulator.cloud.orders_ops import order_view
from kkt_emulator.cloud.service_auth import OrdersPrincipal
from kkt_emulator.errors import ServiceApiError

if TYPE_CHECKING:
    from kkt_emulator.cloud.device_api import Notifier
    from kkt_emulator.cloud.service import CloudService

__all__ = ["orders_cabinet_router", "orders_routers"]

_bearer = HTTPBearer(auto_error=False, description="The token returned by /bind")


def _int(value: str | None, name: str) -> int | None:
    """A query integer; a bad one is the O3 400 (FastAPI's own would be a D7 body)."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ServiceApiError(400, f"{name}: not an integer: {value!r}") from exc


def orders_routers(service: CloudService, notifier: Notifier) -> list[APIRouter]:
    """The orders desk's routers, in the order the app includes them."""
    api = APIRouter(tags=["orders API"])

    @api.post("/api/v2/retail-point/{rp}/order", summary="Create an order (O4, O6)")
    async def create(rp: str, request: Request, who: OrdersPrincipal) -> dict[str, Any]:
        return order_view(service.create_order(who, rp, await request.body()))

    @api.put("/api/v2/retail-point/{rp}/order", summary="Replace an order named by the body's id")
    async def update(rp: str, request: Request, who: OrdersPrincipal) -> dict[str, Any]:
        return order_view(service.update_order(who, rp, await request.body()))

    @api.get("/api/v2/retail-point/{rp}/order", summary="Live orders, oldest first")
    async def listing(
        rp: str, who: OrdersPrincipal, start: str | None = None, count: str | None = None
    ) -> dict[str, Any]:
        orders, pos, total = service.list_orders(
            who, rp, _int(start, "start"), _int(count, "count")
        )
        return {"data": [order_view(o) for o in orders], "pos": pos, "total_count": total}

    @api.get("/api/v2/retail-point/{rp}/order/{order_id}", summary="One order")
    async def read(rp: str, order_id: str, who: OrdersPrincipal) -> dict[str, Any]:
        return order_view(service.find_order(who, rp, order_id))

    @api.delete("/api/v2/retail-point/{rp}/order/{order_id}", summary="Delete an order")
    async def delete(rp: str, order_id: str, who: OrdersPrincipal) -> Response:
        service.delete_order(who, rp, order_id)
        return Response(status_code=200)

    external = "/api/v1/retail-point/{rp}/shift/:external/cashdoc"

    @api.post(external, summary="v1 façade: an external cash document becomes an order (O10)")
    async def external_create(rp: str, request: Request, who: OrdersPrincipal) -> dict[str, Any]:
        order = service.create_order(who, rp, await request.body(), source="external")
        return service.external_view(order)

    @api.get(external, summary="v1 façade: the orders as external cash documents")
    async def external_list(
        rp: str, who: OrdersPrincipal, start: str | None = None, count: str | None = None
    ) -> dict[str, Any]:
        return service.external_cashdocs(who, rp, _int(start, "start"), _int(count, "count"))

    @api.get(external + "/{order_id}", summary="v1 façade: one external cash document")
    async def external_read(rp: str, order_id: str, who: OrdersPrincipal) -> dict[str, Any]:
        return service.external_view(service.find_order(who, rp, order_id))

    @api.delete(external + "/{order_id}", summary="v1 façade: delete an external cash document")
    async def external_delete(rp: str, order_id: str, who: OrdersPrincipal) -> Response:
        service.delete_order(who, rp, order_id)
        return Response(status_code=200)

    @api.get("/api/v1/retail-point/{rp}/next-extdoc-docnum", summary="Next external number")
    async def next_docnum(rp: str, who: OrdersPrincipal) -> int:
        return service.next_extdoc_docnum(who, rp)

    device = APIRouter(prefix="/api/device/v1", tags=["till API"], dependencies=[Depends(_bearer)])

    @device.get(
        "/orders",
        summary="Orders of the till's point changed since a revision; long-polls up to wait s",
    )
    async def device_orders(
        request: Request,
        since: Annotated[int, Query(ge=0)] = 0,
        wait: Annotated[float, Query(ge=0.0, le=30.0)] = 0.0,
    ) -> Response:
        return await orders_answer(service, notifier, request, since, wait)  # D131

    @device.post("/orders/{order_id}/claim", summary="Claim an order; the first till wins (O7)")
    async def claim(request: Request, order_id: str) -> dict[str, Any]:
        found, point = service.authenticate_device(request.headers.get("authorization"))
        return service.claim_order(found, point, order_id)

    @device.post("/orders/{order_id}/release", summary="Give a claimed order back (O5)")
    async def release(request: Request, order_id: str) -> dict[str, Any]:
        found, point = service.authenticate_device(request.headers.get("authorization"))
        return service.release_order(found, point, order_id)

    return [api, device]


def orders_cabinet_router(service: CloudService) -> APIRouter:
    """The cabinet's «Документы → Заказы» (added to the cabinet's routes, its token)."""
    router = APIRouter(tags=["cabinet API"])

    @router.get("/retail-points/{point_id}/orders", summary="«Документы → Заказы» (O5)")
    async def orders(point_id: str) -> list[dict[str, Any]]:
        return service.cabinet_orders(point_id)

    @router.post(
        "/retail-points/{point_id}/orders/{order_id}/unlock",
        summary="«Снять блокировку»: an order in payment back to the tills (O5)",
    )
    async def unlock(point_id: str, order_id: str) -> dict[str, Any]:
        return service.unlock_order(point_id, order_id)

    return router
