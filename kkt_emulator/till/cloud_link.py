"""``CloudLink``: the only module that speaks the till-facing HTTP API (``till-protocol.md`` §1).

Every call is idempotent on the server, so after a timeout the till simply repeats it. Timeouts and
back-off are pacing (real time); nothing here touches business time. Foreign errors become
:class:`~kkt_emulator.errors.CloudError` (an HTTP answer) or
:class:`~kkt_emulator.errors.TransportError` (no answer), once, here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from kkt_emulator.errors import CloudError, TransportError

__all__ = ["CloudLink"]

API = "/api/device/v1"


class CloudLink:
    """A till's connection to the cloud.

    Args:
        server: the cloud's base URL (``http://127.0.0.1:8080``).
        timeout: seconds for one request (long polls add their wait).
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self, server: str, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None
        self.before_call: Callable[[], Awaitable[None]] | None = None
        self._client = httpx.AsyncClient(base_url=self.server, timeout=timeout, transport=transport)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def _call(
        self,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
        extra_timeout: float = 0.0,
    ) -> httpx.Response:
        if self.before_call is not None:
            await self.before_call()
        headers = {}
        if auth is None:
            if self.token is None:
                raise CloudError(401, "the till is not bound to a retail point")
            headers["Authorization"] = f"Bearer {self.token}"
        basic = httpx.BasicAuth(*auth) if auth is not None else None
        try:
            response = await self._client.post(
                API + path,
                json=json,
                params=params,
                auth=basic if basic is not None else httpx.USE_CLIENT_DEFAULT,
                headers=headers,
                timeout=self.timeout + extra_timeout,
            )
        except httpx.HTTPError as exc:
            raise TransportError(
                f"cloud {self.server} unreachable: {exc.__class__.__name__}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = response.text[:200]
            raise CloudError(response.status_code, message)
        return response

    async def bind(
        self,
        login: str,
        password: str,
        *,
        till_serial: str,
        fn_serial: str,
        model: str,
        profile: str,
        retail_point_id: str | None,
    ) -> dict[str, str]:
        """Bind to a retail point with its service credentials; keeps the bearer token."""
        body = {
            "tillSerial": till_serial,
            "fnSerial": fn_serial,
            "model": model,
            "firmwareProfile": profile,
            "retailPointId": retail_point_id,
        }
        answer: dict[str, str] = (
            await self._call("/bind", json=body, auth=(login, password))
        ).json()
        self.token = answer["token"]
        return answer

    async def heartbeat(self, state: dict[str, Any]) -> dict[str, Any]:
        """Report the till's state; returns server time and the retail point's settings."""
        answer: dict[str, Any] = (await self._call("/heartbeat", json=state)).json()
        return answer

    async def lease(self, max_docs: int = 1, wait: float = 0.0) -> list[dict[str, Any]]:
        """Take up to ``max_docs`` documents; long-polls up to ``wait`` seconds (204 → none)."""
        response = await self._call(
            "/lease", params={"max": max_docs, "wait": wait}, extra_timeout=wait
        )
        if response.status_code == 204 or not response.content:
            return []
        documents: list[dict[str, Any]] = response.json().get("documents", [])
        return documents

    async def results(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Report outcomes; the server answers one entry per item."""
        answer: list[dict[str, Any]] = (
            await self._call("/results", json={"results": items})
        ).json()["results"]
        return answer

    async def ofd_acks(self, acks: list[dict[str, Any]]) -> dict[str, Any]:
        """Report OFD deliveries by fiscal document number."""
        answer: dict[str, Any] = (await self._call("/ofd-acks", json={"acks": acks})).json()
        return answer
