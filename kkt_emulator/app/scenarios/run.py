"""A scenario in progress: the steps it took, what it saw, and the checks it made.

:class:`ScenarioRun` is what a support case's definition is written against: it posts documents
as the shop, reads statuses, calls the cabinet as support and sends commands to the till, all
through an :class:`~kkt_emulator.app.scenarios.installation.Installation`, and records every step
(:class:`Step`). A check that does not hold is recorded as a step that is not ok; a wait that runs
out, or a check the rest of the case cannot go on without, stops the case with
:class:`ScenarioCheckError`. A case that cannot check something on an installation fails: it never
reports ok on a check it did not make.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from kkt_emulator.app.scenarios.installation import Installation
from kkt_emulator.app.stack import sale_document
from kkt_emulator.clock import RealClock
from kkt_emulator.errors import CloudError, ConfigError, EmulatorError
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.state import ArchivedDocument
from kkt_emulator.fnio.archive import SqliteStore

__all__ = ["FINAL", "FN", "Hook", "ScenarioCheckError", "ScenarioRun", "Step"]

#: The prefix of every till error text (support-cases.md §5).
FN = "Сообщение ФН об ошибке: "
FINAL = ("COMPLETED", "FAILED")
#: The drive archive's file name in a till's state directory (and in its snapshots).
DRIVE_ARCHIVE = "drive.sqlite3"

#: Seconds without a poll after which a stopped till counts as settled.
SETTLE = 0.3

Hook = Callable[["ScenarioRun"], Awaitable[None]]


class ScenarioCheckError(EmulatorError):
    """A scenario saw something else than its support case says, and cannot go on."""


@dataclass(frozen=True, slots=True)
class Step:
    """One thing a scenario did, and what it saw."""

    action: str
    result: Any = None
    ok: bool = True

    def to_json(self) -> dict[str, Any]:
        """``{"action", "ok", "result"}``."""
        return {"action": self.action, "ok": self.ok, "result": self.result}


def _shown(status: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a store status a step shows."""
    shown = {k: status[k] for k in ("status", "failureInfo", "message") if status.get(k)}
    info = status.get("fiscalInfo")
    if info:
        shown["fiscalInfo"] = {k: info.get(k) for k in ("shiftNumber", "fnDocNumber", "fnDocMark")}
    return shown


@dataclass(slots=True)
class ScenarioRun:
    """A scenario in progress against one installation: the steps so far.

    Args:
        installation: where the scenario runs.
        wait: seconds of real time to wait for each expected status or condition.
        poll: seconds of real time between two looks while waiting.
        hooks: what a test looks at when the case reaches a :meth:`checkpoint` of that name.
    """

    installation: Installation
    wait: float = 60.0
    poll: float = 0.05
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    expected_ok: bool = True
    #: What the case made (documents, statuses), by name, for a test's own further checks.
    facts: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ recording

    def note(self, action: str, result: Any = None, *, ok: bool = True) -> Any:
        """Record a step; returns ``result``."""
        self.steps.append(Step(action, result, ok))
        if not ok:
            self.expected_ok = False
        return result

    def expect(self, action: str, seen: Any, wanted: Any) -> bool:
        """Record a check that ``seen`` equals ``wanted``; returns whether it held."""
        held: bool = seen == wanted
        self.note(f"{action}: expect {wanted!r}", seen, ok=held)
        return held

    def check(self, action: str, seen: Any, *, held: bool) -> bool:
        """Record a check whose condition the caller evaluated; returns ``held``."""
        self.note(action, seen, ok=held)
        return held

    def require(self, action: str, seen: Any, wanted: Any) -> None:
        """Like :meth:`expect`, and stop the scenario when it does not hold.

        Raises:
            ScenarioCheckError: ``seen`` is not ``wanted``.
        """
        if not self.expect(action, seen, wanted):
            raise ScenarioCheckError(f"{action}: saw {seen!r}, not {wanted!r}")

    def explain(self) -> list[dict[str, Any]]:
        """Every step as JSON (what a failing test prints)."""
        return [step.to_json() for step in self.steps]

    # ------------------------------------------------------------------ the installation

    @property
    def ready(self) -> dict[str, Any]:
        """The installation's ready-file facts."""
        return self.installation.ready

    @property
    def point(self) -> str:
        """The cabinet path of the installation's first retail point."""
        return f"/retail-points/{self.ready['retail_point_id']}"

    @property
    def shop(self) -> tuple[str, str]:
        """The shop's credentials (the first retail point's)."""
        return (self.ready["login"], self.ready["password"])

    def sale(self, total: float = 45.5, **fields: Any) -> dict[str, Any]:
        """A valid shop document with a fresh id and a fresh ``docNum``."""
        fields.setdefault("docNum", f"ORDER-{uuid.uuid4().hex[:8]}")
        return sale_document(total, **fields)

    async def post(
        self, doc: Mapping[str, Any], auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """POST /v2/doc as the shop; returns the DocumentStatus.

        Raises:
            CloudError: the store API refused it (its status and message).
        """
        answer = await self.installation.http.post(
            f"{self.ready['store_api']}/v2/doc", json=dict(doc), auth=auth or self.shop
        )
        body: dict[str, Any] = answer.json()
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, body.get("message", ""))
        self.note(f"shop posts document {doc['id']}", {"status": body["status"]})
        return body

    async def status(self, doc_id: str) -> dict[str, Any]:
        """GET /v1/doc/{id}/status as the shop.

        Raises:
            CloudError: the store API refused it.
        """
        answer = await self.installation.http.get(
            f"{self.ready['store_api']}/v1/doc/{doc_id}/status", auth=self.shop
        )
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, answer.text)
        body: dict[str, Any] = answer.json()
        return body

    async def statuses(self, docs: list[dict[str, Any]]) -> list[str]:
        """The current status of each of ``docs``."""
        return [(await self.status(d["id"]))["status"] for d in docs]

    async def wait_for(self, doc_id: str, *statuses: str) -> dict[str, Any]:
        """Poll the document until one of ``statuses`` (default: a final one).

        Raises:
            ScenarioCheckError: not reached within the run's wait (recorded as a failed step).
        """
        wanted = statuses or FINAL
        clock = RealClock()
        deadline = clock.monotonic() + self.wait
        while True:
            status = await self.status(doc_id)
            reached = status["status"] in wanted
            if reached or clock.monotonic() > deadline:
                self.note(f"document {doc_id} is {status['status']}", _shown(status), ok=reached)
                if not reached:
                    raise ScenarioCheckError(
                        f"document {doc_id} is {status['status']}, not {'/'.join(wanted)}"
                    )
                return status
            await clock.pace(self.poll)

    async def until(self, what: str, predicate: Callable[[], Awaitable[bool]]) -> None:
        """Wait until ``predicate`` holds.

        Raises:
            ScenarioCheckError: it did not within the run's wait (recorded as a failed step).
        """
        clock = RealClock()
        deadline = clock.monotonic() + self.wait
        while not await predicate():
            if clock.monotonic() > deadline:
                self.note(what, "not reached in time", ok=False)
                raise ScenarioCheckError(f"{what}: not reached in time")
            await clock.pace(self.poll)
        self.note(what)

    async def cabinet(self, method: str, path: str, body: Any = None) -> Any:
        """Call the cabinet API as support; returns the JSON answer.

        Raises:
            CloudError: the cabinet refused it.
        """
        answer = await self.installation.http.request(
            method, f"{self.ready['cabinet_api']}{path}", json=body
        )
        if answer.status_code >= 400:
            raise CloudError(answer.status_code, answer.text)
        return answer.json() if answer.content else None

    async def point_settings(self, **values: Any) -> dict[str, Any]:
        """PATCH the first retail point in the cabinet; returns its view."""
        view: dict[str, Any] = await self.cabinet("PATCH", self.point, values)
        self.note(f"cabinet: retail point {values}")
        return view

    async def detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's document detail."""
        detail: dict[str, Any] = await self.cabinet("GET", f"{self.point}/documents/{doc_id}")
        return detail

    async def document_action(self, doc_id: str, action: str) -> Any:
        """A cabinet action on a document (``redrive``, ``mark-done``)."""
        result = await self.cabinet("POST", f"{self.point}/documents/{doc_id}/{action}")
        self.note(f"cabinet: {action} {doc_id}")
        return result

    async def till(self, command: str, args: Mapping[str, Any] | None = None) -> Any:
        """A control-plane command to the first till; returns its result."""
        result = await self.installation.command(command, args)
        self.note(f"till: {command} {dict(args) if args else ''}".rstrip(), result)
        return result

    async def till_state(self) -> dict[str, Any]:
        """The first till's state (the ``status`` command), not recorded as a step."""
        state: dict[str, Any] = await self.installation.command("status")
        return state

    async def polls(self) -> int:
        """How many times the first till has polled the cloud."""
        polls: int = (await self.till_state())["counters"]["polls"]
        return polls

    async def settled(self) -> None:
        """Wait until a poll cycle the till began before it was stopped has ended.

        A till stopped (offline, power saving) in the middle of a cycle still finishes it: it may
        lease a document posted meanwhile. Settled means no poll counted for a while.
        """
        clock = RealClock()
        deadline = clock.monotonic() + self.wait
        polls = await self.polls()
        while True:
            await clock.pace(SETTLE)
            now = await self.polls()
            if now == polls:
                return
            if clock.monotonic() > deadline:
                self.note("the till stops polling", now, ok=False)
                raise ScenarioCheckError("the till stops polling: not reached in time")
            polls = now

    async def polled(self, times: int) -> None:
        """Wait until the till has polled ``times`` more times (and so was handed nothing)."""
        start = await self.polls()

        async def enough() -> bool:
            return await self.polls() >= start + times

        await self.until(f"the till polls {times} more times", enough)

    async def advance(self, delta: str | timedelta) -> None:
        """Move the installation's manual clock (tills and cloud share it).

        Raises:
            ConfigError: the installation does not run on the manual clock.
        """
        if self.ready.get("clock") != "manual":
            raise ConfigError("this scenario moves business time: start `up --clock manual`")
        if isinstance(delta, timedelta):
            delta = repr(delta.total_seconds())
        await self.till("clock.advance", {"delta": delta})

    async def advance_past(self, deadline: str) -> None:
        """Move the manual clock one minute past the till's ``deadline`` (``clock.advance --to``).

        Raises:
            ConfigError: the installation does not run on the manual clock.
        """
        if self.ready.get("clock") != "manual":
            raise ConfigError("this scenario moves business time: start `up --clock manual`")
        await self.till("clock.advance", {"to": deadline})

    async def pause(self, seconds: float) -> None:
        """Let ``seconds`` of real time pass (the till keeps working meanwhile)."""
        await RealClock().pace(seconds)

    async def drive_receipts(self) -> list[ArchivedDocument]:
        """Every receipt in the first till's drive archive, oldest first.

        Read from a copy the till makes of its databases (the ``snapshot`` command): the same
        way for a live installation and an in-process one, without touching the till's files.
        """
        # A few small local files: not worth a thread.
        with tempfile.TemporaryDirectory(prefix="kkt-scenario-") as tmp:
            await self.installation.command("snapshot", {"path": tmp})
            store = SqliteStore(Path(tmp) / DRIVE_ARCHIVE)
            try:
                documents = store.documents()
            finally:
                store.close()
        return [doc for doc in documents if doc.doc_code == DocCode.RECEIPT]

    async def receipt_fds(self) -> list[int]:
        """The fiscal document numbers of every receipt in the first till's drive archive."""
        return [doc.fd for doc in await self.drive_receipts()]

    async def checkpoint(self, name: str) -> None:
        """Let a test look at the installation at this point of the case (``hooks[name]``)."""
        hook = self.hooks.get(name)
        if hook is not None:
            await hook(self)
