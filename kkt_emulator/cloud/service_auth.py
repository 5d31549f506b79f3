"""Account-level services, their generated credentials and Basic auth for the account APIs.

The cabinet's «Настройки → Сервисы» lists services an account switches on; for each one
«Сгенерировать логин и пароль» makes a login/password pair (``orders-and-backoffice.md`` §2.2).
The orders API (O2) and the back-office API (B2) take HTTP Basic with either the account's cabinet
e-mail/password or the pair of an enabled service they accept::

    service       title                         accepted by
    orders        Заказы (выдача/доставка)      orders API, back-office API
    moysklad      МойСклад                      back-office API
    onec          Обмен с 1С                    back-office API
    sklad         Складской учет                back-office API
    moedelo       Моё дело                      back-office API
    elba          Контур.Эльба                  back-office API

A pair is per account and service (O11): generating one switches the service on and replaces the
previous pair at once, so the old login stops working with the same transaction. Verdicts:
missing or wrong credentials → 401; a right pair that the API does not accept (another service, a
disabled service, the store API's «Чеки интернет-магазина» pair, an fn association) → 403; then,
for a route with a retail point, an unknown or malformed id → 404 and another account's point →
403 (O2). Every refusal is a :class:`~kkt_emulator.errors.ServiceApiError`, which the app renders
as the Spring-style body of O3 (:func:`spring_body`).

Use in a router (the back office does the same with :data:`BackofficePrincipal`)::

    @router.get("/api/v2/retail-point/{rp}/order")
    async def orders(rp: str, who: OrdersPrincipal) -> ...:
        point = service.authorized_point(who, rp)
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from kkt_emulator.cloud.core import UNAUTHORIZED, ServiceCore, is_uuid
from kkt_emulator.cloud.security import generate_password, parse_basic
from kkt_emulator.cloud.service_auth_tables import ServiceCredential
from kkt_emulator.cloud.views import format_time
from kkt_emulator.errors import CloudError, ServiceApiError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from kkt_emulator.cloud.storage import RetailPoint

__all__ = [
    "BACKOFFICE_FORBIDDEN",
    "BACKOFFICE_SERVICES",
    "ORDERS_FORBIDDEN",
    "ORDERS_POINT_NOT_FOUND",
    "ORDER_SERVICES",
    "POINT_NOT_FOUND",
    "SERVICES",
    "UNAUTHORIZED_RU",
    "BackofficePrincipal",
    "OrdersPrincipal",
    "Principal",
    "ServiceCredentialOperations",
    "ServiceSwitch",
    "account_auth",
    "backoffice_principal",
    "orders_principal",
    "service_cabinet_router",
    "spring_body",
]

SERVICES: Final[dict[str, str]] = {
    "orders": "Заказы (выдача/доставка)",
    "moysklad": "МойСклад",
    "onec": "Обмен с 1С",
    "sklad": "Складской учет",
    "moedelo": "Моё дело",
    "elba": "Контур.Эльба",
}
"""The account services with generated credentials, by name, with the cabinet's titles."""

ORDER_SERVICES: Final = frozenset({"orders"})  # O2
BACKOFFICE_SERVICES: Final = frozenset(SERVICES)  # B2: any back-office service, Заказы included

UNAUTHORIZED_RU: Final = "Запрос не авторизован"  # O3
ORDERS_FORBIDDEN: Final = "У пользователя недостаточно прав для работы с заказами"  # O3
BACKOFFICE_FORBIDDEN: Final = "У пользователя недостаточно прав"  # B2 (O12)
POINT_NOT_FOUND: Final = "Точка продаж не найдена"  # O3
ORDERS_POINT_NOT_FOUND: Final = "Точка продаж или заказ не найдены"  # O3

_LOWER: Final = string.ascii_lowercase
_HTTP_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
}


@dataclass(frozen=True)
class Principal:
    """Who an account-level request is from: the account, and the service pair used.

    ``service`` is ``None`` for the account's cabinet e-mail/password.
    """

    account_id: str
    login: str
    service: str | None


def _new_login() -> str:
    """A login shaped like the cabinet's (``ecakcwa@yqeowztjdc``, O11)."""
    local = "".join(secrets.choice(_LOWER) for _ in range(7))
    domain = "".join(secrets.choice(_LOWER) for _ in range(10))
    return f"{local}@{domain}"


def _check_service(name: str) -> None:
    if name not in SERVICES:
        raise ValidationError("service", f"unknown service {name!r}; one of {', '.join(SERVICES)}")


class ServiceCredentialOperations(ServiceCore):
    """The cabinet's services with their pairs, and the Basic auth of the account-level APIs."""

    # -- the cabinet -------------------------------------------------------------------------------

    def generate_service_credentials(self, point_id: str, service: str) -> dict[str, Any]:
        """«Сгенерировать логин и пароль» for ``service`` of the point's account (shown once).

        Switches the service on; the account's previous pair of that service stops working (O2).
        """
        _check_service(service)
        point = self._point(point_id)
        login = _new_login()
        password = generate_password()
        salt, digest = self.hasher.hash(password)
        with self.storage.transaction():
            while self.storage.get_service_credential(login) is not None:  # 26^17: never, but
                login = _new_login()
            self.storage.put_service_credential(
                ServiceCredential(
                    point.account_id,
                    service,
                    enabled=True,
                    login=login,
                    salt=salt,
                    hash=digest,
                    changed_at=self.clock.now(),
                )
            )
        self.log.info(
            "service_credentials_generated",
            retail_point_id=point.id,
            account_id=point.account_id,
            service=service,
        )
        return {
            "service": service,
            "title": SERVICES[service],
            "login": login,
            "password": password,
            "accountId": point.account_id,
            "retailPointId": point.id,
        }

    def set_service_enabled(
        self, account_id: str, service: str, *, enabled: bool
    ) -> dict[str, Any]:
        """Switch an account service on or off; its pair (if any) is kept and works while on."""
        _check_service(service)
        with self.storage.transaction():
            self._account(account_id)
            old = self.storage.service_credential_of(account_id, service)
            now = self.clock.now()
            cred = (
                ServiceCredential(account_id, service, enabled, None, None, None, changed_at=now)
                if old is None
                else dataclasses.replace(old, enabled=enabled, changed_at=now)
            )
            self.storage.put_service_credential(cred)
        self.log.info("service_switched", account_id=account_id, service=service, enabled=enabled)
        return _service_view(service, cred)

    def service_enabled(self, account_id: str, service: str) -> bool:
        """Whether ``service`` is on for the account."""
        cred = self.storage.service_credential_of(account_id, service)
        return cred is not None and cred.enabled

    def service_views(self, account_id: str) -> list[dict[str, Any]]:
        """Every service of the account with its switch and login (never the password)."""
        self._account(account_id)
        rows = {c.service: c for c in self.storage.service_credentials_of(account_id)}
        return [_service_view(name, rows.get(name)) for name in SERVICES]

    # -- Basic auth --------------------------------------------------------------------------------

    async def authenticate_account(
        self, header: str | None, accepted: frozenset[str], forbidden: str
    ) -> Principal:
        """Judge ``Authorization: Basic`` for an account-level API (O2, B2).

        Raises:
            ServiceApiError: 401 for missing or wrong credentials, 403 (with ``forbidden``) for
                a right pair this API does not accept.
        """
        creds = parse_basic(header)
        if creds is None:
            raise ServiceApiError(401, UNAUTHORIZED_RU)
        login, password = creds.login, creds.password
        pair = self.storage.get_service_credential(login)
        if pair is not None and pair.salt is not None and pair.hash is not None:
            if not await self.hasher.averify(password, pair.salt, pair.hash):
                raise ServiceApiError(401, UNAUTHORIZED_RU)
            if pair.service not in accepted or not pair.enabled:
                raise ServiceApiError(403, forbidden)
            return Principal(pair.account_id, login, pair.service)
        master = self.storage.get_master_credential(login)
        if master is not None:
            if not await self.hasher.averify(password, master.salt, master.hash):
                raise ServiceApiError(401, UNAUTHORIZED_RU)
            if master.kind != "account":  # the store API's pair («Чеки интернет-магазина»)
                raise ServiceApiError(403, forbidden)
            return Principal(master.account_id, login, None)
        assoc = self.storage.get_association(login)
        if assoc is not None:
            if not await self.hasher.averify(password, assoc.salt, assoc.hash):
                raise ServiceApiError(401, UNAUTHORIZED_RU)
            raise ServiceApiError(403, forbidden)  # an fn association is no account login
        await self.hasher.aburn(login, password)  # an unknown login costs what a known one does
        raise ServiceApiError(401, UNAUTHORIZED_RU)

    def authorized_point(
        self,
        principal: Principal,
        point_id: str,
        not_found: str = POINT_NOT_FOUND,
        forbidden: str = ORDERS_FORBIDDEN,
    ) -> RetailPoint:
        """The retail point ``point_id`` if the principal's account owns it (O2).

        Raises:
            ServiceApiError: 404 (``not_found``) for a malformed, unknown or deleted id, 403
                (``forbidden``) for a point of another account.
        """
        if not is_uuid(point_id):
            raise ServiceApiError(404, not_found)
        try:
            point = self._point(point_id)
        except CloudError as exc:
            raise ServiceApiError(404, not_found) from exc
        if point.account_id != principal.account_id:
            raise ServiceApiError(403, forbidden)
        return point


def _service_view(name: str, cred: ServiceCredential | None) -> dict[str, Any]:
    return {
        "service": name,
        "title": SERVICES[name],
        "enabled": cred is not None and cred.enabled,
        "login": None if cred is None else cred.login,
        "changedAt": None if cred is None else format_time(cred.changed_at),
    }


def account_auth(
    service: ServiceCredentialOperations, accepted: frozenset[str], forbidden: str
) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency over ``service``: the request's :class:`Principal`, or O2's refusal.

    For routers whose module has ``from __future__ import annotations`` (every module here), use
    :data:`OrdersPrincipal` / :data:`BackofficePrincipal` instead: FastAPI resolves a string
    annotation in the module's globals, where a local ``Depends(auth)`` cannot be found.
    """

    async def dependency(request: Request) -> Principal:
        return await service.authenticate_account(
            request.headers.get("authorization"), accepted, forbidden
        )

    return dependency


def _app_service(request: Request) -> ServiceCredentialOperations:
    """The cloud's service, which :class:`~kkt_emulator.cloud.app.Cloud` puts in the app state."""
    service: ServiceCredentialOperations = request.app.state.service
    return service


async def orders_principal(request: Request) -> Principal:
    """Dependency of the orders API: cabinet login or the ``orders`` pair (O2)."""
    return await _app_service(request).authenticate_account(
        request.headers.get("authorization"), ORDER_SERVICES, ORDERS_FORBIDDEN
    )


async def backoffice_principal(request: Request) -> Principal:
    """Dependency of the back-office API: cabinet login or any enabled service's pair (B2)."""
    return await _app_service(request).authenticate_account(
        request.headers.get("authorization"), BACKOFFICE_SERVICES, BACKOFFICE_FORBIDDEN
    )


OrdersPrincipal = Annotated[Principal, Depends(orders_principal)]
"""``who: OrdersPrincipal`` in an orders route: the caller, authenticated (O2)."""

BackofficePrincipal = Annotated[Principal, Depends(backoffice_principal)]
"""``who: BackofficePrincipal`` in a back-office route: the caller, authenticated (B2)."""


def spring_body(exc: ServiceApiError, path: str, now: datetime) -> dict[str, Any]:
    """The O3 error body: ``timestamp, status, error, message, path`` (+ ``errors`` on 400).

    ``path`` is the request path; the vendor reports it without the ``/api`` prefix (§2.1).
    """
    shown = path[4:] if path.startswith("/api/") else path
    body: dict[str, Any] = {
        "timestamp": format_time(now),
        "status": exc.status,
        "error": _HTTP_REASONS.get(exc.status, "Error"),
        "message": exc.message,
        "path": shown,
    }
    if exc.errors:
        body["errors"] = list(exc.errors)
    return body


class ServiceSwitch(BaseModel):
    """The body of ``PATCH …/services/{service}``: the service's switch."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


def service_cabinet_router(service: ServiceCredentialOperations) -> APIRouter:
    """The cabinet's routes for account services (under ``/api/cabinet/v1``, its token)."""

    def check_token(request: Request) -> None:  # as cabinet_api's: the cabinet token, if set
        expected = service.settings.cabinet_token
        if expected is None:
            return
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), expected.encode()
        ):
            raise CloudError(401, UNAUTHORIZED)

    router = APIRouter(
        prefix="/api/cabinet/v1", tags=["cabinet API"], dependencies=[Depends(check_token)]
    )

    @router.post(
        "/retail-points/{point_id}/services/{name}/credentials",
        summary="«Сгенерировать логин и пароль» for an account service (shown once)",
    )
    async def generate(point_id: str, name: str) -> dict[str, Any]:
        return service.generate_service_credentials(point_id, name)

    @router.get("/accounts/{account_id}/services", summary="An account's services and switches")
    async def services(account_id: str) -> list[dict[str, Any]]:
        return service.service_views(account_id)

    @router.patch("/accounts/{account_id}/services/{name}", summary="Switch a service on or off")
    async def switch(account_id: str, name: str, body: ServiceSwitch) -> dict[str, Any]:
        return service.set_service_enabled(account_id, name, enabled=body.enabled)

    return router
