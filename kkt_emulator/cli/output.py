"""Output helpers shared by commands: JSON for machines, rich tables and sentences for people."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["JSON_HELP", "JSON_OPTION", "console", "emit", "parse_hex"]

console = Console(highlight=False, soft_wrap=True)

JSON_HELP = "Print machine-readable JSON."

JSON_OPTION: Any = typer.Option(False, "--json", help=JSON_HELP)  # noqa: FBT003 - typer default


def emit(data: Any, as_json: bool, human: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON (``as_json``) or through the ``human`` renderer."""
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human(data)


def parse_hex(text: str) -> bytes:
    """Parse hex with optional spaces, colons, ``0x`` prefixes and newlines.

    Raises:
        typer.BadParameter: not hex.
    """
    cleaned = text.replace("0x", "").replace("0X", "")
    for sep in (" ", ":", "\n", "\t", "\r", "-", ","):
        cleaned = cleaned.replace(sep, "")
    if not cleaned:
        raise typer.BadParameter("no hex digits given")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise typer.BadParameter(f"not hex: {exc}") from exc
