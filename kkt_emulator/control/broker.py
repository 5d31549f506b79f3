"""A private mosquitto for ``kkt-emulator up`` and the tests.

:class:`MosquittoBroker` writes a config (one listener on a loopback port, anonymous access,
persistence off, log to standard error only), starts ``mosquitto -c`` on it, waits until the port
accepts connections, and stops the process on exit. mosquitto cannot listen on port 0, so a free
port is picked first; when another process takes it before mosquitto binds, another port is tried
(``ARCHITECTURE.md``: "pick a port, retry on a race")::

    async with MosquittoBroker() as broker:
        print(broker.url)          # mqtt://127.0.0.1:41234

:meth:`MosquittoBroker.restart` stops and starts it again on the same port (reconnection tests).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Self

from kkt_emulator.clock import Clock, RealClock
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.logging import get_logger

__all__ = ["MosquittoBroker", "find_mosquitto"]

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")
_BIND_RACE = "Address already in use"
_RUNNING = " running"  # "mosquitto version 2.0.11 running", logged after every listener is open
# Older brokers may not log it; a bind failure ends mosquitto at once, so one still alive after
# this long holds its port.
_SETTLED = 0.5
_ATTEMPTS = 8
MAX_QUEUED = 1_000_000
"""QoS 1 messages the private broker queues for one client (mosquitto's default: 1,000; D120)."""


def find_mosquitto(binary: str | None = None) -> str | None:
    """The mosquitto executable: ``binary``, ``$KKT_MOSQUITTO``, ``$PATH`` or /usr/sbin."""
    wanted = binary or os.environ.get("KKT_MOSQUITTO")
    if wanted:
        return shutil.which(wanted)
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class MosquittoBroker:
    """A mosquitto process on a free loopback port; use as an async context manager.

    Args:
        host: the listener's address (loopback by default).
        port: a fixed port; by default a free one is picked (and re-picked on a bind race).
        binary: the mosquitto executable (default: see :func:`find_mosquitto`).
        clock: for pacing the start-up wait.
        start_timeout: seconds to wait for the listener.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        clock: Clock | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.binary = binary
        self.clock = clock or RealClock()
        self.start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.log = get_logger(component="mosquitto")

    @property
    def url(self) -> str:
        """``mqtt://host:port`` (only while started)."""
        if self.port is None:
            raise ConfigError("the broker is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the mosquitto process is alive."""
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self.running and self._process is not None else None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start mosquitto and wait until it accepts connections.

        Raises:
            ConfigError: no mosquitto executable.
            TransportError: it did not start (its last log lines are in the message).
        """
        executable = find_mosquitto(self.binary)
        if executable is None:
            raise ConfigError(
                "mosquitto not found: install it (apt-get install mosquitto, or ./scripts/bootstrap), "
                "set $KKT_MOSQUITTO, or run without a control plane (--mqtt none)"
            )
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="kkt-mosquitto-")
        for _ in range(_ATTEMPTS):
            if not self._fixed_port:
                self.port = _free_port(self.host)
            assert self.port is not None
            conf = Path(self._dir.name) / "mosquitto.conf"
            conf.write_text(self._config(self.port), encoding="utf-8")
            if await self._spawn(executable, conf):
                self.log.debug("mosquitto_started", url=self.url, pid=self.pid)
                return
            if not self._fixed_port and any(_BIND_RACE in line for line in self._stderr):
                continue  # someone took the port between our check and mosquitto's bind
            break
        why = self._why()
        await self.stop()
        raise TransportError(f"mosquitto did not start on {self.host}:{self.port}: {why}")

    def _config(self, port: int) -> str:
        return "\n".join(
            [
                f"listener {port} {self.host}",
                "allow_anonymous true",
                "persistence false",
                # Answers to a command sent to every till of a big fleet reach one client at once:
                # mosquitto's default queue (1,000 QoS 1 messages a client) dropped the rest (D120).
                f"max_queued_messages {MAX_QUEUED}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type information",  # "… running" once the listener is bound: the ready signal
                "",
            ]
        )

    async def _spawn(self, executable: str, conf: Path) -> bool:
        self._stderr.clear()
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                "-c",
                str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ConfigError(f"cannot run {executable}: {exc.strerror}") from exc
        self._process = process
        self._stderr_task = asyncio.create_task(self._read_stderr(process))
        started = self.clock.monotonic()
        deadline = started + self.start_timeout
        while self.clock.monotonic() < deadline:
            if process.returncode is not None:
                await self._stderr_task
                return False
            # Accepting alone proves nothing: after a lost bind race the port is someone else's.
            ours = any(_RUNNING in line for line in self._stderr) or (
                self.clock.monotonic() - started > _SETTLED
            )
            if ours and await self._accepts():
                return True
            await self.clock.pace(0.01)
        await self._terminate()
        return False

    async def _read_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            self.log.debug("mosquitto_log", line=text)
        await process.wait()

    async def _accepts(self) -> bool:
        assert self.port is not None
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def _why(self) -> str:
        lines = [line for line in self._stderr if line]
        return lines[-1] if lines else "no output (timed out waiting for the listener)"

    async def stop(self) -> None:
        """Terminate mosquitto (SIGTERM, then SIGKILL after 5 s); keeps the port for restart."""
        await self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(5.0):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._stderr_task
            self._stderr_task = None

    async def restart(self) -> None:
        """Stop and start again on the same port (clients see the broker go away and return)."""
        await self.stop()
        fixed, self._fixed_port = self._fixed_port, True
        try:
            await self.start()
        finally:
            self._fixed_port = fixed
