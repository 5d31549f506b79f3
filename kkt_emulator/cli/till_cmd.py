"""``kkt-emulator till run``: one till against a cloud, optionally with its drive on a pty."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from kkt_emulator import eventloop
from kkt_emulator.clock import make_clock
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.till import Till, TillConfig

app = typer.Typer(help="A single virtual till.", no_args_is_help=True)


@app.command("run")
def run(
    server: str = typer.Option(
        ..., "--server", help="The cloud's base URL, e.g. http://127.0.0.1:8080."
    ),
    retail_point: str | None = typer.Option(
        None, "--retail-point", help="Retail point id to bind to."
    ),
    login: str = typer.Option(..., "--login", help="The retail point's service login."),
    password: str | None = typer.Option(
        None,
        "--password",
        envvar="KKT_TILL_PASSWORD",
        show_envvar=True,
        help="The retail point's service password. Prefer the environment variable or"
        " --password-file: a command-line argument is visible to every user in `ps`.",
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="Read the service password from this file (its first line).",
    ),
    profile: str = typer.Option(DEFAULT_PROFILE, "--profile", help="Firmware profile."),
    state_dir: Path = typer.Option(
        ..., "--state-dir", help="The till's state (drive archive, journal, outbox)."
    ),
    serial_link: Path | None = typer.Option(
        None,
        "--serial-link",
        help="Serve the drive on a pty symlinked here; the till talks to it through pyserial.",
    ),
    ofd: str | None = typer.Option(
        None, "--ofd", help="The OFD stand-in's host:port (no OFD exchange if absent)."
    ),
    clock_spec: str = typer.Option("real", "--clock", help="real, manual or scaled:N."),
    poll_interval: float = typer.Option(
        5.0, "--poll-interval", min=0.0, help="Seconds between polls."
    ),
    long_poll: float = typer.Option(
        0.0, "--long-poll", min=0.0, max=30.0, help="Long-poll wait (0: plain polls)."
    ),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        help="Join the control plane on this broker (mqtt://host:port), as `up` tills do.",
    ),
) -> None:
    """Run one till until Ctrl-C or SIGTERM: poll the cloud, fiscalise, report, send to the OFD."""
    secret = read_password(password, password_file)
    config = TillConfig(
        profile=load_profile(profile),
        state_dir=state_dir,
        server=server,
        login=login,
        password=secret,
        retail_point_id=retail_point,
        ofd_address=ofd,
        serial_link=serial_link,
        settings={"poll_interval": poll_interval, "long_poll": long_poll},
    )
    clock = make_clock(clock_spec)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Till(config, clock) as till:
            control = None
            if mqtt is not None:
                from kkt_emulator.control.plane import ControlPlane  # noqa: PLC0415 - only with --mqtt

                control = ControlPlane(mqtt, clock)
                await control.start([till])
            typer.echo(
                f"till {till.kkt_serial} with drive {till.fn_serial} bound as {till.device_id}"
            )
            try:
                await stop.wait()
            finally:
                if control is not None:
                    await control.close()

    eventloop.run(main())


def read_password(password: str | None, password_file: Path | None) -> str:
    """The service password from ``--password-file``, or ``--password`` / ``KKT_TILL_PASSWORD``.

    Raises:
        ConfigError: none given, both given, or the file cannot be read or is empty.
    """
    if password_file is not None and password is not None:
        raise ConfigError(
            "give the password once: --password-file, or --password / KKT_TILL_PASSWORD"
        )
    if password_file is None:
        if not password:
            raise ConfigError(
                "the service password is missing: set KKT_TILL_PASSWORD or give --password-file"
            )
        return password
    try:
        lines = password_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the password file {password_file}: {exc}") from exc
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ConfigError(f"the password file {password_file} is empty")
    return secret
