"""A real till against the real cloud: a lease answer lost with the process, and an OFD
acknowledgement that must wait for its document's result (the holes the chaos harness found)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kkt_emulator.fn.codes import Command
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.faults import FaultName


async def until(kkt: StackHarness, what: str, seconds: float = 20.0) -> None:
    deadline = kkt.clock.monotonic() + seconds
    while kkt.clock.monotonic() < deadline:
        if what == "ofd_empty" and (await kkt.till.fn.call(Command.OFD_STATUS)).unsent == 0:
            return
        if what == "result_recorded" and kkt.till.state.outbox("result"):
            return
        await kkt.clock.pace(0.05)
    raise AssertionError(f"{what} not reached in {seconds} s")


async def test_a_lease_the_till_never_journalled_comes_back_after_a_restart(
    tmp_path: Path,
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        await kkt.till.set_settings(power_saving=True)
        doc = kkt.sale(31.0)
        await kkt.post_document(doc)
        # The cloud commits the lease and answers; the answer dies with the till's process.
        async with httpx.AsyncClient(base_url=kkt.stack.base_url) as http:
            lost = await http.post(
                "/api/device/v1/lease",
                headers={"Authorization": f"Bearer {kkt.till.link.token}"},
                params={"max": 1},
            )
        assert lost.status_code == 200
        assert [d["docId"] for d in lost.json()["documents"]] == [doc["id"]]
        assert (await kkt.status(doc["id"]))["status"] == "PENDING"
        assert not kkt.till.state.journal_entries()

        await kkt.till._restart_after_crash("killed after the lease answer")
        await kkt.till.set_settings(power_saving=False)
        done = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert done["fiscalInfo"]["fnDocNumber"] > 0
        history = [h["event"] for h in (await kkt.document_detail(doc["id"]))["history"]]
        assert "lease_resumed" in history


async def test_an_acknowledgement_waits_for_its_result_and_then_arrives(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault(FaultName.CLOUD_DROP_RESULT.value)
        doc = kkt.sale(32.0)
        await kkt.post_document(doc)
        await until(kkt, "result_recorded")  # signed; its report is lost on the way
        await until(kkt, "ofd_empty")  # the OFD has acknowledged the receipt
        await kkt.till.flush_outbox()
        (result,) = kkt.till.state.outbox("result")
        fd = result.payload["fiscalInfo"]["fnDocNumber"]
        waiting = [e.payload["fnDocNumber"] for e in kkt.till.state.outbox("ofd")]
        assert fd in waiting  # held back: the cloud does not know fiscal number fd yet

        kkt.till.clear_faults(FaultName.CLOUD_DROP_RESULT.value)
        await kkt.till.flush_outbox()
        await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert kkt.till.state.outbox("ofd") == []
        detail = await kkt.document_detail(doc["id"])
        assert detail["ofd"]["state"] == "acknowledged"


async def test_the_outbox_loop_survives_a_failing_pass(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        loops = kkt.till.loops
        real = loops._flush_outbox
        calls = 0

        async def broken() -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in one pass")
            return await real()

        loops._flush_outbox = broken  # type: ignore[method-assign]
        doc = kkt.sale(33.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "COMPLETED")
        deadline = kkt.clock.monotonic() + 20
        while calls < 2 and kkt.clock.monotonic() < deadline:
            await kkt.clock.pace(0.05)
        assert calls >= 2  # the loop went on after the failing pass


async def test_an_acknowledgement_only_the_drive_holds_is_reported_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the drive took the OFD's receipt (26h), before the outbox write."""
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault(FaultName.OFD_DOWN.value)
        doc = kkt.sale(34.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "COMPLETED")
        store = kkt.till.state
        real = store.queue_ofd_ack

        def dies_before_the_write(fd: int, payload: dict[str, object]) -> None:
            if payload.get("state") != "acknowledged":
                real(fd, payload)  # «sent» still goes: only the acknowledgement dies

        monkeypatch.setattr(store, "queue_ofd_ack", dies_before_the_write)
        kkt.till.clear_faults(FaultName.OFD_DOWN.value)
        await until(kkt, "ofd_empty")  # the drive holds every acknowledgement
        await kkt.till.flush_outbox()
        assert (await kkt.document_detail(doc["id"]))["ofd"]["state"] != "acknowledged"

        await kkt.till._restart_after_crash("killed between 26h and the outbox write")
        await kkt.till.flush_outbox()
        assert (await kkt.document_detail(doc["id"]))["ofd"]["state"] == "acknowledged"
        assert kkt.till.state.outbox("ofd") == []
