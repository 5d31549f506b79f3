"""``kkt-emulator tlv``: decode tlv bytes."""

from __future__ import annotations

import typer

app = typer.Typer(help="Decode drive tlv bytes.", no_args_is_help=True)
