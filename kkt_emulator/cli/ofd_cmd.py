"""``kkt-emulator ofd serve``: the OFD stand-in alone, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import typer

from kkt_emulator import eventloop
from kkt_emulator.cli.output import JSON_OPTION
from kkt_emulator.clock import RealClock
from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.signing import DEFAULT_SIGNING_SEED, inn_is_valid
from kkt_emulator.ofd.server import OfdServer

__all__ = ["app"]

app = typer.Typer(
    help="The OFD stand-in: receives drive containers over TCP and acknowledges them.",
    no_args_is_help=True,
)


async def _serve(
    host: str, port: int, db: Path | None, ofd_inn: str, seed: str, *, as_json: bool
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    server = OfdServer(
        RealClock(), host=host, port=port, ofd_inn=ofd_inn, db_path=db, signing_seed=seed
    )
    async with server as ofd:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            if as_json:
                line = json.dumps(
                    {
                        "address": ofd.address,
                        "host": ofd.host,
                        "port": ofd.port,
                        "db": str(db or ""),
                    }
                )
            else:
                line = f"OFD stand-in listening on {ofd.address}" + (
                    f" (database {db})" if db else ""
                )
            typer.echo(line)
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(7777, min=0, max=65535, help="TCP port (0 picks a free one)."),
    db: Path | None = typer.Option(
        None, "--db", help="SQLite file that keeps received documents across restarts."
    ),
    ofd_inn: str = typer.Option(
        "7704358518", "--ofd-inn", help="The operator's ИНН (1017) written in acknowledgements."
    ),
    signing_seed: str = typer.Option(
        DEFAULT_SIGNING_SEED,
        "--signing-seed",
        help="The tills' profile `seed`: a container whose signs verify with it is never"
        " replaced by one that does not (a forgery, or a real drive's capture).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve the OFD stand-in; print its address; stop cleanly on SIGINT or SIGTERM."""
    if not inn_is_valid(ofd_inn):
        raise ConfigError(f"--ofd-inn {ofd_inn!r} is not a valid 10- or 12-digit ИНН")
    eventloop.run(_serve(host, port, db, ofd_inn, signing_seed, as_json=as_json))
