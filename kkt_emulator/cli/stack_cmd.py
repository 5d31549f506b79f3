"""``kkt-emulator up``: a whole virtual installation in one process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import typer

from kkt_emulator import eventloop
from kkt_emulator.app.fleet import MAX_TILLS_PER_PROCESS
from kkt_emulator.app.stack import Stack, StackOptions, default_long_poll, default_state_dir
from kkt_emulator.app.workers import WorkerExit, WorkerStack, check_workers
from kkt_emulator.cli.run_options import (
    POLL_INTERVAL_OPTION,
    PROFILE_SEE_LIST_OPTION,
    TIMING_OPTION,
    cabinet_token_option,
    fiscal_date_format_option,
    fiscal_sum_as_string_option,
)
from kkt_emulator.clock import Clock, make_clock
from kkt_emulator.cloud.db import parse_target
from kkt_emulator.cloud.settings import FiscalDateFormat
from kkt_emulator.control.plane import resolve_mqtt
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import load_profile
from kkt_emulator.till.ofd_sender import parse_address

MAX_TILLS_IN_PROCESS = 1000
"""The most tills ``up`` runs in its own process; more are sharded over ``--workers``."""
MAX_TILLS = 64 * MAX_TILLS_PER_PROCESS


def up(
    tills: int = typer.Option(
        1,
        "--tills",
        min=0,
        max=MAX_TILLS,
        help=f"How many tills to start (0: cloud and OFD only, for `till run`; more than "
        f"{MAX_TILLS_IN_PROCESS} need --workers).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        max=64,
        help="Run the tills in this many worker processes (`till fleet`, each with its share "
        "and its own state under <state dir>/workers); the cloud, the OFD and the broker stay "
        "in this process. A worker that dies stops everything with a non-zero exit.",
    ),
    points: int = typer.Option(
        1, "--points", min=1, max=1000, help="Retail points; tills are spread over them."
    ),
    profile: str = PROFILE_SEE_LIST_OPTION,
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
    poll_interval: float = POLL_INTERVAL_OPTION,
    long_poll: float | None = typer.Option(
        None,
        "--long-poll",
        min=0.0,
        max=30.0,
        help="Tills long-poll the cloud for up to SECONDS and take a document the moment it is "
        "queued (0: off, the real till's timer-paced poll). Default: 25 for a fleet of 32 tills "
        "or more, else 0.",
    ),
    timing: str = TIMING_OPTION,
    cabinet_token: str | None = cabinet_token_option(
        "Require this bearer token on the cabinet API and its web pages (needed when --host is not loopback)."
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
    ofd: str | None = typer.Option(
        None,
        "--ofd",
        help="An external OFD's HOST:PORT: the tills send there and no OFD stand-in is started "
        "(the ofd.* faults need the stand-in).",
    ),
    fiscal_date_format: FiscalDateFormat = fiscal_date_format_option(
        "fiscalInfo.date as iso (+00:00) or millis (.000+0000), as `cloud serve`."
    ),
    fiscal_sum_as_string: bool = fiscal_sum_as_string_option(
        'fiscalInfo.sum as a string such as "57.00", as `cloud serve`.'
    ),
) -> None:
    """Start the cloud, the OFD stand-in and tills; print what a shop needs to connect.

    Stops cleanly on Ctrl-C or SIGTERM. State persists in the state directory: running `up` again
    continues with the same retail point, credentials and drives.
    """
    if timing not in ("fast", "realistic"):
        raise typer.BadParameter("--timing must be fast or realistic")
    cloud_db = None if db is None else parse_target(db)  # refused before anything starts
    if ofd is not None:
        parse_address(ofd)  # HOST:PORT, refused before anything starts (D105)
    if workers is None and tills > MAX_TILLS_IN_PROCESS:
        raise ConfigError(
            f"--tills {tills}: at most {MAX_TILLS_IN_PROCESS} tills in one process; "
            "shard them with --workers N"
        )
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
        long_poll=default_long_poll(tills, long_poll),
        mqtt=mqtt_mode,
        cabinet_token=cabinet_token,
        cloud_db=cloud_db,
        ofd_address=ofd,
        fiscal_date_format=fiscal_date_format,
        fiscal_sum_as_string=fiscal_sum_as_string,
    )
    if workers is not None:
        check_workers(options, workers)
    failure = eventloop.run(_serve(options, clock, workers))
    if failure is not None:
        typer.echo(f"error: {failure}; everything was stopped", err=True)
        raise typer.Exit(code=1)


async def _serve(options: StackOptions, clock: Clock, workers: int | None) -> WorkerExit | None:
    """Run the installation until a signal; returns the worker that died, if one did.

    A signal during start-up stops what was started so far, at once.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    where = f" in {workers} worker process(es)" if workers is not None else ""
    typer.echo(f"starting {options.tills} till(s){where}, state in {options.state_dir} …", err=True)
    stack = Stack(options, clock) if workers is None else WorkerStack(options, clock, workers)
    signalled = asyncio.ensure_future(stop.wait())
    starting = asyncio.ensure_future(stack.__aenter__())
    failure = None
    try:
        await asyncio.wait([starting, signalled], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            typer.echo("stopping …", err=True)
            starting.cancel()  # the stack stops what it started when its start is cancelled
            await asyncio.gather(starting, return_exceptions=True)
            return None
        starting.result()
        try:
            typer.echo(stack.banner())
            failure = await _until_stopped(stack, signalled)
            typer.echo("stopping …", err=True)
        finally:
            await stack.__aexit__(None, None, None)
    finally:
        signalled.cancel()
        # The ready-files announce a running installation: gone already (or never written) is fine.
        if options.ready_file is not None:
            with contextlib.suppress(OSError):
                options.ready_file.unlink()
        with contextlib.suppress(OSError):
            (options.state_dir / "ready.json").unlink()
    return failure


async def _until_stopped(stack: Stack, signalled: asyncio.Future[Any]) -> WorkerExit | None:
    """Wait for the signal; with workers, also for one of them to end (which it must not)."""
    if not isinstance(stack, WorkerStack):
        await signalled
        return None
    died = asyncio.ensure_future(stack.wait_exit())
    try:
        await asyncio.wait([signalled, died], return_when=asyncio.FIRST_COMPLETED)
    finally:
        died.cancel()
    if died.done() and not died.cancelled():
        failure = died.result()
        stack.log.error(
            "worker_died",
            worker=failure.number,
            pid=failure.pid,
            returncode=failure.returncode,
            last_lines=list(failure.last_lines[-3:]),
        )
        return failure
    return None


def register(app: typer.Typer) -> None:
    """Add ``up`` to the command line."""
    app.command("up")(up)


__all__: list[Any] = ["register", "up"]
