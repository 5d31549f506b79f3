"""``kkt-emulator profiles``: list and show firmware profiles."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer
from rich.table import Table

from kkt_emulator.cli.output import JSON_OPTION, console, emit
from kkt_emulator.profiles import list_profiles, load_profile

app = typer.Typer(
    help="Firmware profiles: till model, drive model, FFD version, registration.",
    no_args_is_help=True,
)


@app.command("list")
def list_command(as_json: bool = JSON_OPTION) -> None:
    """List every firmware profile found."""
    rows = []
    for name in list_profiles():
        p = load_profile(name)
        rows.append(
            {
                "name": p.name,
                "ffd": p.ffd_version,
                "drive": p.drive.name,
                "months": p.drive.validity_months,
                "description": p.description,
            }
        )

    def human(data: list[dict[str, Any]]) -> None:
        table = Table("name", "FFD", "drive", "months", "description")
        for row in data:
            table.add_row(
                row["name"], row["ffd"], row["drive"], str(row["months"]), row["description"]
            )
        console.print(table)

    emit(rows, as_json, human)


@app.command("show")
def show_command(
    name: str = typer.Argument(help="Profile name or path to a TOML file."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one profile with every field."""
    profile = load_profile(name)
    data = dataclasses.asdict(profile)
    data["source"] = str(profile.source)
    data["timing"] = {f"{k:02X}" if k >= 0 else "default": v for k, v in profile.timing.items()}

    def human(d: dict[str, Any]) -> None:
        for key, value in d.items():
            console.print(f"[bold]{key}[/bold]: {value}")

    emit(data, as_json, human)
