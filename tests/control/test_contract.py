"""One contract for ``ControlledTill``, run against the control tests' fake and a real till.

Back-to-back (python-can's ``Back2BackTestCase``): whatever the agent relies on must hold for both,
so the fake the agent tests use cannot drift from the till it stands in for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from control_helpers import FakeTill

from kkt_emulator.clock import ManualClock
from kkt_emulator.control.agent import ControlledTill, ControlSource
from kkt_emulator.errors import ConfigError
from kkt_emulator.testing.stack import StackHarness

DEADLINES = {"shift.expires", "ofd.block", "fn.expires", "fn.warning"}


@pytest.fixture(params=["fake", "real"])
async def controlled(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ControlledTill]:
    """The control face of a fake till and of a real one (a whole stack with its cloud)."""
    if request.param == "fake":
        fake: ControlSource = FakeTill("dev-contract")
        yield fake.control
        return
    async with StackHarness.running(tmp_path) as kkt:
        real: ControlSource = kkt.till
        yield real.control


async def test_identity_and_state(controlled: ControlledTill) -> None:
    assert controlled.device_id
    assert controlled.fn_serial
    assert controlled.profile.name
    state = (await controlled.snapshot_state()).to_json()
    assert {"settings", "polling", "faults", "shift", "deadlines", "clock"} <= set(state)
    assert state["clock"]["mode"] == controlled.clock.mode
    assert set(state["deadlines"]) == DEADLINES
    assert set(controlled.deadlines()) == DEADLINES


async def test_settings_are_validated_and_shown(controlled: ControlledTill) -> None:
    changed = (await controlled.set_settings(power_saving=True)).to_json()
    assert changed["power_saving"] is True
    state = (await controlled.snapshot_state()).to_json()
    assert state["settings"]["power_saving"] is True
    assert state["polling"] is False
    for bad in ({"power_saving": "yes"}, {"nope": 1}):
        with pytest.raises(ConfigError):
            await controlled.set_settings(**bad)


async def test_faults_round_trip(controlled: ControlledTill) -> None:
    with pytest.raises(ConfigError):
        controlled.inject_fault("no.such_fault")
    with pytest.raises(ConfigError):
        controlled.clear_faults("no.such_fault")
    armed = controlled.inject_fault("fn.slow", params={"delay_ms": 1}).to_json()
    assert armed["name"] == "fn.slow"
    assert [f.to_json()["name"] for f in controlled.list_faults()] == ["fn.slow"]
    state = (await controlled.snapshot_state()).to_json()
    assert [f["name"] for f in state["faults"]] == ["fn.slow"]
    assert controlled.clear_faults() == ["fn.slow"]
    assert list(controlled.list_faults()) == []


async def test_shift_close_answers_then_none(controlled: ControlledTill) -> None:
    await controlled.sell(100, "Кассир")
    closed = await controlled.close_shift()
    assert closed is not None
    assert {"shiftNumber", "fnDocNumber"} <= set(closed.to_json())
    assert await controlled.close_shift() is None


async def test_clock_is_manual_in_tests(controlled: ControlledTill) -> None:
    assert isinstance(controlled.clock, ManualClock)
