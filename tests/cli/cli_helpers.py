"""Helpers of the CLI tests that run commands in-process against a running installation."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.control.broker import MosquittoBroker
from kkt_emulator.logging import configure_logging
from kkt_emulator.profiles import load_profile

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    import pytest

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def control_installation(tmp_path: Path, **options: Any) -> AsyncIterator[tuple[Stack, Path]]:
    """Two tills on a manual clock at :data:`T0` with their own mosquitto; yields the ready-file.

    ``options`` are further :class:`StackOptions` fields (``long_poll`` …).
    """
    configure_logging("console", "warning")  # the installation's logs stay off captured stdout
    ready = tmp_path / "ready.json"
    async with MosquittoBroker() as broker:
        stack_options = StackOptions(
            profile=load_profile("modulkassa-ffd12"),
            state_dir=tmp_path / "state",
            tills=2,
            ready_file=ready,
            till_settings={"poll_interval": 0.05},
            mqtt=broker.url,
            **options,
        )
        async with Stack(stack_options, ManualClock(T0)) as stack:
            yield stack, ready


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``kkt-emulator ARGS`` in a thread; its exit code, stdout and stderr."""
    capsys.readouterr()  # drop what the installation logged so far
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """Run ``kkt-emulator ARGS --json``, which must exit 0; its parsed output."""
    code, out, err = await cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)
