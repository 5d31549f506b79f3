"""``responseURL`` callbacks (D41–D46): which attempts are due, and what an attempt's outcome does.

The HTTP requests themselves are made by the timer task of :mod:`kkt_emulator.cloud.app`; here are
the pure parts (the URL, the body) and the bookkeeping (T7, T8: retries, giving up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.core import ServiceCore
from kkt_emulator.cloud.lifecycle import CallbackKind, IllegalTransitionError
from kkt_emulator.cloud.settings import CallbackMethod

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

__all__ = ["CallbackOperations", "CallbackRequest", "callback_url"]


@dataclass(frozen=True)
class CallbackRequest:
    """One callback attempt to make (D41, D42)."""

    seq: int
    doc_id: str
    kind: CallbackKind
    method: str
    url: str
    body: bytes | None
    due_at: datetime


def callback_url(response_url: str, kind: CallbackKind, qr: str | None) -> str:
    """``responseURL`` with ``status=…`` (and ``qr=…`` on success) appended (D41)."""
    params = "status=SUCCESS" if kind is CallbackKind.SUCCESS else "status=FAILED"
    if kind is CallbackKind.SUCCESS and qr is not None:
        params += "&qr=" + quote(qr, safe="")
    if "?" not in response_url:
        separator = "?"
    elif response_url.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return response_url + separator + params


class CallbackOperations(ServiceCore):
    """Due callback attempts and the outcome of each."""

    def due_callbacks(self, now: datetime, in_flight: Sequence[int] = ()) -> list[CallbackRequest]:
        """Callback attempts due at ``now`` (D41–D44), not counting those in flight."""
        requests = []
        for record in self.storage.due_callbacks(now, in_flight):
            state = record.state
            if state.callback is None or state.callback_next_at is None:  # pragma: no cover
                self.storage.release_callback(record.seq)
                continue
            qr = record.fiscal_info.get("qr") if record.fiscal_info else None
            url = callback_url(record.response_url or "", state.callback, qr)
            body = None
            if self.settings.callback_method is CallbackMethod.POST:
                point = self.storage.get_point(record.retail_point_id)
                assert point is not None
                body = json.dumps(self.render_status(record, point), ensure_ascii=False).encode()
            requests.append(
                CallbackRequest(
                    seq=record.seq,
                    doc_id=record.doc_id,
                    kind=state.callback,
                    method=self.settings.callback_method.value,
                    url=url,
                    body=body,
                    due_at=state.callback_next_at,
                )
            )
        return requests

    def callback_finished(self, request: CallbackRequest, *, delivered: bool, error: str) -> None:
        """Record one callback attempt's outcome (T7, T8, D45, D46), then give its claim back."""
        try:
            self._record_callback(request, delivered=delivered, error=error)
        finally:
            # After the commit: another process that takes the claim now reads the outcome (D75).
            self.storage.release_callback(request.seq)

    def _record_callback(self, request: CallbackRequest, *, delivered: bool, error: str) -> None:
        now = self.clock.now()
        with self.storage.transaction():
            record = self.storage.get_document_by_seq(request.seq)
            if record is None:  # pragma: no cover - documents are never deleted
                return
            if record.state.callback is not request.kind:
                self.log.info("stale_callback_result", doc_id=record.doc_id)
                return
            detail = {
                "attempt": record.state.callback_attempts + 1,
                "kind": request.kind.value,
                "delivered": delivered,
                "error": error or None,
            }
            try:
                updated = self._apply(
                    record,
                    lc.CallbackResult(delivered=delivered),
                    max(now, request.due_at),
                    detail,
                    callback_last_error=error or None,
                )
            except IllegalTransitionError as exc:
                self.log.info("stale_callback_result", doc_id=record.doc_id, reason=str(exc))
                return
        if updated.state.callback is not None and updated.state.callback_next_at is None:
            self.log.warning("callback_gave_up", doc_id=record.doc_id)
        self.on_change(record.retail_point_id)
