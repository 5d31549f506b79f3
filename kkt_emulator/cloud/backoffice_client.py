"""Cabinet calls of the back office over httpx: integrations, webhook bodies, feeds (B17, B19).

A :class:`~kkt_emulator.cloud.cabinet_client.CabinetClient` with the back office's routes, for
``kkt-emulator cabinet integrations …`` and ``kkt-emulator cabinet feeds …``. Errors as the
cabinet client's: :class:`~kkt_emulator.errors.CloudError` with the server's message,
:class:`~kkt_emulator.errors.TransportError` when the cloud cannot be reached.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kkt_emulator.cloud.cabinet_client import CabinetClient

__all__ = ["BackofficeClient"]


def _segment(value: str) -> str:
    return quote(value, safe="")


class BackofficeClient(CabinetClient):
    """The cabinet's back-office routes of one cloud."""

    def _point(self, point_id: str) -> str:
        return f"/retail-points/{_segment(point_id)}"

    def integrations(self, point_id: str) -> list[dict[str, Any]]:
        """The four integration services of the point's account."""
        result: list[dict[str, Any]] = self._call("GET", f"{self._point(point_id)}/integrations")
        return result

    def set_integration(
        self, point_id: str, name: str, *, enabled: bool | None, **url: str | None
    ) -> dict[str, Any]:
        """Switch an integration and (with ``webhookUrl=``, ``None`` to remove) set its URL."""
        body: dict[str, Any] = {"enabled": enabled} if enabled is not None else {}
        body.update(url)
        result: dict[str, Any] = self._call(
            "PUT", f"{self._point(point_id)}/integrations/{_segment(name)}", json=body
        )
        return result

    def integration_events(self, point_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Webhook bodies recorded for the point's account, newest first."""
        result: list[dict[str, Any]] = self._call(
            "GET", f"{self._point(point_id)}/integration-events", params={"limit": limit}
        )
        return result

    def feeds(
        self, point_id: str, integration: str | None = None, start: int = 0, count: int = 100
    ) -> dict[str, Any]:
        """The point's feed records, ``{data, pos, total_count}``."""
        params: dict[str, Any] = {"start": start, "count": count}
        if integration is not None:
            params["integration"] = integration
        result: dict[str, Any] = self._call("GET", f"{self._point(point_id)}/feeds", params=params)
        return result

    def feed(self, point_id: str, record_id: str) -> dict[str, Any]:
        """One feed record with its delivery state."""
        result: dict[str, Any] = self._call(
            "GET", f"{self._point(point_id)}/feeds/{_segment(record_id)}"
        )
        return result

    def resend_feed(self, point_id: str, record_id: str) -> dict[str, Any]:
        """Deliver a record again."""
        result: dict[str, Any] = self._call(
            "POST", f"{self._point(point_id)}/feeds/{_segment(record_id)}/resend"
        )
        return result

    def onec_export(self, point_id: str, period_from: str, period_to: str) -> dict[str, Any]:
        """«Выгрузить за период»: a 1С record for ``[from, to)``."""
        result: dict[str, Any] = self._call(
            "POST",
            f"{self._point(point_id)}/feeds/onec/export",
            json={"from": period_from, "to": period_to},
        )
        return result
