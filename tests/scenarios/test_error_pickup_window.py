"""Support case §5 row 3: Yandex.Kassa in «За 5 минут» mode, and the till did not answer.

The retail point's ``pickupWindow`` is ``5min`` and the till is offline. 235 seconds of business time
after the document entered the queue the cloud fails it: the store API says «POS doesn't connect for
document within 235 seconds» (NON_FN_FAILURE), the shop's ``responseURL`` gets ``status=FAILED``,
and the cabinet's document detail shows what the shop sees on the payment side,
``shopMessage`` «Касса не ответила на запрос в течение 5 минут». At 234 seconds it is still queued;
in «За 3 дня» mode nothing fails. The till, back online, never fiscalises the failed document.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.testing.stack import StackHarness


async def test_error_pickup_window(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks QUEUED at 234 s, the failure at 235 s (store, cabinet, shopMessage), the
        # shop's callback, the patient document of «За 3 дня», and that the failed one stays so.
        run = await run_case(kkt, "error_pickup_window")
        done = run.facts["patient_done"]
        assert drive_receipts(kkt) == [done["fiscalInfo"]["fnDocNumber"]]
        assert (await kkt.status(run.facts["doc"]["id"]))["status"] == "FAILED"
