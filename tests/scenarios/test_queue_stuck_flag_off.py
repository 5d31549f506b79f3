"""Support case §4.1: the cabinet flag «Использовать для документов ИМ» is off.

Documents are accepted and stay «В очереди» (QUEUED) with ``fnState`` DISABLED; the till is not
handed them however often it polls. Switching the flag on drains the queue oldest first, each
document fiscalised exactly once.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, until

from kkt_emulator.testing.stack import StackHarness


async def test_queue_stuck_flag_off(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        point = f"/retail-points/{kkt.retail_point_id}"
        view = await kkt.cabinet("PATCH", point, json={"internetDocsEnabled": False})
        assert view["fnState"] == "DISABLED"
        docs = [kkt.sale(10.0 + n) for n in range(3)]
        for doc in docs:
            assert (await kkt.post_document(doc))["status"] == "QUEUED"
        polls = kkt.till.counters["polls"]

        async def polled() -> bool:  # the till keeps polling and gets nothing
            return kkt.till.counters["polls"] >= polls + 3

        await until(kkt, polled)
        statuses = [await kkt.status(d["id"]) for d in docs]
        assert [s["status"] for s in statuses] == ["QUEUED"] * 3
        assert {s["fnState"] for s in statuses} == {"DISABLED"}
        status = await kkt.http.get(f"{kkt.store_url}/v1/status", auth=(kkt.login, kkt.password))
        assert status.json()["status"] == "DISABLED"
        assert drive_receipts(kkt) == []

        await kkt.cabinet("PATCH", point, json={"internetDocsEnabled": True})
        done = [await kkt.wait_for_status(d["id"], "COMPLETED") for d in docs]
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in done]
        assert fds == sorted(fds)
        assert drive_receipts(kkt) == fds
