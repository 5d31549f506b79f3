"""Support case §5 row 7: no buyer phone or e-mail on an electronic receipt.

An internet-shop receipt is electronic, so tag 1008 is mandatory: an empty or invalid ``email`` with
``printReceipt`` false is refused by the till firmware with «Телефон или эл. адрес покупателя»
(NON_FN_FAILURE). With ``printReceipt`` true the paper receipt needs no contact.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import FN, drive_receipts, fail_with

from kkt_emulator.testing.stack import StackHarness

FAILURE = {"type": "NON_FN_FAILURE", "message": FN + "Телефон или эл. адрес покупателя"}


async def test_error_no_contact(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        for email in ("", "not-an-address"):
            doc = kkt.sale(10.0, email=email)
            failed = await fail_with(kkt, doc)
            assert failed["failureInfo"] == FAILURE
            assert failed["message"] == FAILURE["message"]
            detail = await kkt.document_detail(doc["id"])
            assert detail["failureInfo"] == FAILURE
            assert detail["errorDetail"]["detail"]["field"] == "email"
        assert drive_receipts(kkt) == []

        paper = kkt.sale(10.0, email="", printReceipt=True)
        await kkt.post_document(paper)
        done = await kkt.wait_for_status(paper["id"], "COMPLETED")
        assert drive_receipts(kkt) == [done["fiscalInfo"]["fnDocNumber"]]
