"""The store API's operations (store-api.md §5): associations, status, documents, re-queue.

Authentication first, always (D5, D23): master credentials for ``/v1/associate``, association
credentials for everything else. The routes await :meth:`StoreOperations.login_association`, which
derives a password never judged in the hasher's worker thread (D58), and hand the association and
its retail point to the synchronous operation.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.core import UNAUTHORIZED, ServiceCore, is_uuid
from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.security import generate_password, parse_basic
from kkt_emulator.cloud.settings import DuplicatePolicy
from kkt_emulator.cloud.storage import Association, DocumentRecord
from kkt_emulator.cloud.validation import parse_document
from kkt_emulator.cloud.views import JsonObject, fn_status_view, format_time
from kkt_emulator.errors import CloudError

if TYPE_CHECKING:
    from datetime import datetime

    from kkt_emulator.cloud.records import StoreRoute
    from kkt_emulator.cloud.storage import RetailPoint

__all__ = ["StoreOperations"]


class StoreOperations(ServiceCore):
    """``/api/fn`` and ``/fn``: what an online store calls."""

    async def login_association(self, header: str | None) -> tuple[Association, RetailPoint]:
        """Check association credentials (D5): 401 if wrong, 403 if the point is gone or moved.

        A password never judged is derived off the event loop, and so is the time an unknown login
        costs (D58); a judged one is checked in constant time.
        """
        creds = parse_basic(header)
        if creds is None:
            raise CloudError(401, UNAUTHORIZED)
        assoc = self.storage.get_association(creds.login)
        if assoc is None:
            await self.hasher.aburn(creds.login, creds.password)
            raise CloudError(401, UNAUTHORIZED)
        if not await self.hasher.averify(creds.password, assoc.salt, assoc.hash):
            raise CloudError(401, UNAUTHORIZED)
        return self._rights(assoc)

    def _rights(self, assoc: Association) -> tuple[Association, RetailPoint]:
        point = self.storage.get_point(assoc.retail_point_id)
        if point is None or point.deleted or point.account_id != assoc.account_id:
            raise CloudError(403, f"No rights for retail point {assoc.retail_point_id}")
        return assoc, point

    # -- store API ---------------------------------------------------------------------------------

    def associate(self, header: str | None, point_id: str, client_id: str | None) -> dict[str, str]:
        """``POST /v1/associate/{retailPointId}`` (§5.1, D5, D6, D11)."""
        cred = self._check_master(parse_basic(header))
        point = self.storage.get_point(point_id) if is_uuid(point_id) else None
        if point is None or point.deleted:
            raise CloudError(404, "Retail point not found")
        if point.account_id != cred.account_id:
            raise CloudError(403, f"No rights for retail point {point_id}")
        password = generate_password()
        salt, digest = self.hasher.hash_generated(password)
        now = self.clock.now()
        key = client_id or ""
        with self.storage.transaction():
            self.storage.lock_point(point.id)  # one cloud process at a time per point (D75)
            existing = self.storage.get_association_for(point.id, key)
            user_name = existing.user_name if existing is not None else str(uuid.uuid4())
            self.storage.upsert_association(
                Association(
                    user_name=user_name,
                    retail_point_id=point.id,
                    client_id=key,
                    account_id=point.account_id,
                    salt=salt,
                    hash=digest,
                    created_at=existing.created_at if existing is not None else now,
                    rotated_at=now,
                )
            )
        self.log.info("association_issued", retail_point_id=point.id, client_id=key)
        return {
            "userName": user_name,
            "password": password,
            "name": point.name,
            "address": point.address,
        }

    def delete_association(self, assoc: Association) -> None:
        """``DELETE /v1/associate`` (§5.2): removes only the calling association."""
        with self.storage.transaction():
            self.storage.delete_association(assoc.user_name)
        self.log.info("association_deleted", retail_point_id=assoc.retail_point_id)

    def service_status(self, assoc: Association, point: RetailPoint) -> JsonObject:
        """``GET /v1/status`` (§5.3, D13, D40)."""
        state, at = self.fn_state(point)
        return fn_status_view(state, at or assoc.created_at)

    def submit(
        self, assoc: Association, point: RetailPoint, body: bytes, route: StoreRoute
    ) -> JsonObject:
        """``POST /v1/doc`` and ``POST /v2/doc`` (§5.4, D14, D15, D23, D32); after the login."""
        parsed = parse_document(body, route=route)
        now = self.clock.now()
        with self.storage.transaction():
            existing = self.storage.get_document(point.id, parsed.doc_id)
            if existing is not None:
                return self._replay(existing, point, parsed.content_key, assoc.client_id, now)
            warnings: list[str] = []
            twin = self.storage.recent_with_doc_num(
                point.id,
                parsed.doc_num,
                parsed.total,
                now - self.settings.duplicate_window,
                assoc.client_id,
            )
            if twin is not None:
                # support-cases.md §6: two integrations fiscalising the same payment.
                warnings.append(
                    f"possible double integration: document {twin.doc_id} from clientId"
                    f" {twin.client_id or '(default)'} has the same docNum and sum"
                )
            state = lc.new_document(
                now,
                has_callback=parsed.response_url is not None,
                pickup_window=self._pickup_window(point),
            )
            record = DocumentRecord(
                seq=0,
                retail_point_id=point.id,
                doc_id=parsed.doc_id,
                client_id=assoc.client_id,
                route=route,
                document=parsed.document,
                content_key=parsed.content_key,
                doc_num=parsed.doc_num,
                total=parsed.total,
                response_url=parsed.response_url,
                created_at=now,
                state=state,
                warnings=tuple(warnings),
                possible_duplicate_of=twin.doc_id if twin is not None else None,
            )
            seq = self.storage.insert_document(record)
            if seq is None:  # another cloud process on the database stored it a moment ago
                stored = self.storage.get_document(point.id, parsed.doc_id)
                assert stored is not None
                return self._replay(stored, point, parsed.content_key, assoc.client_id, now)
            self.storage.add_history(
                seq, now, Status.QUEUED, "accepted", {"route": route, "clientId": assoc.client_id}
            )
            record = lc.replace(record, seq=seq)
        self.log.info("document_accepted", doc_id=parsed.doc_id, retail_point_id=point.id)
        if warnings:
            self.log.warning("double_integration_suspected", doc_id=parsed.doc_id)
        self.on_change(point.id)
        return self.render_status(record, point)

    def _replay(
        self,
        existing: DocumentRecord,
        point: RetailPoint,
        content_key: str,
        client_id: str,
        now: datetime,
    ) -> JsonObject:
        """D32: a re-sent id answers the stored document, whatever the new body says."""
        if existing.content_key != content_key:
            if point.duplicate_policy is DuplicatePolicy.CONFLICT:
                raise CloudError(
                    409, f"Document {existing.doc_id} already exists with different content"
                )
            warning = (
                f"id reused with different content at {format_time(now)}"
                f" (clientId {client_id or '(default)'})"
            )
            self.storage.update_document(
                dataclasses.replace(existing, warnings=(*existing.warnings, warning))
            )
            self.storage.add_history(
                existing.seq, now, existing.state.status, "duplicate_with_different_content"
            )
            self.log.warning("document_id_reused", doc_id=existing.doc_id)
        return self.render_status(existing, point)

    def _own_document(self, point: RetailPoint, doc_id: str) -> DocumentRecord:
        record = self.storage.get_document(point.id, doc_id)
        if record is None:
            raise CloudError(404, f"Document not found: {doc_id}")  # D16
        return record

    def document_status(self, point: RetailPoint, doc_id: str) -> JsonObject:
        """``GET /v1/doc/{id}/status`` (§5.5, D16, D17)."""
        return self.render_status(self._own_document(point, doc_id), point)

    def requeue(self, point: RetailPoint, doc_id: str) -> JsonObject:
        """``PUT /v1/doc/{id}/re-queue`` (§5.6, D18, D33)."""
        with self.storage.transaction():
            record = self._requeue(point, self._own_document(point, doc_id), "store_api")
        self.on_change(point.id)
        return self.render_status(record, point)
