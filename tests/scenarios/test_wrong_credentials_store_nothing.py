"""Support case §3 «Нет чеков в ЛК»: wrong credentials or a changed retail point store nothing.

A wrong password gets 401; a retail-point id that no longer exists (the integration was re-created
and the shop kept the old one) gets 403 or 404 on association. In both cases the cabinet holds no
document, and nothing reaches the till.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kkt_emulator.errors import CloudError
from kkt_emulator.testing.stack import StackHarness


async def test_wrong_credentials_store_nothing(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(10.0)
        with pytest.raises(CloudError) as wrong_password:
            await kkt.post_document(doc, auth=(kkt.login, kkt.password + "x"))
        assert wrong_password.value.status == 401
        with pytest.raises(CloudError) as wrong_login:
            await kkt.post_document(doc, auth=("nobody@example.com", kkt.password))
        assert wrong_login.value.status == 401

        # The shop re-associates, with the service credentials, to a retail point id that is gone.
        stale_point = str(uuid.uuid4())
        service = (kkt.info["service_login"], kkt.info["service_password"])
        answer = await kkt.http.post(f"{kkt.store_url}/v1/associate/{stale_point}", auth=service)
        assert answer.status_code in (403, 404)

        assert await kkt.cabinet("GET", "/documents") == []
        assert kkt.till.counters["fiscalized"] == 0
        # The right credentials work at once: the integration had only those three parameters.
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert [d["id"] for d in await kkt.cabinet("GET", "/documents")] == [doc["id"]]
