"""The catalogue of support cases by name, and running one on an installation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kkt_emulator.app.scenarios.installation import Installation, LiveInstallation
from kkt_emulator.app.scenarios.run import Hook, ScenarioRun
from kkt_emulator.errors import ConfigError, EmulatorError

__all__ = ["SCENARIOS", "Scenario", "run_on", "run_scenario", "scenario"]

ScenarioBody = Callable[[ScenarioRun], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    """A support case (``support-cases.md``): what it shows, and the steps and checks that show it.

    ``name`` is also the name of its end-to-end test, ``tests/scenarios/test_<name>.py``.
    """

    name: str
    summary: str
    body: ScenarioBody

    def to_json(self) -> dict[str, str]:
        """``{"name", "summary"}`` (``scenario list``)."""
        return {"name": self.name, "summary": self.summary}


#: Every support case by name, in catalogue order.
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, summary: str) -> Callable[[ScenarioBody], ScenarioBody]:
    """Register the decorated coroutine as the support case ``name``."""

    def register(body: ScenarioBody) -> ScenarioBody:
        if name in SCENARIOS:
            raise ConfigError(f"two support cases are named {name!r}")
        SCENARIOS[name] = Scenario(name, summary, body)
        return body

    return register


def find(name: str) -> Scenario:
    """The support case ``name``.

    Raises:
        ConfigError: there is none.
    """
    found = SCENARIOS.get(name)
    if found is None:
        raise ConfigError(f"unknown scenario {name!r} (see `kkt-emulator scenario list`)")
    return found


async def run_on(
    installation: Installation,
    case: str | ScenarioBody,
    *,
    wait: float = 60.0,
    poll: float = 0.05,
    hooks: Mapping[str, Hook] | None = None,
) -> ScenarioRun:
    """Run a support case (its name, or a part of one) on ``installation``; returns the run.

    An error of the emulator (a refused request, a wait that ran out, a till command that failed)
    stops the case and is its last step, not ok.

    Raises:
        ConfigError: an unknown scenario.
    """
    body = find(case).body if isinstance(case, str) else case
    run = ScenarioRun(installation, wait=wait, poll=poll, hooks=hooks or {})
    try:
        await body(run)
    except EmulatorError as exc:
        run.note("stopped", str(exc), ok=False)
    return run


async def run_scenario(name: str, ready: Mapping[str, Any], *, wait: float = 60.0) -> ScenarioRun:
    """Run scenario ``name`` against the running installation of ``ready`` (its ready-file).

    Raises:
        ConfigError: an unknown scenario.
    """
    find(name)
    async with LiveInstallation.open(ready) as installation:
        return await run_on(installation, name, wait=wait, poll=0.1)
