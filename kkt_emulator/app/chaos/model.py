"""What a chaos run is asked to do (:class:`ChaosOptions`) and what it found (:class:`ChaosResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kkt_emulator.app.chaos.checks import Findings
from kkt_emulator.app.chaos.procs import Kind
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

__all__ = ["CLOUD_AFTER_COMMIT", "KILL_KINDS", "TILL_AFTER_LEASE", "ChaosOptions", "ChaosResult"]

CLOUD_AFTER_COMMIT = "cloud_after_commit"
TILL_AFTER_LEASE = "till_after_lease"
KILL_KINDS = (
    Kind.TILL.value,
    Kind.CLOUD.value,
    Kind.OFD.value,
    CLOUD_AFTER_COMMIT,
    TILL_AFTER_LEASE,
)


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    """What one chaos run does.

    Attributes:
        duration: seconds of load (and of kills).
        rate: documents per second.
        seed: makes the kill moments and kill-point choices reproducible.
        tills: tills to run (one retail point).
        kills: kill points to reach, shared evenly over the enabled kinds; the load stops once
            every kind had its share, or after ``duration`` (0: kill until ``duration`` ends).
        targets: which processes are SIGKILLed at random moments (``till``, ``cloud``, ``ofd``).
        kill_delay: a random kill comes uniformly this many seconds (min, max) after each start.
        commit_kill_chance: while a cloud life is given to ``cloud_after_commit``, the chance
            that a store-API 200 is dropped and the cloud killed (0: no such kill points).
        lease_kill_chance: while a till life is given to ``till_after_lease``, the chance that
            a lease answer is dropped and the till killed (0: no such kill points).
        drain_timeout: seconds to wait for the documents to settle after the load.
        settle: seconds without any change that count as settled.
        work_dir: state and logs; a temporary directory (removed afterwards) when ``None``.
        profile: the tills' firmware profile.
    """

    duration: float = 60.0
    rate: float = 15.0
    seed: int = 1
    tills: int = 1
    kills: int = 0
    targets: tuple[Kind, ...] = (Kind.TILL, Kind.CLOUD, Kind.OFD)
    kill_delay: tuple[float, float] = (0.05, 2.0)
    commit_kill_chance: float = 0.1
    lease_kill_chance: float = 0.5
    drain_timeout: float = 120.0
    settle: float = 5.0
    work_dir: Path | None = None
    profile: str = DEFAULT_PROFILE

    def validate(self) -> None:
        """Check the options.

        Raises:
            ConfigError: a contradictory option, or an unknown firmware profile.
        """
        low, high = self.kill_delay
        problems = [
            (self.duration <= 0, "--duration must be positive"),
            (self.rate <= 0, "--rate must be positive"),
            (self.tills < 1, "--tills must be at least 1"),
            (self.kills < 0, "--kills cannot be negative"),
            (not 0 < low <= high, "--kill-delay needs 0 < MIN <= MAX"),
            (not 0 <= self.commit_kill_chance <= 1, "--commit-kill-chance must be 0..1"),
            (not 0 <= self.lease_kill_chance <= 1, "--lease-kill-chance must be 0..1"),
            (self.drain_timeout <= 0, "--drain-timeout must be positive"),
        ]
        for bad, message in problems:
            if bad:
                raise ConfigError(message)
        load_profile(self.profile)  # an unknown profile fails here, before any process starts


@dataclass(slots=True)
class ChaosResult:
    """A run's outcome; :meth:`to_json` is what ``bench chaos`` prints."""

    options: ChaosOptions
    kill_points: dict[str, int]
    posted: int
    answered_200: int
    answered_other: dict[str, int]
    never_answered: list[str]
    retries: int
    findings: Findings
    unexpected_exits: dict[str, int]
    seconds: float
    drain_seconds: float
    drained: bool
    work_dir: str | None
    documents_in_cloud: int = 0
    proxy_answers: dict[str, dict[str, int]] = field(default_factory=dict)
    startup_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check passed and every answered document was accounted for."""
        return self.findings.ok and not self.never_answered and not self.answered_other

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view."""
        found = self.findings
        return {
            "benchmark": "chaos",
            "seed": self.options.seed,
            "duration": self.options.duration,
            "rate": self.options.rate,
            "tills": self.options.tills,
            "targets": [t.value for t in self.options.targets],
            "kill_points": {**self.kill_points, "total": sum(self.kill_points.values())},
            "documents": {
                "posted": self.posted,
                "answered_200": self.answered_200,
                "answered_other": self.answered_other,
                "never_answered": len(self.never_answered),
                "retries": self.retries,
                "in_cloud": self.documents_in_cloud,
            },
            "completed": found.completed,
            "failed": found.failed,
            "lost": len(found.lost),
            "lost_ids": found.lost,
            "doubled": len(found.doubled),
            "doubled_ids": found.doubled,
            "stuck": found.stuck_count,
            "stuck_ids": found.stuck,
            "not_final": found.not_final,
            "receipts": found.receipts,
            "completed_without_receipt": found.completed_without_receipt,
            "receipts_without_document": found.receipts_without_document,
            "acknowledged_in_drives": found.acknowledged_in_drives,
            "acks_missing": len(found.acks_missing),
            "acks_missing_ids": found.acks_missing,
            "fd_gaps": found.fd_gaps,
            "unexpected_exits": self.unexpected_exits,
            "startup_seconds": self.startup_seconds,
            "proxy_answers": self.proxy_answers,
            "seconds": round(self.seconds, 1),
            "drain_seconds": round(self.drain_seconds, 1),
            "drained": self.drained,
            "work_dir": self.work_dir,
            "notes": self.notes,
            "ok": self.ok,
        }
