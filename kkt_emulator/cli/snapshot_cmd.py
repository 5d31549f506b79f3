"""``kkt-emulator snapshot`` and ``restore``: a till's whole state saved to, and loaded from, disk."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from kkt_emulator.cli.fanout import finish, pick, run
from kkt_emulator.cli.options import ControlOptions, Target, control_command
from kkt_emulator.control.client import ControlClient, Outcome
from kkt_emulator.errors import ConfigError

__all__ = ["register", "restore", "snapshot"]

PATH_HELP = "A directory on the till's host; {device} in it is replaced by the device id."
_TIMEOUT = 60.0
_TIMEOUT_HELP = "Seconds to wait."


def _snapshot_paths(path: Path, ids: list[str]) -> dict[str, str]:
    text = str(path.expanduser().resolve())
    if len(ids) > 1 and "{device}" not in text:
        raise ConfigError(
            f"{len(ids)} tills would share {path}: use --device, or put {{device}} in PATH"
        )
    return {d: text.replace("{device}", d) for d in ids}


async def _with_paths(
    target: Target,
    device: str | None,
    command: str,
    path: Path,
    timeout: float,  # noqa: ASYNC109 - passed on to each request
) -> list[Outcome]:
    async with ControlClient(target.url, timeout=timeout) as control:
        ids = control.select(await control.tills(), device)
        paths = _snapshot_paths(path, ids)
        return list(
            await asyncio.gather(*(control.outcome(d, command, {"path": paths[d]}) for d in ids))
        )


@control_command(timeout=_TIMEOUT, timeout_help=_TIMEOUT_HELP)
def snapshot(path: Path = typer.Argument(..., help=PATH_HELP), *, opts: ControlOptions) -> None:
    """Save the till's whole state (drive, journal, outbox, settings) into a directory."""
    outcomes = run(_with_paths(opts.target(), opts.device, "snapshot", path, opts.timeout))
    finish(
        outcomes, opts.as_json, lambda o: f"till {o.device_id}: saved to {pick(o.result, 'path')}"
    )


@control_command(timeout=_TIMEOUT, timeout_help=_TIMEOUT_HELP)
def restore(path: Path = typer.Argument(..., help=PATH_HELP), *, opts: ControlOptions) -> None:
    """Load a till's whole state from a snapshot directory (the till restarts on it)."""
    outcomes = run(_with_paths(opts.target(), opts.device, "restore", path, opts.timeout))
    finish(
        outcomes,
        opts.as_json,
        lambda o: f"till {o.device_id}: restored from {pick(o.result, 'path')}",
    )


def register(app: typer.Typer) -> None:
    """Add ``snapshot`` and ``restore`` to the command line."""
    app.command("snapshot")(snapshot)
    app.command("restore")(restore)
