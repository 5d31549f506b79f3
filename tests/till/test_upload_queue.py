"""The till's upload queue (orders-and-backoffice.md B7, B9–B14) against the real cloud.

A real till in a real installation makes counter documents; they reach the cloud's cash-document
storage in order, once each, with a cashier shift whose totals equal the till's ``shift.closed``
event and the hand-computed values. ``upload.block`` and ``upload.reject`` hold the queue's head;
nothing is dropped, nothing doubled, and the queue survives a restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kkt_emulator.cloud.tables_cashdocs import CashDocQuery
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.till import Till

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from kkt_emulator.cloud.service import CloudService

Events = list[tuple[str, dict[str, Any]]]


async def until(
    kkt: StackHarness, what: str, predicate: Callable[[], bool], seconds: float = 10.0
) -> None:
    deadline = kkt.clock.monotonic() + seconds
    while not predicate():
        assert kkt.clock.monotonic() < deadline, f"not reached in time: {what}"
        await kkt.clock.pace(0.02)


def service(kkt: StackHarness) -> CloudService:
    cloud = kkt.stack.cloud
    assert cloud is not None
    return cloud.service


def cloud_ids(kkt: StackHarness, **query: Any) -> list[str]:
    query.setdefault("doc_types", None)
    records, _ = service(kkt).cash_documents(CashDocQuery(kkt.retail_point_id, count=None, **query))
    return [r.doc_id for r in records]


def all_cloud_docs(kkt: StackHarness) -> list[dict[str, Any]]:
    """Every document the cloud holds for the point, in the order it stored them."""
    records, _ = service(kkt).cash_documents(
        CashDocQuery(
            kkt.retail_point_id,
            doc_types=(
                "SHIFT_OPEN",
                "SALE",
                "RETURN",
                "SALE_CORRECTION",
                "SALE_RETURN_CORRECTION",
                "CASH_IN",
                "CASH_OUT",
                "SHIFT_CLOSE",
            ),
            count=None,
        )
    )
    return [r.document for r in sorted(records, key=lambda r: r.seq)]


def queue(kkt: StackHarness) -> dict[str, Any]:
    return kkt.till.cashdocs.queue_state()


async def scripted_shift(till: Till) -> list[str]:
    """Counter documents of one shift (cash, card, mixed with change, return, correction, money)."""
    shifts = till.shifts
    ids = []
    mixed_vat = await shifts.counter_receipt(
        [
            {"name": "Хлеб", "price": 50, "quantity": 2, "vatTag": 1102},
            {"name": "Молоко", "price": 80, "quantity": 1, "vatTag": 1103},
        ],
        [{"paymentType": "CASH", "sum": 200}],
    )
    ids.append(mixed_vat.doc_id)
    assert mixed_vat.fiscal_info is not None
    await shifts.sell(30000, card=30000)
    await shifts.sell(50000, card=20000, cash=40000)
    await shifts.sell(5000, card=5000, doc_type="RETURN")
    await shifts.correction(7000)
    await shifts.cash_move(100000)
    await shifts.cash_move(30000, out=True)
    return ids


EXPECTED = {
    "sales": 980.0,
    "salesByCash": 480.0,
    "salesByCard": 500.0,
    "salesByOther": 0.0,
    "returns": 50.0,
    "returnsByCash": 0.0,
    "returnsByCard": 50.0,
    "returnsByOther": 0.0,
    "cashIns": 1000.0,
    "cashOuts": 300.0,
    "corrIns": 70.0,
    "corrOuts": 0.0,
    "salesCount": 3,
    "returnsCount": 1,
    "corrCount": 1,
    "vatTotals": [
        {"vatTag": 1102, "sales": 100.0, "returns": 0.0, "vatSales": 16.67, "vatReturns": 0.0},
        {"vatTag": 1103, "sales": 80.0, "returns": 0.0, "vatSales": 7.27, "vatReturns": 0.0},
        {"vatTag": 1105, "sales": 800.0, "returns": 50.0, "vatSales": 0.0, "vatReturns": 0.0},
    ],
}


async def test_a_counter_shift_reaches_the_cloud_with_its_totals(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        events: Events = []
        kkt.till.listeners.append(lambda event, data: events.append((event, data)))
        # A shop document in the same shift: fiscalised by the same till, never a cash document.
        shop = kkt.sale(99.0)
        await kkt.post_document(shop)
        assert (await kkt.wait_for_status(shop["id"]))["status"] == "COMPLETED"

        await scripted_shift(kkt.till)
        await kkt.till.close_shift()
        await until(kkt, "the queue drained", lambda: queue(kkt)["size"] == 0)

        docs = all_cloud_docs(kkt)
        kinds = [d["docType"] for d in docs]
        assert kinds == [
            "SHIFT_OPEN",
            "SALE",
            "SALE",
            "SALE",
            "RETURN",
            "SALE_CORRECTION",
            "CASH_IN",
            "CASH_OUT",
            "SHIFT_CLOSE",
        ]
        assert shop["id"] not in {d["id"] for d in docs}
        shift_id = docs[0]["shift"]["id"]
        assert {d["shift"]["id"] for d in docs} == {shift_id}
        # Receipts numbered 1..5 in the cashier shift, money documents 1..2 (B13).
        assert [d["docNum"] for d in docs[1:6]] == ["1", "2", "3", "4", "5"]
        assert [d["docNum"] for d in docs[6:8]] == ["1", "2"]
        mixed = docs[3]
        assert mixed["change"] == 100.0
        assert mixed["acceptedSum"] == 600.0
        assert mixed["fiscalInfo"]["fnNumber"] == kkt.till.fn_serial
        assert mixed["fiscalInfo"]["sum"] == 500.0
        assert docs[6]["fiscalInfo"] is None  # cash in: no drive document

        view = service(kkt).shift_by_id(kkt.retail_point_id, shift_id)
        assert view["status"] == "CLOSED"
        assert view["complete"] is True
        assert view["shiftTotals"] == EXPECTED
        assert view["kkmInfo"]["serialNo"] == kkt.till.kkt_serial
        assert view["kkmInfo"]["fiscalInfo"]["fnNo"] == kkt.till.fn_serial
        # The till's shift.closed carries the same totals (B11).
        [closed] = [data for event, data in events if event == "shift.closed"]
        assert closed["shiftTotals"] == EXPECTED
        assert closed["cashShiftId"] == shift_id
        # Counter receipts announce themselves as shop documents do.
        counter = [d for e, d in events if e == "document.fiscalized" and d.get("origin") == "till"]
        assert [d["docType"] for d in counter] == [
            "SALE",
            "SALE",
            "SALE",
            "RETURN",
            "SALE_CORRECTION",
        ]
        assert kkt.till.state.shift_cashdocs(shift_id)[-1]["docType"] == "SHIFT_CLOSE"
        # The heartbeat carries the queue, and the cabinet shows when the till last uploaded.
        await kkt.till.heartbeat()
        tills = await kkt.cabinet("GET", "/heartbeats")
        [mine] = [t for t in tills if t["deviceId"] == kkt.till.device_id]
        assert mine["uploadQueue"] == {"size": 0, "oldestAt": None, "lastError": None}
        assert mine["uploadedDocuments"] == 9
        assert mine["lastUploadAt"] is not None
        state = (await kkt.till.snapshot_state())["uploadQueue"]
        assert state["size"] == 0


async def test_blocked_uploads_wait_and_drain_in_order_once(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        till.inject_fault("upload.block")
        for total in (1000, 2000, 3000):
            await till.shifts.sell(total)
        assert queue(kkt)["size"] == 4  # the shift's open and three sales
        assert queue(kkt)["oldestAt"] is not None
        assert "upload.block" in (queue(kkt)["lastError"] or "")
        await kkt.clock.pace(0.2)
        assert cloud_ids(kkt) == []  # the sales are missing from the cloud
        queued = [e.doc_id for e in till.state.cashdoc_queue(100)]

        till.clear_faults("upload.block")
        await until(kkt, "the queue drained", lambda: queue(kkt)["size"] == 0)
        stored = [d["id"] for d in all_cloud_docs(kkt)]
        assert stored == queued
        assert till.cashdocs.uploaded == 4

        # A rejection holds the head, then it goes; nothing is doubled.
        till.inject_fault("upload.reject", count=1)
        await till.shifts.sell(4000)
        await until(kkt, "the head went after the rejection", lambda: queue(kkt)["size"] == 0)
        assert till.cashdocs.uploaded == 5
        assert len(all_cloud_docs(kkt)) == 5
        assert "upload.reject" not in [f["name"] for f in till.list_faults()]
        assert queue(kkt)["lastError"] is None


async def test_a_rejected_head_is_retried_alone_and_the_error_shows(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        till.inject_fault("upload.reject", count=2)
        await till.shifts.sell(1500)
        await until(kkt, "the first refusal", lambda: queue(kkt)["lastError"] is not None)
        assert "upload.reject" in queue(kkt)["lastError"]
        assert queue(kkt)["size"] == 2
        await until(kkt, "the queue drained", lambda: queue(kkt)["size"] == 0, seconds=20)
        assert [d["docType"] for d in all_cloud_docs(kkt)] == ["SHIFT_OPEN", "SALE"]


async def test_the_queue_survives_a_restart(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        till.inject_fault("upload.block")
        await till.shifts.sell(1234)
        await till.shifts.cash_move(500)
        queued = [e.doc_id for e in till.state.cashdoc_queue(100)]
        assert len(queued) == 3
        config = till.config
        await till.close()
        again = Till(config, kkt.clock)
        kkt.stack.tills[0] = again
        await again.start()  # faults are the process's: the new one has none
        await until(kkt, "the queue drained", lambda: again.cashdocs.queue_state()["size"] == 0)
        assert [d["id"] for d in all_cloud_docs(kkt)] == queued


async def test_an_idle_queue_costs_no_timer(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        cashdocs = kkt.till.cashdocs
        await kkt.till.shifts.sell(1000)
        await until(kkt, "uploaded", lambda: cashdocs.queue_state()["size"] == 0)
        passes = cashdocs.passes
        await kkt.clock.pace(1.5)  # longer than the first back-off: a timer would have fired
        assert cashdocs.passes == passes
        await kkt.till.shifts.sell(1000)
        await until(kkt, "uploaded again", lambda: cashdocs.uploaded == 3)
        assert cashdocs.passes > passes
