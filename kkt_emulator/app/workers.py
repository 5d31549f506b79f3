"""``kkt-emulator up --workers N``: the cloud, the OFD and the broker here, the tills in N processes.

:class:`WorkerStack` is a :class:`~kkt_emulator.app.stack.Stack` without tills of its own: it
starts the cloud, the OFD stand-in, the retail points and (with ``--mqtt``) the broker, then N
worker processes, each a ``kkt-emulator till fleet`` with its share of the tills
(:func:`plan_workers`). The ready-file and the banner are written once every worker has said it is
ready, and list every till of every worker.

Each worker

* keeps its tills in ``<state dir>/workers/worker-<k>`` (``points.json`` there lists the points
  it binds to), so a restart with the same ``--tills``, ``--points`` and ``--workers`` rebinds the
  same tills with the same drives;
* gets the points so that till ``n`` of the whole installation is on point ``n mod points``, as
  in one process;
* joins the main process's broker, so ``status``, ``fault`` and ``clock`` reach its tills;
* starts its clock from this process's (``--clock-start``): manual clocks start at the same
  time, scaled ones from the same instant; ``clock advance`` moves each process's clock through
  the control plane, and the cloud's through the cabinet API (``docs/deployment.md``);
* holds a pipe from this process on its standard input and stops when it closes, so no worker
  outlives ``up``, even one killed by SIGKILL;
* runs in its own session: Ctrl-C reaches ``up`` only, which stops the workers first.

A worker that exits while ``up`` runs is a failure of the installation: :meth:`WorkerStack.wait_exit`
returns it, and ``up`` logs it, stops everything and exits non-zero (no restart: a half-present
fleet must not look healthy to the tests that use it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kkt_emulator.app.fleet import MAX_TILLS_PER_PROCESS, clock_options
from kkt_emulator.app.stack import PointAccess, Stack, StackOptions, TillInfo, write_json_atomic
from kkt_emulator.errors import ConfigError, EmulatorError
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from kkt_emulator.clock import Clock

__all__ = [
    "WorkerError",
    "WorkerExit",
    "WorkerPlan",
    "WorkerStack",
    "check_workers",
    "plan_workers",
]

STOP_GRACE = 10.0
"""Seconds a worker has to stop after SIGTERM before it is killed."""

_STDERR_KEPT = 20
_EXIT_WAIT = 5.0
_LINE_LIMIT = 64 * 1024 * 1024
"""The longest line read from a worker: its ready JSON is one line of ~350 bytes per till (the
stream's default of 64 KiB is reached at ~200 tills)."""


class WorkerError(EmulatorError):
    """A worker process of ``up --workers`` would not start, or said something unreadable."""


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One worker's share: which tills of the installation, on which points, kept where.

    Attributes:
        number: 1 to N.
        first: the installation-wide index (from 0) of its first till.
        count: how many tills it runs.
        points: the points its tills bind to, in order (its till ``i`` is on
            ``points[i mod len(points)]``).
        state_dir: its own state directory.
    """

    number: int
    first: int
    count: int
    points: tuple[PointAccess, ...]
    state_dir: Path


def plan_workers(
    tills: int, workers: int, points: list[PointAccess], state_dir: Path
) -> list[WorkerPlan]:
    """Share ``tills`` among ``workers`` (the first ones take the remainder) over ``points``.

    Till ``n`` of the installation (from 0) is bound to ``points[n mod len(points)]``, whichever
    worker runs it; each worker is given only the points its tills use, rotated so that its own
    till ``i`` lands on the same point.

    Raises:
        ConfigError: fewer tills than workers, or no workers.
    """
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if tills < workers:
        raise ConfigError(f"--workers {workers} exceeds --tills {tills}: every worker needs a till")
    plans = []
    first = 0
    for k in range(workers):
        count = tills // workers + (1 if k < tills % workers else 0)
        used = min(count, len(points))
        rotated = tuple(points[(first + i) % len(points)] for i in range(used))
        plans.append(WorkerPlan(k + 1, first, count, rotated, state_dir / f"worker-{k + 1}"))
        first += count
    return plans


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """A worker that ended while it should have run: which one, its pid, its exit code."""

    number: int
    pid: int
    returncode: int
    last_lines: tuple[str, ...]

    def __str__(self) -> str:
        how = (
            f"was killed by signal {-self.returncode}"
            if self.returncode < 0
            else f"exited with code {self.returncode}"
        )
        tail = f": {self.last_lines[-1]}" if self.last_lines else ""
        return f"worker {self.number} (pid {self.pid}) {how}{tail}"


class Worker:
    """One ``till fleet`` process: started, read until ready, watched, stopped."""

    def __init__(self, plan: WorkerPlan, argv: list[str]) -> None:
        self.plan = plan
        self.argv = argv
        self.process: asyncio.subprocess.Process | None = None
        self.tills: tuple[TillInfo, ...] = ()
        self.stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_KEPT)
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._readers: list[asyncio.Task[None]] = []
        self.log = get_logger(component="worker", worker=plan.number)

    @property
    def pid(self) -> int:
        """The process id (0 before it started)."""
        return self.process.pid if self.process is not None else 0

    async def start(self) -> None:
        """Spawn the process; its stdout and stderr are read from here on."""
        self.plan.state_dir.mkdir(parents=True, exist_ok=True)
        self._ready = asyncio.get_running_loop().create_future()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        self._readers = [
            asyncio.create_task(self._read_stdout(), name=f"worker-{self.plan.number}-stdout"),
            asyncio.create_task(self._relay_stderr(), name=f"worker-{self.plan.number}-stderr"),
        ]

    async def _read_stdout(self) -> None:
        """The first line is the fleet's ready JSON (``till fleet --json``); the rest is kept."""
        assert self.process is not None
        assert self.process.stdout is not None
        assert self._ready is not None
        while line := await self.process.stdout.readline():
            text = line.decode("utf-8", "replace").strip()
            if self._ready.done() or not text:
                continue
            try:
                data = json.loads(text)
            except ValueError:
                self.stderr.append(text)
                continue
            if isinstance(data, dict):
                self._ready.set_result(data)

    async def _relay_stderr(self) -> None:
        """Its log lines go to this process's stderr, prefixed; the last ones are kept."""
        assert self.process is not None
        assert self.process.stderr is not None
        prefix = f"[worker {self.plan.number}] "
        while line := await self.process.stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.stderr.append(text)
                sys.stderr.write(prefix + text + "\n")
                sys.stderr.flush()

    async def wait_ready(self, timeout: float) -> tuple[TillInfo, ...]:  # noqa: ASYNC109 - a budget for the whole start-up
        """Wait until the fleet printed its ready JSON; returns its tills.

        Raises:
            WorkerError: it exited first, did not get ready in ``timeout`` seconds, or its
                ready JSON lists no tills.
        """
        assert self.process is not None
        assert self._ready is not None
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.process.wait())
        ready: asyncio.Future[Any] = self._ready
        stdout: asyncio.Future[Any] = self._readers[0]
        try:
            done, _ = await asyncio.wait(
                [ready, exited, stdout], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        name = f"worker {self.plan.number} (pid {self.pid})"
        if not ready.done():
            if stdout in done:
                why = None if stdout.cancelled() else stdout.exception()
                if why is not None:
                    raise WorkerError(f"{name}: its output could not be read: {why}")
                # Its output ended: the process is on its way out; say how it ended.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_EXIT_WAIT):
                        await self.process.wait()
            if self.process.returncode is not None:
                await asyncio.gather(*self._readers, return_exceptions=True)
                raise WorkerError(f"{self.exit_info()}, before it was ready")
            if stdout in done:
                raise WorkerError(f"{name} closed its output before it was ready")
            raise WorkerError(f"{name} was not ready after {timeout:.0f} s")
        self.tills = _tills_of(self.plan.number, self._ready.result())
        return self.tills

    def exit_info(self) -> WorkerExit:
        """How it ended (only once it has)."""
        assert self.process is not None
        return WorkerExit(
            self.plan.number,
            self.pid,
            self.process.returncode if self.process.returncode is not None else 0,
            tuple(self.stderr),
        )

    async def wait_exit(self) -> WorkerExit:
        """Return once the process has ended."""
        assert self.process is not None
        await self.process.wait()
        return self.exit_info()

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM), if it runs."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the readers end with the pipes."""
        process = self.process
        if process is None:
            return
        self.terminate()
        try:
            async with asyncio.timeout(grace):
                await process.wait()
        except TimeoutError:
            self.log.warning("worker_killed", pid=process.pid, grace=grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if process.stdin is not None:
            process.stdin.close()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []


def _tills_of(number: int, data: dict[str, Any]) -> tuple[TillInfo, ...]:
    try:
        return tuple(
            TillInfo(
                device_id=str(t["device_id"]),
                fn_serial=str(t["fn_serial"]),
                kkt_serial=str(t["kkt_serial"]),
                rnm=str(t["rnm"]),
                profile=str(t["profile"]),
                state_dir=Path(t["state_dir"]),
                retail_point_id=str(t.get("retail_point_id") or ""),
            )
            for t in data["tills"]
        )
    except (KeyError, TypeError) as exc:
        raise WorkerError(f"worker {number} announced tills without {exc}") from exc


def check_workers(options: StackOptions, workers: int) -> None:
    """Refuse an installation ``up --workers`` cannot shard, before anything starts.

    Raises:
        ConfigError: no workers, fewer tills than workers or points, or too many tills a worker.
    """
    plan_workers(options.tills, workers, [], options.state_dir)
    if options.points > options.tills:
        raise ConfigError("--points cannot exceed --tills: every retail point needs a till")
    if -(-options.tills // workers) > MAX_TILLS_PER_PROCESS:
        raise ConfigError(f"at most {MAX_TILLS_PER_PROCESS} tills per worker: give more --workers")


class WorkerStack(Stack):
    """An installation whose tills run in ``workers`` processes. Use as an async context manager.

    Args:
        options: as for :class:`Stack`; ``options.tills`` are shared among the workers.
        clock: this process's clock (the cloud's and the OFD's); the workers start theirs from it.
        workers: how many worker processes.
        ready_timeout: seconds each worker has to get ready (default: grows with its share).
    """

    def __init__(
        self,
        options: StackOptions,
        clock: Clock,
        workers: int,
        *,
        ready_timeout: float | None = None,
    ) -> None:
        check_workers(options, workers)
        super().__init__(replace(options, tills=0), clock)
        self.worker_count = workers
        self.planned_tills = options.tills
        self.ready_timeout = ready_timeout
        self.workers: list[Worker] = []
        self._announce = False

    async def start(self) -> None:
        """The cloud, OFD, points and broker, then the workers; the ready-file comes last."""
        await super().start()
        await self._start_workers()
        self._announce = True
        self.announce()

    def announce(self) -> None:
        """Write the ready-files, only once every worker is ready."""
        if self._announce:
            super().announce()

    def _argv(self, plan: WorkerPlan) -> list[str]:
        opts = self.options
        settings = opts.settings_of_tills()
        argv = [
            sys.executable,
            "-m",
            "kkt_emulator",
            "till",
            "fleet",
            "--server",
            self.base_url,
            "--count",
            str(plan.count),
            "--from-ready",
            str(plan.state_dir / "points.json"),
            "--state-dir",
            str(plan.state_dir),
            "--profile",
            opts.profile.name,
            "--timing",
            opts.timing,
            "--poll-interval",
            repr(float(settings.get("poll_interval", 5.0))),
            "--long-poll",
            repr(float(settings.get("long_poll", 0.0))),
            *clock_options(self.clock),
            "--json",
            "--until-stdin-closes",
        ]
        if self.ofd_address is not None:  # the stand-in, or up --ofd (D105)
            argv += ["--ofd", self.ofd_address]
        if self.mqtt_url is not None:
            argv += ["--mqtt", self.mqtt_url]
        return argv

    async def _start_workers(self) -> None:
        plans = plan_workers(
            self.planned_tills, self.worker_count, self.points, self.state_dir / "workers"
        )
        for plan in plans:
            write_json_atomic(plan.state_dir / "points.json", list(plan.points))
            self.workers.append(Worker(plan, self._argv(plan)))
        for worker in self.workers:
            await worker.start()
            self.log.info("worker_started", worker=worker.plan.number, pid=worker.pid)
        for worker in self.workers:
            timeout = self.ready_timeout or 120.0 + 0.5 * worker.plan.count
            await worker.wait_ready(timeout)
            self.log.info("worker_ready", worker=worker.plan.number, tills=len(worker.tills))

    async def wait_exit(self) -> WorkerExit:
        """Return the first worker that ends (for ``up``: a failure, as nothing asked it to)."""
        waits = [asyncio.ensure_future(w.wait_exit()) for w in self.workers]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for wait in waits:
                wait.cancel()

    async def close(self) -> None:
        """Stop the workers first (all at once), then the broker, OFD and cloud."""
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.terminate()
        await asyncio.gather(*(w.stop() for w in workers))
        await super().close()

    def till_infos(self) -> tuple[TillInfo, ...]:
        """Every till of every worker, in the order of the installation."""
        return tuple(t for w in self.workers for t in w.tills)

    def ready_info(self) -> dict[str, Any]:
        """The ready-file of ``up``, and ``workers``: each one's number, pid, state and tills."""
        return {
            **super().ready_info(),
            "workers": [
                {
                    "number": w.plan.number,
                    "pid": w.pid,
                    "state_dir": str(w.plan.state_dir),
                    "tills": [t.device_id for t in w.tills],
                }
                for w in self.workers
            ],
        }

    def banner(self) -> str:
        """The banner of ``up``, and the worker processes."""
        pids = ", ".join(str(w.pid) for w in self.workers)
        return (
            super().banner()
            + f"\nworkers: {len(self.workers)} processes (pids {pids}), "
            + f"state in {self.state_dir / 'workers'}"
        )
