"""Stopping background tasks reliably.

On Python 3.11 a cancellation can be lost (``asyncio.wait_for`` swallows one when the awaited
future completes at the same moment), and a task that lost one keeps running; worse, every later
``asyncio.timeout`` inside it then turns its own expiry into a ``TimeoutError`` because the task
still counts the lost request. :func:`stop_tasks` therefore cancels again until the task is done,
and the control plane's loops also check a stop flag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["stop_tasks"]

_RETRY = 0.5  # seconds between cancellation attempts (pacing)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel every task and wait until all are done, repeating lost cancellations."""
    everything = list(tasks)
    pending = {t for t in everything if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RETRY)
    for task in everything:
        if not task.cancelled():
            task.exception()  # retrieved: a failure at shutdown is not worth a warning
