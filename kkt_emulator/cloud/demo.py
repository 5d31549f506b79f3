"""Demo mode (D4): a virtual till inside the cloud fiscalises every document after a latency.

With ``demo_mode`` on, ``fnState`` is always READY and the timer task calls
:meth:`DemoOperations.demo_pump`, which leases and fiscalises each due document in one transaction
with fiscal data shaped as D50 says (a fixed test drive number, the document's queue position as
its fiscal document number).
"""

from __future__ import annotations

import uuid
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.core import ServiceCore
from kkt_emulator.cloud.views import format_time

if TYPE_CHECKING:
    from datetime import datetime

    from kkt_emulator.cloud.storage import DocumentRecord

__all__ = ["DemoOperations"]

_WAITING = frozenset({lc.Status.QUEUED, lc.Status.REQUEUED})


class DemoOperations(ServiceCore):
    """The virtual till of demo mode."""

    def demo_pump(self, now: datetime) -> int:
        """D4: the virtual till of demo mode fiscalises every document that is due.

        Returns how many documents it fiscalised.
        """
        if not self.settings.demo_mode:
            return 0
        done = 0
        for queued in self.storage.queued_before(now - self.settings.demo_latency):
            at = max(now, queued.created_at + self.settings.demo_latency)
            with self.storage.transaction():
                # Locked first: another cloud process on the database may be at it (D75).
                record = self.storage.claim_document(queued.seq)
                if record is None or record.state.status not in _WAITING:
                    continue
                lease_id = f"demo-{uuid.uuid4().hex}"
                leased = self._apply(
                    record, lc.Lease(lease_id), at, {"deviceId": "demo"}, lease_device_id="demo"
                )
                info = self._demo_fiscal_info(leased, at)
                printed = self._apply(
                    leased,
                    lc.Success(lease_id, self.settings.callback_dispatch_delay),
                    at,
                    {"deviceId": "demo", "leaseId": lease_id, "late": False},
                    fiscal_info=info,
                    fn_number=info["fnNumber"],
                    fn_doc_number=info["fnDocNumber"],
                )
                self._dispatch_if_due(printed, at)
            done += 1
        if done:
            self.on_change(None)  # the virtual till serves every point
        return done

    def _demo_fiscal_info(self, record: DocumentRecord, at: datetime) -> dict[str, Any]:
        """Fiscal data of the virtual till, shaped as D50 says."""
        number = record.seq
        total = Decimal(record.total)
        doc_type = str(record.document.get("docType", "SALE"))
        check_type = {"BUY": "PURCHASE", "BUY_RETURN": "RETURN_PURCHASE"}.get(doc_type, doc_type)
        sign = {"SALE": 1, "RETURN": 2, "BUY": 3, "BUY_RETURN": 4}.get(doc_type, 1)
        fn_number = "9999078900000000"
        mark = int(uuid.uuid5(uuid.NAMESPACE_OID, f"{record.retail_point_id}/{record.doc_id}")) % (
            2**32
        )
        qr = (
            f"t={at.astimezone(UTC):%Y%m%dT%H%M%S}&s={total:.2f}&fn={fn_number}"
            f"&i={number:010d}&fp={mark}&n={sign}"
        )
        return {
            "shiftNumber": 1,
            "checkNumber": number,
            "kktNumber": "0000000000000000",
            "fnNumber": fn_number,
            "fnDocNumber": number,
            "fnDocMark": mark,
            "date": format_time(at),
            "sum": float(total),
            "checkType": check_type,
            "qr": qr,
            "ecrRegistrationNumber": "0000000000000000",
        }
