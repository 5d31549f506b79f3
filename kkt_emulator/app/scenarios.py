"""The support cases as runnable recipes against a running installation (``kkt-emulator up``).

Each scenario (``support-cases.md``; the same names as the end-to-end tests in
``tests/scenarios/``) drives the installation the way a user would — the store API as a shop, the
cabinet API as support, the MQTT control plane as the person at the till — and records every step
with what it saw. A scenario puts back what it changed (faults, till settings, retail-point
flags), so scenarios can run one after another on one installation. The tests are the proof; these
are for demos and manual checks.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from kkt_emulator.app.stack import EXAMPLE_SALE
from kkt_emulator.clock import RealClock
from kkt_emulator.control.client import ControlClient
from kkt_emulator.errors import CloudError, ConfigError, EmulatorError

__all__ = ["SCENARIOS", "Scenario", "ScenarioRun", "Step", "run_scenario"]

FN = "Сообщение ФН об ошибке: "
FINAL = ("COMPLETED", "FAILED")


@dataclass(slots=True)
class Step:
    """One thing a scenario did, and what it saw."""

    action: str
    result: Any = None
    ok: bool = True

    def to_json(self) -> dict[str, Any]:
        """``{"action", "ok", "result"}``."""
        return {"action": self.action, "ok": self.ok, "result": self.result}


@dataclass(slots=True)
class ScenarioRun:
    """A scenario in progress against one installation: its clients and the steps so far."""

    ready: dict[str, Any]
    http: httpx.AsyncClient
    control: ControlClient | None
    device_id: str | None
    wait: float
    steps: list[Step] = field(default_factory=list)
    expected_ok: bool = True

    def note(self, action: str, result: Any = None, *, ok: bool = True) -> Any:
        """Record a step; returns ``result``."""
        self.steps.append(Step(action, result, ok))
        if not ok:
            self.expected_ok = False
        return result

    def expect(self, action: str, seen: Any, wanted: Any) -> None:
        """Record a check: ``seen`` should equal ``wanted``."""
        self.note(f"{action}: expect {wanted!r}", seen, ok=seen == wanted)

    @property
    def point(self) -> str:
        """The cabinet path of the installation's first retail point."""
        return f"/retail-points/{self.ready['retail_point_id']}"

    def sale(self, total: float = 45.5, **fields: Any) -> dict[str, Any]:
        """A valid shop document with a fresh id (the ``doc send --example sale`` one)."""
        doc = copy.deepcopy(EXAMPLE_SALE)
        doc.update(id=str(uuid.uuid4()), docNum=f"ORDER-{uuid.uuid4().hex[:8]}")
        doc["inventPositions"][0]["price"] = total
        doc["moneyPositions"][0]["sum"] = total
        doc.update(fields)
        return doc

    async def post(
        self, doc: dict[str, Any], auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """POST /v2/doc as the shop."""
        answer = await self.http.post(
            f"{self.ready['store_api']}/v2/doc",
            json=doc,
            auth=auth or (self.ready["login"], self.ready["password"]),
        )
        body: dict[str, Any] = answer.json()
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, body.get("message", ""))
        self.note(f"shop posts document {doc['id']}", {"status": body["status"]})
        return body

    async def status(self, doc_id: str) -> dict[str, Any]:
        """GET /v1/doc/{id}/status as the shop."""
        answer = await self.http.get(
            f"{self.ready['store_api']}/v1/doc/{doc_id}/status",
            auth=(self.ready["login"], self.ready["password"]),
        )
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, answer.text)
        body: dict[str, Any] = answer.json()
        return body

    async def wait_for(self, doc_id: str, *statuses: str) -> dict[str, Any]:
        """Poll the document until one of ``statuses`` (default: a final one) or the wait ends."""
        wanted = statuses or FINAL
        clock = RealClock()
        deadline = clock.monotonic() + self.wait
        while True:
            status = await self.status(doc_id)
            if status["status"] in wanted or clock.monotonic() > deadline:
                shown = {
                    k: status[k] for k in ("status", "failureInfo", "message") if status.get(k)
                }
                if status.get("fiscalInfo"):
                    info = status["fiscalInfo"]
                    shown["fiscalInfo"] = {
                        k: info[k] for k in ("shiftNumber", "fnDocNumber", "fnDocMark")
                    }
                self.note(
                    f"document {doc_id} is {status['status']}",
                    shown,
                    ok=status["status"] in wanted,
                )
                return status
            await clock.pace(0.1)

    async def cabinet(self, method: str, path: str, body: Any = None) -> Any:
        """Call the cabinet API as support."""
        answer = await self.http.request(method, f"{self.ready['cabinet_api']}{path}", json=body)
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, answer.text)
        return answer.json() if answer.content else None

    async def detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's document detail."""
        detail: dict[str, Any] = await self.cabinet("GET", f"{self.point}/documents/{doc_id}")
        return detail

    async def till(self, command: str, args: dict[str, Any] | None = None) -> Any:
        """A control-plane command to the first till."""
        if self.control is None or self.device_id is None:
            raise ConfigError("this scenario needs the MQTT control plane (`up --mqtt spawn`)")
        result = await self.control.command(self.device_id, command, args)
        self.note(f"till: {command} {args or ''}".rstrip(), result)
        return result

    async def advance(self, delta: str) -> None:
        """Move the installation's manual clock (tills and cloud share it under ``up``)."""
        if self.ready.get("clock") != "manual":
            raise ConfigError("this scenario moves business time: start `up --clock manual`")
        await self.till("clock.advance", {"delta": delta})


ScenarioBody = Callable[[ScenarioRun], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named recipe: what it shows, and the steps that show it."""

    name: str
    summary: str
    body: ScenarioBody


SCENARIOS: dict[str, Scenario] = {}


def _scenario(name: str, summary: str) -> Callable[[ScenarioBody], ScenarioBody]:
    def register(body: ScenarioBody) -> ScenarioBody:
        SCENARIOS[name] = Scenario(name, summary, body)
        return body

    return register


async def _failure(run: ScenarioRun, doc: dict[str, Any], message: str, kind: str) -> str:
    await run.post(doc)
    status = await run.wait_for(doc["id"], "FAILED")
    run.expect("failureInfo", status.get("failureInfo"), {"type": kind, "message": message})
    detail = await run.detail(doc["id"])
    run.note("cabinet error detail", detail.get("errorDetail"))
    return str(doc["id"])


@_scenario("status_lifecycle", "QUEUED → PENDING → PRINTED → COMPLETED, as the cabinet records it")
async def _status_lifecycle(run: ScenarioRun) -> None:
    doc = run.sale(120.0)
    await run.post(doc)
    await run.wait_for(doc["id"], "COMPLETED")
    detail = await run.detail(doc["id"])
    run.note("cabinet history", [h["status"] for h in detail["history"]])


@_scenario("completed_is_not_ofd_delivered", "COMPLETED while the OFD is down: OFD state apart")
async def _completed_not_delivered(run: ScenarioRun) -> None:
    await run.till("fault.inject", {"name": "ofd.down"})
    try:
        doc = run.sale(64.0)
        await run.post(doc)
        await run.wait_for(doc["id"], "COMPLETED")
        run.expect("cabinet OFD state", (await run.detail(doc["id"]))["ofd"]["state"], "not_sent")
    finally:
        await run.till("fault.clear", {"name": "ofd.down"})


@_scenario("wrong_credentials_store_nothing", "a wrong password gets 401 and stores nothing")
async def _wrong_credentials(run: ScenarioRun) -> None:
    doc = run.sale(10.0)
    try:
        await run.post(doc, auth=(run.ready["login"], run.ready["password"] + "x"))
        run.note("shop posts with a wrong password", "accepted", ok=False)
    except CloudError as exc:
        run.expect("shop posts with a wrong password", exc.status, 401)
    found = await run.cabinet("GET", f"/documents?id={doc['id']}")
    run.expect("cabinet documents with that id", len(found), 0)


async def _stuck_until(
    run: ScenarioRun, stop: Callable[[], Awaitable[None]], go: Callable[[], Awaitable[None]]
) -> None:
    await stop()
    try:
        docs = [run.sale(10.0 + n) for n in range(2)]
        for doc in docs:
            await run.post(doc)
        await RealClock().pace(1.0)
        for doc in docs:
            run.expect(f"document {doc['id']}", (await run.status(doc["id"]))["status"], "QUEUED")
    finally:
        await go()
    for doc in docs:
        await run.wait_for(doc["id"], "COMPLETED")


@_scenario("queue_stuck_flag_off", "«Использовать для документов ИМ» off: QUEUED, fnState DISABLED")
async def _flag_off(run: ScenarioRun) -> None:
    async def flag(*, on: bool) -> None:
        view = await run.cabinet("PATCH", run.point, {"internetDocsEnabled": on})
        run.note(f"cabinet: internetDocsEnabled {on}", {"fnState": view["fnState"]})

    await _stuck_until(run, lambda: flag(on=False), lambda: flag(on=True))


@_scenario("queue_stuck_offline", "the till has no internet: QUEUED, drains when back")
async def _offline(run: ScenarioRun) -> None:
    await _stuck_until(
        run,
        lambda: run.till("set", {"online": False}),
        lambda: run.till("set", {"online": True}),
    )


@_scenario("queue_stuck_power_saving", "power saving on: the till stops polling")
async def _power_saving(run: ScenarioRun) -> None:
    await _stuck_until(
        run,
        lambda: run.till("set", {"power_saving": True}),
        lambda: run.till("set", {"power_saving": False}),
    )


@_scenario(
    "queue_stuck_behind_failed_receipt",
    "stop-on-errors: a FAILED document holds the queue until it is re-driven",
)
async def _behind_failed(run: ScenarioRun) -> None:
    await run.cabinet("PATCH", run.point, {"stopOnErrors": True})
    run.note("cabinet: stopOnErrors on")
    try:
        await run.till("fault.inject", {"name": "fn.storage_exhausted", "count": 1})
        failing = run.sale(10.0)
        await run.post(failing)
        await run.wait_for(failing["id"], "FAILED")
        behind = run.sale(11.0)
        await run.post(behind)
        await RealClock().pace(1.0)
        run.expect("document behind it", (await run.status(behind["id"]))["status"], "QUEUED")
        await run.cabinet("POST", f"{run.point}/documents/{failing['id']}/redrive")
        run.note("cabinet: «Провести повторно»")
        await run.wait_for(failing["id"], "COMPLETED")
        await run.wait_for(behind["id"], "COMPLETED")
    finally:
        await run.cabinet("PATCH", run.point, {"stopOnErrors": False})


@_scenario("error_storage_exhausted", "fault fn.storage_exhausted: «Исчерпан ресурс хранения ФН»")
async def _storage(run: ScenarioRun) -> None:
    await run.till("fault.inject", {"name": "fn.storage_exhausted", "count": 1})
    await _failure(run, run.sale(), FN + "Исчерпан ресурс хранения ФН", "FN_MEMORY_OVERFLOW")


@_scenario("error_fn_expired", "fault fn.expired: «Исчерпан ресурс КС»")
async def _expired(run: ScenarioRun) -> None:
    await run.till("fault.inject", {"name": "fn.expired", "count": 1})
    await _failure(run, run.sale(), FN + "Исчерпан ресурс КС", "FN_EXPIRED")


@_scenario("error_pickup_window", "«За 5 минут» and the till offline: 235 s, then FAILED")
async def _pickup(run: ScenarioRun) -> None:
    await run.cabinet("PATCH", run.point, {"pickupWindow": "5min"})
    run.note("cabinet: pickupWindow 5min")
    await run.till("set", {"online": False})
    try:
        doc = run.sale(20.0)
        await run.post(doc)
        await run.advance("235s")
        status = await run.wait_for(doc["id"], "FAILED")
        run.expect(
            "failureInfo",
            status.get("failureInfo"),
            {
                "type": "NON_FN_FAILURE",
                "message": "POS doesn't connect for document within 235 seconds",
            },
        )
        run.expect(
            "shop side",
            (await run.detail(doc["id"]))["shopMessage"],
            "Касса не ответила на запрос в течение 5 минут",
        )
    finally:
        await run.till("set", {"online": True})
        await run.cabinet("PATCH", run.point, {"pickupWindow": "3days"})


@_scenario("error_fn_disconnected", "fault fn.disconnected: «Сетевой поток не инициализирован»")
async def _disconnected(run: ScenarioRun) -> None:
    await run.till("fault.inject", {"name": "fn.disconnected"})
    try:
        await _failure(
            run, run.sale(), FN + "Сетевой поток не инициализирован", "FN_GENERIC_FAILURE"
        )
    finally:
        await run.till("fault.clear", {"name": "fn.disconnected"})


@_scenario("error_tax_system", "taxMode PATENT: «СНО товара не была указана при регистрации ККТ»")
async def _tax(run: ScenarioRun) -> None:
    text = FN + "СНО товара не была указана при регистрации ККТ"
    await _failure(run, run.sale(taxMode="PATENT"), text, "FN_GENERIC_FAILURE")


@_scenario("error_negative", "a negative price: «Negative»")
async def _negative(run: ScenarioRun) -> None:
    doc = run.sale(10.0)
    doc["inventPositions"].append(
        {"name": "Возврат тары", "price": -2.5, "quantity": 1, "vatTag": 1105}
    )
    doc["moneyPositions"][0]["sum"] = 7.5
    await _failure(run, doc, FN + "Negative", "NON_FN_FAILURE")


@_scenario("error_no_contact", "no e-mail on an electronic receipt")
async def _no_contact(run: ScenarioRun) -> None:
    text = FN + "Телефон или эл. адрес покупателя"
    await _failure(run, run.sale(email=""), text, "NON_FN_FAILURE")


@_scenario("error_pending_timeout", "results lost: FAILED after 15 minutes, the late success wins")
async def _pending(run: ScenarioRun) -> None:
    await run.till("fault.inject", {"name": "cloud.drop_result"})
    try:
        doc = run.sale(10.0)
        await run.post(doc)
        await run.wait_for(doc["id"], "PENDING")
        await RealClock().pace(1.0)
        await run.advance("15m")
        status = await run.wait_for(doc["id"], "FAILED")
        run.expect(
            "failureInfo",
            status.get("failureInfo"),
            {
                "type": "NON_FN_FAILURE",
                "message": "Касса не подтвердила фискализацию документа в течение 15 минут",
            },
        )
    finally:
        await run.till("fault.clear", {"name": "cloud.drop_result"})
    await run.wait_for(doc["id"], "COMPLETED")


@_scenario("error_wrong_argument", "agent data on a non-agent till: «Неправильный аргумент»")
async def _wrong_argument(run: ScenarioRun) -> None:
    doc = run.sale(10.0)
    doc["inventPositions"][0]["agentInfo"] = {"types": ["commission_agent"]}
    await _failure(run, doc, FN + "Неправильный аргумент", "FN_GENERIC_FAILURE")


@_scenario("shop_and_counter_shift_numbering", "shift_mode separate: OFD and till app numbers")
async def _shifts(run: ScenarioRun) -> None:
    await run.till("shift.close")
    await run.till("set", {"shift_mode": "separate"})
    try:
        doc = run.sale(10.0)
        await run.post(doc)
        await run.wait_for(doc["id"], "COMPLETED")
        await run.till("sell", {"total_kopecks": 50000})
        await run.till("shift.close")
    finally:
        await run.till("set", {"shift_mode": "shared"})


@_scenario("double_integration_warns", "two clientIds send the same docNum and sum")
async def _double(run: ScenarioRun) -> None:
    service = (run.ready["service_login"], run.ready["service_password"])
    creds = []
    for client in ("bitrix", "yandex-kassa"):
        answer = await run.http.post(
            f"{run.ready['store_api']}/v1/associate/{run.ready['retail_point_id']}",
            params={"clientId": client},
            auth=service,
        )
        body = answer.json()
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, body.get("message", ""))
        creds.append((body["userName"], body["password"]))
        run.note(f"associate clientId {client}", {"userName": body["userName"]})
    num = f"ORDER-{uuid.uuid4().hex[:8]}"
    first, second = run.sale(990.0, docNum=num), run.sale(990.0, docNum=num)
    await run.post(first, auth=creds[0])
    await run.post(second, auth=creds[1])
    detail = await run.detail(second["id"])
    run.expect("possibleDuplicateOf", detail["possibleDuplicateOf"], first["id"])
    run.note("cabinet warnings", detail["warnings"])


async def run_scenario(
    name: str,
    ready: dict[str, Any],
    *,
    wait: float = 60.0,
) -> ScenarioRun:
    """Run scenario ``name`` against the installation of ``ready`` (the ready-file).

    Raises:
        ConfigError: an unknown scenario, or the installation lacks what it needs.
    """
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ConfigError(f"unknown scenario {name!r} (see `kkt-emulator scenario list`)")
    async with httpx.AsyncClient(timeout=30.0) as http:
        url = ready.get("mqtt")
        if not url:
            run = ScenarioRun(ready, http, None, None, wait)
            await _guarded(scenario, run)
            return run
        async with ControlClient(str(url)) as control:
            ids = control.select(await control.tills(), None)
            run = ScenarioRun(ready, http, control, ids[0], wait)
            await _guarded(scenario, run)
            return run


async def _guarded(scenario: Scenario, run: ScenarioRun) -> None:
    try:
        await scenario.body(run)
    except EmulatorError as exc:
        run.note("stopped", str(exc), ok=False)
