"""``kkt-emulator till run``: one till against a cloud, optionally with its drive on a pty."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kkt_emulator import eventloop
from kkt_emulator.cli.output import JSON_OPTION
from kkt_emulator.cli.run_options import (
    CLOCK_OPTION,
    POLL_INTERVAL_OPTION,
    PROFILE_OPTION,
    TIMING_OPTION,
    cabinet_token_option,
)
from kkt_emulator.clock import make_clock
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import load_profile
from kkt_emulator.till.till import Till, TillConfig

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

    from kkt_emulator.app.fleet import FleetOptions
    from kkt_emulator.app.stack import PointAccess
    from kkt_emulator.clock import Clock

PASSWORD_ENV = "KKT_TILL_PASSWORD"  # noqa: S105 - the name of an environment variable

app = typer.Typer(
    help="Virtual tills against a cloud: one (`run`) or many (`fleet`).", no_args_is_help=True
)


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
        envvar=PASSWORD_ENV,
        show_envvar=True,
        help="The retail point's service password. Prefer the environment variable or"
        " --password-file: a command-line argument is visible to every user in `ps`.",
    ),
    password_file: Path | None = typer.Option(
        None,
        "--password-file",
        help="Read the service password from this file (its first line).",
    ),
    profile: str = PROFILE_OPTION,
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
    clock_spec: str = CLOCK_OPTION,
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


# ------------------------------------------------------------------------------------ till fleet


def given_points(
    ids: list[str], logins: list[str], passwords: list[str], password_file: Path | None
) -> list[PointAccess]:
    """The points of ``--point/--login/--password`` (repeated in the same order).

    With one point the password may come from ``--password-file`` or ``$KKT_TILL_PASSWORD``.

    Raises:
        ConfigError: the three lists do not pair up, or a password is missing.
    """
    if len(passwords) <= 1 and len(ids) == 1:
        given = passwords[0] if passwords else None
        if given is None and password_file is None:
            given = os.environ.get(PASSWORD_ENV)
        passwords = [read_password(given, password_file)]
    elif password_file is not None:
        raise ConfigError("--password-file goes with one --point; give --password for each")
    if not len(ids) == len(logins) == len(passwords):
        raise ConfigError(
            f"give --point, --login and --password once per retail point, in the same order "
            f"(got {len(ids)} --point, {len(logins)} --login, {len(passwords)} --password)"
        )
    return [
        {
            "retail_point_id": point,
            "service_login": login,
            "service_password": secret,
            "login": "",
            "password": "",
        }
        for point, login, secret in zip(ids, logins, passwords, strict=True)
    ]


@app.command("fleet")
def fleet(
    server: str = typer.Option(
        ..., "--server", help="The cloud's base URL, e.g. http://cloud-1:8080 (any host)."
    ),
    count: int = typer.Option(..., "--count", min=1, help="How many tills to run."),
    point: list[str] | None = typer.Option(
        None, "--point", help="A retail point id to bind tills to (repeat for several)."
    ),
    login: list[str] | None = typer.Option(
        None, "--login", help="The service login of each --point, in the same order."
    ),
    password: list[str] | None = typer.Option(
        None,
        "--password",
        help="The service password of each --point, in the same order (visible in `ps`: with"
        " one point prefer $KKT_TILL_PASSWORD or --password-file).",
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="The service password of the one --point (first line)."
    ),
    from_ready: Path | None = typer.Option(
        None,
        "--from-ready",
        help="Take the retail points from this JSON: the ready-file of `up` or of another fleet"
        " (its `points`), or a points.json list.",
    ),
    points: int = typer.Option(
        0,
        "--points",
        min=0,
        max=1000,
        help="Create this many retail points through the cabinet API on the first start and"
        " keep them in <state dir>/points.json (0: take them from --point or --from-ready).",
    ),
    cabinet_token: str | None = cabinet_token_option(
        "The cabinet's bearer token, for --points against a cloud that requires one."
    ),
    profile: str = PROFILE_OPTION,
    state_dir: Path = typer.Option(
        ...,
        "--state-dir",
        help="Keeps tills/till-N for every till: a restart rebinds the same tills and drives.",
    ),
    ofd: str | None = typer.Option(
        None, "--ofd", help="The OFD's host:port (no OFD exchange if absent)."
    ),
    mqtt: str = typer.Option(
        "none",
        "--mqtt",
        help="Join the control plane on this broker (mqtt://host:port), spawn a private one"
        " (spawn), or none.",
    ),
    ready_file: Path | None = typer.Option(
        None,
        "--ready-file",
        help="Write the fleet as JSON here once every till is up (cloud, points, tills, broker).",
    ),
    clock_spec: str = CLOCK_OPTION,
    clock_start: datetime | None = typer.Option(
        None,
        "--clock-start",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        help="Manual clock: its start time. scaled:N: the real instant the scaled clock began;"
        " processes given the same value share one business time. ISO 8601 with a zone.",
    ),
    poll_interval: float = POLL_INTERVAL_OPTION,
    long_poll: float | None = typer.Option(
        None,
        "--long-poll",
        min=0.0,
        max=30.0,
        help="Tills long-poll the cloud for up to SECONDS (0: the real till's timer-paced poll). "
        "Default: 25 for a fleet of 32 tills or more, else 0.",
    ),
    timing: str = TIMING_OPTION,
    until_stdin_closes: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--until-stdin-closes",
        help="Also stop when standard input closes (for a supervisor holding a pipe to it).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run COUNT tills in one process against a cloud anywhere, until Ctrl-C or SIGTERM.

    Tills are spread over the retail points in turn (till N on point N mod points) and keep their
    state below --state-dir. With --mqtt they join that broker's control plane: `status`,
    `fault` and `clock` reach them as they reach the tills of `up`.
    """
    from kkt_emulator.app.fleet import FleetOptions, fleet_clock, read_points  # noqa: PLC0415 - the fleet imports the till world
    from kkt_emulator.app.stack import default_long_poll  # noqa: PLC0415 - as the fleet

    sources = sum([bool(point or login or password or password_file), from_ready is not None])
    if sources > 1 or (sources and points):
        raise ConfigError(
            "give the retail points one way: --point/--login/--password, --from-ready FILE, "
            "or --points N"
        )
    given: list[PointAccess] | None = None
    if from_ready is not None:
        given = read_points(from_ready)
    elif sources:
        given = given_points(point or [], login or [], password or [], password_file)
    from kkt_emulator.control.plane import resolve_mqtt  # noqa: PLC0415 - only the fleet needs it

    mqtt_mode, notice = resolve_mqtt(mqtt)
    if notice:
        typer.echo(notice, err=True)
    options = FleetOptions(
        server=server,
        profile=load_profile(profile),
        state_dir=state_dir,
        count=count,
        points=given,
        create_points=points,
        cabinet_token=cabinet_token,
        ofd=ofd,
        mqtt=mqtt_mode,
        ready_file=ready_file,
        timing=timing,
        settings={"poll_interval": poll_interval, "long_poll": default_long_poll(count, long_poll)},
    )
    options.check()
    clock = fleet_clock(clock_spec, clock_start)
    eventloop.run(_serve_fleet(options, clock, as_json=as_json, watch_stdin=until_stdin_closes))


async def _serve_fleet(
    options: FleetOptions, clock: Clock, *, as_json: bool, watch_stdin: bool
) -> None:
    """Start the fleet, announce it, and serve until a signal (or the end of stdin).

    A signal during start-up stops it at once: the tills started so far are stopped again.
    """
    from kkt_emulator.app.fleet import Fleet, stdin_closed  # noqa: PLC0415 - see fleet()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits: list[Coroutine[Any, Any, Any]] = [stop.wait()]
    if watch_stdin:
        waits.append(stdin_closed())
    stopping = [asyncio.ensure_future(w) for w in waits]
    fleet_ = Fleet(options, clock)
    starting = asyncio.ensure_future(fleet_.start())
    try:
        await asyncio.wait([starting, *stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start raises here, after its tills were stopped
            if as_json:
                typer.echo(json.dumps(fleet_.ready_info(), ensure_ascii=False))
            else:
                typer.echo(fleet_.summary())
            await asyncio.wait(stopping, return_when=asyncio.FIRST_COMPLETED)
        typer.echo("stopping …", err=True)
    finally:
        for task in [starting, *stopping]:
            task.cancel()
        # A failed start was raised above; a cancelled one stopped the tills it had started.
        await asyncio.gather(starting, *stopping, return_exceptions=True)
        await fleet_.close()
