"""Support cases of ``support-cases.md`` §5: the till's error texts, one case per row.

Each case makes its error happen, checks the store status (``failureInfo`` type and exact
Russian text, ``message``) and the cabinet's error detail, then shows the way out where there is
one, and puts back what it changed. Cases that move business time need ``up --clock manual``.
"""

from __future__ import annotations

from typing import Any

from kkt_emulator.app.scenarios.registry import scenario
from kkt_emulator.app.scenarios.run import FN, ScenarioRun

__all__ = ["expect_failure", "expect_failure_seen", "failure"]


def failure(kind: str, text: str) -> dict[str, str]:
    """The ``failureInfo`` of a failed document."""
    return {"type": kind, "message": text}


STORAGE = failure("FN_MEMORY_OVERFLOW", FN + "Исчерпан ресурс хранения ФН")
EXPIRED = failure("FN_EXPIRED", FN + "Исчерпан ресурс КС")
DISCONNECTED = failure("FN_GENERIC_FAILURE", FN + "Сетевой поток не инициализирован")
TAX_SYSTEM = failure("FN_GENERIC_FAILURE", FN + "СНО товара не была указана при регистрации ККТ")
NEGATIVE = failure("NON_FN_FAILURE", FN + "Negative")
NO_CONTACT = failure("NON_FN_FAILURE", FN + "Телефон или эл. адрес покупателя")
WRONG_ARGUMENT = failure("FN_GENERIC_FAILURE", FN + "Неправильный аргумент")
PENDING_TIMEOUT = failure(
    "NON_FN_FAILURE", "Касса не подтвердила фискализацию документа в течение 15 минут"
)
PICKUP = failure("NON_FN_FAILURE", "POS doesn't connect for document within 235 seconds")
SHOP_MESSAGE = "Касса не ответила на запрос в течение 5 минут"
# The deck's card of «Документ возврата №2» (store-api.md D83).
PICKUP_CARD = (
    "Сообщение ФН об ошибке в документе: POS doesn't connect for document within 235 seconds"
)


async def expect_failure_seen(
    run: ScenarioRun, doc: dict[str, Any], wanted: dict[str, str], card: str | None = None
) -> dict[str, Any]:
    """Wait for the posted ``doc`` to fail; check its failure in the store and the cabinet.

    ``card`` is the error line the cabinet's document card shows (``failureText``), the failure's
    message when not given.

    Returns:
        The cabinet's document detail.
    """
    status = await run.wait_for(doc["id"], "FAILED")
    run.expect("failureInfo", status.get("failureInfo"), wanted)
    run.expect("message", status.get("message"), wanted["message"])
    detail = await run.detail(doc["id"])
    run.expect("cabinet failureInfo", detail.get("failureInfo"), wanted)
    run.expect("cabinet status", (detail["status"], detail["statusText"]), ("FAILED", "Ошибка"))
    run.expect("cabinet card", detail["failureText"], card or wanted["message"])
    return detail


async def expect_failure(
    run: ScenarioRun, doc: dict[str, Any], wanted: dict[str, str]
) -> dict[str, Any]:
    """Post ``doc``, then :func:`expect_failure_seen`."""
    await run.post(doc)
    return await expect_failure_seen(run, doc, wanted)


def _error_detail(detail: dict[str, Any]) -> Any:
    error = detail.get("errorDetail") or {}
    return error.get("detail")


@scenario(
    "error_storage_exhausted",
    "OFD down for 30 days: «Исчерпан ресурс хранения ФН», re-drive once the OFD took the backlog",
)
async def error_storage_exhausted(run: ScenarioRun) -> None:
    """§5 row 1: the drive blocks when documents waited more than 30 days for the OFD."""
    await run.till("fault.inject", {"name": "ofd.down"})
    try:
        first = run.sale(10.0)
        await run.post(first)
        await run.wait_for(first["id"], "COMPLETED")
        deadlines = (await run.till_state())["deadlines"]
        run.check("drive has an ofd.block deadline", deadlines, held=bool(deadlines["ofd.block"]))
        await run.advance_past("ofd.block")
        doc = run.sale(11.0)
        run.facts["doc"] = doc
        detail = await expect_failure(run, doc, STORAGE)
        run.expect("cabinet OFD state", detail["ofd"]["state"], "not_sent")
        unsent = (await run.till_state())["drive"]["unsent"]
        run.check("drive documents not sent to the OFD: at least 1", unsent, held=unsent >= 1)
    finally:
        await run.till("fault.clear", {"name": "ofd.down"})

    async def drained() -> bool:
        return (await run.till_state())["deadlines"]["ofd.block"] is None

    await run.until("the OFD takes the backlog: no ofd.block deadline", drained)
    await run.document_action(doc["id"], "redrive")
    done = await run.wait_for(doc["id"], "COMPLETED")
    run.expect("failureInfo after re-drive", done.get("failureInfo"), None)


@scenario("error_fn_expired", "fault fn.expired: «Исчерпан ресурс КС» (FN_EXPIRED)")
async def error_fn_expired(run: ScenarioRun) -> None:
    """§5 row 2: the drive's validity ended (here the one-shot fault; the test also the clock)."""
    await run.till("fault.inject", {"name": "fn.expired", "count": 1})
    await expect_failure(run, run.sale(10.0), EXPIRED)
    after = run.sale(10.0)
    await run.post(after)
    await run.wait_for(after["id"], "COMPLETED")


@scenario("error_pickup_window", "«За 5 минут» and the till offline: 235 s, then FAILED")
async def error_pickup_window(run: ScenarioRun) -> None:
    """§5 row 3: Yandex.Kassa's five-minute window, and the till did not answer in time."""
    from kkt_emulator.app.scenarios.shop_site import shop_site  # noqa: PLC0415 - uvicorn only here

    before = (await run.cabinet("GET", run.point))["pickupWindow"]
    async with shop_site() as site:
        await run.till("set", {"online": False})
        try:
            await run.settled()
            patient = run.sale(10.0)  # accepted in «За 3 дня» mode: no deadline
            await run.post(patient)
            view = await run.point_settings(pickupWindow="5min")
            run.expect("pickupWindow", view["pickupWindow"], "5min")
            doc = run.sale(20.0, responseURL=site.url)
            run.facts.update(doc=doc, patient=patient)
            await run.post(doc)
            await run.advance("234s")
            run.expect("at 234 s", (await run.status(doc["id"]))["status"], "QUEUED")
            await run.advance("1s")
            detail = await expect_failure_seen(run, doc, PICKUP, PICKUP_CARD)
            run.expect("shopMessage", detail["shopMessage"], SHOP_MESSAGE)

            async def told() -> bool:
                return bool(site.received)

            await run.until("the shop's site is told", told)
            run.expect("callback query", site.received[0]["query"], {"status": "FAILED"})
            run.expect("patient document", (await run.status(patient["id"]))["status"], "QUEUED")
            run.expect(
                "patient shopMessage", (await run.detail(patient["id"]))["shopMessage"], None
            )
        finally:
            await run.point_settings(pickupWindow=before)
            await run.till("set", {"online": True})
    done = await run.wait_for(patient["id"], "COMPLETED")
    run.facts["patient_done"] = done
    run.expect("failed document after", (await run.status(doc["id"]))["status"], "FAILED")


@scenario("error_fn_disconnected", "fault fn.disconnected: «Сетевой поток не инициализирован»")
async def error_fn_disconnected(run: ScenarioRun) -> None:
    """§5 row 4: the drive dropped off; re-driven once it is back, fiscalised once."""
    before = await run.receipt_fds()
    await run.till("fault.inject", {"name": "fn.disconnected"})
    try:
        doc = run.sale(10.0)
        await expect_failure(run, doc, DISCONNECTED)
        run.expect("till state: drive ok", (await run.till_state())["drive"]["ok"], wanted=False)
        run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], [])
    finally:
        await run.till("fault.clear", {"name": "fn.disconnected"})
    await run.document_action(doc["id"], "redrive")
    done = await run.wait_for(doc["id"], "COMPLETED")
    run.expect(
        "new receipts on the drive",
        (await run.receipt_fds())[len(before) :],
        [done["fiscalInfo"]["fnDocNumber"]],
    )


@scenario("error_tax_system", "taxMode PATENT: «СНО товара не была указана при регистрации ККТ»")
async def error_tax_system(run: ScenarioRun) -> None:
    """§5 row 5: a tax system the till was not registered with; re-drive cannot help."""
    before = await run.receipt_fds()
    doc = run.sale(10.0, tax_mode="PATENT")
    detail = await expect_failure(run, doc, TAX_SYSTEM)
    seen = _error_detail(detail) or {}
    run.facts["error_detail"] = seen
    run.expect(
        "error detail",
        {k: seen.get(k) for k in ("resultCode", "tag", "taxSystem")},
        {"resultCode": "19h", "tag": 1055, "taxSystem": 0x20},
    )
    mask = seen.get("registeredTaxSystems")
    run.check(
        "registeredTaxSystems: a mask without PATENT",
        mask,
        held=isinstance(mask, int) and not mask & 0x20,
    )
    await run.document_action(doc["id"], "redrive")
    again = await run.wait_for(doc["id"], "FAILED")
    run.expect("failureInfo after re-drive", again.get("failureInfo"), TAX_SYSTEM)
    done = await run.document_action(doc["id"], "mark-done")
    run.expect("marked done", (done["status"], done["markedDone"]), ("COMPLETED", True))
    run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], [])


@scenario("error_negative", "a negative price or quantity: «Negative»")
async def error_negative(run: ScenarioRun) -> None:
    """§5 row 6: the firmware refuses a negative position before the drive sees it."""
    doc = run.sale(10.0)
    doc["inventPositions"].append(
        {"name": "Возврат тары", "price": -2.5, "quantity": 1, "vatTag": 1105}
    )
    doc["moneyPositions"][0]["sum"] = 7.5
    detail = await expect_failure(run, doc, NEGATIVE)
    run.expect(
        "error detail", _error_detail(detail), {"position": 1, "field": "price", "value": -2.5}
    )
    quantity = run.sale(10.0)
    quantity["inventPositions"][0]["quantity"] = 2
    quantity["inventPositions"].append(
        {"name": "Хлеб", "price": 10.0, "quantity": -1, "vatTag": 1105}
    )
    detail = await expect_failure(run, quantity, NEGATIVE)
    run.expect("error detail field", (_error_detail(detail) or {}).get("field"), "quantity")


@scenario("error_no_contact", "no buyer phone or e-mail on an electronic receipt")
async def error_no_contact(run: ScenarioRun) -> None:
    """§5 row 7: tag 1008 is mandatory on an electronic receipt, not on a paper one."""
    before = await run.receipt_fds()
    for email in ("", "not-an-address"):
        detail = await expect_failure(run, run.sale(10.0, email=email), NO_CONTACT)
        run.expect("error detail field", (_error_detail(detail) or {}).get("field"), "email")
    run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], [])
    paper = run.sale(10.0, email="", printReceipt=True)
    await run.post(paper)
    done = await run.wait_for(paper["id"], "COMPLETED")
    run.expect(
        "new receipts on the drive",
        (await run.receipt_fds())[len(before) :],
        [done["fiscalInfo"]["fnDocNumber"]],
    )


@scenario("error_pending_timeout", "results lost: FAILED after 15 minutes, the late success wins")
async def error_pending_timeout(run: ScenarioRun) -> None:
    """§5 row 8: the till's result never reached the server; signed exactly once (§8)."""
    before = await run.receipt_fds()
    await run.till("fault.inject", {"name": "cloud.drop_result"})
    try:
        doc = run.sale(10.0)
        await run.post(doc)
        await run.wait_for(doc["id"], "PENDING")

        async def dropped() -> bool:
            faults = (await run.installation.command("fault.list"))["faults"]
            return any(f["name"] == "cloud.drop_result" and f["applied"] > 0 for f in faults)

        await run.until("the till's result report is dropped", dropped)
        await run.advance("14m")
        run.expect("after 14 minutes", (await run.status(doc["id"]))["status"], "PENDING")
        await run.advance("1m")
        await expect_failure_seen(run, doc, PENDING_TIMEOUT)
        new = (await run.receipt_fds())[len(before) :]
        run.check("signed on the drive all the same: 1 new receipt", new, held=len(new) == 1)
    finally:
        await run.till("fault.clear", {"name": "cloud.drop_result"})
    late = await run.wait_for(doc["id"], "COMPLETED")
    run.expect("failureInfo of the late success", late.get("failureInfo"), None)
    run.expect(
        "new receipts on the drive",
        (await run.receipt_fds())[len(before) :],
        [late["fiscalInfo"]["fnDocNumber"]],
    )


@scenario("error_wrong_argument", "agent or excise data on a till not registered for it")
async def error_wrong_argument(run: ScenarioRun) -> None:
    """§5 row 9: «Неправильный аргумент»; the error detail names positions and missing flag."""
    before = await run.receipt_fds()
    agent = run.sale(10.0)
    agent["inventPositions"].insert(
        0,
        {
            "name": "Билет (агентский)",
            "price": 5.0,
            "quantity": 1,
            "vatTag": 1105,
            "agentInfo": {"types": ["commission_agent"]},
            "supplierInfo": {"name": "ООО Поставщик", "inn": "7707083893"},
        },
    )
    agent["moneyPositions"][0]["sum"] = 15.0
    detail = await expect_failure(run, agent, WRONG_ARGUMENT)
    run.expect(
        "error detail",
        _error_detail(detail),
        {"resultCode": "19h", "tag": 1222, "missingRegistrationFlag": "agent", "positions": [0]},
    )
    excise = run.sale(10.0)
    excise["inventPositions"][0]["paymentObject"] = "excise"
    detail = await expect_failure(run, excise, WRONG_ARGUMENT)
    run.expect(
        "error detail",
        _error_detail(detail),
        {"resultCode": "19h", "tag": 1212, "missingRegistrationFlag": "excise", "positions": [0]},
    )
    run.expect("new receipts on the drive", (await run.receipt_fds())[len(before) :], [])
