"""Support cases of the back office (``support-cases.md`` §7, ``orders-and-backoffice.md`` §3).

«Нет части продаж в МойСклад»: the sales reach MoySklad only through the till's upload queue (B7)
and the shift's feed record (B6, B18). When the queue is jammed (fault ``upload.block``) the
counter sales are made and printed, yet the shift never completes in the cloud, so MoySklad gets
nothing; support's first question, «нет ли очереди чеков на сервер», is answered by the till's
``uploadQueue`` and by the cabinet's view of it. Once the channel is back the queue drains in order
and the feed record comes, once.
"""

from __future__ import annotations

from typing import Any

from kkt_emulator.app.scenarios.registry import scenario
from kkt_emulator.app.scenarios.run import ScenarioCheckError, ScenarioRun

__all__ = ["moysklad_missing_sales"]

#: The two counter sales of the case, in kopecks: sums no other document of the day has.
SALES = (12345, 45678)
#: Documents the jammed queue holds at least: the shift's open, the two sales, its close (B10).
HELD = 2 + len(SALES)


async def _moysklad_records(run: ScenarioRun) -> list[dict[str, Any]]:
    """Every МойСклад feed record of the point, oldest first."""
    records: list[dict[str, Any]] = []
    while True:
        page = await run.cabinet(
            "GET", f"{run.point}/feeds?integration=moysklad&start={len(records)}&count=1000"
        )
        records.extend(page["data"])
        if not page["data"] or len(records) >= page["total_count"]:
            return records


def _sums(record: dict[str, Any]) -> list[tuple[str, float]]:
    """``(docType, Σ payments)`` of each document of a МойСклад record, in its order."""
    return [
        (str(d["docType"]), round(sum(p["sum"] for p in d["payments"]), 2))
        for d in record["payload"]["documents"]
    ]


async def _cabinet_queue(run: ScenarioRun) -> dict[str, Any] | None:
    """The first till's upload queue as the cabinet shows it (its last heartbeat, B7)."""
    device_id = (await run.till_state())["deviceId"]
    for device in await run.cabinet("GET", "/heartbeats"):
        if device["deviceId"] == device_id:
            queue = device.get("uploadQueue")
            return queue if isinstance(queue, dict) else None
    return None


@scenario(
    "moysklad_missing_sales",
    "«нет части продаж в МойСклад»: upload.block holds the sales; the till's queue shows why",
)
async def moysklad_missing_sales(run: ScenarioRun) -> None:
    """§7: a jammed upload queue keeps a shift's sales from МойСклад until it drains.

    The case switches the МойСклад integration on when it is off (which, as in the real
    service, empties the account's ``INVENTORY`` catalogue, B17) and off again at the end.
    """
    integrations = await run.cabinet("GET", f"{run.point}/integrations")
    was_on = any(i["name"] == "moysklad" and i["enabled"] for i in integrations)
    if not was_on:
        await run.cabinet("PUT", f"{run.point}/integrations/moysklad", {"enabled": True})
        run.note("cabinet: ☑ МойСклад")
    try:
        await _missing_then_delivered(run)
    finally:
        await run.till("fault.clear", {"name": "upload.block"})
        if not was_on:
            await run.cabinet("PUT", f"{run.point}/integrations/moysklad", {"enabled": False})
            run.note("cabinet: ☐ МойСклад")


async def _missing_then_delivered(run: ScenarioRun) -> None:
    # A shift already open would mix earlier sales into the one the case watches: close it
    # while the channel still works, and let its documents reach the cloud first.
    await run.till("shift.close")
    await run.until("the till's upload queue is empty", lambda: _queue_size(run, 0))
    before = await _moysklad_records(run)

    await run.till("fault.inject", {"name": "upload.block"})
    sold = [await run.till("sell", {"total_kopecks": total}) for total in SALES]
    closed = await run.till("shift.close")
    run.require("the shift closed", closed.get("closed"), wanted=True)
    run.facts["sold"] = sold

    # What the shop's МойСклад sees: no record for the shift.
    await run.pause(0.5)
    run.expect(
        "МойСклад records while the queue is jammed", len(await _moysklad_records(run)), len(before)
    )
    # Support: «нет ли очереди чеков на сервер» — the till says yes, and why.
    queue = (await run.till_state())["uploadQueue"]
    run.check(f"the till's upload queue holds at least {HELD}", queue, held=queue["size"] >= HELD)
    run.expect("the queue's error", queue["lastError"], "upload blocked (fault upload.block)")
    run.check(
        "the queue's oldest document has a time", queue["oldestAt"], held=bool(queue["oldestAt"])
    )
    await run.until(
        "the cabinet shows the till's queue",
        lambda: _cabinet_holds(run, HELD),
    )
    await run.checkpoint("jammed")

    await run.till("fault.clear", {"name": "upload.block"})
    await run.until("the till's upload queue drains", lambda: _queue_size(run, 0))

    async def arrived() -> bool:
        return len(await _moysklad_records(run)) > len(before)

    await run.until("the shift's МойСклад record arrives", arrived)
    await run.pause(0.5)  # anything more would come now
    after = await _moysklad_records(run)
    new = after[len(before) :]
    run.expect("new МойСклад records (one per shift, nothing twice)", len(new), 1)
    if not new:
        raise ScenarioCheckError("no МойСклад record after the queue drained")
    run.expect(
        "the record's documents, in the order sold",
        _sums(new[0]),
        [("SALE", total / 100) for total in SALES],
    )
    ids = [d["id"] for d in new[0]["payload"]["documents"]]
    run.expect("documents in the record once each", len(ids), len(set(ids)))
    run.facts["record"] = new[0]


async def _queue_size(run: ScenarioRun, size: int) -> bool:
    queue = (await run.till_state()).get("uploadQueue") or {}
    return bool(queue.get("size") == size)


async def _cabinet_holds(run: ScenarioRun, size: int) -> bool:
    queue = await _cabinet_queue(run)
    return queue is not None and int(queue.get("size") or 0) >= size
