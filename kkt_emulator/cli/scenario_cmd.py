"""``kkt-emulator scenario``: the support cases as recipes against a running installation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from kkt_emulator.app.scenarios import SCENARIOS, run_scenario
from kkt_emulator.cli.output import JSON_OPTION, console, emit
from kkt_emulator.cli.ready import READY_OPTION, load_ready

__all__ = ["app"]

app = typer.Typer(
    help="The support cases (support-cases.md) as recipes against a running `kkt-emulator up`.",
    no_args_is_help=True,
)


@app.command("list")
def scenario_list(as_json: bool = JSON_OPTION) -> None:
    """The scenarios, with what each one shows."""
    data = [s.to_json() for s in SCENARIOS.values()]

    def human(rows: list[dict[str, str]]) -> None:
        width = max(len(r["name"]) for r in rows)
        for row in rows:
            console.print(f"{row['name']:<{width}}  {row['summary']}")

    emit(data, as_json, human)


@app.command("run")
def scenario_run(
    name: str = typer.Argument(..., help="A scenario from `scenario list`."),
    wait: float = typer.Option(
        60.0, "--wait", min=0.1, help="Seconds to wait for each expected status."
    ),
    ready_file: Path | None = READY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run one scenario and print what happened step by step.

    The same steps and checks as the case's end-to-end test (tests/scenarios/test_NAME.py).
    Exits 1 when something was not as the support case says, or could not be checked here;
    0 otherwise. Business-time steps need `up --clock manual`; till steps need the MQTT control
    plane.
    """
    if name not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {name!r} (see `kkt-emulator scenario list`)")
    ready = load_ready(ready_file)
    run = asyncio.run(run_scenario(name, ready, wait=wait))
    data = {"scenario": name, "ok": run.expected_ok, "steps": run.explain()}

    def human(result: dict[str, Any]) -> None:
        for number, step in enumerate(result["steps"], 1):
            mark = "ok " if step["ok"] else "NOT"
            shown = step["result"]
            text = "" if shown is None else json.dumps(shown, ensure_ascii=False, default=str)
            console.print(
                f"{number:>2}. [{mark}] {step['action']}" + (f" → {text}" if text else "")
            )
        console.print(f"{name}: {'as expected' if result['ok'] else 'NOT as expected'}")

    emit(data, as_json, human)
    if not run.expected_ok:
        raise typer.Exit(1)
