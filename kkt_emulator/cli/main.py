"""Entry point of ``kkt-emulator``.

Every command exits 0 on success and non-zero with a one-line ``error: …`` on failure: 2 for bad
input, configuration or an unreachable service, 1 for a failed check. Command groups live in
their own modules and are added in :func:`build_app`.
"""

from __future__ import annotations

import sys

import click
import typer

from kkt_emulator import __version__
from kkt_emulator.errors import EmulatorError

__all__ = ["build_app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kkt-emulator {__version__}")
        raise typer.Exit


def build_app() -> typer.Typer:
    """Assemble the command tree."""
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
    ) -> None:
        """A virtual МодульКасса till for integration tests and CI."""

    from kkt_emulator.cli import groups  # noqa: PLC0415 - groups import heavy modules lazily

    groups.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by ``python -m``)."""
    app = build_app()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="kkt-emulator", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        typer.echo("error: aborted", err=True)
        return 130
    except EmulatorError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
