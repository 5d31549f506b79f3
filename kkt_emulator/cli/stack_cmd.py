"""``kkt-emulator up``: a whole virtual installation in one process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import typer

from kkt_emulator import eventloop
from kkt_emulator.app.stack import Stack, StackOptions, default_state_dir
from kkt_emulator.clock import Clock, make_clock
from kkt_emulator.cloud.db import parse_target
from kkt_emulator.control.plane import resolve_mqtt
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile


def up(
    tills: int = typer.Option(
        1,
        "--tills",
        min=0,
        max=1000,
        help="How many tills to start (0: cloud and OFD only, for `till run`).",
    ),
    points: int = typer.Option(
        1, "--points", min=1, max=1000, help="Retail points; tills are spread over them."
    ),
    profile: str = typer.Option(
        DEFAULT_PROFILE, "--profile", help="Firmware profile (see `profiles list`)."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address the cloud and the OFD listen on."
    ),
    port: int = typer.Option(
        0, "--port", min=0, max=65535, help="Cloud HTTP port (0: a free one)."
    ),
    ofd_port: int = typer.Option(
        0, "--ofd-port", min=0, max=65535, help="OFD stand-in port (0: a free one)."
    ),
    clock_spec: str = typer.Option(
        "real", "--clock", help="real, manual, or scaled:N (N× faster)."
    ),
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="Where everything is kept (default: the user's data dir; $KKT_STATE_DIR).",
    ),
    ready_file: Path | None = typer.Option(
        None, "--ready-file", help="Write JSON here once everything accepts requests."
    ),
    poll_interval: float = typer.Option(
        5.0, "--poll-interval", min=0.0, help="Seconds between till polls."
    ),
    long_poll: float = typer.Option(
        0.0,
        "--long-poll",
        min=0.0,
        max=30.0,
        help="Tills long-poll the cloud for up to SECONDS and take a document the moment it is "
        "queued (0: off, the real till's timer-paced poll). For tests, benchmarks and fleets.",
    ),
    timing: str = typer.Option(
        "fast", "--timing", help="fast, or realistic (the profile's per-command delays)."
    ),
    cabinet_token: str | None = typer.Option(
        None,
        "--cabinet-token",
        envvar="KKT_CABINET_TOKEN",
        help="Require this bearer token on the cabinet API (needed when --host is not loopback).",
    ),
    db: str | None = typer.Option(
        None,
        "--db",
        help="The cloud's database: a SQLite file path or sqlite:///PATH (default: cloud.sqlite3"
        " in the state directory), or postgresql://USER[:PASSWORD]@HOST:PORT/DB (also"
        " postgres://). Other schemes are refused.",
    ),
    mqtt: str = typer.Option(
        "auto",
        "--mqtt",
        help="Control plane: spawn (a private mosquitto), mqtt://host:port (an existing broker), "
        "none, or auto (spawn when mosquitto is installed).",
    ),
) -> None:
    """Start the cloud, the OFD stand-in and tills; print what a shop needs to connect.

    Stops cleanly on Ctrl-C or SIGTERM. State persists in the state directory: running `up` again
    continues with the same retail point, credentials and drives.
    """
    if timing not in ("fast", "realistic"):
        raise typer.BadParameter("--timing must be fast or realistic")
    cloud_db = None if db is None else parse_target(db)  # refused before anything starts
    clock = make_clock(clock_spec)
    mqtt_mode, notice = resolve_mqtt(mqtt)
    if notice:
        typer.echo(notice, err=True)
    options = StackOptions(
        profile=load_profile(profile),
        state_dir=state_dir or default_state_dir(),
        tills=tills,
        points=points,
        host=host,
        port=port,
        ofd_port=ofd_port,
        ready_file=ready_file,
        timing=timing,
        till_settings={"poll_interval": poll_interval},
        long_poll=long_poll,
        mqtt=mqtt_mode,
        cabinet_token=cabinet_token,
        cloud_db=cloud_db,
    )
    eventloop.run(_serve(options, clock))


async def _serve(options: StackOptions, clock: Clock) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(f"starting {options.tills} till(s) in {options.state_dir} …", err=True)
    async with Stack(options, clock) as stack:
        typer.echo(stack.banner())
        await stop.wait()
        typer.echo("stopping …", err=True)
    # The ready-files announce a running installation: gone already (or never written) is fine.
    if options.ready_file is not None:
        with contextlib.suppress(OSError):
            options.ready_file.unlink()
    with contextlib.suppress(OSError):
        (options.state_dir / "ready.json").unlink()


def register(app: typer.Typer) -> None:
    """Add ``up`` to the command line."""
    app.command("up")(up)


__all__: list[Any] = ["register", "up"]
