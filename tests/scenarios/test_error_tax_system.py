"""Support case §5 row 5: the receipt's tax system was not registered in the till.

The till (profile ``modulkassa-ffd12``) is registered with ОСН and УСН доход only; a document with
``taxMode`` PATENT reaches the drive, which refuses it (19h + tag 1055), and the profile turns that
into «СНО товара не была указана при регистрации ККТ» (FN_GENERIC_FAILURE). The cabinet's error
detail names the tax system asked for and the registered mask. Re-driving cannot help (the same
document fails the same way); the way out is to mark it done.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import FN, drive_receipts, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {
    "type": "FN_GENERIC_FAILURE",
    "message": FN + "СНО товара не была указана при регистрации ККТ",
}


async def test_error_tax_system(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(10.0, tax_mode="PATENT")
        failed = await fail_with(kkt, doc)
        assert failed["failureInfo"] == FAILURE
        detail = await kkt.document_detail(doc["id"])
        assert detail["failureInfo"] == FAILURE
        assert detail["errorDetail"]["detail"] == {
            "resultCode": "19h",
            "tag": 1055,
            "taxSystem": 0x20,
            "registeredTaxSystems": kkt.till.profile.registration.tax_mask,
        }
        assert drive_receipts(kkt) == []

        path = f"/retail-points/{kkt.retail_point_id}/documents/{doc['id']}"
        await kkt.cabinet("POST", path + "/redrive")
        again = await kkt.wait_for_status(doc["id"], "FAILED")
        assert again["failureInfo"] == FAILURE
        done = await kkt.cabinet("POST", path + "/mark-done")
        assert done["status"] == "COMPLETED"
        assert done["markedDone"] is True
        assert drive_receipts(kkt) == []
