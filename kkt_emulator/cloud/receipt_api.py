"""The receipt as printed, for the cabinet: ``GET /cabinet/receipt/{doc_id}.svg``, ``.png``, ``.json``.

A fiscalised document's slip (:mod:`kkt_emulator.slip`) from what the cloud stores: the shop's
document, the till's ``fiscalInfo``, and the registration the till printed under, which is its
firmware profile's (user name, INN, place of settlement, OFD; D102). The routes are guarded by the
cabinet token exactly as ``/api/cabinet/v1`` is (D57); an unknown document, or one with no fiscal
data yet, is 404 with ``{"message": …}``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from kkt_emulator.cloud.cabinet_api import cabinet_token_check
from kkt_emulator.cloud.schemas import MessageSchema
from kkt_emulator.cloud.storage import DocumentFilter
from kkt_emulator.errors import CloudError, ConfigError, ValidationError
from kkt_emulator.profiles import FirmwareProfile, list_profiles, load_profile
from kkt_emulator.slip import (
    Receipt,
    Registration,
    Seller,
    receipt_from_store,
    render_png,
    render_svg,
)

if TYPE_CHECKING:
    from kkt_emulator.cloud.records import DocumentRecord
    from kkt_emulator.cloud.service import CloudService

__all__ = ["receipt_for", "receipt_router", "registration_for"]

_bearer = HTTPBearer(auto_error=False, description="Only when the cloud has a cabinet token")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": MessageSchema},
    404: {"model": MessageSchema},
    409: {"model": MessageSchema},
}

_PointQuery = Annotated[
    str | None, Query(alias="retailPointId", description="when several points have the id")
]


@lru_cache(maxsize=32)
def _profile(name: str) -> FirmwareProfile | None:
    """A till's firmware profile by the plain name it bound with, or ``None`` if unknown here."""
    if not name or name not in list_profiles():  # never a path a till names
        return None
    try:
        return load_profile(name)
    except ConfigError:
        return None


def registration_for(service: CloudService, record: DocumentRecord) -> Registration:
    """What the till that fiscalised ``record`` is registered with (D102).

    The registration of the till's firmware profile, as its drive printed it; where the cloud
    does not know that profile (a till of another profile directory, the demo till), the retail
    point's name, INN and address.
    """
    point = service.storage.get_point(record.retail_point_id)
    device = service.storage.get_device(record.lease_device_id) if record.lease_device_id else None
    profile = _profile(device.firmware_profile) if device is not None else None
    if profile is None:
        seller = Seller(
            point.name if point else "", point.inn if point else "", point.address if point else ""
        )
        return Registration(seller)
    reg = profile.registration
    place = reg.addresses[0]
    return Registration(
        seller=Seller(reg.user_name, reg.inn, place.address, place.place),
        ofd_name=reg.ofd_name,
        ofd_inn=reg.ofd_inn,
        fns_site=reg.fns_site,
        sender_email=reg.sender_email or None,
        cashier=reg.cashier,
    )


def receipt_for(service: CloudService, doc_id: str, point_id: str | None) -> Receipt:
    """The printed receipt of a fiscalised document.

    Raises:
        CloudError: 404 for an unknown document or one with no fiscal data yet; 409 when
            several retail points have a document with this id and ``point_id`` is not given.
    """
    found = service.list_documents(DocumentFilter(point_id, (), doc_id, None, None, 2, 0))
    if not found:
        raise CloudError(404, f"Document not found: {doc_id}")
    if len(found) > 1:
        raise CloudError(409, f"Several retail points have document {doc_id}: pass retailPointId")
    record = found[0]
    if not record.fiscal_info:
        raise CloudError(
            404, f"Document {doc_id} is {record.state.status.value} and has no receipt yet"
        )
    point = service.storage.get_point(record.retail_point_id)
    try:
        return receipt_from_store(
            record.document,
            record.fiscal_info,
            registration_for(service, record),
            point.default_tax_mode.value if point else None,
        )
    except ValidationError as exc:
        service.log.warning("receipt_not_rendered", doc_id=doc_id, error=str(exc))
        raise CloudError(404, f"Document {doc_id} has no printable receipt: {exc}") from exc


def receipt_router(service: CloudService) -> APIRouter:
    """The slip routes over ``service``, guarded like the cabinet API."""
    router = APIRouter(
        prefix="/cabinet/receipt",
        tags=["cabinet API"],
        dependencies=[Depends(_bearer), Depends(cabinet_token_check(service))],
        responses=_ERRORS,
    )

    @router.get(
        "/{doc_id:path}.svg",
        summary="The receipt as printed, SVG (with its QR code)",
        response_class=Response,
        responses={200: {"content": {"image/svg+xml": {}}}},
    )
    async def receipt_svg(doc_id: str, retail_point_id: _PointQuery = None) -> Response:
        receipt = receipt_for(service, doc_id, retail_point_id)
        return Response(render_svg(receipt), media_type="image/svg+xml; charset=utf-8")

    @router.get(
        "/{doc_id:path}.png",
        summary="The receipt as printed, PNG",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def receipt_png(doc_id: str, retail_point_id: _PointQuery = None) -> Response:
        receipt = receipt_for(service, doc_id, retail_point_id)
        image = await run_in_threadpool(render_png, receipt)  # ~50 ms: off the event loop
        return Response(image, media_type="image/png")

    @router.get("/{doc_id:path}.json", summary="The receipt's requisites, as the slip prints them")
    async def receipt_json(doc_id: str, retail_point_id: _PointQuery = None) -> dict[str, Any]:
        return receipt_for(service, doc_id, retail_point_id).to_json()

    return router
