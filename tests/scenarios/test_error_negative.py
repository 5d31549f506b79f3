"""Support case §5 row 6: a position with a negative price.

The till firmware refuses it before the drive is involved: «Negative» (NON_FN_FAILURE). The cabinet's
error detail names the position and the field; a negative quantity is refused the same way.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import FN, drive_receipts, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "NON_FN_FAILURE", "message": FN + "Negative"}


async def test_error_negative(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(10.0)
        doc["inventPositions"].append(
            {"name": "Возврат тары", "price": -2.5, "quantity": 1, "vatTag": 1105}
        )
        doc["moneyPositions"][0]["sum"] = 7.5
        failed = await fail_with(kkt, doc)
        assert failed["failureInfo"] == FAILURE
        assert failed["message"] == FAILURE["message"]
        detail = await kkt.document_detail(doc["id"])
        assert detail["failureInfo"] == FAILURE
        assert detail["errorDetail"]["detail"] == {"position": 1, "field": "price", "value": -2.5}

        quantity = kkt.sale(10.0)
        quantity["inventPositions"][0]["quantity"] = 2
        quantity["inventPositions"].append(
            {"name": "Хлеб", "price": 10.0, "quantity": -1, "vatTag": 1105}
        )
        assert (await fail_with(kkt, quantity))["failureInfo"] == FAILURE
        assert (await kkt.document_detail(quantity["id"]))["errorDetail"]["detail"]["field"] == (
            "quantity"
        )
        # The firmware refused both: the drive never saw them.
        assert drive_receipts(kkt) == []
