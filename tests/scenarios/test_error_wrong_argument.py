"""Support case §5 row 9: «Неправильный аргумент».

The till (profile ``modulkassa-ffd12``) is registered without the agent and excise flags. A
position with agent attributes, or excise goods, reaches the drive, which refuses it (19h + the
tag); the till shows «Неправильный аргумент» (FN_GENERIC_FAILURE). Support's first questions —
which item, and was the till registered as an agent — are answered by the cabinet's error detail:
the offending positions and the missing registration flag.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import FN, drive_receipts, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "FN_GENERIC_FAILURE", "message": FN + "Неправильный аргумент"}


async def test_error_wrong_argument(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        assert not kkt.till.profile.registration.agent
        agent = kkt.sale(10.0)
        agent["inventPositions"].insert(
            0,
            {
                "name": "Билет (агентский)",
                "price": 5.0,
                "quantity": 1,
                "vatTag": 1105,
                "agentInfo": {"types": ["commission_agent"]},
                "supplierInfo": {"name": "ООО Поставщик", "inn": "7707083893"},
            },
        )
        agent["moneyPositions"][0]["sum"] = 15.0
        failed = await fail_with(kkt, agent)
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        detail = await kkt.document_detail(agent["id"])
        assert detail["failureInfo"] == FAILURE
        assert detail["errorDetail"]["detail"] == {
            "resultCode": "19h",
            "tag": 1222,
            "missingRegistrationFlag": "agent",
            "positions": [0],
        }

        excise = kkt.sale(10.0)
        excise["inventPositions"][0]["paymentObject"] = "excise"
        assert (await fail_with(kkt, excise))["failureInfo"] == FAILURE
        assert (await kkt.document_detail(excise["id"]))["errorDetail"]["detail"] == {
            "resultCode": "19h",
            "tag": 1212,
            "missingRegistrationFlag": "excise",
            "positions": [0],
        }
        assert drive_receipts(kkt) == []
