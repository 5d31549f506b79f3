"""Support case §5 row 9: «Неправильный аргумент».

The till (profile ``modulkassa-ffd12``) is registered without the agent and excise flags. A
position with agent attributes, or excise goods, reaches the drive, which refuses it (19h + the
tag); the till shows «Неправильный аргумент» (FN_GENERIC_FAILURE). Support's first questions —
which item, and was the till registered as an agent — are answered by the cabinet's error detail:
the offending positions and the missing registration flag.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_wrong_argument(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        assert not kkt.till.profile.registration.agent
        # The case checks both refusals (agent, excise) and their error details.
        await run_case(kkt, "error_wrong_argument")
        assert drive_receipts(kkt) == []
