"""``kkt-emulator fn replace``: a new fiscal drive in a running till, over the control plane.

The ``fn`` group's other commands talk to a drive directly (``fn_cmd``); this one asks a till.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kkt_emulator.cli.fanout import fmt, generic, pick, simple
from kkt_emulator.cli.options import ControlOptions, control_command

if TYPE_CHECKING:
    import typer

    from kkt_emulator.control.client import Outcome

__all__ = ["fn_replace", "register"]


def _sentence(outcome: Outcome) -> str:
    serial = pick(outcome.result, "fn_serial")
    if serial:
        return f"till {outcome.device_id}: new drive {fmt(serial)}"
    return generic(outcome)


@control_command(timeout=60.0, timeout_help="Seconds to wait (registration takes a while).")
def fn_replace(*, opts: ControlOptions) -> None:
    """Put a new fiscal drive into the till(s) and register it."""
    simple("fn.replace", None, _sentence, opts)


def register(fn_app: typer.Typer) -> None:
    """Add ``replace`` to the ``fn`` group."""
    fn_app.command("replace")(fn_replace)
