"""Which cloud the ``cabinet …`` commands talk to: ``--server``, else a running installation (D106).

``--server`` (or ``$KKT_CLOUD_URL``) names a cloud; without it the cabinet commands find the
running installation through its ready-file as every other command does: ``--ready-file``,
``$KKT_READY_FILE``, or the default state directory's ``ready.json``. Only when none is given and
the default ready-file is absent (or names an installation that is gone) do they fall back to
:data:`~kkt_emulator.cloud.cabinet_client.DEFAULT_SERVER`, where ``cloud serve`` listens by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kkt_emulator.cli.ready import READY_OPTION, load_ready, ready_path
from kkt_emulator.cloud.cabinet_client import DEFAULT_SERVER
from kkt_emulator.errors import ConfigError

__all__ = ["READY_OPTION", "SERVER", "cloud_url"]

SERVER: Any = typer.Option(
    None,
    "--server",
    envvar="KKT_CLOUD_URL",
    help=f"Base URL of the cloud (default: the running installation's, else {DEFAULT_SERVER}).",
)


def cloud_url(server: str | None, ready_file: Path | None) -> str:
    """The cloud's base URL (D106).

    Raises:
        ConfigError: a ready-file was named and cannot be read, or names no cloud.
    """
    if server:
        return server
    if ready_file is None and not ready_path(None).is_file():
        return DEFAULT_SERVER
    try:
        ready = load_ready(ready_file)
    except ConfigError:
        if ready_file is not None:
            raise
        return DEFAULT_SERVER  # a stale default ready-file: a `cloud serve` may run alone
    base = ready.get("base_url")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"the ready-file {ready_path(ready_file)} names no cloud (base_url)")
    return base
