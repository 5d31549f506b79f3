"""``kkt-emulator fn``: decode fn bytes."""

from __future__ import annotations

import typer

app = typer.Typer(help="Decode drive fn bytes.", no_args_is_help=True)
