"""Support case §6: 1C-Bitrix МодульФискализации and a Yandex.Kassa integration both active.

Every payment comes twice, from two integrations (two ``clientId`` associations), with the same
``docNum`` and sum. Both are accepted and fiscalised (the cloud cannot know which one is wrong), but
the cabinet warns: the second document carries a warning and ``possibleDuplicateOf`` naming the
first, and it is listed under the cabinet's warnings. The same sale from one integration, or another
sale, raises nothing.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.testing.stack import StackHarness


async def test_double_integration_warns(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case associates bitrix and yandex-kassa, posts the same docNum and sum from both and
        # another sale, and checks each one's possibleDuplicateOf, clientId and warnings.
        run = await run_case(kkt, "double_integration_warns")
        warned = await kkt.cabinet("GET", "/warnings")
        assert [w["id"] for w in warned] == [run.facts["kassa"]["id"]]
