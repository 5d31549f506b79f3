"""The fault catalogue (``till-protocol.md`` §4): what can go wrong, at which layer, how often.

Every fault has ``count`` (apply N times, then clear itself), ``probability`` (0–1) and ``seed``
(the same seed gives the same sequence of failures on every run), and is listed until cleared.
Each is implemented at its own layer, never by faking an outcome above it:

* drive — the drive itself answers the code (``FiscalDrive.forced_result`` / ``forced_warnings``);
* drive link — bytes between till and drive are dropped, delayed or corrupted (:class:`FaultyLink`);
* till — the firmware stops polling, goes offline, or dies at a crash point;
* till → cloud — a result report is withheld, every call is delayed, the upload of cash
  documents is blocked or refused (``orders-and-backoffice.md`` B14);
* OFD — the OFD stand-in refuses, rejects or answers slowly.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from kkt_emulator.clock import Clock
from kkt_emulator.errors import ConfigError

__all__ = [
    "CRASH_POINTS",
    "FAULTS",
    "ActiveFault",
    "CrashPoint",
    "FaultInfo",
    "FaultName",
    "FaultyLink",
    "make_fault",
]


class FaultName(StrEnum):
    """The names of the catalogue (``till-protocol.md`` §4), as the control plane spells them."""

    FN_STORAGE_EXHAUSTED = "fn.storage_exhausted"
    FN_EXPIRED = "fn.expired"
    FN_FAILURE = "fn.failure"
    FN_DISCONNECTED = "fn.disconnected"
    FN_SLOW = "fn.slow"
    FN_MEMORY_WARNING = "fn.memory_warning"
    LINK_CORRUPT = "link.corrupt"
    TILL_OFFLINE = "till.offline"
    TILL_POWER_SAVING = "till.power_saving"
    TILL_CRASH = "till.crash"
    CLOUD_DROP_RESULT = "cloud.drop_result"
    CLOUD_LATENCY = "cloud.latency"
    UPLOAD_BLOCK = "upload.block"
    UPLOAD_REJECT = "upload.reject"
    OFD_DOWN = "ofd.down"
    OFD_REJECT = "ofd.reject"
    OFD_SLOW = "ofd.slow"

    @property
    def at_ofd(self) -> bool:
        """Whether the fault acts on the OFD stand-in rather than on the till."""
        return self.value.startswith("ofd.")


class CrashPoint(StrEnum):
    """Where the ``till.crash`` fault (or ``KKT_TILL_CRASH_AT``) drops the till's state."""

    BEFORE_COMMIT = "before_commit"
    AFTER_COMMIT = "after_commit"
    AFTER_OUTBOX = "after_outbox"


CRASH_POINTS: Final = tuple(str(point) for point in CrashPoint)
"""The crash points by name, in the order a document passes them."""


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """One entry of the catalogue."""

    name: FaultName
    layer: str
    effect: str
    params: dict[str, type] = field(default_factory=dict)


FAULTS: dict[str, FaultInfo] = {
    f.name: f
    for f in (
        FaultInfo(
            FaultName.FN_STORAGE_EXHAUSTED,
            "drive",
            "document commands answer the profile's storage code (14h/15h)",
        ),
        FaultInfo(
            FaultName.FN_EXPIRED, "drive", "document commands answer 12h (key resource exhausted)"
        ),
        FaultInfo(FaultName.FN_FAILURE, "drive", "document commands answer 03h (drive failure)"),
        FaultInfo(FaultName.FN_DISCONNECTED, "drive link", "the drive stops answering"),
        FaultInfo(
            FaultName.FN_SLOW,
            "drive link",
            "each drive answer is delayed by delay_ms",
            {"delay_ms": float},
        ),
        FaultInfo(
            FaultName.FN_MEMORY_WARNING, "drive", "the archive-almost-full warning flag is set"
        ),
        FaultInfo(
            FaultName.LINK_CORRUPT,
            "drive link",
            "bits flip in answer frames; the till resends with ENQ",
        ),
        FaultInfo(FaultName.TILL_OFFLINE, "till", "no network: no polling, no reports, no OFD"),
        FaultInfo(FaultName.TILL_POWER_SAVING, "till", "no polling (as the power-saving setting)"),
        FaultInfo(
            FaultName.TILL_CRASH,
            "till",
            "the till's process state is dropped at a point and it restarts (reconciliation)",
            {"point": str},
        ),
        FaultInfo(
            FaultName.CLOUD_DROP_RESULT,
            "till → cloud",
            "result reports are lost until the fault clears",
        ),
        FaultInfo(
            FaultName.CLOUD_LATENCY,
            "till → cloud",
            "every call to the cloud is delayed by delay_ms",
            {"delay_ms": float},
        ),
        FaultInfo(
            FaultName.UPLOAD_BLOCK,
            "till → cloud",
            "cash documents are not uploaded (the queue grows; polling and results go on)",
        ),
        FaultInfo(
            FaultName.UPLOAD_REJECT,
            "till → cloud",
            "the next uploads of cash documents are refused (the head blocks, then retries)",
        ),
        FaultInfo(FaultName.OFD_DOWN, "OFD", "connections to the OFD are refused"),
        FaultInfo(
            FaultName.OFD_REJECT, "OFD", "the OFD answers with a rejection code", {"code": int}
        ),
        FaultInfo(
            FaultName.OFD_SLOW,
            "OFD",
            "the OFD delays its acknowledgements by delay_ms",
            {"delay_ms": float},
        ),
    )
}


@dataclass(slots=True)
class ActiveFault:
    """A fault in force, with its remaining count and its own random sequence."""

    name: FaultName
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
            "name": str(self.name),
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
    if info.name is FaultName.TILL_CRASH and clean.get("point") not in CRASH_POINTS:
        raise ConfigError(f"till.crash needs point = {' | '.join(CRASH_POINTS)}")
    if info.name is FaultName.OFD_REJECT:
        clean.setdefault("code", 14)
    return ActiveFault(
        name=info.name,
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
        self,
        faults: dict[FaultName, ActiveFault],
        clock: Clock,
        on_strike: Callable[[FaultName], None],
    ) -> None:
        self.faults = faults
        self.clock = clock
        self.on_strike = on_strike
        self.dropped = 0
        self.corrupted = 0

    async def apply(self, data: bytes, deliver: Deliver) -> None:
        """Deliver (or not) one answer of the drive."""
        disconnected = self.faults.get(FaultName.FN_DISCONNECTED)
        if disconnected is not None and disconnected.roll():
            self.dropped += 1
            self.on_strike(FaultName.FN_DISCONNECTED)
            return
        slow = self.faults.get(FaultName.FN_SLOW)
        if slow is not None and slow.roll():
            self.on_strike(FaultName.FN_SLOW)
            await self.clock.pace(float(slow.params.get("delay_ms", 1000.0)) / 1000)
        corrupt = self.faults.get(FaultName.LINK_CORRUPT)
        if corrupt is not None and data and corrupt.roll():
            self.corrupted += 1
            self.on_strike(FaultName.LINK_CORRUPT)
            bit = corrupt.rng.randrange(len(data) * 8)
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            data = bytes(flipped)
        await deliver(data)
