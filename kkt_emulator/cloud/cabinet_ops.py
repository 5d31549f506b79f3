"""The cabinet's (ЛК) operations: accounts, retail points, service credentials, documents.

Also «Провести повторно» (T11, D33) and «Отметить как выполненный» (T12, D34), and the views the
cabinet shows of documents, tills and retail points.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud import views
from kkt_emulator.cloud.cashdoc_ops import upload_state
from kkt_emulator.cloud.core import DEFAULT_ACCOUNT, ServiceCore, is_uuid
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.security import generate_password
from kkt_emulator.cloud.storage import Account, MasterCredential, RetailPoint
from kkt_emulator.errors import CloudError, ValidationError
from kkt_emulator.taxes import TaxSystem

if TYPE_CHECKING:
    from kkt_emulator.cloud.schemas import RetailPointCreate, RetailPointUpdate
    from kkt_emulator.cloud.storage import DocumentFilter, DocumentRecord

__all__ = ["CabinetOperations"]

# RetailPointUpdate's wire names → RetailPoint's fields.
_POINT_FIELDS = {
    "accountId": "account_id",
    "name": "name",
    "address": "address",
    "inn": "inn",
    "internetDocsEnabled": "internet_docs_enabled",
    "stopOnErrors": "stop_on_errors",
    "pickupWindow": "pickup_window",
    "defaultTaxMode": "default_tax_mode",
    "duplicatePolicy": "duplicate_policy",
}


class CabinetOperations(ServiceCore):
    """``/api/cabinet/v1``: what the cabinet's user does."""

    def create_account(self, account_id: str | None, name: str) -> Account:
        """Create an ЛК account."""
        account = Account(account_id or str(uuid.uuid4()), name, self.clock.now())
        with self.storage.transaction():
            if self.storage.get_account(account.id) is not None:
                raise CloudError(409, f"Account {account.id} already exists")
            self.storage.insert_account(account)
        return account

    def set_account_login(self, account_id: str, login: str, password: str) -> None:
        """Give an account an ЛК e-mail/password, also valid as master credentials (D5)."""
        self._account(account_id)
        salt, digest = self.hasher.hash(password)
        with self.storage.transaction():
            self.storage.upsert_master_credential(
                MasterCredential(login, account_id, None, "account", salt, digest),
                self.clock.now(),
            )

    def create_point(self, body: RetailPointCreate) -> RetailPoint:
        """Create a retail point; settings not given take the §11 defaults."""
        account_id = body.accountId or DEFAULT_ACCOUNT
        self._account(account_id)
        point_id = body.id or str(uuid.uuid4())
        if not is_uuid(point_id):
            raise ValidationError("id", "must be a UUID")
        point = RetailPoint(
            id=point_id,
            account_id=account_id,
            name=body.name,
            address=body.address,
            inn=body.inn,
            internet_docs_enabled=body.internetDocsEnabled,
            stop_on_errors=body.stopOnErrors,
            pickup_window=body.pickupWindow,
            default_tax_mode=TaxSystem(body.defaultTaxMode),
            duplicate_policy=body.duplicatePolicy,
            deleted=False,
            created_at=self.clock.now(),
        )
        with self.storage.transaction():
            if self.storage.get_point(point.id) is not None:
                raise CloudError(409, f"Retail point {point.id} already exists")
            self.storage.insert_point(point)
        self.log.info("retail_point_created", retail_point_id=point.id)
        return point

    def get_point(self, point_id: str) -> RetailPoint:
        """A retail point (404 if unknown or deleted)."""
        return self._point(point_id)

    def update_point(self, point_id: str, body: RetailPointUpdate) -> RetailPoint:
        """Change settings of a retail point; switching stop-on-errors off lifts every block."""
        fields = body.model_dump(exclude_unset=True)  # the enums stay enums
        if fields.get("defaultTaxMode") is not None:
            fields["defaultTaxMode"] = TaxSystem(fields["defaultTaxMode"])
        now = self.clock.now()
        with self.storage.transaction():
            self.storage.lock_point(point_id)  # a change of another cloud process is not lost
            point = self._point(point_id)
            if body.accountId is not None:
                self._account(body.accountId)
            changes = {
                _POINT_FIELDS[k]: v
                for k, v in fields.items()
                if k in _POINT_FIELDS and v is not None
            }
            updated = dataclasses.replace(point, **changes)
            self.storage.update_point(updated)
            if point.stop_on_errors and not updated.stop_on_errors:
                for record in self.storage.blocking_documents(point.id):  # D48
                    self._apply(record, lc.LiftBlock(), now)
        self.log.info("retail_point_updated", retail_point_id=point_id, changes=sorted(changes))
        self.on_change(point_id)
        return updated

    def delete_point(self, point_id: str) -> None:
        """Delete a retail point (its documents stay; its credentials get 403, D5)."""
        with self.storage.transaction():
            self.storage.lock_point(point_id)
            point = self._point(point_id)
            self.storage.update_point(dataclasses.replace(point, deleted=True))

    def generate_credentials(self, point_id: str) -> dict[str, str]:
        """«Сгенерировать логин и пароль»: new service credentials for the point's account."""
        point = self._point(point_id)
        login = f"svc-{uuid.uuid4().hex[:12]}"
        password = generate_password()
        salt, digest = self.hasher.hash_generated(password)
        with self.storage.transaction():
            self.storage.upsert_master_credential(
                MasterCredential(login, point.account_id, point.id, "service", salt, digest),
                self.clock.now(),
            )
        self.log.info("service_credentials_generated", retail_point_id=point.id)
        return {"login": login, "password": password, "retailPointId": point.id}

    def list_documents(self, flt: DocumentFilter) -> list[DocumentRecord]:
        """Documents for the cabinet."""
        return self.storage.list_documents(flt)

    def find_document(self, point_id: str, doc_id: str) -> DocumentRecord:
        """A document by retail point and id (404 if unknown)."""
        record = self.storage.get_document(point_id, doc_id)
        if record is None:
            raise CloudError(404, f"Document not found: {doc_id}")
        return record

    def redrive(self, point_id: str, doc_id: str) -> DocumentRecord:
        """«Провести повторно» (T11, D33)."""
        with self.storage.transaction():
            point = self._point(point_id)
            record = self._requeue(point, self.find_document(point_id, doc_id), "cabinet")
        self.on_change(point_id)
        return record

    def mark_done(self, point_id: str, doc_id: str) -> DocumentRecord:
        """«Отметить как выполненный» (T12, D34): only FAILED documents."""
        with self.storage.transaction():
            record = self.find_document(point_id, doc_id)
            if record.state.status is not Status.FAILED:
                raise CloudError(
                    400,
                    f"Document {doc_id} is {record.state.status.value},"
                    " only FAILED documents can be marked done",
                )
            record = self._apply(record, lc.MarkDone(), self.clock.now())
        self.on_change(point_id)
        return record

    # -- views -------------------------------------------------------------------------------------

    def document_detail(self, record: DocumentRecord) -> views.JsonObject:
        """The cabinet's document detail: status, history, OFD delivery, error detail, warnings."""
        point = self.storage.get_point(record.retail_point_id)
        assert point is not None
        return views.document_detail(
            record, self.render_status(record, point), self.storage.history(record.seq)
        )

    @staticmethod
    def document_summary(record: DocumentRecord) -> views.JsonObject:
        """One line of the cabinet's document list."""
        return views.document_summary(record)

    def devices(self) -> list[views.JsonObject]:
        """Every till with its last heartbeat (the cabinet's heartbeat view).

        Each also shows its upload queue as its heartbeat reported it and when its last cash
        documents arrived (``lastUploadAt``, ``orders-and-backoffice.md`` B7).
        """
        devices = self.storage.list_devices()
        uploads = self.storage.devices_with_uploads([d.device_id for d in devices])
        return [
            {**views.device_view(d), **upload_state(d, uploads.get(d.device_id))} for d in devices
        ]

    def point_view(self, point: RetailPoint) -> views.JsonObject:
        """A retail point for the cabinet, with its current ``fnState``."""
        state, at = self.fn_state(point)
        return views.point_view(point, state, at)

    def point_views(self) -> list[views.JsonObject]:
        """Every retail point not deleted, oldest first, for the cabinet's list."""
        return [self.point_view(p) for p in self.storage.list_points() if not p.deleted]

    def warning_summaries(self) -> list[views.JsonObject]:
        """Documents with duplicate or double-integration warnings, oldest first."""
        return [views.document_summary(r) for r in self.storage.documents_with_warnings()]

    def accounts(self) -> list[views.JsonObject]:
        """Every account (the cabinet's account list)."""
        return [views.account_view(a) for a in self.storage.list_accounts()]
