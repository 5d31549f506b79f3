"""The timer task outlives failures: a failing pass or a callback outcome that cannot be recorded
is logged with its traceback, and a later pass does the work.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cloud_helpers import doc_status, minimal_doc, post_doc
from structlog.testing import capture_logs

from kkt_emulator.cloud.texts import PENDING_TIMEOUT_TEXT

if TYPE_CHECKING:
    import httpx
    from cloud_helpers import FakeShop, FakeTill, Point

    from kkt_emulator.clock import ManualClock
    from kkt_emulator.cloud.app import Cloud
    from kkt_emulator.cloud.service import CallbackRequest
    from kkt_emulator.cloud.settings import CloudSettings


@pytest.fixture
def db_path(any_db: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (the storage contract, D73)."""
    return any_db


@pytest.fixture
def settings(settings: CloudSettings) -> CloudSettings:
    return dataclasses.replace(settings, timer_retry_seconds=0.01)


async def test_a_failing_pass_is_logged_and_the_15_minute_rule_still_fires(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = minimal_doc()
    await post_doc(http, point, doc)
    assert [d["docId"] for d in await till.lease()] == [doc["id"]]

    real_sweep = cloud.service.sweep
    calls: list[datetime] = []

    def sweep_failing_once(now: datetime) -> int:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        return real_sweep(now)

    monkeypatch.setattr(cloud.service, "sweep", sweep_failing_once)
    with capture_logs() as logs:
        await clock.advance(timedelta(minutes=15))  # wakes the timer task at the lease deadline
        for _ in range(500):
            if (await doc_status(http, point, doc["id"]))["status"] == "FAILED":
                break
            await asyncio.sleep(0.01)

    failures = [e for e in logs if e["event"] == "timer_pass_failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "error"
    assert failures[0]["exc_info"] is True
    assert len(calls) >= 2  # a later pass ran
    status = await doc_status(http, point, doc["id"])
    assert status["status"] == "FAILED"
    assert status["failureInfo"] == {"type": "NON_FN_FAILURE", "message": PENDING_TIMEOUT_TEXT}
    assert status["timeStatusChanged"] == "2024-05-01T09:15:00+00:00"  # at its own deadline


async def test_a_callback_outcome_that_cannot_be_recorded_is_logged_and_tried_again(
    *,
    cloud: Cloud,
    http: httpx.AsyncClient,
    point: Point,
    till: FakeTill,
    shop: FakeShop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_finished = cloud.service.callback_finished
    calls: list[CallbackRequest] = []

    def finished_failing_once(request: CallbackRequest, *, delivered: bool, error: str) -> None:
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError("injected failure")
        real_finished(request, delivered=delivered, error=error)

    monkeypatch.setattr(cloud.service, "callback_finished", finished_failing_once)
    doc = minimal_doc(responseURL="https://shop.example/callback")
    await post_doc(http, point, doc)
    with capture_logs() as logs:
        await till.succeed((await till.lease())[0])
        await cloud.wait_idle()

    failures = [e for e in logs if e["event"] == "callback_result_not_recorded"]
    assert len(failures) == 1
    assert failures[0]["doc_id"] == doc["id"]
    assert failures[0]["exc_info"] is True
    assert len(shop.requests) == 2  # the attempt stayed due and was made again
    assert (await doc_status(http, point, doc["id"]))["status"] == "COMPLETED"


async def test_a_write_that_makes_nothing_due_costs_no_sweep(
    *, cloud: Cloud, http: httpx.AsyncClient, point: Point, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sweep = cloud.service.sweep
    calls: list[datetime] = []

    def counting_sweep(now: datetime) -> int:
        calls.append(now)
        return real_sweep(now)

    monkeypatch.setattr(cloud.service, "sweep", counting_sweep)
    for _ in range(3):
        await post_doc(http, point, minimal_doc())  # each wakes the timer task (D61)
        await cloud.wait_idle()
    assert calls == []
