"""A typed client of the cabinet API ``/api/cabinet/v1`` over httpx (used by ``kkt-emulator cabinet``).

Errors: an HTTP error answer raises :class:`~kkt_emulator.errors.CloudError` with the server's
``message``; a cloud that cannot be reached raises :class:`~kkt_emulator.errors.TransportError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import httpx

from kkt_emulator.errors import CloudError, TransportError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["DEFAULT_SERVER", "CabinetClient"]

DEFAULT_SERVER = "http://127.0.0.1:8080"
_PREFIX = "/api/cabinet/v1"


def _segment(value: str) -> str:
    return quote(value, safe="")


class CabinetClient:
    """Cabinet calls against a running cloud; use as a context manager or call :meth:`close`.

    Args:
        server: the cloud's base URL.
        token: the cabinet token, if the cloud was started with one.
        timeout: seconds per request.
        transport: an httpx transport (tests pass ``httpx.MockTransport`` or a WSGI/ASGI bridge).
    """

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.server + _PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach the cloud at {self.server}: {exc}") from exc
        if response.status_code >= 400:
            try:
                message = str(response.json()["message"])
            except (ValueError, KeyError, TypeError):
                message = response.text.strip() or response.reason_phrase
            raise CloudError(response.status_code, message)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- accounts and retail points ------------------------------------------------------------------

    def create_account(
        self,
        name: str,
        account_id: str | None = None,
        login: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Create an account, optionally with an ЛК login."""
        body = {"name": name, "id": account_id, "login": login, "password": password}
        result: dict[str, Any] = self._call("POST", "/accounts", json=body)
        return result

    def create_point(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create a retail point; ``fields`` are the API's camelCase settings."""
        result: dict[str, Any] = self._call("POST", "/retail-points", json={"name": name, **fields})
        return result

    def list_points(self) -> list[dict[str, Any]]:
        """Every retail point with its flags and ``fnState``."""
        result: list[dict[str, Any]] = self._call("GET", "/retail-points")
        return result

    def get_point(self, point_id: str) -> dict[str, Any]:
        """One retail point."""
        result: dict[str, Any] = self._call("GET", f"/retail-points/{_segment(point_id)}")
        return result

    def update_point(self, point_id: str, **fields: Any) -> dict[str, Any]:
        """Change settings of a retail point."""
        result: dict[str, Any] = self._call(
            "PATCH", f"/retail-points/{_segment(point_id)}", json=fields
        )
        return result

    def delete_point(self, point_id: str) -> None:
        """Delete a retail point."""
        self._call("DELETE", f"/retail-points/{_segment(point_id)}")

    def generate_credentials(self, point_id: str) -> dict[str, str]:
        """«Сгенерировать логин и пароль»."""
        result: dict[str, str] = self._call(
            "POST", f"/retail-points/{_segment(point_id)}/credentials"
        )
        return result

    def generate_service_credentials(self, point_id: str, service: str) -> dict[str, Any]:
        """«Сгенерировать логин и пароль» for an account service (``orders``, ``moysklad`` …)."""
        result: dict[str, Any] = self._call(
            "POST",
            f"/retail-points/{_segment(point_id)}/services/{_segment(service)}/credentials",
        )
        return result

    def services(self, account_id: str) -> list[dict[str, Any]]:
        """An account's services with their switches and logins."""
        result: list[dict[str, Any]] = self._call(
            "GET", f"/accounts/{_segment(account_id)}/services"
        )
        return result

    def switch_service(self, account_id: str, service: str, *, enabled: bool) -> dict[str, Any]:
        """Switch an account service on or off."""
        result: dict[str, Any] = self._call(
            "PATCH",
            f"/accounts/{_segment(account_id)}/services/{_segment(service)}",
            json={"enabled": enabled},
        )
        return result

    # -- documents ---------------------------------------------------------------------------------------

    def list_documents(
        self,
        *,
        statuses: list[str] | None = None,
        retail_point_id: str | None = None,
        doc_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 100,
        history: bool = False,
    ) -> list[dict[str, Any]]:
        """Documents matching the filters, oldest first."""
        params: list[tuple[str, str | int]] = [("status", s) for s in statuses or ()]
        for key, value in (
            ("retailPointId", retail_point_id),
            ("id", doc_id),
            ("since", since),
            ("until", until),
        ):
            if value is not None:
                params.append((key, value))
        params.append(("limit", limit))
        if history:
            params.append(("history", "true"))
        result: list[dict[str, Any]] = self._call("GET", "/documents", params=params)
        return result

    def resolve_point(self, doc_id: str, retail_point_id: str | None) -> str:
        """The retail point of document ``doc_id``: the given one, or the only one that has it.

        Raises:
            CloudError: no document, or several retail points have one with this id (404/409).
        """
        if retail_point_id is not None:
            return retail_point_id
        found = self.list_documents(doc_id=doc_id, limit=2)
        if not found:
            raise CloudError(404, f"Document not found: {doc_id}")
        if len(found) > 1:
            raise CloudError(
                409, f"Several retail points have document {doc_id}: use --retail-point"
            )
        point: str = found[0]["retailPointId"]
        return point

    def _doc_path(self, doc_id: str, retail_point_id: str | None) -> str:
        point = self.resolve_point(doc_id, retail_point_id)
        return f"/retail-points/{_segment(point)}/documents/{_segment(doc_id)}"

    def document(self, doc_id: str, retail_point_id: str | None = None) -> dict[str, Any]:
        """Document detail with history, OFD delivery and error detail."""
        result: dict[str, Any] = self._call("GET", self._doc_path(doc_id, retail_point_id))
        return result

    def redrive(self, doc_id: str, retail_point_id: str | None = None) -> dict[str, Any]:
        """«Провести повторно»."""
        path = self._doc_path(doc_id, retail_point_id) + "/redrive"
        result: dict[str, Any] = self._call("POST", path)
        return result

    def mark_done(self, doc_id: str, retail_point_id: str | None = None) -> dict[str, Any]:
        """«Отметить как выполненный»."""
        path = self._doc_path(doc_id, retail_point_id) + "/mark-done"
        result: dict[str, Any] = self._call("POST", path)
        return result

    # -- tills, warnings, clock --------------------------------------------------------------------------

    def heartbeats(self) -> list[dict[str, Any]]:
        """Tills with their last heartbeat."""
        result: list[dict[str, Any]] = self._call("GET", "/heartbeats")
        return result

    def warnings(self) -> list[dict[str, Any]]:
        """Documents with duplicate or double-integration warnings."""
        result: list[dict[str, Any]] = self._call("GET", "/warnings")
        return result

    def clock(self) -> dict[str, Any]:
        """The cloud clock: now, mode, next deadline."""
        result: dict[str, Any] = self._call("GET", "/clock")
        return result

    def advance(self, duration: str) -> dict[str, Any]:
        """Advance the cloud clock by ``duration`` (``15m``, ``235s``, ``30d``)."""
        result: dict[str, Any] = self._call("POST", "/clock/advance", json={"duration": duration})
        return result
