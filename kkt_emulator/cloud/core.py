"""What every group of cloud operations shares: the storage, the clock, the lifecycle plumbing.

:class:`ServiceCore` holds the storage, clock, settings and password hasher, applies lifecycle
events to stored documents (writing the history line and logging status changes), computes a
retail point's ``fnState`` (D40) and renders a document's store-API status. The operation groups
(:mod:`~kkt_emulator.cloud.store_ops`, :mod:`~kkt_emulator.cloud.till_ops`,
:mod:`~kkt_emulator.cloud.cabinet_ops`, :mod:`~kkt_emulator.cloud.timers`,
:mod:`~kkt_emulator.cloud.callbacks`, :mod:`~kkt_emulator.cloud.demo`) derive from it, and
:class:`~kkt_emulator.cloud.service.CloudService` combines them.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final, TypeVar

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud import views
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.security import BasicCredentials, PasswordHasher, parse_basic
from kkt_emulator.cloud.settings import CloudSettings, FnState, PickupWindow
from kkt_emulator.cloud.storage import Account, Association, MasterCredential
from kkt_emulator.errors import CloudError
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from kkt_emulator.clock import Clock
    from kkt_emulator.cloud.storage import DocumentRecord, RetailPoint, Storage

__all__ = ["DEFAULT_ACCOUNT", "UNAUTHORIZED", "ServiceCore", "is_uuid"]

_Login = TypeVar("_Login", MasterCredential, Association)

DEFAULT_ACCOUNT: Final = "default"
UNAUTHORIZED: Final = "Unauthorized"


def is_uuid(text: str) -> bool:
    """Whether ``text`` parses as a UUID (retail point ids are UUIDs, D11)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class ServiceCore:
    """Storage, clock and settings, and the lifecycle plumbing every operation uses.

    ``on_change(point_id)`` is called after every write that may make documents eligible for a
    lease or move a timer deadline, with the retail point whose documents changed, or ``None`` when
    anything may have changed; the app uses it to wake that point's long polls and the timer task
    (D66). It is the one place where "something changed at point P" is announced: a bridge between
    cloud processes forwards exactly these calls.
    """

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        settings: CloudSettings | None = None,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.settings = settings or CloudSettings()
        self.hasher = PasswordHasher(self.settings.password_iterations)
        self.on_change: Callable[[str | None], None] = on_change or (lambda _point: None)
        self.on_status: Callable[[DocumentRecord, DocumentRecord, datetime], None] | None = None
        """Called with (before, after, time) when a step changes a document's status (D103)."""
        self.log = get_logger(component="cloud")
        with self.storage.transaction():
            if self.storage.get_account(DEFAULT_ACCOUNT) is None:
                self.storage.insert_account(
                    Account(DEFAULT_ACCOUNT, "Default account", self.clock.now())
                )

    # -- lifecycle plumbing ------------------------------------------------------------------------

    def _apply(
        self,
        record: DocumentRecord,
        event: lc.Event,
        at: datetime,
        detail: dict[str, Any] | None = None,
        *,
        write: bool = True,
        **changes: Any,
    ) -> DocumentRecord:
        """Step the document's lifecycle, append the history line, store the row (D125).

        With ``write=False`` the row is not stored: the caller goes on changing the record in the
        same transaction and stores the last version once (the row's earlier versions are never
        seen outside the transaction, and nothing in between reads the row).
        """
        state = lc.step(record.state, event, at)
        updated = lc.replace(record, state=state, **changes)  # D127
        if write:
            self.storage.update_document(updated, record)
        self.storage.add_history(record.seq, at, state.status, event.kind.value, detail)
        if state.status is not record.state.status:
            if self.on_status is not None:
                self.on_status(record, updated, at)
            self.log.info(
                "document_status_changed",
                doc_id=record.doc_id,
                retail_point_id=record.retail_point_id,
                old=record.state.status.value,
                new=state.status.value,
                cause=event.kind.value,
            )
        return updated

    def _dispatch_if_due(
        self, record: DocumentRecord, at: datetime, *, write: bool = True
    ) -> DocumentRecord:
        state = record.state
        if (
            state.status is Status.PRINTED
            and state.dispatch_at is not None
            and state.dispatch_at <= at
        ):
            return self._apply(record, lc.Dispatch(), at, write=write)
        return record

    def _point(self, point_id: str) -> RetailPoint:
        point = self.storage.get_point(point_id)
        if point is None or point.deleted:
            raise CloudError(404, f"Retail point not found: {point_id}")
        return point

    def _account(self, account_id: str) -> Account:
        account = self.storage.get_account(account_id)
        if account is None:
            raise CloudError(404, f"Account not found: {account_id}")
        return account

    @staticmethod
    def _pickup_window(point: RetailPoint) -> timedelta | None:
        return lc.PICKUP_WINDOW_5MIN if point.pickup_window is PickupWindow.FIVE_MINUTES else None

    def _requeue(self, point: RetailPoint, record: DocumentRecord, origin: str) -> DocumentRecord:
        """Re-queue a FAILED document (D18, D33), from the store API or the cabinet (T11)."""
        if record.state.status is not Status.FAILED:
            raise CloudError(
                400,
                f"Document {record.doc_id} is {record.state.status.value},"
                " only FAILED documents can be re-queued",
            )
        return self._apply(
            record,
            lc.Requeue(self._pickup_window(point)),
            self.clock.now(),
            {"origin": origin},
        )

    # -- authentication ----------------------------------------------------------------------------

    async def judge_credentials(self, header: str | None, *, master: bool = False) -> None:
        """Judge Basic credentials in the hasher's worker thread if they were never judged (D58).

        The store API awaits this before the synchronous operation, so the operation's own check
        finds the verdict remembered and a first or wrong password never stalls the event loop.
        ``master`` selects master credentials (``/v1/associate``) instead of an association.
        """
        creds = parse_basic(header)
        if creds is None:
            return
        stored: MasterCredential | Association | None = (
            self.storage.get_master_credential(creds.login)
            if master
            else self.storage.get_association(creds.login)
        )
        if stored is None:
            await self.hasher.aburn(creds.login, creds.password)
        else:
            await self.hasher.averify(creds.password, stored.salt, stored.hash)

    def _verified(self, creds: BasicCredentials, stored: _Login | None) -> _Login:
        """``stored`` if ``creds.password`` matches it, else 401; an unknown login costs the same."""
        if stored is None:
            self.hasher.burn(creds.login, creds.password)
            raise CloudError(401, UNAUTHORIZED)
        if not self.hasher.verify(creds.password, stored.salt, stored.hash):
            raise CloudError(401, UNAUTHORIZED)
        return stored

    def _check_master(self, creds: BasicCredentials | None) -> MasterCredential:
        """Master credentials (D5): service credentials or an ЛК login; 401 if wrong."""
        if creds is None:
            raise CloudError(401, UNAUTHORIZED)
        return self._verified(creds, self.storage.get_master_credential(creds.login))

    # -- fnState and rendering ---------------------------------------------------------------------

    def fn_state(self, point: RetailPoint) -> tuple[FnState, datetime | None]:
        """The point's status and the time of its last heartbeat (D40)."""
        heartbeat = self.storage.last_heartbeat(point.id)
        if self.settings.demo_mode:
            return FnState.READY, heartbeat[0] if heartbeat else None  # D4
        if not point.internet_docs_enabled:
            return FnState.DISABLED, heartbeat[0] if heartbeat else None
        if heartbeat is None:
            return FnState.ASSOCIATED, None
        at, fn_ok = heartbeat
        return (FnState.READY if fn_ok else FnState.FAILED), at

    def render_status(self, record: DocumentRecord, point: RetailPoint) -> views.JsonObject:
        """The store API's ``DocumentStatus`` (§7.1, D10, D28, D29): all six keys, always."""
        return views.status_view(record, self.fn_state(point)[0], self.settings)
