"""The drive link breaks after 16h reached the drive: the signed receipt is never reported as failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kkt_emulator.errors import TransportError
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness


def lose_answer_after_commit(
    kkt: StackHarness, monkeypatch: pytest.MonkeyPatch, *, status_fails: int
) -> None:
    """The drive signs the receipt, but its answer never reaches the till; the next
    ``status_fails`` status requests fail too (the link is still down when the till looks)."""
    client = kkt.till.fn
    real_receipt, real_status = client.receipt, client.status
    state = {"armed": True, "status_fails": status_fails}

    async def receipt(*args: Any, **kwargs: Any) -> Any:
        answer = await real_receipt(*args, **kwargs)
        if state["armed"]:
            state["armed"] = False
            raise TransportError("the drive did not answer within 5 s")
        return answer

    async def status() -> Any:
        if not state["armed"] and state["status_fails"] > 0:
            state["status_fails"] -= 1
            raise TransportError("the drive did not answer within 5 s")
        return await real_status()

    monkeypatch.setattr(client, "receipt", receipt)
    monkeypatch.setattr(client, "status", status)


def receipts(kkt: StackHarness) -> list[int]:
    drive = kkt.till.drive
    assert drive is not None
    return [
        fd
        for fd in range(1, drive.state.last_fd + 1)
        if (doc := drive.store.get_document(fd)) is not None and doc.doc_code == DocCode.RECEIPT
    ]


@pytest.mark.parametrize("status_fails", [0, 3], ids=["drive-answers-again", "drive-still-silent"])
async def test_lost_answer_after_the_drive_signed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status_fails: int
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        lose_answer_after_commit(kkt, monkeypatch, status_fails=status_fails)
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"])
        assert status["status"] == "COMPLETED"
        assert receipts(kkt) == [status["fiscalInfo"]["fnDocNumber"]]
        assert kkt.till.state.journal_entries() == []
