"""``kkt-emulator fault inject|clear|list``: the faults of the tills (``till-protocol.md`` §4)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from kkt_emulator.cli.fanout import fan_out, finish, fmt, pick, run, simple
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.cli.output import console
from kkt_emulator.control.client import Outcome

__all__ = ["app", "parse_params"]

app = typer.Typer(help="Inject, clear and list faults (till-protocol.md §4).", no_args_is_help=True)


def _param_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["delay_ms=500", "point=after_commit"]`` → ``{"delay_ms": 500, "point": "after_commit"}``.

    Raises:
        typer.BadParameter: an item without ``=``.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param takes KEY=VALUE, not {item!r}")
        params[key.strip().replace("-", "_")] = _param_value(value.strip())
    return params


@app.command("inject")
@control_command()
def fault_inject(
    name: str = typer.Argument(..., help="A fault of the catalogue, e.g. fn.storage_exhausted."),
    count: int | None = typer.Option(None, "--count", min=1, help="Apply N times, then clear."),
    probability: float | None = typer.Option(
        None, "--probability", min=0.0, max=1.0, help="Chance of applying at each occasion."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed: the same failures on every run."),
    param: list[str] = typer.Option(
        [], "--param", help="Fault parameter KEY=VALUE (repeatable): delay_ms, code, point."
    ),
    *,
    opts: ControlOptions,
) -> None:
    """Arm a fault on the till(s); it stays in the state until cleared (or its count runs out)."""
    args: dict[str, Any] = {"name": name}
    if count is not None:
        args["count"] = count
    if probability is not None:
        args["probability"] = probability
    if seed is not None:
        args["seed"] = seed
    if param:
        args["params"] = parse_params(param)
    how = [
        f"count {count}" if count else "",
        f"probability {probability:g}" if probability is not None else "",
    ]
    how += [f"seed {seed}" if seed is not None else ""]
    how += [f"{k}={v}" for k, v in args.get("params", {}).items()]
    detail = ", ".join(h for h in how if h)
    simple(
        "fault.inject",
        args,
        lambda o: f"till {o.device_id}: fault {name} armed" + (f" ({detail})" if detail else ""),
        opts,
    )


@app.command("clear")
@control_command()
def fault_clear(
    name: str | None = typer.Argument(None, help="The fault to clear (default: every fault)."),
    *,
    opts: ControlOptions,
) -> None:
    """Clear one fault, or every fault."""

    def sentence(outcome: Outcome) -> str:
        cleared = pick(outcome.result, "cleared") or []
        if not cleared:
            return f"till {outcome.device_id}: no fault to clear"
        return f"till {outcome.device_id}: cleared {', '.join(map(str, cleared))}"

    simple("fault.clear", {"name": name} if name else {}, sentence, opts)


@app.command("list")
@control_command()
def fault_list(*, opts: ControlOptions) -> None:
    """The faults armed on the till(s)."""
    outcomes = run(fan_out(opts.target(), opts.device, "fault.list", None, opts.timeout))
    if not opts.as_json:
        grid = Table("device", "fault", "details")
        for outcome in outcomes:
            for fault in pick(outcome.result, "faults") or []:
                if isinstance(fault, dict):
                    rest = {k: v for k, v in fault.items() if k != "name"}
                    grid.add_row(outcome.device_id[:8], str(fault.get("name")), fmt(rest))
                else:
                    grid.add_row(outcome.device_id[:8], str(fault), "")
        if grid.row_count:
            console.print(grid)
        else:
            console.print("no faults armed")
    finish(outcomes, opts.as_json, None)
