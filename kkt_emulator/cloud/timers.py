"""The cloud's lifecycle deadlines: the 15-minute rule, the 235-second rule, the dispatch hold.

The 15-minute rule fails a lease without a result (D35), the 235-second rule a «За 5 минут»
document nobody picked up (D37), and the D31 hold keeps a fiscalised document in PRINTED.

:meth:`TimerOperations.sweep` fires every deadline due at a moment, earliest first, each at its
own business time; the timer task of :mod:`kkt_emulator.cloud.app` calls it (and every lease and
result report calls it first, so a till never sees a document a deadline has already moved).

Several cloud processes on one PostgreSQL database sweep the same deadlines; each deadline fires
once (D75): its document is locked first (``FOR UPDATE SKIP LOCKED``, so a document another
process is changing right now is left to that process), and a deadline the row no longer holds
(another process fired it a moment ago) is passed over.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud.core import ServiceCore
from kkt_emulator.cloud.lifecycle import IllegalTransitionError
from kkt_emulator.cloud.storage import DueTimer, TimerKind

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kkt_emulator.cloud.storage import DocumentRecord

__all__ = ["TimerOperations"]


class TimerOperations(ServiceCore):
    """Sweeping due deadlines and telling the timer task when the next one falls."""

    def sweep(self, now: datetime) -> int:
        """Fire every lifecycle deadline due at ``now``, earliest first, each at its own time.

        Returns the number of deadlines processed. Callbacks are not sent here (they need I/O).
        Each retail point whose documents a deadline moved is announced once per round (D66), so
        its long polls re-check without any periodic tick.
        """
        done = 0
        tried: set[DueTimer] = set()
        while True:
            due = [timer for timer in self.storage.due_timers(now) if timer not in tried]
            if not due:
                return done
            points: dict[str, None] = {}
            for timer in due:
                tried.add(timer)  # one try per sweep: a deadline left to another process
                with self.storage.transaction():
                    point_id = self._fire(timer)
                if point_id is not None:
                    points[point_id] = None
                    done += 1
            for point_id in points:
                self.on_change(point_id)

    def _fire(self, timer: DueTimer) -> str | None:
        """Fire one deadline; its document's retail point (``None``: another process has it)."""
        record = self.storage.claim_document(timer.seq)
        if record is None:  # another process is changing the document right now
            return None
        if _deadline_of(record, timer.kind) != timer.deadline:
            return None  # fired (or moved) by another process since due_timers read it
        point = self.storage.get_point(record.retail_point_id)
        block = bool(point is not None and point.stop_on_errors)
        event: lc.Event
        if timer.kind is TimerKind.LEASE:
            event = lc.PendingTimeout(stop_on_errors=block)
        elif timer.kind is TimerKind.PICKUP:
            event = lc.PickupTimeout(stop_on_errors=block)
        else:
            event = lc.Dispatch()
        try:
            self._apply(record, event, timer.deadline)
        except IllegalTransitionError as exc:
            # A stale deadline: log it and drop it so it cannot fire again.
            self.log.warning("stale_timer_dropped", doc_id=record.doc_id, reason=str(exc))
            if timer.kind is TimerKind.LEASE:
                state = dataclasses.replace(record.state, lease_expires_at=None)
            elif timer.kind is TimerKind.PICKUP:
                state = dataclasses.replace(record.state, pickup_deadline=None)
            else:
                state = dataclasses.replace(record.state, dispatch_at=None)
            self.storage.update_document(dataclasses.replace(record, state=state))
        return record.retail_point_id

    def next_deadline(self, in_flight: Sequence[int] = ()) -> datetime | None:
        """The earliest deadline of any timer, ignoring callbacks already in flight."""
        deadline = self.storage.next_deadline(in_flight)
        if self.settings.demo_mode:
            oldest = self.storage.oldest_queued_at()
            if oldest is not None:
                due = oldest + self.settings.demo_latency
                deadline = due if deadline is None else min(deadline, due)
        return deadline


def _deadline_of(record: DocumentRecord, kind: TimerKind) -> datetime | None:
    """The deadline of ``kind`` the document holds now (as :meth:`Storage.due_timers` reads it)."""
    state = record.state
    if kind is TimerKind.LEASE:
        return state.lease_expires_at if state.status is lc.Status.PENDING else None
    if kind is TimerKind.PICKUP:
        return state.pickup_deadline
    return state.dispatch_at if state.status is lc.Status.PRINTED else None
