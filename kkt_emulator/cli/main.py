"""Entry point of ``kkt-emulator``.

Every command exits 0 on success and non-zero with a one-line ``error: …`` on failure: 2 for bad
input, configuration or an unreachable service, 1 for a failed check. An exception no command
expected (a bug) is logged with its traceback and ends the command with ``error: internal error …``
and exit code 1. Command groups live in their own modules and are added in :func:`build_app`.
"""

from __future__ import annotations

import sys

import typer
from typer._click import exceptions as click_exceptions  # typer vendors click from 0.29

from kkt_emulator import __version__, eventloop
from kkt_emulator.errors import EmulatorError
from kkt_emulator.logging import configure_logging, get_logger

__all__ = ["build_app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kkt-emulator {__version__}")
        raise typer.Exit


#: The root options that take a value; :func:`command_name` skips them to find the command.
_ROOT_VALUE_OPTIONS = ("--log-format", "--log-level")


def command_name(argv: list[str]) -> str | None:
    """The command ``argv`` runs (its first word after the root options), or None for none.

    Any other option before the command (``--help``, ``--version``, a typo) gives None: the whole
    tree is built and click answers it.
    """
    args = iter(argv)
    for arg in args:
        if arg in _ROOT_VALUE_OPTIONS:
            next(args, None)
        elif arg.startswith(tuple(f"{option}=" for option in _ROOT_VALUE_OPTIONS)):
            continue
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def build_app(command: str | None = None) -> typer.Typer:
    """Assemble the command tree.

    Only the group of ``command`` when it is given and known (the rest of the tree is not even
    imported), else every group.
    """
    app = typer.Typer(
        name="kkt-emulator",
        help="A virtual МодульКасса till: fiscal drive, vendor cloud, OFD and fault injection.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False,  # noqa: FBT003 - typer default
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
        log_format: str = typer.Option(
            "auto",
            "--log-format",
            envvar="KKT_LOG_FORMAT",
            help="Logs on stderr: console (people), json (one object per line), auto (console on a TTY).",
        ),
        log_level: str = typer.Option(
            "warning", "--log-level", envvar="KKT_LOG_LEVEL", help="debug, info, warning or error."
        ),
    ) -> None:
        """A virtual МодульКасса till for integration tests and CI."""
        del version
        configure_logging(log_format, log_level)

    from kkt_emulator.cli import groups  # noqa: PLC0415 - groups import heavy modules lazily

    groups.register(app, command)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by ``python -m``).

    Without ``argv`` the process is the program (its console script or ``python -m``): its event
    loop runs with the collector tuned (D121). With ``argv`` (a test, a library) it is left alone.
    """
    if argv is None:
        eventloop.as_program()
    app = build_app(command_name(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="kkt-emulator", standalone_mode=False)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except click_exceptions.ClickException as exc:
        hint = " (see --help)" if isinstance(exc, click_exceptions.UsageError) else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 130
    except EmulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Not an error of the input: a bug. Its traceback goes to the log (stderr), then one line.
        # The logger is made here, after the root callback configured logging for this run.
        log = get_logger(__name__)
        log.exception("command_crashed", argv=argv if argv is not None else sys.argv[1:])
        typer.echo(f"error: internal error: {type(exc).__name__}: {exc}", err=True)
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
