"""The emulator clock: one object per process, injected into the drive, the till, the OFD and the cloud.

Two kinds of time are kept apart (``till-protocol.md`` §5):

* **Business time** — ``now()``, ``sleep()``, ``sleep_until()``, ``advance()``: document dates, shift
  age, the 15-minute and 235-second rules, the 30-day OFD rule, drive expiry. This is what the
  clock *modes* change.
* **Pacing** — ``monotonic()`` and ``pace()``: poll intervals, HTTP timeouts, back-off, realistic
  per-command delays. Always the process's real monotonic time, so a till under a manual clock still
  polls and documents still flow without anyone advancing it.

Modes:

* :class:`RealClock` — system time (plus whatever ``advance`` added).
* :class:`ScaledClock` — N× faster than real time, for demos.
* :class:`ManualClock` — moves only on ``advance``; tests and CI. ``advance`` wakes sleepers in
  deadline order and lets each woken task run before the next deadline is reached, so "30 days"
  takes milliseconds and timers fire in the order they would have in real life.

This module is the only place in the project that calls ``time.time``/``time.monotonic`` or
``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from kkt_emulator.errors import ConfigError

__all__ = [
    "Clock",
    "ClockMode",
    "ManualClock",
    "RealClock",
    "ScaledClock",
    "make_clock",
    "parse_duration",
]

# How many event-loop passes a woken sleeper gets before the next deadline is released.
_YIELD_PASSES = 8


@dataclass(order=True)
class _Sleeper:
    deadline: datetime
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class ClockMode(StrEnum):
    """How a clock's business time moves; the value is what reports and ``--clock`` say."""

    REAL = "real"
    SCALED = "scaled"
    MANUAL = "manual"


class Clock(ABC):
    """The clock contract shared by every mode.

    Attributes:
        mode: which kind of clock this is (reported in the ready-file and till state).
    """

    mode: ClassVar[ClockMode]

    def __init__(self) -> None:
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    # -- business time -------------------------------------------------------------------------

    @abstractmethod
    def now(self) -> datetime:
        """Return the current business time, timezone-aware (UTC)."""

    @abstractmethod
    def _shift(self, delta: timedelta) -> None:
        """Move business time forward by ``delta``."""

    @abstractmethod
    def _real_seconds_until(self, when: datetime) -> float | None:
        """Real seconds until business time reaches ``when``; ``None`` if it never will by itself."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of business time."""
        await self.sleep_until(self.now() + timedelta(seconds=max(0.0, seconds)))

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until business time reaches ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        if when <= self.now():
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        sleeper = _Sleeper(when, next(self._seq), loop.create_future())
        heapq.heappush(self._sleepers, sleeper)
        self._reschedule()
        try:
            await sleeper.future
        finally:
            if not sleeper.future.done():
                sleeper.future.cancel()
            if sleeper.future.cancelled():
                self._forget(sleeper)

    async def advance(self, delta: timedelta) -> datetime:
        """Move business time forward by ``delta``, waking sleepers in deadline order.

        Each woken sleeper gets a few event-loop passes to act (and possibly to sleep again) before
        time moves on to the next deadline. Returns the new business time.
        """
        if delta < timedelta(0):
            raise ValueError("the clock never goes backwards")
        target = self.now() + delta
        while self._sleepers and self._sleepers[0].deadline <= target:
            sleeper = heapq.heappop(self._sleepers)
            if sleeper.future.done():
                continue
            gap = sleeper.deadline - self.now()
            if gap > timedelta(0):
                self._shift(gap)
            sleeper.future.set_result(None)
            for _ in range(_YIELD_PASSES):
                await asyncio.sleep(0)
        gap = target - self.now()
        if gap > timedelta(0):
            self._shift(gap)
        self._reschedule()
        return self.now()

    def next_deadline(self) -> datetime | None:
        """The earliest pending sleeper's deadline, if any."""
        self._drop_cancelled()
        return self._sleepers[0].deadline if self._sleepers else None

    # -- pacing ----------------------------------------------------------------------------------

    def monotonic(self) -> float:
        """Real monotonic seconds, for pacing (never affected by the clock mode)."""
        return time.monotonic()

    async def pace(self, seconds: float) -> None:
        """Sleep ``seconds`` of real time: poll intervals, back-off, realistic delays."""
        await asyncio.sleep(max(0.0, seconds))

    # -- internals ------------------------------------------------------------------------------

    def _forget(self, sleeper: _Sleeper) -> None:
        # A cancelled sleeper leaves the heap at once: under a manual clock nobody may ever advance
        # past its deadline, and timeouts that keep cancelling long sleeps would pile up.
        if sleeper in self._sleepers:
            self._sleepers.remove(sleeper)
            heapq.heapify(self._sleepers)
            self._reschedule()

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0].future.done():
            heapq.heappop(self._sleepers)

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._drop_cancelled()
        if not self._sleepers:
            return
        delay = self._real_seconds_until(self._sleepers[0].deadline)
        if delay is None:
            return
        loop = self._sleepers[0].future.get_loop()
        self._timer = loop.call_later(max(0.0, delay), self._fire_due)

    def _fire_due(self) -> None:
        self._timer = None
        now = self.now()
        while self._sleepers and self._sleepers[0].deadline <= now:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)
        self._reschedule()


class RealClock(Clock):
    """System time. ``advance`` adds a permanent offset (for demos of long waits)."""

    mode = ClockMode.REAL

    def __init__(self) -> None:
        super().__init__()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """Return system time plus any offset added by ``advance``."""
        return datetime.fromtimestamp(time.time(), UTC) + self._offset

    def _shift(self, delta: timedelta) -> None:
        self._offset += delta

    def _real_seconds_until(self, when: datetime) -> float | None:
        return (when - self.now()).total_seconds()


class ScaledClock(Clock):
    """Business time runs ``factor`` times faster than real time, starting at ``start``."""

    mode = ClockMode.SCALED

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        if not math.isfinite(factor) or factor <= 0:
            raise ConfigError(f"scaled clock factor must be positive, got {factor}")
        if start is not None and start.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware start")
        super().__init__()
        self.factor = factor
        self._base_wall = (start or datetime.fromtimestamp(time.time(), UTC)).astimezone(UTC)
        self._base_mono = time.monotonic()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """Return the scaled business time."""
        elapsed = (time.monotonic() - self._base_mono) * self.factor
        return self._base_wall + timedelta(seconds=elapsed) + self._offset

    def _shift(self, delta: timedelta) -> None:
        self._offset += delta

    def _real_seconds_until(self, when: datetime) -> float | None:
        return (when - self.now()).total_seconds() / self.factor


class ManualClock(Clock):
    """Business time that moves only when ``advance`` (or ``set``) is called."""

    mode = ClockMode.MANUAL

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__()
        start = start or datetime.fromtimestamp(time.time(), UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the manual business time."""
        return self._now

    def _shift(self, delta: timedelta) -> None:
        self._now += delta

    def _real_seconds_until(self, when: datetime) -> float | None:  # noqa: ARG002 - manual time never moves by itself
        return None


# "ms" before "m": the first alternative that matches wins.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> timedelta:
    """Parse ``"30d"``, ``"15m"``, ``"1h30m"``, ``"235s"``, ``"1.5h"`` or plain seconds ``"90"``.

    Raises:
        ConfigError: the text is not a duration.
    """
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ConfigError("empty duration")
    try:
        total = float(cleaned)
    except ValueError:
        pos = 0
        total = 0.0
        for match in _DURATION_PART.finditer(cleaned):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(cleaned):
            raise ConfigError(
                f"not a duration: {text!r} (use e.g. 30d, 15m, 1h30m, 235s)"
            ) from None
    if not math.isfinite(total) or total < 0:
        raise ConfigError(f"not a duration: {text!r} (must be finite and not negative)")
    try:
        return timedelta(seconds=total)
    except OverflowError as exc:
        raise ConfigError(f"duration too long: {text!r}") from exc


def make_clock(spec: str, start: datetime | None = None) -> Clock:
    """Build a clock from a command-line spec: ``real``, ``manual`` or ``scaled:N``.

    Raises:
        ConfigError: the spec names no known mode.
    """
    if spec == ClockMode.REAL:
        return RealClock()
    if spec == ClockMode.MANUAL:
        return ManualClock(start)
    if spec.startswith(f"{ClockMode.SCALED}:"):
        try:
            factor = float(spec.split(":", 1)[1])
        except ValueError as exc:
            raise ConfigError(f"bad clock spec {spec!r}: factor must be a number") from exc
        return ScaledClock(factor, start)
    raise ConfigError(f"bad clock spec {spec!r}: use real, manual or scaled:N")
