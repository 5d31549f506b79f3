"""Which cloud the ``cabinet …`` commands talk to: ``--server``, else a running installation (D106).

``--server`` (or ``$KKT_CLOUD_URL``) names a cloud; without it the cabinet commands find the
running installation through its ready-file as every other command does: ``--ready-file``,
``$KKT_READY_FILE``, or the default state directory's ``ready.json``. Only when none is given and
the default ready-file is absent (or names an installation that is gone) do they fall back to
:data:`~kkt_emulator.cloud.cabinet_client.DEFAULT_SERVER`, where ``cloud serve`` listens by default.

Every ``cabinet …`` command ends with the same four options, ``--server``, ``--ready-file``,
``--token`` and ``--json``; :func:`cabinet_command` adds them to a command whose function takes one
``opts: CabinetOptions`` keyword argument instead::

    @points_app.command("list")
    @cabinet_command
    def points_list(*, opts: CabinetOptions) -> None: ...

Commands that call the cloud's HTTP APIs themselves (``doc``, ``receipt``) read its error answers
with :func:`raise_for_error`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer

from kkt_emulator.cli.options import with_shared_options
from kkt_emulator.cli.output import JSON_OPTION
from kkt_emulator.cli.ready import READY_OPTION, load_ready, ready_path
from kkt_emulator.cloud.cabinet_client import DEFAULT_SERVER
from kkt_emulator.errors import CloudError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "READY_OPTION",
    "SERVER",
    "TOKEN",
    "CabinetOptions",
    "cabinet_command",
    "cloud_url",
    "raise_for_error",
]

SERVER: Any = typer.Option(
    None,
    "--server",
    envvar="KKT_CLOUD_URL",
    help=f"Base URL of the cloud (default: the running installation's, else {DEFAULT_SERVER}).",
)
TOKEN: Any = typer.Option(
    None, "--token", envvar="KKT_CABINET_TOKEN", help="Cabinet token, if the cloud has one."
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


def raise_for_error(response: httpx.Response) -> None:
    """Refuse an HTTP error answer of the cloud (status 400 and above); other answers pass.

    Raises:
        CloudError: the status and the answer's ``message`` (its whole text when it is not JSON).
    """
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise CloudError(response.status_code, str(message))


@dataclass(frozen=True, slots=True)
class CabinetOptions:
    """The shared options of one ``cabinet …`` command, as typed on the command line.

    Attributes:
        server: ``--server``: the cloud's base URL, or ``None`` to find it (D106).
        ready_file: ``--ready-file``: the running installation's ready-file, or ``None``.
        token: ``--token``: the cabinet token, if the cloud has one.
        as_json: ``--json``: print JSON instead of tables and sentences.
    """

    server: str | None = None
    ready_file: Path | None = None
    token: str | None = None
    as_json: bool = False

    def url(self) -> str:
        """The cloud's base URL (D106).

        Raises:
            ConfigError: a ready-file was named and cannot be read, or names no cloud.
        """
        return cloud_url(self.server, self.ready_file)


def _cabinet_parameters() -> list[inspect.Parameter]:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("server", keyword, default=SERVER, annotation=str | None),
        inspect.Parameter("ready_file", keyword, default=READY_OPTION, annotation=Path | None),
        inspect.Parameter("token", keyword, default=TOKEN, annotation=str | None),
        inspect.Parameter("as_json", keyword, default=JSON_OPTION, annotation=bool),
    ]


def cabinet_command(command: Callable[..., None]) -> Callable[..., None]:
    """Give a ``cabinet …`` command ``--server``, ``--ready-file``, ``--token`` and ``--json``.

    The command takes them as one ``opts: CabinetOptions`` keyword argument; typer shows them after
    the command's own parameters, in that order.
    """
    return with_shared_options(_cabinet_parameters(), CabinetOptions)(command)
