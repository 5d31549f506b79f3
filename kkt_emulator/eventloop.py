"""The event loop every long-running command runs on: uvloop where it installs, else asyncio's.

uvloop runs the emulator's many small exchanges (HTTP requests, drive frames over in-memory pipes,
OFD messages) at a fraction of the default loop's per-callback cost. ``KKT_EVENT_LOOP=asyncio``
forces the standard loop (for comparing, or for a platform where uvloop misbehaves);
``KKT_EVENT_LOOP=uvloop`` makes a missing uvloop an error instead of a quiet fall-back.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from kkt_emulator.errors import ConfigError

__all__ = ["ENV", "loop_factory", "loop_name", "run"]

ENV = "KKT_EVENT_LOOP"
T = TypeVar("T")


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: which loop :func:`run` uses under the current environment.

    Raises:
        ConfigError: ``$KKT_EVENT_LOOP`` names an unknown loop, or uvloop when it is missing.
    """
    wanted = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if wanted not in ("auto", "uvloop", "asyncio"):
        raise ConfigError(f"{ENV}={wanted!r}: use auto, uvloop or asyncio")
    available = importlib.util.find_spec("uvloop") is not None
    if wanted == "uvloop" and not available:
        raise ConfigError(f"{ENV}=uvloop but uvloop is not installed (pip install uvloop)")
    if wanted == "asyncio" or not available:
        return "asyncio"
    return "uvloop"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for :class:`asyncio.Runner` (``None``: asyncio's default loop)."""
    if loop_name() == "uvloop":
        import uvloop  # noqa: PLC0415 - optional, only where it installs

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on the loop :func:`loop_name` picks."""
    try:
        factory = loop_factory()
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
