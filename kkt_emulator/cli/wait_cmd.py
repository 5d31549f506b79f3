"""``kkt-emulator wait``: block until a `kkt-emulator up` started in the background is ready.

CI jobs start ``kkt-emulator up --ready-file F &`` and then ``kkt-emulator wait --ready-file F``:
it returns 0 once the ready-file exists and the cloud answers the store API's readiness call
(``GET /v1/status`` with the association credentials), or prints one ``error: …`` line and exits 2
when ``--timeout`` seconds pass first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import typer

from kkt_emulator.cli.ready import ready_path
from kkt_emulator.clock import RealClock
from kkt_emulator.errors import ConfigError
from kkt_emulator.net import client_tls

__all__ = ["register", "wait", "wait_ready"]

_STEP = 0.1


async def _probe(http: httpx.AsyncClient, path: Path) -> tuple[dict[str, Any] | None, str]:
    """One look: (ready-file content, or None with the reason it is not ready yet)."""
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))  # noqa: ASYNC240 - one small local file, nothing else runs on this loop
    except FileNotFoundError:
        return None, f"{path} does not exist yet"
    except (OSError, ValueError) as exc:
        return None, f"{path} is not readable yet: {exc}"
    store = info.get("store_api")
    if not isinstance(store, str):
        return None, f"{path} names no store_api"
    auth = (str(info.get("login", "")), str(info.get("password", "")))
    try:
        answer = await http.get(f"{store}/v1/status", auth=auth)
    except httpx.HTTPError as exc:
        return None, f"the cloud at {store} does not answer: {exc or type(exc).__name__}"
    if answer.status_code != 200:
        return None, f"the cloud at {store} answers HTTP {answer.status_code}"
    return info, ""


async def wait_ready(
    path: Path,
    timeout: float,  # noqa: ASYNC109 - the command's --timeout, a budget for many probes
    clock: RealClock | None = None,
) -> dict[str, Any]:
    """Wait until the ready-file at ``path`` exists and its cloud answers; returns its content.

    Raises:
        ConfigError: ``timeout`` seconds passed first (the message says what was missing).
    """
    clock = clock or RealClock()
    deadline = clock.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0, verify=client_tls()) as http:
        while True:
            info, why = await _probe(http, path)
            if info is not None:
                return info
            if clock.monotonic() >= deadline:
                raise ConfigError(f"not ready after {timeout:g} s: {why}")
            await clock.pace(min(_STEP, max(0.0, deadline - clock.monotonic())))


def wait(
    ready_file: Path | None = typer.Option(
        None,
        "--ready-file",
        envvar="KKT_READY_FILE",
        help="The ready-file `kkt-emulator up --ready-file` writes (default: <state dir>/ready.json).",
    ),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.0, help="Seconds to wait before giving up (exit code 2)."
    ),
    quiet: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--quiet",
        "-q",
        help="Print nothing on success.",
    ),
) -> None:
    """Wait until a `kkt-emulator up` is ready: its ready-file exists and the cloud answers."""
    import asyncio  # noqa: PLC0415 - only this command runs an event loop

    info = asyncio.run(wait_ready(ready_path(ready_file), timeout))
    if not quiet:
        typer.echo(f"ready: store API {info['store_api']}")


def register(app: typer.Typer) -> None:
    """Add ``wait`` to the command line."""
    app.command("wait")(wait)
