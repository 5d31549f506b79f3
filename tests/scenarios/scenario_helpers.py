"""Shared pieces of the support-case tests: run a case in-process, waits, the drive archive.

Every test runs its case's one definition (:mod:`kkt_emulator.app.scenarios`, the same one
``kkt-emulator scenario run`` uses) against a
:class:`~kkt_emulator.testing.stack.StackHarness` through an
:class:`~kkt_emulator.app.scenarios.InProcessInstallation`, then adds what only a test can look at
(the drive's archive, the OFD stand-in, the till's internals).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from kkt_emulator.app.scenarios import InProcessInstallation, ScenarioRun, run_on
from kkt_emulator.app.scenarios.registry import ScenarioBody
from kkt_emulator.app.scenarios.run import Hook
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.testing.stack import StackHarness

__all__ = ["drive_receipts", "extra_run", "run_case", "until"]

#: Seconds a test waits for each status (the harness's own default).
WAIT = 10.0


def explained(run: ScenarioRun) -> str:
    """The run's steps, for an assertion message."""
    return json.dumps(run.explain(), ensure_ascii=False, default=str, indent=1)


async def run_case(kkt: StackHarness, case: str | ScenarioBody, **hooks: Hook) -> ScenarioRun:
    """Run a support case's definition in-process; fail the test unless every check held."""
    async with InProcessInstallation.open(kkt.stack) as installation:
        run = await run_on(installation, case, wait=WAIT, poll=0.02, hooks=hooks)
    assert run.expected_ok, explained(run)
    return run


@asynccontextmanager
async def extra_run(kkt: StackHarness) -> AsyncIterator[ScenarioRun]:
    """A run for a test's own further steps; fails the test unless every check held."""
    async with InProcessInstallation.open(kkt.stack) as installation:
        run = ScenarioRun(installation, wait=WAIT, poll=0.02)
        yield run
    assert run.expected_ok, explained(run)


async def until(
    kkt: StackHarness, predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0
) -> None:
    """Wait (real time, paced) until ``predicate`` holds; fail the test after ``seconds``."""
    deadline = kkt.clock.monotonic() + seconds
    while not await predicate():
        assert kkt.clock.monotonic() < deadline, "condition not reached in time"
        await kkt.clock.pace(0.05)


def drive_receipts(kkt: StackHarness) -> list[int]:
    """Fiscal document numbers of every receipt in the first till's drive archive."""
    drive = kkt.till.drive
    assert drive is not None
    return [
        fd
        for fd in range(1, drive.state.last_fd + 1)
        if (doc := drive.store.get_document(fd)) is not None and doc.doc_code == DocCode.RECEIPT
    ]
