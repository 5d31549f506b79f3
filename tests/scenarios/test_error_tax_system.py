"""Support case §5 row 5: the receipt's tax system was not registered in the till.

The till (profile ``modulkassa-ffd12``) is registered with ОСН and УСН доход only; a document with
``taxMode`` PATENT reaches the drive, which refuses it (19h + tag 1055), and the profile turns that
into «СНО товара не была указана при регистрации ККТ» (FN_GENERIC_FAILURE). The cabinet's error
detail names the tax system asked for and the registered mask. Re-driving cannot help (the same
document fails the same way); the way out is to mark it done.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_tax_system(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks the failure (store, cabinet), the error detail, the re-drive that fails
        # the same way, and «mark done».
        run = await run_case(kkt, "error_tax_system")
        assert run.facts["error_detail"] == {
            "resultCode": "19h",
            "tag": 1055,
            "taxSystem": 0x20,
            "registeredTaxSystems": kkt.till.profile.registration.tax_mask,
        }
        assert drive_receipts(kkt) == []
