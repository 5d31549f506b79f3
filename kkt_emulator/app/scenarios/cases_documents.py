"""Support cases of ``support-cases.md`` §2–§4: statuses, missing receipts, stuck queues.

Each case makes the symptom happen, checks what the shop and support see (store statuses, the
cabinet's views, the till's state and drive archive), removes the cause, checks that the queue
drains oldest first with nothing lost or twice, and puts back what it changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kkt_emulator.app.scenarios.registry import scenario
from kkt_emulator.app.scenarios.run import ScenarioRun
from kkt_emulator.errors import CloudError

__all__ = ["STORE_STATUS_KEYS"]

#: The vendor's DocumentStatus keys: the store API shows nothing else (support-cases.md §2).
STORE_STATUS_KEYS = {
    "status",
    "fnState",
    "fiscalInfo",
    "failureInfo",
    "message",
    "timeStatusChanged",
}
LIFECYCLE = ["QUEUED", "PENDING", "PRINTED", "WAIT_FOR_CALLBACK", "COMPLETED"]


def history_statuses(detail: dict[str, Any]) -> list[str]:
    """The statuses a document went through, in order, without repeats."""
    seen: list[str] = []
    for entry in detail["history"]:
        if not seen or seen[-1] != entry["status"]:
            seen.append(entry["status"])
    return seen


@scenario("status_lifecycle", "QUEUED → PENDING → PRINTED → WAIT_FOR_CALLBACK → COMPLETED")
async def status_lifecycle(run: ScenarioRun) -> None:
    """§2: every status of a shop document, with a site that answers 200 only the second time."""
    from kkt_emulator.app.scenarios.shop_site import shop_site  # noqa: PLC0415 - uvicorn only here

    async with shop_site(status_code=503) as site:
        await run.till("set", {"power_saving": True})
        try:
            await run.settled()
            doc = run.sale(120.0, responseURL=site.url)
            accepted = await run.post(doc)
            run.expect("accepted", accepted["status"], "QUEUED")
            run.expect("accepted fiscalInfo", accepted["fiscalInfo"], None)
            run.expect("while the till sleeps", (await run.status(doc["id"]))["status"], "QUEUED")
        finally:
            await run.till("set", {"power_saving": False})
        waiting = await run.wait_for(doc["id"], "WAIT_FOR_CALLBACK")
        mark = (waiting.get("fiscalInfo") or {}).get("fnDocMark") or 0
        run.check("fiscal sign while the site has not said 200", mark, held=mark > 0)
        run.expect("failureInfo while waiting", waiting["failureInfo"], None)

        async def called() -> bool:
            return bool(site.received)

        await run.until("the site was called", called)
        run.expect("callback status", site.received[0]["query"].get("status"), "SUCCESS")
        site.status_code = 200
        await run.advance("1m")
        done = await run.wait_for(doc["id"], "COMPLETED")
    run.expect("message", done["message"], "Document successfully completed with callback")
    run.expect("fiscalInfo unchanged", done["fiscalInfo"], waiting["fiscalInfo"])
    detail = await run.detail(doc["id"])
    run.expect("cabinet history", history_statuses(detail), LIFECYCLE)
    attempts = detail["callback"]["attempts"]
    run.check("callback attempts: at least 2", attempts, held=attempts >= 2)


@scenario("completed_is_not_ofd_delivered", "COMPLETED while the OFD is down: OFD state apart")
async def completed_is_not_ofd_delivered(run: ScenarioRun) -> None:
    """§2: «Выполнен» is not «delivered to the OFD»; the cabinet keeps that fact apart."""
    await run.till("fault.inject", {"name": "ofd.down"})
    try:
        doc = run.sale(64.0)
        await run.post(doc)
        completed = await run.wait_for(doc["id"], "COMPLETED")
        run.facts["completed"] = completed
        run.expect("store status keys", sorted(completed), sorted(STORE_STATUS_KEYS))
        run.expect("cabinet OFD state", (await run.detail(doc["id"]))["ofd"]["state"], "not_sent")
        state = await run.till_state()
        unsent = state["drive"]["unsent"]
        run.check("drive documents not sent to the OFD: at least 1", unsent, held=unsent >= 1)
        block = state["deadlines"]["ofd.block"]
        run.check("drive has an ofd.block deadline", block, held=block is not None)
        await run.checkpoint("ofd_down")
    finally:
        await run.till("fault.clear", {"name": "ofd.down"})

    async def delivered() -> bool:
        state: str = (await run.detail(doc["id"]))["ofd"]["state"]
        return state == "acknowledged"

    await run.until("cabinet OFD state acknowledged", delivered)
    run.expect("drive documents not sent", (await run.till_state())["drive"]["unsent"], 0)
    run.expect("store status afterwards", await run.status(doc["id"]), completed)


@scenario("wrong_credentials_store_nothing", "wrong credentials or a stale point store nothing")
async def wrong_credentials_store_nothing(run: ScenarioRun) -> None:
    """§3 «Нет чеков в ЛК»: 401 for a wrong login or password, 403/404 for a stale point."""
    doc = run.sale(10.0)
    run.facts["doc"] = doc
    fiscalized = (await run.till_state())["counters"]["fiscalized"]
    login, password = run.shop
    for what, auth in (
        ("password", (login, password + "x")),
        ("login", ("nobody@example.com", password)),
    ):
        try:
            await run.post(doc, auth=auth)
            run.note(f"shop posts with a wrong {what}", "accepted", ok=False)
        except CloudError as exc:
            run.expect(f"shop posts with a wrong {what}", exc.status, 401)
    stale = str(uuid.uuid4())
    service = (run.ready["service_login"], run.ready["service_password"])
    answer = await run.installation.http.post(
        f"{run.ready['store_api']}/v1/associate/{stale}", auth=service
    )
    run.check(
        "associate with a retail point that is gone: 403 or 404",
        answer.status_code,
        held=answer.status_code in (403, 404),
    )
    found = await run.cabinet("GET", f"/documents?id={doc['id']}")
    run.expect("cabinet documents with that id", found, [])
    await run.checkpoint("refused")
    after = (await run.till_state())["counters"]["fiscalized"]
    run.expect("documents the till fiscalised meanwhile", after - fiscalized, 0)
    await run.post(doc)
    await run.wait_for(doc["id"], "COMPLETED")
    found = await run.cabinet("GET", f"/documents?id={doc['id']}")
    run.expect("cabinet documents with that id", [d["id"] for d in found], [doc["id"]])


async def _drained(run: ScenarioRun, docs: list[dict[str, Any]], before: list[int]) -> None:
    """Every one of ``docs`` completes, oldest first, each once on the drive."""
    done = [await run.wait_for(d["id"], "COMPLETED") for d in docs]
    fds = [s["fiscalInfo"]["fnDocNumber"] for s in done]
    run.facts["fds"] = fds
    run.expect("oldest first", fds, sorted(fds))
    run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], fds)


@scenario("queue_stuck_flag_off", "«Использовать для документов ИМ» off: QUEUED, fnState DISABLED")
async def queue_stuck_flag_off(run: ScenarioRun) -> None:
    """§4, item 1: the flag is off; the till polls and is handed nothing until it is on."""
    before = await run.receipt_fds()
    view = await run.point_settings(internetDocsEnabled=False)
    try:
        run.expect("cabinet fnState", view["fnState"], "DISABLED")
        docs = [run.sale(10.0 + n) for n in range(3)]
        for doc in docs:
            run.expect("accepted", (await run.post(doc))["status"], "QUEUED")
        await run.polled(3)
        statuses = [await run.status(d["id"]) for d in docs]
        run.expect("statuses", [s["status"] for s in statuses], ["QUEUED"] * 3)
        run.expect("fnState", sorted({s["fnState"] for s in statuses}), ["DISABLED"])
        answer = await run.installation.http.get(
            f"{run.ready['store_api']}/v1/status", auth=run.shop
        )
        run.expect("store /v1/status", answer.json().get("status"), "DISABLED")
        run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], [])
    finally:
        await run.point_settings(internetDocsEnabled=True)
    await _drained(run, docs, before)


async def _quiet(
    run: ScenarioRun,
    stop: Callable[[], Awaitable[Any]],
    start: Callable[[], Awaitable[Any]],
    total: float,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Stop the till polling, post three documents, check they wait; start it again."""
    before = await run.receipt_fds()
    await stop()
    try:
        run.expect("till state: polling", (await run.till_state())["polling"], wanted=False)
        await run.settled()
        docs = [run.sale(total + n) for n in range(3)]
        for doc in docs:
            await run.post(doc)
        polls = await run.polls()
        await run.pause(0.5)
        run.expect("till polls meanwhile", await run.polls() - polls, 0)
        run.expect("statuses", await run.statuses(docs), ["QUEUED"] * 3)
        await run.checkpoint("quiet")
    finally:
        await start()
    return docs, before


@scenario("queue_stuck_offline", "the till has no internet: QUEUED, drains when back")
async def queue_stuck_offline(run: ScenarioRun) -> None:
    """§4, item 2: offline, the queue waits; back online it drains oldest first."""

    async def offline() -> None:
        await run.till("set", {"online": False})

    async def online() -> None:
        await run.till("set", {"online": True})

    async def stopped() -> None:
        await offline()
        run.expect(
            "till setting online", (await run.till_state())["settings"]["online"], wanted=False
        )

    docs, before = await _quiet(run, stopped, online, 20.0)
    await _drained(run, docs, before)


@scenario("queue_stuck_power_saving", "power saving on: the till stops polling")
async def queue_stuck_power_saving(run: ScenarioRun) -> None:
    """§4, item 3: power saving (an Android phone's) stops the till app polling."""

    async def saving() -> None:
        await run.till("set", {"power_saving": True})
        await run.checkpoint("power_saving")

    async def awake() -> None:
        await run.till("set", {"power_saving": False})

    docs, before = await _quiet(run, saving, awake, 30.0)
    await _drained(run, docs, before)
    device_id = (await run.till_state())["deviceId"]
    devices = await run.cabinet("GET", "/heartbeats")
    flags = [d["heartbeat"]["powerSaving"] for d in devices if d["deviceId"] == device_id]
    run.expect("cabinet heartbeat powerSaving", flags, [False])


async def _stuck_behind(run: ScenarioRun, total: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document that fails on the drive, and one accepted after it that stays QUEUED."""
    await run.till("fault.inject", {"name": "fn.storage_exhausted", "count": 1})
    failing, behind = run.sale(total), run.sale(total + 1)
    await run.post(failing)
    await run.post(behind)
    await run.wait_for(failing["id"], "FAILED")
    faults = (await run.installation.command("fault.list"))["faults"]
    run.expect("faults left (the cause is gone, yet nothing moves)", faults, [])
    await run.polled(3)
    run.expect("document behind it", (await run.status(behind["id"]))["status"], "QUEUED")
    run.expect(
        "failed document blocking", (await run.detail(failing["id"]))["blocking"], wanted=True
    )
    return failing, behind


@scenario(
    "queue_stuck_behind_failed_receipt",
    "stop-on-errors: a FAILED document holds the queue; re-drive, mark done, or correct and mark",
)
async def queue_stuck_behind_failed_receipt(run: ScenarioRun) -> None:
    """§4, item 4, and the three ways out of §5; the till takes one document per poll meanwhile."""
    before = await run.receipt_fds()
    max_docs = (await run.till_state())["settings"]["max_docs"]
    view = await run.point_settings(stopOnErrors=True)
    run.expect("cabinet stopOnErrors", view["stopOnErrors"], wanted=True)
    await run.till("set", {"max_docs": 1})
    try:
        # 1. Re-drive: the failed document goes first, then the one it held back.
        failing, behind = await _stuck_behind(run, 10.0)
        await run.document_action(failing["id"], "redrive")
        first = await run.wait_for(failing["id"], "COMPLETED")
        second = await run.wait_for(behind["id"], "COMPLETED")
        order = [s["fiscalInfo"]["fnDocNumber"] for s in (first, second)]
        run.expect("re-driven first", order, sorted(order))

        # 2. Mark done: no receipt for it, the queue moves on.
        failing, behind = await _stuck_behind(run, 20.0)
        marked = await run.document_action(failing["id"], "mark-done")
        run.expect(
            "marked done",
            (marked["status"], marked["storeStatus"]["fiscalInfo"], marked["markedDone"]),
            ("COMPLETED", None, True),
        )
        await run.wait_for(behind["id"], "COMPLETED")

        # 3. A correction receipt at the till for the failed sale, then mark done.
        failing, behind = await _stuck_behind(run, 30.0)
        correction = await run.till("correction", {"total_kopecks": 3000})
        run.facts["correction"] = correction
        run.expect("correction total", correction["total"], 3000)
        await run.checkpoint("correction")
        await run.document_action(failing["id"], "mark-done")
        await run.wait_for(behind["id"], "COMPLETED")
    finally:
        await run.point_settings(stopOnErrors=False)
        await run.till("set", {"max_docs": max_docs})
    # Nothing lost, nothing twice: four shop receipts, one per completed sale.
    new = (await run.receipt_fds())[len(before) :]
    run.check("new receipts on the drive: 4", new, held=len(new) == 4)


#: The most documents the backlog case posts to cross the till's threshold.
BACKLOG_LIMIT = 20


@scenario(
    "ofd_backlog_slows_queue",
    "more unsent documents than the profile's threshold: the till slows down, then recovers",
)
async def ofd_backlog_slows_queue(run: ScenarioRun) -> None:
    """§4: an unpaid OFD slows the shop queue (needs a profile with a small threshold)."""

    async def unsent() -> int:
        count: int = (await run.till_state())["drive"]["unsent"]
        return count

    async def drained() -> bool:
        return await unsent() == 0

    backlog = (await run.till_state())["ofdBacklog"]
    threshold = backlog["threshold"]
    run.require(
        f"profile ofd_backlog_threshold at most {BACKLOG_LIMIT} (start `up` with such a profile)",
        threshold <= BACKLOG_LIMIT,
        wanted=True,
    )
    await run.until("the drive's documents reach the OFD", drained)
    paced = (await run.till_state())["counters"]["backlogPaced"]
    expected = 0
    await run.till("fault.inject", {"name": "ofd.down"})
    try:
        docs = [run.sale(10.0 + n) for n in range(threshold + 3)]
        for doc in docs:
            expected += await unsent() > threshold
            await run.post(doc)
            await run.wait_for(doc["id"], "COMPLETED")
        state = await run.till_state()
        count = state["drive"]["unsent"]
        run.check(f"unsent more than {threshold}", count, held=count > threshold)
        run.expect("ofdBacklog slowed", state["ofdBacklog"]["slowed"], wanted=True)
        paced_now = state["counters"]["backlogPaced"] - paced
        run.facts["paced"] = paced_now
        run.expect(
            "documents paced (those that found more than the threshold)", paced_now, expected
        )
    finally:
        await run.till("fault.clear", {"name": "ofd.down"})
    await run.until("the OFD takes the backlog", drained)
    after = run.sale(99.0)
    await run.post(after)
    await run.wait_for(after["id"], "COMPLETED")
    state = await run.till_state()
    run.expect("documents paced after", state["counters"]["backlogPaced"] - paced, paced_now)
    run.expect("ofdBacklog slowed after", state["ofdBacklog"]["slowed"], wanted=False)
