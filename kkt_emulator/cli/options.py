"""The options every control command shares, declared once: ``ControlOptions``.

The control commands (``status``, ``set``, ``fault …``, ``clock …``, ``shift close``, ``sell``,
``correction``, ``fn replace``, ``snapshot``, ``restore``) all reach tills over MQTT
(``till-protocol.md`` §3) and take the same five options: ``--device/-d``, ``--mqtt``
(``$KKT_MQTT_URL``), ``--ready-file`` (``$KKT_READY_FILE``), ``--timeout`` and ``--json``. They are
declared here as :data:`typing.Annotated` typer options, and :func:`control_command` adds them to a
command whose function takes one ``opts: ControlOptions`` keyword argument instead::

    @control_command()
    def shift_close(*, opts: ControlOptions) -> None: ...

Typer sees the five options after the command's own parameters (as on ``--help``), and the command
gets them as one frozen :class:`ControlOptions`. :func:`with_shared_options` is the mechanism, for
any group of commands that shares a block of options (the ``cabinet`` commands use it too,
:func:`kkt_emulator.cli.cloud_target.cabinet_command`).
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kkt_emulator.cli.output import JSON_HELP
from kkt_emulator.cli.ready import READY_HELP, load_ready
from kkt_emulator.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "DEFAULT_TIMEOUT",
    "ControlOptions",
    "DeviceOption",
    "JsonFlag",
    "MqttOption",
    "ReadyFileOption",
    "Target",
    "control_command",
    "with_shared_options",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a control command waits for each till's answer, unless the command says otherwise."""

TIMEOUT_HELP = "Seconds to wait for each till's answer."

DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        "-d",
        help="One till: its device id or a unique prefix of it (default: every online till).",
    ),
]
MqttOption = Annotated[
    str | None,
    typer.Option(
        "--mqtt",
        envvar="KKT_MQTT_URL",
        help="The broker, mqtt://host:port (default: the one in the ready-file).",
    ),
]
ReadyFileOption = Annotated[
    Path | None, typer.Option("--ready-file", envvar="KKT_READY_FILE", help=READY_HELP)
]
JsonFlag = Annotated[bool, typer.Option("--json", help=JSON_HELP)]

_OPTS = "opts"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the tills are: the broker URL, and the ready-file when it was read.

    Attributes:
        url: the MQTT broker, ``mqtt://host:port``.
        ready: the ready-file of the running installation, or ``None`` when ``--mqtt`` was given
            without ``--ready-file``.
    """

    url: str
    ready: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ControlOptions:
    """The shared options of one control command, as typed on the command line.

    Attributes:
        device: ``--device``: one till (an id or a unique prefix), or ``None`` for every online one.
        mqtt: ``--mqtt``: the broker URL, or ``None`` to take it from the ready-file.
        ready_file: ``--ready-file``: the ready-file, or ``None`` for the default one.
        timeout: ``--timeout``: seconds to wait for each till's answer.
        as_json: ``--json``: print JSON instead of tables and sentences.
    """

    device: str | None = None
    mqtt: str | None = None
    ready_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    as_json: bool = False

    def target(self) -> Target:
        """The broker URL, and the ready-file when it is the source of truth.

        Raises:
            ConfigError: no running installation, or one without an MQTT control plane.
        """
        if self.mqtt is not None:
            ready = load_ready(self.ready_file) if self.ready_file is not None else None
            return Target(self.mqtt, ready)
        ready = load_ready(self.ready_file)
        url = ready.get("mqtt")
        if not url:
            raise ConfigError(
                "the running installation has no MQTT control plane (it was started with --mqtt "
                "none or without mosquitto); restart it with --mqtt spawn, or pass --mqtt URL"
            )
        return Target(str(url), ready)


def _shared_parameters(timeout: float, timeout_help: str) -> list[inspect.Parameter]:
    timeout_option = Annotated[float, typer.Option("--timeout", min=0.1, help=timeout_help)]
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("device", keyword, default=None, annotation=DeviceOption),
        inspect.Parameter("mqtt", keyword, default=None, annotation=MqttOption),
        inspect.Parameter("ready_file", keyword, default=None, annotation=ReadyFileOption),
        inspect.Parameter("timeout", keyword, default=timeout, annotation=timeout_option),
        inspect.Parameter("as_json", keyword, default=False, annotation=JsonFlag),
    ]


def with_shared_options(
    shared: Sequence[inspect.Parameter], build: type[object]
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command options declared once, passed to it as one ``opts`` keyword argument.

    Args:
        shared: the options, as keyword-only parameters whose annotation or default carries the
            typer declaration; typer shows them after the command's own parameters.
        build: the class of ``opts``, made from the shared options' values by parameter name.

    Returns:
        A decorator; the command it wraps keeps its own parameters, name and docstring.

    Raises:
        TypeError: (from the decorator) the command takes no ``opts`` parameter.
    """
    names = tuple(p.name for p in shared)

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(command, include_extras=True)
        own = inspect.signature(command, eval_str=True)
        if _OPTS not in own.parameters:
            msg = f"{command.__name__} takes no `{_OPTS}: {build.__name__}` parameter"
            raise TypeError(msg)
        parameters = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in own.parameters.values()
            if p.name != _OPTS
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> None:
            values = {name: kwargs.pop(name) for name in names}
            command(*args, **kwargs, opts=build(**values))

        # Typer reads the command's parameters from its signature and type hints.
        run.__signature__ = own.replace(parameters=[*parameters, *shared])  # type: ignore[attr-defined]  # inspect honours an explicit __signature__
        run.__annotations__ = {
            **{p.name: p.annotation for p in parameters},
            **{p.name: p.annotation for p in shared},
            "return": None,
        }
        return run

    return decorate


def control_command(
    *, timeout: float = DEFAULT_TIMEOUT, timeout_help: str = TIMEOUT_HELP
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the shared control options, passed to it as ``opts: ControlOptions``.

    Args:
        timeout: the default of ``--timeout`` (commands that register a drive wait longer).
        timeout_help: the help text of ``--timeout``.

    Returns:
        A decorator; the command it wraps keeps its own parameters and name.
    """
    return with_shared_options(_shared_parameters(timeout, timeout_help), ControlOptions)
