"""Support cases of ``support-cases.md`` §1 and §6: how the shop's setup shows on receipts.

Shift numbering of a till that sells at a counter and for a shop, two integrations sending the
same payment, and the receipt's address coming from the till's registration.
"""

from __future__ import annotations

import uuid
from typing import Any

from kkt_emulator.app.scenarios.registry import scenario
from kkt_emulator.app.scenarios.run import ScenarioRun
from kkt_emulator.errors import CloudError
from kkt_emulator.fn.tlv import decode_string, parse_tlvs

__all__ = ["separate_shift_numbering", "shared_shift_numbering"]


async def _shop_shift(run: ScenarioRun, total: float) -> int:
    """Post a shop document; the shift number its receipt shows."""
    doc = run.sale(total)
    await run.post(doc)
    done = await run.wait_for(doc["id"], "COMPLETED")
    shift: int = done["fiscalInfo"]["shiftNumber"]
    return shift


async def _numbers(run: ScenarioRun) -> tuple[int, int]:
    """The drive's last shift number and the till app's counter shift number, none open."""
    await run.till("shift.close")
    state = await run.till_state()
    return (state["shift"] or {}).get("number", 0), state["counterShift"]["number"]


async def shared_shift_numbering(run: ScenarioRun) -> None:
    """``shift_mode = shared``: the OFD's shift number and the till app's Z-report agree."""
    mode = (await run.till_state())["settings"]["shift_mode"]
    await run.till("set", {"shift_mode": "shared"})
    try:
        drive, _ = await _numbers(run)
        run.expect("shop document's shift", await _shop_shift(run, 10.0), drive + 1)
        sale = await run.till("sell", {"total_kopecks": 50000})
        run.expect("counter sale", (sale["shiftNumber"], sale["appShiftNumber"]), (drive + 1,) * 2)
        z_report = await run.till("shift.close")
        run.expect(
            "Z-report", (z_report["shiftNumber"], z_report["appShiftNumber"]), (drive + 1,) * 2
        )
    finally:
        await run.till("set", {"shift_mode": mode})


async def separate_shift_numbering(run: ScenarioRun) -> None:
    """``shift_mode = separate``: the shop's shift closes on time by itself, the app numbers its own.

    Moves business time (the shift timer closes the shop's shift 24 hours after it opened, D85):
    start the installation with ``up --clock manual``.
    """
    mode = (await run.till_state())["settings"]["shift_mode"]
    await run.till("set", {"shift_mode": "separate"})
    try:
        drive, app = await _numbers(run)
        # Two shop documents in two poll batches: one shift a day, not one per batch.
        run.expect("first shop document's shift", await _shop_shift(run, 10.0), drive + 1)
        run.expect("second shop document's shift", await _shop_shift(run, 11.0), drive + 1)
        state = await run.till_state()
        run.expect(
            "the shop's shift stays open",
            (state["shift"]["open"], state["shift"]["number"]),
            (True, drive + 1),
        )
        run.expect("counter shift", state["counterShift"], {"number": app, "open": False})

        async def closed() -> bool:
            shift_open: bool = (await run.till_state())["shift"]["open"]
            return not shift_open

        # 24 hours on, the shift closes by itself with no document arriving; its report goes
        # only to the OFD.
        await run.advance_past("shift.expires")
        await run.until("the shop's shift closes on time by itself", closed)
        state = await run.till_state()
        run.expect("counter shift", state["counterShift"], {"number": app, "open": False})
        # The counter opens its shift: the drive's next, the till app's own next.
        sale = await run.till("sell", {"total_kopecks": 500})
        run.expect(
            "counter sale", (sale["shiftNumber"], sale["appShiftNumber"]), (drive + 2, app + 1)
        )
        # A shop document meanwhile joins the counter's open shift, which stays open.
        run.expect("shop document in the counter's shift", await _shop_shift(run, 12.0), drive + 2)
        state = await run.till_state()
        run.expect(
            "drive shift", (state["shift"]["open"], state["shift"]["number"]), (True, drive + 2)
        )
        run.expect("counter shift", state["counterShift"], {"number": app + 1, "open": True})
        z_report = await run.till("shift.close")
        run.expect(
            "Z-report", (z_report["shiftNumber"], z_report["appShiftNumber"]), (drive + 2, app + 1)
        )
        sale = await run.till("sell", {"total_kopecks": 100})
        run.expect("next counter shift", sale["appShiftNumber"], app + 2)
        await run.checkpoint("separate")
        await run.till("shift.close")
    finally:
        await run.till("set", {"shift_mode": mode})


@scenario("shop_and_counter_shift_numbering", "shift_mode shared and separate: OFD and app numbers")
async def shop_and_counter_shift_numbering(run: ScenarioRun) -> None:
    """§1: which shift number each report shows, in each ``shift_mode``."""
    await shared_shift_numbering(run)
    await separate_shift_numbering(run)


async def _associate(run: ScenarioRun, client: str) -> tuple[str, str]:
    """Associate ``client`` with the first retail point; its credentials."""
    answer = await run.installation.http.post(
        f"{run.ready['store_api']}/v1/associate/{run.ready['retail_point_id']}",
        params={"clientId": client},
        auth=(run.ready["service_login"], run.ready["service_password"]),
    )
    body: dict[str, Any] = answer.json()
    if answer.status_code >= 400:
        raise CloudError(answer.status_code, body.get("message", ""))
    run.note(f"associate clientId {client}", {"userName": body["userName"]})
    return (body["userName"], body["password"])


@scenario("double_integration_warns", "two clientIds send the same docNum and sum: a warning")
async def double_integration_warns(run: ScenarioRun) -> None:
    """§6: 1C-Bitrix and Yandex.Kassa both active; both fiscalised, the second one warned."""
    bitrix_auth = await _associate(run, "bitrix")
    kassa_auth = await _associate(run, "yandex-kassa")
    number, other_number = (f"ORDER-{uuid.uuid4().hex[:8]}" for _ in range(2))
    bitrix = run.sale(990.0, docNum=number)
    kassa = run.sale(990.0, docNum=number)
    other = run.sale(990.0, docNum=other_number)
    run.facts.update(bitrix=bitrix, kassa=kassa, other=other)
    await run.post(bitrix, auth=bitrix_auth)
    await run.post(kassa, auth=kassa_auth)
    await run.post(other, auth=kassa_auth)
    # Fiscalised twice: that is the symptom the shop complains about.
    for doc in (bitrix, kassa, other):
        await run.wait_for(doc["id"], "COMPLETED")
    first = await run.detail(bitrix["id"])
    second = await run.detail(kassa["id"])
    third = await run.detail(other["id"])
    run.expect("first: possibleDuplicateOf", first["possibleDuplicateOf"], None)
    run.expect("first: warnings", first["warnings"], [])
    run.expect("second: possibleDuplicateOf", second["possibleDuplicateOf"], bitrix["id"])
    run.expect("second: clientId", second["clientId"], "yandex-kassa")
    warning = (
        f"possible double integration: document {bitrix['id']} from clientId bitrix"
        " has the same docNum and sum"
    )
    run.expect("second: warnings", second["warnings"], [warning])
    run.expect("third: possibleDuplicateOf", third["possibleDuplicateOf"], None)
    ours = {bitrix["id"], kassa["id"], other["id"]}
    warned = [w["id"] for w in await run.cabinet("GET", "/warnings") if w["id"] in ours]
    run.expect("cabinet warnings", warned, [kassa["id"]])


def printed_address(tlv: bytes) -> tuple[str, str]:
    """The address (1009) and place of settlement (1187) a receipt prints."""
    tags = {item.tag: item.value for item in parse_tlvs(tlv)}
    return decode_string(tags[1009]), decode_string(tags[1187])


@scenario(
    "receipt_address_comes_from_registration",
    "the receipt's address is the till's registration, in turn; never the cabinet's",
)
async def receipt_address_comes_from_registration(run: ScenarioRun) -> None:
    """§6: the cabinet's address changes nothing; a refused document does not use a turn."""
    before = len(await run.receipt_fds())
    address = (await run.cabinet("GET", run.point))["address"]
    elsewhere = "г. Казань, ул. Баумана, д. 5"
    await run.point_settings(address=elsewhere)
    try:
        first = run.sale(10.0)
        await run.post(first)
        await run.wait_for(first["id"], "COMPLETED")
        refused = run.sale(10.0, tax_mode="PATENT")
        await run.post(refused)
        await run.wait_for(refused["id"], "FAILED")  # refused: no turn used
        second = run.sale(11.0)
        await run.post(second)
        await run.wait_for(second["id"], "COMPLETED")
        await run.till("sell", {"total_kopecks": 500})  # a counter sale takes its turn too
        receipts = (await run.drive_receipts())[before:]
        printed = [printed_address(doc.tlv) for doc in receipts]
        run.facts["printed"] = printed
        run.note("receipts print", printed)
        run.require("new receipts on the drive", len(printed), 3)
        run.expect(
            "a receipt prints the cabinet's address",
            any(elsewhere in p for p in printed),
            wanted=False,
        )
        run.expect("receipts 1 and 3 share the turn of two addresses", printed[2], printed[0])
        run.expect("cabinet address", (await run.cabinet("GET", run.point))["address"], elsewhere)
    finally:
        await run.point_settings(address=address)
