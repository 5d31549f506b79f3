"""Options of the commands that run a part of the installation, declared once.

``up``, ``till run``, ``till fleet``, ``cloud serve``, ``fn serve`` and the ``bench`` commands start
tills, drives or a cloud, and several of them take the same option: the firmware profile, the
clock, the tills' poll interval and timing. Those declared alike in every command are constants
here, used as parameter defaults as :data:`~kkt_emulator.cli.output.JSON_OPTION` is.

``up`` passes the cloud's settings on as ``cloud serve`` takes them (``--cabinet-token``,
``--fiscal-date-format``, ``--fiscal-sum-as-string``; ``till fleet`` takes ``--cabinet-token`` for
the points it creates): the functions below keep the flag, its default and its environment
variable in one place and leave each command its own help text.
"""

from __future__ import annotations

from typing import Any

import typer

from kkt_emulator.cloud.settings import FiscalDateFormat
from kkt_emulator.profiles import DEFAULT_PROFILE

__all__ = [
    "CLOCK_OPTION",
    "POLL_INTERVAL_OPTION",
    "PROFILE_OPTION",
    "PROFILE_SEE_LIST_OPTION",
    "TIMING_OPTION",
    "cabinet_token_option",
    "fiscal_date_format_option",
    "fiscal_sum_as_string_option",
]

PROFILE_OPTION: Any = typer.Option(DEFAULT_PROFILE, "--profile", help="Firmware profile.")
PROFILE_SEE_LIST_OPTION: Any = typer.Option(
    DEFAULT_PROFILE, "--profile", help="Firmware profile (see `profiles list`)."
)
CLOCK_OPTION: Any = typer.Option("real", "--clock", help="real, manual or scaled:N.")
POLL_INTERVAL_OPTION: Any = typer.Option(
    5.0, "--poll-interval", min=0.0, help="Seconds between till polls."
)
TIMING_OPTION: Any = typer.Option(
    "fast", "--timing", help="fast, or realistic (the profile's per-command delays)."
)


def cabinet_token_option(help_text: str) -> Any:
    """``--cabinet-token`` (``$KKT_CABINET_TOKEN``): the cabinet API's bearer token, if any."""
    return typer.Option(None, "--cabinet-token", envvar="KKT_CABINET_TOKEN", help=help_text)


def fiscal_date_format_option(help_text: str) -> Any:
    """``--fiscal-date-format``: ``fiscalInfo.date`` as iso (the default) or millis (``store-api.md`` §14)."""
    return typer.Option(FiscalDateFormat.ISO, "--fiscal-date-format", help=help_text)


def fiscal_sum_as_string_option(help_text: str) -> Any:
    """``--fiscal-sum-as-string``: ``fiscalInfo.sum`` as a string (``store-api.md`` §14); off by default."""
    return typer.Option(False, "--fiscal-sum-as-string", help=help_text)  # noqa: FBT003 - typer default
