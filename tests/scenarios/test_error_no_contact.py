"""Support case §5 row 7: no buyer phone or e-mail on an electronic receipt.

An internet-shop receipt is electronic, so tag 1008 is mandatory: an empty or invalid ``email`` with
``printReceipt`` false is refused by the till firmware with «Телефон или эл. адрес покупателя»
(NON_FN_FAILURE). With ``printReceipt`` true the paper receipt needs no contact.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_no_contact(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks the refusals of "" and "not-an-address" (store, cabinet, field email,
        # no receipt) and the paper receipt that needs no contact.
        await run_case(kkt, "error_no_contact")
        assert len(drive_receipts(kkt)) == 1
