"""Finding a running installation: the ready-file written by ``kkt-emulator up``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from kkt_emulator.app.stack import default_state_dir
from kkt_emulator.errors import ConfigError

__all__ = ["READY_HELP", "READY_OPTION", "load_ready", "ready_path"]

READY_HELP = "The ready-file of a running `kkt-emulator up` (default: <state dir>/ready.json)."

READY_OPTION: Any = typer.Option(None, "--ready-file", envvar="KKT_READY_FILE", help=READY_HELP)


def ready_path(ready_file: Path | None) -> Path:
    """The ready-file to read: the option, ``$KKT_READY_FILE``, or the default state dir's."""
    return ready_file if ready_file is not None else default_state_dir() / "ready.json"


def load_ready(ready_file: Path | None) -> dict[str, Any]:
    """Read the ready-file.

    Raises:
        ConfigError: missing or unreadable (the message says how to start one).
    """
    path = ready_path(ready_file)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no running installation: {path} not found (start one with `kkt-emulator up`)"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read ready-file {path}: {exc}") from exc
    pid = data.get("pid")
    if isinstance(pid, int) and pid > 0 and not _alive(pid):
        raise ConfigError(f"the installation in {path} is not running (pid {pid} is gone)")
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
