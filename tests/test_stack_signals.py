"""The stack leaves SIGINT and SIGTERM to the program that runs it (``_EmbeddedServer``)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.clock import RealClock
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_running_stack_keeps_the_programs_signal_handlers(tmp_path: Path) -> None:
    # uvicorn's serve() put its own handlers in place: a Ctrl-C to `up` closed the cloud's port
    # first, and the tills polled it, failing, until the stack's close (tills first) reached them.
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    options = StackOptions(profile=load_profile(DEFAULT_PROFILE), state_dir=tmp_path, tills=0)
    async with Stack(options, RealClock()):
        assert {sig: signal.getsignal(sig) for sig in before} == before
    assert {sig: signal.getsignal(sig) for sig in before} == before
