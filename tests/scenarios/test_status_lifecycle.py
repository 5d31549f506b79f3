"""Support case §2: a shop document walks QUEUED → PENDING → PRINTED → WAIT_FOR_CALLBACK → COMPLETED.

While the till is in power saving the document waits in «В очереди» (QUEUED). Once the till takes
it, it is «В обработке» (PENDING) until the drive signs it, then «Фискализирован» (PRINTED). With a
``responseURL`` whose site does not answer 200 it stays in «Доставка ответа на сайт»
(WAIT_FOR_CALLBACK, not critical: the receipt already has its fiscal sign); the next callback attempt
(one minute later, store-api D44) that gets 200 makes it «Выполнен» (COMPLETED).
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import run_case

from kkt_emulator.testing.stack import StackHarness


async def test_status_lifecycle(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        # The case checks QUEUED while the till sleeps, WAIT_FOR_CALLBACK with its fiscal sign
        # while the site answers 503, COMPLETED a minute later, and the cabinet's history.
        await run_case(kkt, "status_lifecycle")
