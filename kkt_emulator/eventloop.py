"""The event loop every long-running command runs on: uvloop where it installs, else asyncio's.

uvloop runs the emulator's many small exchanges (HTTP requests, drive frames over in-memory pipes,
OFD messages) at a fraction of the default loop's per-callback cost. ``KKT_EVENT_LOOP=asyncio``
forces the standard loop (for comparing, or for a platform where uvloop misbehaves);
``KKT_EVENT_LOOP=uvloop`` makes a missing uvloop an error instead of a quiet fall-back.

:func:`run` also sets the cyclic garbage collector up for a daemon that holds many long-lived
objects (:func:`tune_collector`, D121) when the process is the command-line program
(:func:`as_program`), not a test or a library that calls the CLI in its own process.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from kkt_emulator.errors import ConfigError

__all__ = [
    "COLLECTOR_THRESHOLDS",
    "ENV",
    "as_program",
    "loop_factory",
    "loop_name",
    "run",
    "tune_collector",
]

ENV = "KKT_EVENT_LOOP"
T = TypeVar("T")

COLLECTOR_THRESHOLDS = (10_000, 10, 10)
"""The collector's generation thresholds in a long-running command (CPython's are 700, 10, 10).

A fleet's tills are long-lived object graphs made over seconds: with a youngest generation of 700
allocations, starting 1,000 tills ran about 1,450 young, 130 middle and 11 full collections, the
full ones 0.3 s each as they walked every till (3 s of a 16 s start, D121).
"""

_tuned = False
_program = False


def as_program() -> None:
    """Mark this process as the command-line program: :func:`run` tunes its collector (D121)."""
    global _program  # noqa: PLW0603 - a property of the process
    _program = True


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


def tune_collector() -> None:
    """Collect rarer, and leave what the imports made out of every later collection (D121).

    Sets :data:`COLLECTOR_THRESHOLDS`, collects once and freezes what survives (the modules,
    classes and functions of the imports, which live as long as the process), so later full
    collections walk only objects made since. Done once per process; the reference counts still
    free everything that is not in a cycle at once, so memory grows by no more than the cycles made
    between two young collections.
    """
    global _tuned  # noqa: PLW0603 - once per process
    if _tuned:
        return
    _tuned = True
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    gc.collect()
    gc.freeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """:func:`asyncio.run` on the loop :func:`loop_name` picks (in the program, collector tuned)."""
    try:
        factory = loop_factory()
    except ConfigError:
        main.close()
        raise
    if _program:
        tune_collector()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
