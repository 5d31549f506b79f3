"""The processes under test: started from the installed CLI, SIGKILLed, restarted on their state.

Each :class:`Managed` process is one ``kkt-emulator`` command line (``cloud serve``, ``ofd serve``,
``till run``) with its own log file in the work directory. A keeper task restarts it whenever it
exits while the harness wants it running, on the same state and the same ports, and tells the
rest of the harness when it is ready again (``ready`` event).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path

from kkt_emulator.errors import EmulatorError
from kkt_emulator.logging import get_logger

__all__ = ["ChaosStartError", "Kind", "Managed", "cli_command", "free_port"]

log = get_logger(component="chaos")

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class ChaosStartError(EmulatorError):
    """A process of the chaos harness could not be started (or never became ready)."""


class Kind(StrEnum):
    """What a managed process is; also the name of its kill-point counter."""

    CLOUD = "cloud"
    OFD = "ofd"
    TILL = "till"


def cli_command(*args: str) -> list[str]:
    """The installed CLI (``python -m kkt_emulator``) of this interpreter with ``args``."""
    return [sys.executable, "-m", "kkt_emulator", *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the child binds it with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


ReadyCheck = Callable[["Managed"], Awaitable[bool]]


class Managed:
    """One child process the harness keeps alive, kills and restarts.

    Args:
        name: a short unique name (``cloud``, ``ofd``, ``till-1``), also the log file's stem.
        kind: what it is.
        argv: the command line.
        workdir: where its log file goes.
        ready_check: an awaitable predicate: the process accepts work.
    """

    def __init__(
        self, name: str, kind: Kind, argv: list[str], workdir: Path, ready_check: ReadyCheck
    ) -> None:
        self.name = name
        self.kind = kind
        self.argv = argv
        self.log_path = workdir / f"{name}.log"
        self.ready_check = ready_check
        self.ready = asyncio.Event()
        self.down = asyncio.Event()
        """Set from a kill (or an exit) until the next start."""
        self.starts = 0
        self.kills = 0
        self.unexpected_exits = 0
        self.log_offset = 0
        self.startups: list[float] = []
        self.armed = False
        """This life is given to a proxy kill point (the proxy may kill it)."""
        self._proc: asyncio.subprocess.Process | None = None
        self._killed_by_us = False
        self._wanted = False
        self._keeper: asyncio.Task[None] | None = None

    @property
    def wanted(self) -> bool:
        """The harness wants it running (a stop has not been asked for)."""
        return self._wanted

    @property
    def pid(self) -> int | None:
        """The running child's pid, if any."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def startup_seconds(self) -> dict[str, float]:
        """How long starts took until ready: count, mean and max seconds."""
        if not self.startups:
            return {"starts": 0}
        return {
            "starts": len(self.startups),
            "mean": round(sum(self.startups) / len(self.startups), 2),
            "max": round(max(self.startups), 2),
        }

    def log_text(self, *, since_start: bool = True) -> str:
        """The log file (from the current start when ``since_start``)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self.log_offset if since_start else 0)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    async def _spawn(self) -> None:
        self.ready.clear()
        self.down.clear()
        self.armed = False
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as out:
            out.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.log_offset = out.tell()
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        self._killed_by_us = False
        self.starts += 1

    async def _wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - a budget, not one call
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        proc = self._proc
        while loop.time() < deadline:
            if proc is None or proc.returncode is not None:
                return False
            if await self.ready_check(self):
                self.startups.append(timeout - (deadline - loop.time()))
                self.ready.set()
                return True
            await asyncio.sleep(0.05)
        return False

    async def start(self) -> None:
        """Start it and wait until it is ready; then keep it running until :meth:`stop`.

        Raises:
            ChaosStartError: it exited or was not ready within :data:`READY_TIMEOUT` seconds.
        """
        self._wanted = True
        await self._spawn()
        if not await self._wait_ready(READY_TIMEOUT):
            lines = [line for line in self.log_text().splitlines() if line.strip()]
            last = lines[-1][:300] if lines else "no output"
            await self.stop()
            raise ChaosStartError(
                f"{self.name} did not start; its log {self.log_path} ends with: {last}"
            )
        self._keeper = asyncio.create_task(self._keep(), name=f"keep-{self.name}")

    async def _keep(self) -> None:
        while self._wanted:
            proc = self._proc
            if proc is None:
                return
            code = await proc.wait()
            self.ready.clear()
            self.down.set()
            if not self.wanted:
                return
            if not self._killed_by_us:
                self.unexpected_exits += 1
                log.warning("chaos_unexpected_exit", process=self.name, returncode=code)
                await asyncio.sleep(0.2)  # an exit at start-up (peer down) must not spin
            await self._spawn()
            if not await self._wait_ready(READY_TIMEOUT):
                log.warning("chaos_not_ready_after_restart", process=self.name)

    def kill(self) -> bool:
        """SIGKILL the child now (synchronously); the keeper restarts it. False if not running."""
        proc = self._proc
        if proc is None or proc.returncode is not None or self._killed_by_us:
            return False
        self._killed_by_us = True
        self.ready.clear()
        self.down.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it exited just now; the keeper sees that as an exit
            return False
        self.kills += 1
        return True

    async def stop(self) -> None:
        """Stop it for good: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT` seconds."""
        self._wanted = False
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancel we just asked for
                await self._keeper
            self._keeper = None
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # already gone: nothing to stop
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("chaos_stop_timeout", process=self.name)
                with contextlib.suppress(ProcessLookupError):  # exited after the timeout
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self.ready.clear()
