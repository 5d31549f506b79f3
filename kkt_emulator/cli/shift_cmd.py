"""``kkt-emulator shift close``: the till's shift over the control plane."""

from __future__ import annotations

import typer

from kkt_emulator.cli.fanout import pick, simple
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.control.client import Outcome

__all__ = ["app"]

app = typer.Typer(help="The till's shift.", no_args_is_help=True)


@app.command("close")
@control_command()
def shift_close(*, opts: ControlOptions) -> None:
    """Close the open shift (the drive prints the shift-closing report)."""

    def sentence(outcome: Outcome) -> str:
        if not pick(outcome.result, "closed"):
            return f"till {outcome.device_id}: no open shift"
        number = pick(outcome.result, "shift_number")
        fd = pick(outcome.result, "fn_doc_number")
        return f"till {outcome.device_id}: shift {number} closed (fiscal document {fd})"

    simple("shift.close", None, sentence, opts)
