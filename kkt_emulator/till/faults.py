"""The fault catalogue (``till-protocol.md`` §4): what can go wrong, at which layer, how often.

Every fault has ``count`` (apply N times, then clear itself), ``probability`` (0–1) and ``seed``
(the same seed gives the same sequence of failures on every run), and is listed until cleared.
Each is implemented at its own layer, never by faking an outcome above it:

* drive — the drive itself answers the code (``FiscalDrive.forced_result`` / ``forced_warnings``);
* drive link — bytes between till and drive are dropped, delayed or corrupted (:class:`FaultyLink`);
* till — the firmware stops polling, goes offline, or dies at a crash point;
* till → cloud — a result report is withheld, every call is delayed;
* OFD — the OFD stand-in refuses, rejects or answers slowly.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kkt_emulator.clock import Clock
from kkt_emulator.errors import ConfigError

__all__ = ["FAULTS", "ActiveFault", "FaultInfo", "FaultyLink", "make_fault"]


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """One entry of the catalogue."""

    name: str
    layer: str
    effect: str
    params: dict[str, type] = field(default_factory=dict)


FAULTS: dict[str, FaultInfo] = {
    f.name: f
    for f in (
        FaultInfo(
            "fn.storage_exhausted",
            "drive",
            "document commands answer the profile's storage code (14h/15h)",
        ),
        FaultInfo("fn.expired", "drive", "document commands answer 12h (key resource exhausted)"),
        FaultInfo("fn.failure", "drive", "document commands answer 03h (drive failure)"),
        FaultInfo("fn.disconnected", "drive link", "the drive stops answering"),
        FaultInfo(
            "fn.slow", "drive link", "each drive answer is delayed by delay_ms", {"delay_ms": float}
        ),
        FaultInfo("fn.memory_warning", "drive", "the archive-almost-full warning flag is set"),
        FaultInfo(
            "link.corrupt", "drive link", "bits flip in answer frames; the till resends with ENQ"
        ),
        FaultInfo("till.offline", "till", "no network: no polling, no reports, no OFD"),
        FaultInfo("till.power_saving", "till", "no polling (as the power-saving setting)"),
        FaultInfo(
            "till.crash",
            "till",
            "the till's process state is dropped at a point and it restarts (reconciliation)",
            {"point": str},
        ),
        FaultInfo(
            "cloud.drop_result", "till → cloud", "result reports are lost until the fault clears"
        ),
        FaultInfo(
            "cloud.latency",
            "till → cloud",
            "every call to the cloud is delayed by delay_ms",
            {"delay_ms": float},
        ),
        FaultInfo("ofd.down", "OFD", "connections to the OFD are refused"),
        FaultInfo("ofd.reject", "OFD", "the OFD answers with a rejection code", {"code": int}),
        FaultInfo(
            "ofd.slow",
            "OFD",
            "the OFD delays its acknowledgements by delay_ms",
            {"delay_ms": float},
        ),
    )
}

CRASH_POINTS = ("before_commit", "after_commit", "after_outbox")


@dataclass(slots=True)
class ActiveFault:
    """A fault in force, with its remaining count and its own random sequence."""

    name: str
    count: int | None = None
    probability: float = 1.0
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    applied: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def roll(self) -> bool:
        """Decide whether the fault strikes now; counts a strike against ``count``."""
        if self.count is not None and self.applied >= self.count:
            return False
        # One draw per decision whatever the probability, so a seed fixes the whole sequence.
        strike = self.rng.random() < self.probability
        if strike:
            self.applied += 1
        return strike

    @property
    def exhausted(self) -> bool:
        """Whether ``count`` strikes have happened."""
        return self.count is not None and self.applied >= self.count

    def to_json(self) -> dict[str, Any]:
        """As listed in the till's state and by ``fault.list``."""
        info = FAULTS[self.name]
        return {
            "name": self.name,
            "layer": info.layer,
            "count": self.count,
            "probability": self.probability,
            "seed": self.seed,
            "params": self.params,
            "applied": self.applied,
        }


def make_fault(
    name: str,
    *,
    count: int | None = None,
    probability: float = 1.0,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
) -> ActiveFault:
    """Validate and build a fault.

    Raises:
        ConfigError: unknown name, a parameter it does not take, or a bad value.
    """
    info = FAULTS.get(name)
    if info is None:
        raise ConfigError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ConfigError("count must be a positive integer")
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0 <= probability <= 1
    ):
        raise ConfigError("probability must be between 0 and 1")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("seed must be an integer")
    clean: dict[str, Any] = {}
    for key, value in (params or {}).items():
        kind = info.params.get(key)
        if kind is None:
            raise ConfigError(f"fault {name} takes no parameter {key!r}")
        try:
            clean[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"fault {name}: {key} must be {kind.__name__}, got {value!r}"
            ) from exc
        if kind is float and clean[key] < 0:
            raise ConfigError(f"fault {name}: {key} must not be negative")
    if name == "till.crash" and clean.get("point") not in CRASH_POINTS:
        raise ConfigError(f"till.crash needs point = {' | '.join(CRASH_POINTS)}")
    if name == "ofd.reject":
        clean.setdefault("code", 14)
    return ActiveFault(
        name=name,
        count=count,
        probability=float(probability),
        seed=seed,
        params=clean,
        rng=random.Random(seed),  # noqa: S311 - reproducible fault injection, not security
    )


Deliver = Callable[[bytes], Awaitable[None]]


class FaultyLink:
    """The drive-side manipulator: applies drive-link faults to the drive's answers.

    ``fn.disconnected`` drops every answer, ``fn.slow`` delays each by ``delay_ms`` (pacing), and
    ``link.corrupt`` flips one bit in an answer, each deciding per answer with its own seeded
    random sequence. It does not model baud-rate timing.
    """

    def __init__(
        self, faults: dict[str, ActiveFault], clock: Clock, on_strike: Callable[[str], None]
    ) -> None:
        self.faults = faults
        self.clock = clock
        self.on_strike = on_strike
        self.dropped = 0
        self.corrupted = 0

    async def apply(self, data: bytes, deliver: Deliver) -> None:
        """Deliver (or not) one answer of the drive."""
        disconnected = self.faults.get("fn.disconnected")
        if disconnected is not None and disconnected.roll():
            self.dropped += 1
            self.on_strike("fn.disconnected")
            return
        slow = self.faults.get("fn.slow")
        if slow is not None and slow.roll():
            self.on_strike("fn.slow")
            await self.clock.pace(float(slow.params.get("delay_ms", 1000.0)) / 1000)
        corrupt = self.faults.get("link.corrupt")
        if corrupt is not None and data and corrupt.roll():
            self.corrupted += 1
            self.on_strike("link.corrupt")
            bit = corrupt.rng.randrange(len(data) * 8)
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            data = bytes(flipped)
        await deliver(data)
