"""``kkt-emulator set KEY VALUE…``: change till settings over the control plane."""

from __future__ import annotations

from typing import Any

import typer

from kkt_emulator.cli.fanout import fmt, pick, simple
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.clock import parse_duration
from kkt_emulator.control.client import Outcome
from kkt_emulator.errors import ConfigError

__all__ = ["parse_settings", "register", "set_settings"]

_BOOL_SETTINGS = ("power_saving", "online")
_SECONDS_SETTINGS = ("poll_interval", "long_poll")
_SETTINGS = (*_BOOL_SETTINGS, *_SECONDS_SETTINGS, "shift_mode")
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``["power-saving", "on", "poll-interval", "2"]`` → ``{"power_saving": True, …}``.

    Raises:
        typer.BadParameter: an odd count, an unknown setting or a bad value.
    """
    if not pairs or len(pairs) % 2:
        raise typer.BadParameter("give KEY VALUE pairs, e.g. `set power-saving on`")
    values: dict[str, Any] = {}
    for raw_key, raw in zip(pairs[::2], pairs[1::2], strict=True):
        key = raw_key.strip().lower().replace("-", "_")
        text = raw.strip().lower()
        if key in _BOOL_SETTINGS:
            if text not in (*_TRUE, *_FALSE):
                raise typer.BadParameter(f"{raw_key} takes on or off, not {raw!r}")
            values[key] = text in _TRUE
        elif key in _SECONDS_SETTINGS:
            try:
                values[key] = parse_duration(text).total_seconds()
            except ConfigError as exc:
                raise typer.BadParameter(f"{raw_key}: {exc}") from exc
        elif key == "shift_mode":
            values[key] = text
        else:
            known = ", ".join(k.replace("_", "-") for k in _SETTINGS)
            raise typer.BadParameter(f"unknown setting {raw_key!r} (known: {known})")
    return values


@control_command()
def set_settings(
    pairs: list[str] = typer.Argument(
        ...,
        metavar="KEY VALUE…",
        help="power-saving on|off, online on|off, poll-interval SECONDS, long-poll SECONDS, "
        "shift-mode shared|separate.",
    ),
    *,
    opts: ControlOptions,
) -> None:
    """Change till settings, e.g. `set power-saving on` or `set online off poll-interval 2`."""
    values = parse_settings(pairs)

    def sentence(outcome: Outcome) -> str:
        settings = pick(outcome.result, "settings") or {}
        shown = ", ".join(
            f"{k.replace('_', '-')} {fmt(pick(settings, k) if pick(settings, k) is not None else v)}"
            for k, v in values.items()
        )
        return f"till {outcome.device_id}: {shown}"

    simple("set", values, sentence, opts)


def register(app: typer.Typer) -> None:
    """Add ``set`` to the command line."""
    app.command("set")(set_settings)
