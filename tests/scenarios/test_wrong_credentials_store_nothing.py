"""Support case §3 «Нет чеков в ЛК»: wrong credentials or a changed retail point store nothing.

A wrong password gets 401; a retail-point id that no longer exists (the integration was re-created
and the shop kept the old one) gets 403 or 404 on association. In both cases the cabinet holds no
document, and nothing reaches the till.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.app.scenarios import ScenarioRun
from kkt_emulator.testing.stack import StackHarness


async def test_wrong_credentials_store_nothing(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:

        async def refused(_run: ScenarioRun) -> None:
            assert await kkt.cabinet("GET", "/documents") == []
            assert kkt.till.counters["fiscalized"] == 0

        # The case checks 401 for a wrong password and a wrong login, 403/404 for a stale retail
        # point, nothing stored, then that the right credentials work at once.
        run = await run_case(kkt, "wrong_credentials_store_nothing", refused=refused)
        documents = await kkt.cabinet("GET", "/documents")
        assert [d["id"] for d in documents] == [run.facts["doc"]["id"]]
