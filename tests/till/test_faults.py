"""Every fault of the catalogue, injected into a running installation, seen through the store API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.codes import DocCode, WarningFlag
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.faults import make_fault

FN = "Сообщение ФН об ошибке: "


async def fail_text(kkt: StackHarness) -> dict[str, Any]:
    doc = kkt.sale(10.0)
    await kkt.post_document(doc)
    status = await kkt.wait_for_status(doc["id"], "FAILED")
    failure: dict[str, Any] = status["failureInfo"]
    return failure


async def completes(kkt: StackHarness, total: float = 10.0) -> dict[str, Any]:
    doc = kkt.sale(total)
    await kkt.post_document(doc)
    return await kkt.wait_for_status(doc["id"], "COMPLETED")


async def until(kkt: StackHarness, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = kkt.clock.monotonic() + seconds
    while not predicate():
        assert kkt.clock.monotonic() < deadline, "condition not reached in time"
        await kkt.clock.pace(0.05)


def receipts(kkt: StackHarness) -> list[int]:
    assert kkt.till.drive is not None
    store = kkt.till.drive.store
    return [
        fd
        for fd in range(1, kkt.till.drive.state.last_fd + 1)
        if (doc := store.get_document(fd)) is not None and doc.doc_code == DocCode.RECEIPT
    ]


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        (
            "fn.storage_exhausted",
            {"type": "FN_MEMORY_OVERFLOW", "message": FN + "Исчерпан ресурс хранения ФН"},
        ),
        ("fn.expired", {"type": "FN_EXPIRED", "message": FN + "Исчерпан ресурс КС"}),
        ("fn.failure", {"type": "FN_GENERIC_FAILURE", "message": FN + "Отказ ФН"}),
    ],
)
async def test_drive_faults_fail_the_next_document(
    tmp_path: Path, fault: str, failure: dict[str, str]
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault(fault, count=1)
        assert await fail_text(kkt) == failure
        assert kkt.till.list_faults() == []  # count 1: cleared after its strike
        await completes(kkt)


async def test_fn_disconnected_is_the_nask_case(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, drive_timeout=0.3) as kkt:
        kkt.till.inject_fault("fn.disconnected")
        assert await fail_text(kkt) == {
            "type": "FN_GENERIC_FAILURE",
            "message": FN + "Сетевой поток не инициализирован",
        }
        kkt.till.clear_faults("fn.disconnected")
        await completes(kkt)


async def test_fn_slow_and_cloud_latency_only_delay(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("fn.slow", params={"delay_ms": 20})
        kkt.till.inject_fault("cloud.latency", params={"delay_ms": 20})
        await completes(kkt)
        names = {f["name"]: f["applied"] for f in kkt.till.list_faults()}
        assert names["fn.slow"] > 0
        assert names["cloud.latency"] > 0


async def test_fn_memory_warning_sets_the_flag(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("fn.memory_warning")
        await completes(kkt)
        state = await kkt.till.snapshot_state()
        assert state["drive"]["warnings"] & WarningFlag.MEMORY_OVERFLOW
        assert "MEMORY_OVERFLOW" in state["drive"]["warningNames"]
        kkt.till.clear_faults()
        state = await kkt.till.snapshot_state()
        assert not state["drive"]["warnings"] & WarningFlag.MEMORY_OVERFLOW


async def test_link_corrupt_is_recovered_with_enq_and_nothing_is_lost(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("link.corrupt", probability=0.3, seed=11)
        statuses = [await completes(kkt, 10.0 + n) for n in range(5)]
        assert kkt.till.fn.enq_sent > 0
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in statuses]
        assert receipts(kkt) == fds


@pytest.mark.parametrize("fault", ["till.offline", "till.power_saving"])
async def test_queue_stuck_until_cleared_then_drains_oldest_first(
    tmp_path: Path, fault: str
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault(fault)
        docs = [kkt.sale(10.0 + n) for n in range(3)]
        for doc in docs:
            await kkt.post_document(doc)
        await kkt.clock.pace(0.5)
        assert [(await kkt.status(d["id"]))["status"] for d in docs] == ["QUEUED"] * 3
        kkt.till.clear_faults(fault)
        statuses = [await kkt.wait_for_status(d["id"], "COMPLETED") for d in docs]
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in statuses]
        assert fds == sorted(fds)


@pytest.mark.parametrize("point", ["before_commit", "after_commit", "after_outbox"])
async def test_till_crash_in_process_reconciles(tmp_path: Path, point: str) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("till.crash", count=1, params={"point": point})
        statuses = [await completes(kkt, 10.0 + n) for n in range(2)]
        fds = [s["fiscalInfo"]["fnDocNumber"] for s in statuses]
        assert receipts(kkt) == fds
        assert kkt.till.list_faults() == []


async def test_cloud_drop_result_fails_after_15_minutes_then_the_late_result_wins(
    tmp_path: Path,
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("cloud.drop_result")
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "PENDING")
        await until(kkt, lambda: kkt.till.list_faults()[0]["applied"] > 0)
        await kkt.advance("15m")
        failed = await kkt.wait_for_status(doc["id"], "FAILED")
        assert (
            failed["failureInfo"]["message"]
            == "Касса не подтвердила фискализацию документа в течение 15 минут"
        )
        kkt.till.clear_faults("cloud.drop_result")
        late = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert late["fiscalInfo"]["fnDocNumber"] == receipts(kkt)[0]


async def test_ofd_down_then_thirty_days_make_the_drive_refuse(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("ofd.down")
        await completes(kkt)
        deadline = kkt.till.deadlines()["ofd.block"]
        assert deadline is not None
        await kkt.advance(deadline - kkt.clock.now() + timedelta(minutes=1))
        assert await fail_text(kkt) == {
            "type": "FN_MEMORY_OVERFLOW",
            "message": FN + "Исчерпан ресурс хранения ФН",
        }
        kkt.till.clear_faults("ofd.down")
        await until(kkt, lambda: kkt.till.deadlines()["ofd.block"] is None)
        await completes(kkt)


async def test_ofd_reject_and_slow_act_at_the_ofd(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        assert kkt.stack.ofd is not None
        kkt.till.inject_fault("ofd.reject", params={"code": 14})
        kkt.till.inject_fault("ofd.slow", params={"delay_ms": 10})
        status = await completes(kkt)
        fd = status["fiscalInfo"]["fnDocNumber"]
        ofd = kkt.stack.ofd

        def answered() -> list[int]:
            return [r.ofd_code for r in ofd.received(kkt.till.fn_serial) if r.fd_number == fd]

        await until(kkt, lambda: bool(answered()))
        assert answered() == [14]
        # The drive takes a rejection as delivery: the document leaves its OFD queue.
        await until(kkt, lambda: kkt.till.deadlines()["ofd.block"] is None)
        kkt.till.clear_faults()
        await until(kkt, lambda: not ofd.active_faults())


async def test_probability_and_seed_give_the_same_failures_every_run(tmp_path: Path) -> None:
    outcomes = []
    for run in range(2):
        async with StackHarness.running(tmp_path / str(run)) as kkt:
            kkt.till.inject_fault("fn.storage_exhausted", probability=0.5, seed=7)
            result = []
            for n in range(8):
                doc = kkt.sale(10.0 + n)
                await kkt.post_document(doc)
                result.append((await kkt.wait_for_status(doc["id"]))["status"])
            outcomes.append(result)
    assert outcomes[0] == outcomes[1]
    assert "FAILED" in outcomes[0]
    assert "COMPLETED" in outcomes[0]


def test_fault_validation() -> None:
    with pytest.raises(ConfigError, match="unknown fault"):
        make_fault("fn.nope")
    with pytest.raises(ConfigError, match="probability"):
        make_fault("fn.failure", probability=2)
    with pytest.raises(ConfigError, match="point"):
        make_fault("till.crash", params={"point": "nowhere"})
    with pytest.raises(ConfigError, match="no parameter"):
        make_fault("fn.failure", params={"delay_ms": 1})
    first = make_fault("link.corrupt", probability=0.5, seed=3)
    second = make_fault("link.corrupt", probability=0.5, seed=3)
    assert [first.roll() for _ in range(20)] == [second.roll() for _ in range(20)]
