"""Support case §7: «нет части продаж в МойСклад» — the till's upload queue is jammed.

With ``upload.block`` the counter sales are made and printed but reach neither the cloud's cash
documents nor the МойСклад feed; the till's ``uploadQueue`` (and the cabinet's view of it) shows
the queue support asks about. After ``fault clear`` the queue drains in order and the shift's
МойСклад record comes once, with the sales as sold (``orders-and-backoffice.md`` B7, §5 check 13).
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.cloud.tables_cashdocs import CashDocQuery
from kkt_emulator.testing.stack import StackHarness


async def test_moysklad_missing_sales(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        cloud = kkt.stack.cloud
        assert cloud is not None

        def uploaded() -> list[str]:
            found, _ = cloud.storage.list_cashdocs(CashDocQuery(kkt.retail_point_id))
            return [r.document["id"] for r in found]

        seen: dict[str, list[str]] = {}

        async def jammed(_run: ScenarioRun) -> None:
            seen["jammed"] = uploaded()
            assert kkt.till.upload_queue()["size"] >= 4

        run = await run_case(kkt, "moysklad_missing_sales", jammed=jammed)
        record = run.facts["record"]
        ids = [d["id"] for d in record["payload"]["documents"]]
        # while jammed the cloud had none of the shift's sales; now it has each, once, in order
        assert not set(ids) & set(seen["jammed"])
        after = uploaded()
        assert len(after) == len(set(after))
        assert [i for i in after if i in ids] == ids
        # the sales are the drive's receipts of the case, in the order sold
        assert [d["docNum"] for d in record["payload"]["documents"]] == [
            str(s["checkNumber"]) for s in run.facts["sold"]
        ]
        # the case put the switch back
        switches = await kkt.cabinet("GET", f"/retail-points/{kkt.retail_point_id}/integrations")
        assert [i["enabled"] for i in switches if i["name"] == "moysklad"] == [False]
        assert not kkt.till.faults
