"""The operations of the cloud stand-in, shared by the store, till and cabinet APIs.

Every method is synchronous and runs its storage work in one transaction; the HTTP layer is a thin
pump around it, and the timer task of :mod:`kkt_emulator.cloud.app` calls :meth:`CloudService.sweep`
and the callback methods. Errors are raised as :class:`~kkt_emulator.errors.CloudError` (an HTTP
status and a message for ``{"message": …}``) or :class:`~kkt_emulator.errors.ValidationError`
(always 400).

:class:`CloudService` is the union of the operation groups, one module each::

    core.ServiceCore            storage, clock, settings; lifecycle plumbing, fnState, status
    ├── store_ops               store API (store-api.md §5)
    ├── timers → till_ops       lifecycle deadlines; till API (till-protocol.md §1)
    ├── cabinet_ops             cabinet (ЛК) API
    ├── callbacks               responseURL callbacks (D41–D46)
    ├── cashdoc_ops             cash documents tills upload, cashier shifts (B7, B9–B12)
    ├── demo                    the virtual till of demo mode (D4)
    ├── service_auth            account services, their pairs, Basic auth of /api/v1, /api/v2 (O2)
    ├── orders_ops              the orders desk: orders API, v1 façade, tills, callbacks (O1–O10)
    └── backoffice_ops          catalogues, integrations, feeds (orders-and-backoffice.md §3.3)

and :mod:`~kkt_emulator.cloud.views` renders the JSON.
"""

from __future__ import annotations

from kkt_emulator.cloud.backoffice_ops import BackofficeOperations
from kkt_emulator.cloud.cabinet_ops import CabinetOperations
from kkt_emulator.cloud.callbacks import CallbackOperations, CallbackRequest, callback_url
from kkt_emulator.cloud.cashdoc_ops import CashDocOperations
from kkt_emulator.cloud.core import DEFAULT_ACCOUNT
from kkt_emulator.cloud.demo import DemoOperations
from kkt_emulator.cloud.orders_ops import OrderOperations
from kkt_emulator.cloud.service_auth import ServiceCredentialOperations
from kkt_emulator.cloud.store_ops import StoreOperations
from kkt_emulator.cloud.till_ops import TillOperations
from kkt_emulator.cloud.views import format_time

__all__ = ["DEFAULT_ACCOUNT", "CallbackRequest", "CloudService", "callback_url", "format_time"]


class CloudService(
    OrderOperations,
    StoreOperations,
    TillOperations,
    CabinetOperations,
    CallbackOperations,
    DemoOperations,
    BackofficeOperations,
    CashDocOperations,
    ServiceCredentialOperations,
):
    """Store, till and cabinet operations over one :class:`~kkt_emulator.cloud.storage.Storage`.

    ``on_change(point_id)`` is called after every write that may make documents eligible for a
    lease or move a timer deadline, with the retail point concerned (``None``: anything may have
    changed); the app uses it to wake that point's long polls and the timer task (D66).
    """
