"""``kkt-emulator scenario``: the list, and a recipe run against a running installation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kkt_emulator.app.scenarios import SCENARIOS, run_scenario
from kkt_emulator.cli.main import main
from kkt_emulator.testing.stack import StackHarness


def test_list_names_the_support_case_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in rows}
    tests = {p.stem.removeprefix("test_") for p in Path("tests/scenarios").glob("test_*.py")}
    # Every support case is a recipe, and every recipe has its test.
    assert names == tests
    assert "error_pickup_window" in names
    assert all(set(row) == {"name", "summary"} and row["summary"] for row in rows)


def test_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "run", "nope"]) == 2
    assert "unknown scenario 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["error_negative", "double_integration_warns"])
async def test_run_records_each_step(tmp_path: Path, name: str) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        run = await run_scenario(name, kkt.info | {"mqtt": None}, wait=10.0)
        assert run.expected_ok, [s.to_json() for s in run.steps]
        assert any(step.action.startswith("shop posts") for step in run.steps)
        assert name in SCENARIOS


async def test_a_check_it_cannot_make_fails(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        run = await run_scenario("queue_stuck_offline", kkt.info | {"mqtt": None}, wait=10.0)
        assert not run.expected_ok
        last = run.steps[-1]
        assert (last.action, last.ok) == ("stopped", False)
        assert "MQTT control plane" in last.result
