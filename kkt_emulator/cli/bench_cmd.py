"""``kkt-emulator bench``: benchmarks that print JSON."""

from __future__ import annotations

import json
from enum import StrEnum

import typer

from kkt_emulator.bench import bench_fn

app = typer.Typer(help="Benchmarks; every one prints a JSON document.", no_args_is_help=True)


class StoreKind(StrEnum):
    """Where the benchmarked drive keeps its archive."""

    MEMORY = "memory"
    SQLITE = "sqlite"


@app.command("fn")
def fn_command(
    seconds: float = typer.Option(1.0, min=0.05, help="How long each case runs."),
    store: StoreKind = typer.Option(
        StoreKind.MEMORY, help="memory: the state machine alone; sqlite: every command committed."
    ),
) -> None:
    """Drive frames per second (status, one 07h item, a whole receipt) vs the 115200-baud line."""
    typer.echo(json.dumps(bench_fn(seconds, store.value), ensure_ascii=False, indent=2))
