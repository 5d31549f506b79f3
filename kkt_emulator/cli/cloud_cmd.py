"""``kkt-emulator cloud serve``: the vendor cloud stand-in alone (store, till and cabinet APIs)."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
import typer
import uvicorn

from kkt_emulator import eventloop
from kkt_emulator.cli.output import JSON_OPTION, console
from kkt_emulator.cli.run_options import (
    CLOCK_OPTION,
    cabinet_token_option,
    fiscal_date_format_option,
    fiscal_sum_as_string_option,
)
from kkt_emulator.clock import Clock, make_clock
from kkt_emulator.cloud.db import DatabaseTarget, parse_target
from kkt_emulator.cloud.exposure import check_cabinet_exposure
from kkt_emulator.cloud.settings import CallbackMethod, CloudSettings, FiscalDateFormat
from kkt_emulator.net import listen_socket

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["app", "default_db_path"]

_MAX_PORT = 65535

app = typer.Typer(
    help="The vendor cloud stand-in (store API, till API, cabinet).", no_args_is_help=True
)


def default_db_path() -> Path:
    """Where ``cloud serve`` keeps its database unless ``--db`` says otherwise."""
    return platformdirs.user_data_path("kkt-emulator") / "cloud.db"


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGINT/SIGTERM after a graceful stop."""

    stopped_by: list[int]

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Stop gracefully on SIGINT/SIGTERM and remember which signal it was."""
        self.stopped_by = []
        with super().capture_signals():
            try:
                yield
            finally:
                self.stopped_by = list(self._captured_signals)
                self._captured_signals.clear()


async def _serve(
    sock: socket.socket,
    db: DatabaseTarget,
    clock: Clock,
    settings: CloudSettings,
    *,
    as_json: bool,
) -> list[int]:
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    from kkt_emulator.cloud.app import Cloud  # noqa: PLC0415 - FastAPI loads only for serve

    async with Cloud(db, clock, settings) as cloud:
        config = uvicorn.Config(
            cloud.app, lifespan="off", log_level="warning", access_log=False, log_config=None
        )
        server = _Server(config)
        if as_json:
            typer.echo(json.dumps({"url": url, "db": str(db), "clock": clock.mode}))
        else:
            console.print(f"cloud listening on {url} (database {db}, clock {clock.mode})")
        await server.serve(sockets=[sock])
        return server.stopped_by


@app.command("serve")
def serve(
    *,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on; 0 picks a free one."),
    db: str | None = typer.Option(
        None,
        "--db",
        help="The database: a SQLite file path or sqlite:///PATH (created on first start; default"
        " in the user data dir), or postgresql://USER[:PASSWORD]@HOST:PORT/DB (also postgres://),"
        " which several cloud processes may share as one cloud. Other schemes are refused.",
    ),
    clock_spec: str = CLOCK_OPTION,
    callback_method: CallbackMethod = typer.Option(
        CallbackMethod.GET, "--callback-method", help="HTTP method of responseURL callbacks (D42)."
    ),
    no_verify_tls: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--no-verify-tls",
        help="Do not verify HTTPS certificates of responseURL callbacks.",
    ),
    cabinet_token: str | None = cabinet_token_option(
        "Require this bearer token on the cabinet API (needed beyond loopback)."
    ),
    fiscal_date_format: FiscalDateFormat = fiscal_date_format_option(
        "fiscalInfo.date as iso (+00:00) or millis (.000+0000), §14."
    ),
    fiscal_sum_as_string: bool = fiscal_sum_as_string_option(
        'fiscalInfo.sum as a string such as "57.00" (§14).'
    ),
    demo: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--demo",
        help="Demo mode (D4): a virtual till fiscalises every document at once.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve the cloud stand-in until SIGINT or SIGTERM; prints its URL first."""
    if not 0 <= port <= _MAX_PORT:
        raise typer.BadParameter(
            f"{port} is not a TCP port (0 to {_MAX_PORT})", param_hint="'--port'"
        )
    clock = make_clock(clock_spec)
    settings = CloudSettings(
        callback_method=callback_method,
        callback_verify_tls=not no_verify_tls,
        cabinet_token=cabinet_token,
        demo_mode=demo,
        fiscal_date_format=fiscal_date_format,
        fiscal_sum_as_string=fiscal_sum_as_string,
    )
    check_cabinet_exposure(host, cabinet_token)
    target = parse_target(db) if db is not None else parse_target(default_db_path())
    sock = listen_socket(host, port)
    try:
        stopped_by = eventloop.run(_serve(sock, target, clock, settings, as_json=as_json))
    finally:
        sock.close()
    reason = ", ".join(signal.Signals(s).name for s in stopped_by) or "shutdown"
    if as_json:
        typer.echo(json.dumps({"stopped": reason}))
    else:
        console.print(f"cloud stopped ({reason})")
