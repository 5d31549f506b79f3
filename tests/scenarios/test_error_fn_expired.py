"""Support case §5 row 2: the fiscal drive's validity ended.

With the business clock one minute past the drive's expiry (``fn.expires``) every document fails
with «Исчерпан ресурс КС» (FN_EXPIRED); the till's state shows the expiry date it passed. The fault
``fn.expired`` gives the same text without moving the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from scenario_helpers import FN, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "FN_EXPIRED", "message": FN + "Исчерпан ресурс КС"}


async def test_error_fn_expired(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("fn.expired", count=1)
        assert (await fail_with(kkt, kkt.sale(10.0)))["failureInfo"] == FAILURE

        first = kkt.sale(10.0)
        await kkt.post_document(first)
        await kkt.wait_for_status(first["id"], "COMPLETED")
        expires = kkt.till.deadlines()["fn.expires"]
        assert expires is not None
        await kkt.advance(expires - kkt.clock.now() + timedelta(minutes=1))

        doc = kkt.sale(12.0)
        failed = await fail_with(kkt, doc)
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        detail = await kkt.document_detail(doc["id"])
        assert detail["failureInfo"] == FAILURE
        state = await kkt.till.snapshot_state()
        assert datetime.fromisoformat(state["drive"]["expiry"]) <= kkt.till.local_now()
