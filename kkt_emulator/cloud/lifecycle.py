"""The document lifecycle (жизненный цикл документа) as one transition table, with no I/O.

Normative source: ``store-api.md`` §8.2–§8.7 (transitions T1–T14, decisions D30–D37, D44–D48).
Everything that changes a document's status or its timers lives here; the service around it only
loads a :class:`DocState`, calls :func:`step` with the current business time and stores the result.

An event that matches no row of :data:`TRANSITIONS` (or fails the row's guard) raises
:class:`IllegalTransitionError`, naming the state and the event; the caller logs it and changes
nothing, as §8.3 requires.

Exceptions::

    EmulatorError
    └── IllegalTransitionError(status, event)  the event is not allowed in this state
        └── AlreadyFiscalisedError             a second success for a fiscalised document (D36)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from kkt_emulator.cloud.texts import PENDING_TIMEOUT_TEXT, PICKUP_TIMEOUT_TEXT
from kkt_emulator.errors import EmulatorError

__all__ = [
    "CALLBACK_WINDOW",
    "LEASE_DURATION",
    "PICKUP_WINDOW_5MIN",
    "TRANSITIONS",
    "AlreadyFiscalisedError",
    "CallbackKind",
    "CallbackResult",
    "Dispatch",
    "DocState",
    "Event",
    "EventKind",
    "Failure",
    "FailureInfo",
    "FailureType",
    "IllegalTransitionError",
    "Lease",
    "LiftBlock",
    "MarkDone",
    "PendingTimeout",
    "PickupTimeout",
    "Requeue",
    "Status",
    "Success",
    "callback_offset",
    "new_document",
    "replace",
    "step",
]

# D35: a lease (and the PENDING status) lasts 15 minutes.
LEASE_DURATION: Final = timedelta(minutes=15)
# D37: «За 5 минут» mode fails a document not leased within 235 seconds.
PICKUP_WINDOW_5MIN: Final = timedelta(seconds=235)
# D44: no callback attempt starts more than 72 hours after the first.
CALLBACK_WINDOW: Final = timedelta(hours=72)


class Status(StrEnum):
    """Document status (v2 doc §3.11), with the cabinet's Russian names in comments."""

    QUEUED = "QUEUED"  # В очереди
    PENDING = "PENDING"  # В обработке
    PRINTED = "PRINTED"  # Фискализирован
    WAIT_FOR_CALLBACK = "WAIT_FOR_CALLBACK"  # Доставка ответа на сайт
    COMPLETED = "COMPLETED"  # Выполнен
    FAILED = "FAILED"  # Ошибка
    REQUEUED = "REQUEUED"  # Повторно в очереди


class FailureType(StrEnum):
    """``FailureInfo.type`` (v2 doc §3.13)."""

    FN_MEMORY_OVERFLOW = "FN_MEMORY_OVERFLOW"
    FN_EXPIRED = "FN_EXPIRED"
    FN_GENERIC_FAILURE = "FN_GENERIC_FAILURE"
    NON_FN_FAILURE = "NON_FN_FAILURE"


class CallbackKind(StrEnum):
    """Which callback a document is delivering (D41, D46)."""

    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass(frozen=True)
class FailureInfo:
    """Why a document failed: the ``failureInfo`` object of the store API."""

    type: FailureType
    message: str


class EventKind(StrEnum):
    """The events of the transition table."""

    LEASE = "lease"
    SUCCESS = "success"
    LATE_SUCCESS = "late_success"
    FAILURE = "failure"
    PENDING_TIMEOUT = "pending_timeout"
    PICKUP_TIMEOUT = "pickup_timeout"
    DISPATCH = "dispatch"
    CALLBACK_RESULT = "callback_result"
    REQUEUE = "requeue"
    MARK_DONE = "mark_done"
    LIFT_BLOCK = "lift_block"


@dataclass(frozen=True)
class Lease:
    """A till leases the document (T2)."""

    lease_id: str
    kind: EventKind = dataclasses.field(default=EventKind.LEASE, init=False)


@dataclass(frozen=True)
class Success:
    """A till reports success under ``lease_id`` (T3, or a late result T13).

    ``dispatch_delay`` is the test setting ``callback_dispatch_delay`` of D31.
    """

    lease_id: str | None
    dispatch_delay: timedelta = timedelta(0)
    kind: EventKind = dataclasses.field(default=EventKind.SUCCESS, init=False)


@dataclass(frozen=True)
class Failure:
    """A till reports failure under ``lease_id`` (T4)."""

    lease_id: str | None
    failure: FailureInfo
    stop_on_errors: bool = False
    kind: EventKind = dataclasses.field(default=EventKind.FAILURE, init=False)


@dataclass(frozen=True)
class PendingTimeout:
    """The 15-minute PENDING rule fires (T9, D35)."""

    stop_on_errors: bool = False
    kind: EventKind = dataclasses.field(default=EventKind.PENDING_TIMEOUT, init=False)


@dataclass(frozen=True)
class PickupTimeout:
    """The 235-second pickup rule fires (T10, D37)."""

    stop_on_errors: bool = False
    kind: EventKind = dataclasses.field(default=EventKind.PICKUP_TIMEOUT, init=False)


@dataclass(frozen=True)
class Dispatch:
    """A PRINTED document moves on: to WAIT_FOR_CALLBACK or COMPLETED (T5, T6)."""

    kind: EventKind = dataclasses.field(default=EventKind.DISPATCH, init=False)


@dataclass(frozen=True)
class CallbackResult:
    """One callback attempt ended; ``delivered`` means HTTP 200 (T7, T8, D43–D46).

    ``attempted_at`` is the business time the attempt was due, which anchors the retry schedule.
    """

    delivered: bool
    kind: EventKind = dataclasses.field(default=EventKind.CALLBACK_RESULT, init=False)


@dataclass(frozen=True)
class Requeue:
    """``PUT re-queue`` or the cabinet's «Провести повторно» (T11, D33)."""

    pickup_window: timedelta | None = None
    kind: EventKind = dataclasses.field(default=EventKind.REQUEUE, init=False)


@dataclass(frozen=True)
class MarkDone:
    """The cabinet's «Отметить как выполненный» (T12, D34)."""

    kind: EventKind = dataclasses.field(default=EventKind.MARK_DONE, init=False)


@dataclass(frozen=True)
class LiftBlock:
    """Stop-on-errors was switched off: the document stops blocking (D48)."""

    kind: EventKind = dataclasses.field(default=EventKind.LIFT_BLOCK, init=False)


Event = (
    Lease
    | Success
    | Failure
    | PendingTimeout
    | PickupTimeout
    | Dispatch
    | CallbackResult
    | Requeue
    | MarkDone
    | LiftBlock
)

_S = Status
_E = EventKind

# store-api.md §8.3. Keys are (from, event); values the status reached. CALLBACK_RESULT on
# WAIT_FOR_CALLBACK goes to COMPLETED on delivery (T7) and stays otherwise (T8); the table names the
# delivered case and step() keeps the status for the other one.
TRANSITIONS: Final[dict[tuple[Status, EventKind], Status]] = {
    (_S.QUEUED, _E.LEASE): _S.PENDING,  # T2
    (_S.REQUEUED, _E.LEASE): _S.PENDING,  # T2
    (_S.PENDING, _E.SUCCESS): _S.PRINTED,  # T3
    (_S.PENDING, _E.FAILURE): _S.FAILED,  # T4
    (_S.PRINTED, _E.DISPATCH): _S.WAIT_FOR_CALLBACK,  # T5 (T6 when there is no responseURL)
    (_S.WAIT_FOR_CALLBACK, _E.CALLBACK_RESULT): _S.COMPLETED,  # T7 / T8
    (_S.FAILED, _E.CALLBACK_RESULT): _S.FAILED,  # D46: the status stays FAILED
    (_S.PENDING, _E.PENDING_TIMEOUT): _S.FAILED,  # T9
    (_S.QUEUED, _E.PICKUP_TIMEOUT): _S.FAILED,  # T10
    (_S.REQUEUED, _E.PICKUP_TIMEOUT): _S.FAILED,  # T10
    (_S.FAILED, _E.REQUEUE): _S.REQUEUED,  # T11
    (_S.FAILED, _E.MARK_DONE): _S.COMPLETED,  # T12
    (_S.FAILED, _E.LATE_SUCCESS): _S.PRINTED,  # T13
    (_S.REQUEUED, _E.LATE_SUCCESS): _S.PRINTED,  # T13
    (_S.PENDING, _E.LATE_SUCCESS): _S.PRINTED,  # T13 (success of an earlier lease)
    (_S.COMPLETED, _E.LATE_SUCCESS): _S.PRINTED,  # T13 (after «Отметить как выполненный»)
    (_S.FAILED, _E.LIFT_BLOCK): _S.FAILED,  # D48
}


class IllegalTransitionError(EmulatorError):
    """An event that the transition table does not allow in the document's state.

    Attributes:
        status: the document's status.
        event: the event kind.
        reason: why the row does not apply.
    """

    def __init__(self, status: Status, event: EventKind, reason: str = "") -> None:
        self.status = status
        self.event = event
        self.reason = reason
        text = f"event {event.value} is not allowed in status {status.value}"
        super().__init__(f"{text}: {reason}" if reason else text)


class AlreadyFiscalisedError(IllegalTransitionError):
    """A success for a document that already has fiscal data: a double-fiscalisation alarm (D36)."""


@dataclass(frozen=True)
class DocState:
    """The lifecycle part of a stored document; the storage keeps one column per field.

    Attributes:
        status: current status.
        changed_at: time of the last status change (``timeStatusChanged``).
        has_callback: the document carries a ``responseURL``.
        fiscalised: fiscal data has been stored (at most once, D36).
        failure: ``failureInfo`` while it applies (kept after «Отметить как выполненный», D34).
        lease_id: the current lease, while PENDING.
        lease_expires_at: when the 15-minute rule fires for the current lease.
        leases: how many times the document was leased.
        pickup_deadline: when the 235-second rule fires, in «За 5 минут» mode.
        dispatch_at: when a PRINTED document moves on (D31 hold).
        callback: the callback being delivered, if any.
        callback_first_at: business time of the first attempt of the current callback.
        callback_attempts: attempts made for the current callback.
        callback_next_at: when the next attempt is due; ``None`` when none will be made.
        blocking: the document holds back later ones (stop-on-errors, D48).
        completed_with_callback: COMPLETED because a success callback got HTTP 200.
        redrives: how many times the document was re-queued.
        marked_done: completed by the cabinet action (D34).
    """

    status: Status
    changed_at: datetime
    has_callback: bool = False
    fiscalised: bool = False
    failure: FailureInfo | None = None
    lease_id: str | None = None
    lease_expires_at: datetime | None = None
    leases: int = 0
    pickup_deadline: datetime | None = None
    dispatch_at: datetime | None = None
    callback: CallbackKind | None = None
    callback_first_at: datetime | None = None
    callback_attempts: int = 0
    callback_next_at: datetime | None = None
    blocking: bool = False
    completed_with_callback: bool = False
    redrives: int = 0
    marked_done: bool = False


def new_document(
    now: datetime, *, has_callback: bool, pickup_window: timedelta | None = None
) -> DocState:
    """The state of a newly accepted document (T1): QUEUED, with a pickup deadline in 5-min mode."""
    return DocState(
        status=Status.QUEUED,
        changed_at=now,
        has_callback=has_callback,
        pickup_deadline=now + pickup_window if pickup_window is not None else None,
    )


_T = TypeVar("_T")
_INIT_FIELDS: dict[type, frozenset[str]] = {}


def replace(obj: _T, /, **changes: Any) -> _T:
    """:func:`dataclasses.replace` for the cloud's records, at a fifth of its cost (D127).

    For frozen dataclasses without ``__slots__``, ``__post_init__`` or properties cached in the
    instance (:class:`DocState`, the records of :mod:`~kkt_emulator.cloud.records`): the copy
    gets the same attribute values as ``__init__`` would set, with ``changes`` applied. A name that
    is not an init field is refused with :class:`TypeError`, as :func:`dataclasses.replace`
    refuses it.
    """
    cls = type(obj)
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = frozenset(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]
        _INIT_FIELDS[cls] = names
    if not names.issuperset(changes):
        unknown = sorted(set(changes) - names)
        raise TypeError(f"{cls.__name__} has no init fields {unknown}")
    copy = object.__new__(cls)
    attributes = copy.__dict__
    attributes.update(obj.__dict__)
    attributes.update(changes)
    return copy


def callback_offset(attempt: int) -> timedelta:
    """Offset of attempt number ``attempt`` (0-based) from the first attempt (D44).

    The delay starts at 1 minute and doubles, capped at 1 hour: +0, +1, +3, +7, +15, +31 and +63
    minutes, then every 60 minutes.
    """
    if attempt < 7:
        return timedelta(minutes=2**attempt - 1)
    return timedelta(minutes=63 + 60 * (attempt - 6))


def _next_callback_at(first_at: datetime, attempts_made: int) -> datetime | None:
    offset = callback_offset(attempts_made)
    if offset > CALLBACK_WINDOW:
        return None  # D45: the window is over, no further attempts
    return first_at + offset


def _start_callback(state: DocState, kind: CallbackKind, now: datetime) -> DocState:
    if not state.has_callback:
        return _stop_callback(state)
    return replace(
        state, callback=kind, callback_first_at=now, callback_attempts=0, callback_next_at=now
    )


def _stop_callback(state: DocState) -> DocState:
    return replace(
        state, callback=None, callback_first_at=None, callback_attempts=0, callback_next_at=None
    )


def _target(state: DocState, event: EventKind, reason: str = "") -> Status:
    try:
        return TRANSITIONS[state.status, event]
    except KeyError:
        raise IllegalTransitionError(state.status, event, reason) from None


def _fail(
    state: DocState, now: datetime, failure: FailureInfo, *, stop_on_errors: bool, event: EventKind
) -> DocState:
    failed = replace(
        state,
        status=_target(state, event),
        changed_at=now,
        failure=failure,
        lease_id=None,
        lease_expires_at=None,
        pickup_deadline=None,
        blocking=stop_on_errors,  # D48: only failures while the flag is on block
    )
    return _start_callback(failed, CallbackKind.FAILED, now)  # D46


def step(state: DocState, event: Event, now: datetime) -> DocState:
    """Apply ``event`` to ``state`` at business time ``now`` and return the new state.

    Raises:
        IllegalTransitionError: the event matches no row of the table (or the row's guard fails).
        AlreadyFiscalisedError: a success for a document that already has fiscal data.
    """
    match event:
        case Lease(lease_id=lease_id):
            return replace(
                state,
                status=_target(state, EventKind.LEASE),
                changed_at=now,
                lease_id=lease_id,
                lease_expires_at=now + LEASE_DURATION,
                leases=state.leases + 1,
                pickup_deadline=None,  # T2: the pickup deadline is cancelled
            )
        case Success(lease_id=lease_id, dispatch_delay=delay):
            if state.fiscalised:
                raise AlreadyFiscalisedError(state.status, EventKind.SUCCESS, "already fiscalised")
            if (
                state.status is Status.PENDING
                and lease_id is not None
                and lease_id == state.lease_id
            ):
                target = _target(state, EventKind.SUCCESS)  # T3
            elif state.leases > 0:
                target = _target(state, EventKind.LATE_SUCCESS, "no late-success row")  # T13
            else:
                raise IllegalTransitionError(state.status, EventKind.SUCCESS, "never leased")
            return _stop_callback(  # D46: failure-callback retries stop
                replace(
                    state,
                    status=target,
                    changed_at=now,
                    fiscalised=True,
                    failure=None,
                    lease_id=None,  # D36: a newer lease is cancelled; its result will be ignored
                    lease_expires_at=None,
                    pickup_deadline=None,
                    dispatch_at=now + delay,
                    blocking=False,
                )
            )
        case Failure(lease_id=lease_id, failure=failure, stop_on_errors=block):
            if state.status is not Status.PENDING or lease_id != state.lease_id:
                raise IllegalTransitionError(
                    state.status, EventKind.FAILURE, "not the current lease"
                )
            return _fail(state, now, failure, stop_on_errors=block, event=EventKind.FAILURE)
        case PendingTimeout(stop_on_errors=block):
            if state.lease_expires_at is None or now < state.lease_expires_at:
                raise IllegalTransitionError(
                    state.status, EventKind.PENDING_TIMEOUT, "lease not expired"
                )
            failure = FailureInfo(FailureType.NON_FN_FAILURE, PENDING_TIMEOUT_TEXT)
            return _fail(state, now, failure, stop_on_errors=block, event=EventKind.PENDING_TIMEOUT)
        case PickupTimeout(stop_on_errors=block):
            if state.pickup_deadline is None or now < state.pickup_deadline:
                raise IllegalTransitionError(
                    state.status, EventKind.PICKUP_TIMEOUT, "deadline not due"
                )
            failure = FailureInfo(FailureType.NON_FN_FAILURE, PICKUP_TIMEOUT_TEXT)
            return _fail(state, now, failure, stop_on_errors=block, event=EventKind.PICKUP_TIMEOUT)
        case Dispatch():
            target = _target(state, EventKind.DISPATCH)
            if not state.has_callback:
                target = Status.COMPLETED  # T6, D30
            moved = replace(state, status=target, changed_at=now, dispatch_at=None)
            if target is Status.WAIT_FOR_CALLBACK:
                return _start_callback(moved, CallbackKind.SUCCESS, now)  # T5
            return moved
        case CallbackResult(delivered=delivered):
            target = _target(state, EventKind.CALLBACK_RESULT)
            if state.callback is None or state.callback_first_at is None:
                raise IllegalTransitionError(
                    state.status, EventKind.CALLBACK_RESULT, "no callback due"
                )
            attempts = state.callback_attempts + 1
            if delivered:
                if state.status is Status.WAIT_FOR_CALLBACK:  # T7
                    return replace(
                        state,
                        status=target,
                        changed_at=now,
                        completed_with_callback=True,
                        callback_attempts=attempts,
                        callback_next_at=None,
                        callback=None,
                    )
                # D46: a 200 on a failure callback only ends the retries.
                return replace(
                    state, callback_attempts=attempts, callback_next_at=None, callback=None
                )
            # T8: not delivered; the status is unchanged and the next attempt is scheduled (D44).
            return replace(
                state,
                callback_attempts=attempts,
                callback_next_at=_next_callback_at(state.callback_first_at, attempts),
            )
        case Requeue(pickup_window=window):
            requeued = replace(
                state,
                status=_target(state, EventKind.REQUEUE),
                changed_at=now,
                failure=None,
                blocking=False,
                pickup_deadline=now + window if window is not None else None,
                redrives=state.redrives + 1,
            )
            return _stop_callback(requeued)
        case MarkDone():
            done = replace(
                state,
                status=_target(state, EventKind.MARK_DONE),
                changed_at=now,
                blocking=False,
                marked_done=True,
            )
            return _stop_callback(done)
        case LiftBlock():
            _target(state, EventKind.LIFT_BLOCK)
            return replace(state, blocking=False)
    raise AssertionError(f"unknown event {event!r}")  # pragma: no cover - the match is exhaustive
