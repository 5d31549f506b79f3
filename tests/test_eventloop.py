"""The loop choice: uvloop by default where installed, forced either way by $KKT_EVENT_LOOP."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import subprocess
import sys

import pytest

from kkt_emulator import eventloop
from kkt_emulator.errors import ConfigError

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_asyncio_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_loop_module()).startswith("asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop does not install on this platform")
def test_uvloop_is_the_default_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.loop_name() == "uvloop"
    assert eventloop.run(_loop_module()).startswith("uvloop")


def test_an_unknown_loop_is_a_config_error_and_the_coroutine_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(eventloop.ENV, "trio")
    coro = _loop_module()
    with pytest.raises(ConfigError, match="KKT_EVENT_LOOP='trio'"):
        eventloop.run(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited" warning


def test_run_tunes_the_collector_once_per_process() -> None:
    """D121: in the program, ``run`` sets the thresholds and freezes what the imports made."""
    code = (
        "import gc, json\n"
        "from kkt_emulator import eventloop\n"
        "eventloop.as_program()\n"
        "async def probe():\n"
        "    return [list(gc.get_threshold()), gc.get_freeze_count()]\n"
        "first = eventloop.run(probe())\n"
        "frozen = gc.get_freeze_count()\n"
        "second = eventloop.run(probe())\n"
        "print(json.dumps([first, second, frozen]))\n"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter with a fixed script
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    first, second, frozen = json.loads(out)
    assert first[0] == list(eventloop.COLLECTOR_THRESHOLDS)
    assert first[1] > 1000  # the imports' objects are out of the collections
    assert second[1] == frozen  # a second run does not freeze again
