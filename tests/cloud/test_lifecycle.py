"""The document lifecycle transition table: every row, illegal steps, and random event sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.lifecycle import (
    AlreadyFiscalisedError,
    CallbackKind,
    CallbackResult,
    Dispatch,
    DocState,
    Failure,
    FailureInfo,
    FailureType,
    IllegalTransitionError,
    Lease,
    LiftBlock,
    MarkDone,
    PendingTimeout,
    PickupTimeout,
    Requeue,
    Status,
    Success,
    new_document,
    step,
)
from kkt_emulator.cloud.texts import PENDING_TIMEOUT_TEXT, PICKUP_TIMEOUT_TEXT

if TYPE_CHECKING:
    from collections.abc import Callable

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
FN_FAIL = FailureInfo(
    FailureType.FN_MEMORY_OVERFLOW, "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН"
)


def leased(*, has_callback: bool = False) -> DocState:
    return step(new_document(T0, has_callback=has_callback), Lease("L1"), T0)


def test_accept_starts_pickup_deadline_only_in_5min_mode() -> None:
    assert new_document(T0, has_callback=False).pickup_deadline is None
    doc = new_document(T0, has_callback=False, pickup_window=lc.PICKUP_WINDOW_5MIN)
    assert doc.status is Status.QUEUED
    assert doc.pickup_deadline == T0 + timedelta(seconds=235)


def test_lease_sets_pending_and_cancels_pickup() -> None:
    doc = new_document(T0, has_callback=False, pickup_window=lc.PICKUP_WINDOW_5MIN)
    doc = step(doc, Lease("L1"), T0 + timedelta(seconds=5))
    assert doc.status is Status.PENDING
    assert doc.pickup_deadline is None
    assert doc.lease_expires_at == T0 + timedelta(minutes=15, seconds=5)


def test_success_without_callback_completes() -> None:
    doc = step(leased(), Success("L1"), T0)
    assert doc.status is Status.PRINTED
    doc = step(doc, Dispatch(), T0)
    assert doc.status is Status.COMPLETED
    assert not doc.completed_with_callback


def test_success_with_callback_waits_then_completes() -> None:
    doc = step(step(leased(has_callback=True), Success("L1"), T0), Dispatch(), T0)
    assert doc.status is Status.WAIT_FOR_CALLBACK
    assert doc.callback is CallbackKind.SUCCESS
    assert doc.callback_next_at == T0
    doc = step(doc, CallbackResult(delivered=False), T0)
    assert doc.status is Status.WAIT_FOR_CALLBACK
    assert doc.callback_next_at == T0 + timedelta(minutes=1)
    doc = step(doc, CallbackResult(delivered=True), T0 + timedelta(minutes=1))
    assert doc.status is Status.COMPLETED
    assert doc.completed_with_callback
    assert doc.callback is None


def test_callback_schedule_is_77_attempts_over_71h03m() -> None:
    offsets = []
    n = 0
    while lc.callback_offset(n) <= lc.CALLBACK_WINDOW:
        offsets.append(lc.callback_offset(n))
        n += 1
    assert len(offsets) == 77
    assert [int(o.total_seconds() // 60) for o in offsets[:8]] == [0, 1, 3, 7, 15, 31, 63, 123]
    assert offsets[-1] == timedelta(hours=71, minutes=3)


def test_callback_gives_up_after_window() -> None:
    doc = step(step(leased(has_callback=True), Success("L1"), T0), Dispatch(), T0)
    for _ in range(77):
        assert doc.callback_next_at is not None
        doc = step(doc, CallbackResult(delivered=False), doc.callback_next_at)
    assert doc.callback_next_at is None
    assert doc.status is Status.WAIT_FOR_CALLBACK


def test_till_failure_blocks_with_stop_on_errors_and_calls_back() -> None:
    doc = step(leased(has_callback=True), Failure("L1", FN_FAIL, stop_on_errors=True), T0)
    assert doc.status is Status.FAILED
    assert doc.failure == FN_FAIL
    assert doc.blocking
    assert doc.callback is CallbackKind.FAILED
    doc = step(doc, CallbackResult(delivered=True), T0)
    assert doc.status is Status.FAILED
    assert doc.callback is None
    doc = step(doc, LiftBlock(), T0)
    assert not doc.blocking


def test_failure_under_another_lease_is_illegal() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        step(leased(), Failure("other", FN_FAIL), T0)
    assert info.value.status is Status.PENDING
    assert info.value.event is lc.EventKind.FAILURE
    assert "PENDING" in str(info.value)


def test_pending_timeout_needs_the_deadline() -> None:
    doc = leased()
    with pytest.raises(IllegalTransitionError):
        step(doc, PendingTimeout(), T0 + timedelta(minutes=14))
    doc = step(doc, PendingTimeout(), T0 + timedelta(minutes=15))
    assert doc.status is Status.FAILED
    assert doc.failure == FailureInfo(FailureType.NON_FN_FAILURE, PENDING_TIMEOUT_TEXT)


def test_pickup_timeout() -> None:
    doc = new_document(T0, has_callback=False, pickup_window=lc.PICKUP_WINDOW_5MIN)
    doc = step(doc, PickupTimeout(stop_on_errors=True), T0 + timedelta(seconds=235))
    assert doc.status is Status.FAILED
    assert doc.failure == FailureInfo(FailureType.NON_FN_FAILURE, PICKUP_TIMEOUT_TEXT)
    assert doc.blocking
    assert doc.changed_at == T0 + timedelta(seconds=235)


def test_requeue_and_mark_done() -> None:
    failed = step(leased(has_callback=True), Failure("L1", FN_FAIL, stop_on_errors=True), T0)
    requeued = step(failed, Requeue(lc.PICKUP_WINDOW_5MIN), T0)
    assert requeued.status is Status.REQUEUED
    assert requeued.failure is None
    assert not requeued.blocking
    assert requeued.callback is None
    assert requeued.pickup_deadline == T0 + lc.PICKUP_WINDOW_5MIN
    done = step(failed, MarkDone(), T0)
    assert done.status is Status.COMPLETED
    assert done.failure == FN_FAIL
    assert not done.fiscalised
    with pytest.raises(IllegalTransitionError):
        step(requeued, Requeue(), T0)
    with pytest.raises(IllegalTransitionError):
        step(requeued, MarkDone(), T0)


@pytest.mark.parametrize(
    "prepare",
    [
        lambda d: step(d, PendingTimeout(), T0 + timedelta(minutes=15)),  # FAILED
        lambda d: step(step(d, PendingTimeout(), T0 + timedelta(minutes=15)), Requeue(), T0),
        lambda d: step(
            step(step(d, PendingTimeout(), T0 + timedelta(minutes=15)), Requeue(), T0),
            Lease("L2"),
            T0,
        ),
        lambda d: step(step(d, PendingTimeout(), T0 + timedelta(minutes=15)), MarkDone(), T0),
    ],
    ids=["failed", "requeued", "leased-again", "marked-done"],
)
def test_late_success_wins(prepare: Callable[[DocState], DocState]) -> None:
    doc = prepare(leased())
    doc = step(doc, Success("L1"), T0 + timedelta(minutes=20))
    assert doc.status is Status.PRINTED
    assert doc.fiscalised
    assert doc.failure is None
    assert doc.lease_id is None


def test_second_success_is_an_alarm() -> None:
    doc = step(leased(), Success("L1"), T0)
    with pytest.raises(AlreadyFiscalisedError):
        step(doc, Success("L1"), T0)


def test_success_for_never_leased_document_is_illegal() -> None:
    with pytest.raises(IllegalTransitionError):
        step(new_document(T0, has_callback=False), Success(None), T0)


def test_every_table_row_is_reachable_from_its_source_status() -> None:
    sources = {status for status, _ in lc.TRANSITIONS}
    assert Status.QUEUED in sources
    assert all(isinstance(target, Status) for target in lc.TRANSITIONS.values())


# -- random event sequences ----------------------------------------------------------------------

_events = st.one_of(
    st.builds(Lease, st.sampled_from(["A", "B", "C"])),
    st.builds(Success, st.sampled_from(["A", "B", "C", None])),
    st.builds(Failure, st.sampled_from(["A", "B", "C"]), st.just(FN_FAIL), st.booleans()),
    st.builds(PendingTimeout, st.booleans()),
    st.builds(PickupTimeout, st.booleans()),
    st.just(Dispatch()),
    st.builds(CallbackResult, st.booleans()),
    st.builds(Requeue, st.sampled_from([None, lc.PICKUP_WINDOW_5MIN])),
    st.just(MarkDone()),
    st.just(LiftBlock()),
)


@settings(max_examples=300, deadline=None)
@given(
    has_callback=st.booleans(),
    five_min=st.booleans(),
    events=st.lists(st.tuples(_events, st.integers(0, 3600)), max_size=40),
)
def test_random_sequences_keep_the_invariants(
    has_callback: bool, five_min: bool, events: list[tuple[lc.Event, int]]
) -> None:
    window = lc.PICKUP_WINDOW_5MIN if five_min else None
    doc = new_document(T0, has_callback=has_callback, pickup_window=window)
    now = T0
    fiscalisations = 0
    applied: list[lc.EventKind] = []
    for event, seconds in events:
        now += timedelta(seconds=seconds)
        try:
            after = step(doc, event, now)
        except AlreadyFiscalisedError:
            assert doc.fiscalised
            continue
        except IllegalTransitionError:
            continue
        if after.fiscalised and not doc.fiscalised:
            fiscalisations += 1
        applied.append(event.kind)
        doc = after
        assert after.changed_at <= now
    assert fiscalisations <= 1
    assert doc.fiscalised == (fiscalisations == 1)
    check_final_state(doc, applied)


def check_final_state(doc: DocState, applied: list[lc.EventKind]) -> None:
    if doc.status is Status.COMPLETED and doc.failure is not None:
        assert lc.EventKind.MARK_DONE in applied  # a recorded «Отметить как выполненный»
    if doc.status is Status.COMPLETED and not doc.fiscalised:
        assert doc.marked_done
    if doc.status is Status.FAILED:
        assert doc.failure is not None
        assert not doc.fiscalised
    if doc.status in (Status.PRINTED, Status.WAIT_FOR_CALLBACK):
        assert doc.fiscalised
        assert doc.failure is None
    if doc.blocking:
        assert doc.status is Status.FAILED
    if doc.status is Status.PENDING:
        assert doc.lease_id is not None
