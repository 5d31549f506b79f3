"""N tills in one process against any cloud (``kkt-emulator till fleet``).

A :class:`Fleet` is the till half of ``kkt-emulator up``: no cloud and no OFD of its own, only
tills bound to retail points of a cloud that runs elsewhere (another process, another host), and
optionally the agents of the control plane on an existing broker. It is what each worker process
of ``up --workers N`` runs (:mod:`kkt_emulator.app.workers`), and what a deployment runs on the
hosts that carry tills (``docs/deployment.md``).

The retail points come from the command line, from a ready-file (``points``), or are created
through the cloud's cabinet API and kept in ``<state dir>/points.json``. Till ``n`` (from 0) is
bound to point ``n mod len(points)`` and keeps its state in ``<state dir>/tills/till-<n+1>``, so a
restart with the same options rebinds the same tills with the same drives, as ``up`` does::

    async with Fleet(FleetOptions(server=url, profile=profile, state_dir=path, count=10,
                                  points=points, mqtt="mqtt://broker:1883"), clock) as fleet:
        fleet.ready_info()      # server, points, tills (device id, drive, point), broker, pid
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from kkt_emulator.app.stack import (
    FDS_PER_TILL,
    OfdGates,
    PointAccess,
    TillInfo,
    _raise_fd_limit,
    ensure_points,
    till_config,
    uses_fleet_watch,
    write_json_atomic,
)
from kkt_emulator.clock import Clock, ManualClock, RealClock, ScaledClock, make_clock
from kkt_emulator.errors import CloudError, ConfigError, EmulatorError, TransportError
from kkt_emulator.logging import get_logger
from kkt_emulator.net import client_tls
from kkt_emulator.till.till import Till, TillConfig

if TYPE_CHECKING:
    from kkt_emulator.control.plane import ControlPlane
    from kkt_emulator.profiles import FirmwareProfile

__all__ = [
    "MAX_TILLS_PER_PROCESS",
    "Fleet",
    "FleetOptions",
    "clock_options",
    "fleet_clock",
    "read_points",
    "start_tills",
    "stdin_closed",
    "stop_tills",
]

MAX_TILLS_PER_PROCESS = 5000
"""The most tills one fleet process takes; beyond it, shard them (``up --workers N``)."""

START_PARALLEL = 16
"""Tills that start at once: enough to overlap their bind requests and drive start-ups, few
enough that a cloud is not handed a thousand binds in the same instant."""

START_PATIENCE = 120.0
"""Seconds without any till of the fleet starting after which a till the cloud does not answer
in time gives up (and the fleet with it)."""

_POINT_KEYS = ("retail_point_id", "service_login", "service_password")
_REAL = RealClock()
_log = get_logger(__name__)


# ---------------------------------------------------------------------------------- points


def read_points(path: Path) -> list[PointAccess]:
    """The retail points in a ready-file (its ``points``) or in a ``points.json`` list.

    Each entry needs ``retail_point_id``, ``service_login`` and ``service_password``; the shop's
    ``login`` and ``password`` are kept when present.

    Raises:
        ConfigError: the file cannot be read, is not JSON, or lists no usable point.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"--from-ready: {path} not found") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"--from-ready: cannot read {path}: {exc}") from exc
    entries = data.get("points") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"--from-ready: {path} has no list of retail points (`points`)")
    points: list[PointAccess] = []
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(key), str) and entry[key] for key in _POINT_KEYS
        ):
            raise ConfigError(
                f"--from-ready: point {n} in {path} lacks one of {', '.join(_POINT_KEYS)}"
            )
        points.append(
            {
                "retail_point_id": entry["retail_point_id"],
                "service_login": entry["service_login"],
                "service_password": entry["service_password"],
                "login": str(entry.get("login") or ""),
                "password": str(entry.get("password") or ""),
            }
        )
    return points


# ---------------------------------------------------------------------------------- clocks


def fleet_clock(spec: str, start: datetime | None = None) -> Clock:
    """The clock of a process that shares business time with another (``--clock-start``).

    ``manual``: the clock starts at ``start``. ``scaled:N``: ``start`` is the real instant the
    scaled clock began (its business time equalled real time then), so every process given the
    same ``start`` reads the same business time. ``real`` takes no ``start``.

    Raises:
        ConfigError: a bad spec, a ``start`` without a timezone, or a ``start`` with ``real``.
    """
    if start is not None and start.tzinfo is None:
        raise ConfigError("--clock-start needs a timezone, e.g. 2026-04-01T09:00:00+00:00")
    clock = make_clock(spec)
    if start is None:
        return clock
    if isinstance(clock, ManualClock):
        return ManualClock(start)
    if isinstance(clock, ScaledClock):
        elapsed = (_REAL.now() - start) * clock.factor
        return ScaledClock(clock.factor, start + elapsed)
    raise ConfigError("--clock-start goes with --clock manual or scaled:N, not real")


def clock_options(clock: Clock) -> list[str]:
    """``--clock`` and ``--clock-start`` that give another process this clock's business time.

    A manual clock is copied at its present time (later ``clock advance`` commands reach every
    process through the control plane); a scaled one by the real instant it would have started
    at, derived from its present time, so an offset added by ``advance`` is carried too.
    """
    if isinstance(clock, ManualClock):
        return ["--clock", "manual", "--clock-start", clock.now().isoformat()]
    if isinstance(clock, ScaledClock):
        real = _REAL.now()
        ahead = clock.now() - real
        epoch = real if clock.factor == 1 else real - ahead / (clock.factor - 1)
        return ["--clock", f"scaled:{clock.factor!r}", "--clock-start", epoch.isoformat()]
    return ["--clock", "real"]


# ---------------------------------------------------------------------------------- tills


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a failed start: an emulator error before anything else."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    ours = [e for e in leaves if isinstance(e, EmulatorError)]
    return (ours or leaves)[0]


class _Progress:
    """When a till of the fleet last started (pacing time): the patience of the others runs from it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.last = clock.monotonic()

    def made(self) -> None:
        self.last = self.clock.monotonic()


async def _start_one(
    config: TillConfig, clock: Clock, progress: _Progress, patience: float
) -> Till:
    """Start one till; a cloud that does not answer in time is asked again.

    A cloud that answered the fleet's first request but not a till's is busy (thousands of tills
    binding at once on a loaded host), not gone: the till is stopped and started again from its
    state on disk, which start-up keeps consistent at every step, for as long as other tills of
    the fleet keep starting, and ``patience`` seconds after the last one did.
    """
    pause = 0.5
    while True:
        till = Till(config, clock)
        try:
            await till.start()
        except BaseException as exc:
            await stop_tills([till])  # what it opened before it failed (or was cancelled)
            if isinstance(exc, CloudError) and exc.status in (401, 403):
                raise ConfigError(
                    f"the cloud at {config.server} refused the service login "
                    f"{config.login!r} of retail point {config.retail_point_id}: {exc}"
                ) from exc
            stalled = clock.monotonic() + pause > progress.last + patience
            if not isinstance(exc, TransportError) or stalled:
                raise
            _log.warning("till_start_retried", state_dir=str(config.state_dir), error=str(exc))
            await clock.pace(pause)
            pause = min(pause * 2, 5.0)
        else:
            progress.made()
            return till


async def start_tills(
    configs: list[TillConfig],
    clock: Clock,
    *,
    parallel: int = START_PARALLEL,
    patience: float = START_PATIENCE,
) -> list[Till]:
    """Start a till per config, ``parallel`` at a time; all or none.

    Returns the tills in the order of ``configs``. A till the cloud does not answer is tried again
    while others start, until none has for ``patience`` seconds. When one fails, the others are cancelled, every till started so far
    is stopped again, and the first error is raised.

    Raises:
        ConfigError: the cloud refused a retail point's service credentials (401 or 403).
    """
    gate = asyncio.Semaphore(max(1, parallel))
    started: list[Till | None] = [None] * len(configs)
    progress = _Progress(clock)

    async def one(n: int) -> None:
        config = configs[n]
        async with gate:
            started[n] = await _start_one(config, clock, progress, patience)

    try:
        async with asyncio.TaskGroup() as group:
            for n in range(len(configs)):
                group.create_task(one(n))
    except BaseExceptionGroup as failed:
        await stop_tills([t for t in started if t is not None])
        raise _first_error(failed) from None
    except BaseException:  # cancelled from outside (a signal during start-up)
        await stop_tills([t for t in started if t is not None])
        raise
    return [t for t in started if t is not None]


async def stop_tills(tills: list[Till]) -> None:
    """Stop every till at once; one that fails to stop is logged and the rest still stop."""
    results = await asyncio.gather(*(t.close() for t in tills), return_exceptions=True)
    for till, result in zip(tills, results, strict=True):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):
            _log.error(
                "till_stop_failed",
                device_id=till.device_id,
                fn_serial=till.fn_serial,
                error=f"{type(result).__name__}: {result}",
            )


# ---------------------------------------------------------------------------------- the fleet


@dataclass(slots=True)
class FleetOptions:
    """What ``kkt-emulator till fleet`` starts.

    Attributes:
        server: the cloud's base URL (``http://host:port``).
        profile: the firmware profile of every till.
        state_dir: ``tills/till-N`` below it, and ``points.json`` when points are created.
        count: how many tills.
        points: the retail points to bind to; ``None``: create ``create_points`` of them.
        create_points: how many points to create (and keep) through the cabinet API.
        cabinet_token: the cabinet's bearer token, for creating points.
        ofd: the OFD's ``host:port``, or ``None`` (no OFD exchange).
        mqtt: the control plane's broker URL, ``"spawn"``, or ``None`` (no control plane).
        ready_file: where to write the fleet's JSON once every till is up.
        timing: ``fast`` or ``realistic``.
        settings: settings every till starts with (``poll_interval``, ``long_poll`` …).
        drive_timeout: seconds the till waits for its drive.
        parallel: tills started at once.
    """

    server: str
    profile: FirmwareProfile
    state_dir: Path
    count: int
    points: list[PointAccess] | None = None
    create_points: int = 0
    cabinet_token: str | None = None
    ofd: str | None = None
    mqtt: str | None = None
    ready_file: Path | None = None
    timing: str = "fast"
    settings: dict[str, Any] = field(default_factory=dict)
    drive_timeout: float = 5.0
    parallel: int = START_PARALLEL

    def check(self) -> None:
        """Refuse options that cannot make a fleet, each with the option to fix.

        Raises:
            ConfigError: a bad count, server, OFD address or point source.
        """
        if not 1 <= self.count <= MAX_TILLS_PER_PROCESS:
            raise ConfigError(
                f"--count must be 1 to {MAX_TILLS_PER_PROCESS} "
                "(shard bigger fleets over processes: `up --workers N`, or several `till fleet`)"
            )
        if not self.server.startswith(("http://", "https://")) or not _host_of(self.server):
            raise ConfigError(f"--server {self.server!r} is not an http:// or https:// URL")
        if self.ofd is not None:
            host, _, port = self.ofd.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"--ofd {self.ofd!r} is not HOST:PORT")
        if self.timing not in ("fast", "realistic"):
            raise ConfigError("--timing must be fast or realistic")
        if (self.points is None) == (self.create_points == 0):
            raise ConfigError(
                "give the retail points one way: --point/--login/--password, --from-ready FILE, "
                "or --points N (created through the cabinet API)"
            )
        wanted = len(self.points) if self.points is not None else self.create_points
        if wanted > self.count:
            raise ConfigError(
                f"{wanted} retail points but --count {self.count}: every retail point needs a till"
            )


def _host_of(url: str) -> str:
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:
        return ""


class Fleet:
    """Tills against a cloud elsewhere, and their agents on a broker. An async context manager."""

    def __init__(self, options: FleetOptions, clock: Clock) -> None:
        options.check()
        self.options = options
        self.clock = clock
        self.server = options.server.rstrip("/")
        self.points: list[PointAccess] = list(options.points or [])
        self.tills: list[Till] = []
        self.control: ControlPlane | None = None
        self.mqtt_url: str | None = None
        self._gates_task: asyncio.Task[None] | None = None
        self.log = get_logger(component="fleet")

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Check the cloud answers, find the points, start the tills and their agents.

        Raises:
            TransportError: the cloud (or the broker) does not answer.
            ConfigError: the cloud refused the credentials of a retail point.
            CloudError: the cloud refused something else.
        """
        _raise_fd_limit(64 + FDS_PER_TILL * self.options.count)
        await self._check_cloud()
        if self.options.create_points:
            await self._create_points()
        opts = self.options
        gates = OfdGates(opts.count)
        configs = [
            till_config(
                opts.profile,
                opts.state_dir / "tills" / f"till-{n + 1}",
                self.server,
                self.points[n % len(self.points)],
                ofd_address=opts.ofd,
                timing=opts.timing,
                settings=opts.settings,
                drive_timeout=opts.drive_timeout,
                fleet_watch=uses_fleet_watch(opts.count),
                ofd_gate=gates.gate(n),
            )
            for n in range(opts.count)
        ]
        began = self.clock.monotonic()
        self.tills = await start_tills(configs, self.clock, parallel=opts.parallel)
        self.log.info(
            "fleet_started", tills=len(self.tills), seconds=self.clock.monotonic() - began
        )
        await self._start_control()
        if opts.ready_file is not None:
            write_json_atomic(opts.ready_file, self.ready_info())
        self._gates_task = asyncio.create_task(gates.open(self.clock), name="ofd-gates")

    async def _check_cloud(self) -> None:
        """One request before any till starts: any HTTP answer proves the cloud is there."""
        try:
            async with httpx.AsyncClient(timeout=10.0, verify=client_tls()) as http:
                await http.get(f"{self.server}/api/cabinet/v1/clock")
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            raise TransportError(f"the cloud at {self.server} does not answer: {why}") from exc

    async def _create_points(self) -> None:
        try:
            self.points = await ensure_points(
                self.server,
                self.options.state_dir / "points.json",
                self.options.create_points,
                self.options.profile,
                self.options.cabinet_token,
            )
        except httpx.HTTPStatusError as exc:
            raise CloudError(
                exc.response.status_code,
                f"the cabinet API of {self.server} refused to create retail points: "
                f"{exc.response.text[:200]} (a cloud beyond loopback needs --cabinet-token)",
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"the cloud at {self.server} does not answer: {exc}") from exc

    async def _start_control(self) -> None:
        if not self.options.mqtt:
            return
        from kkt_emulator.control.plane import ControlPlane  # noqa: PLC0415 - only with --mqtt

        self.control = ControlPlane(self.options.mqtt, self.clock)
        await self.control.start(self.tills)
        self.mqtt_url = self.control.url

    async def close(self) -> None:
        """Stop the agents (each till says offline), then every till at once."""
        if self._gates_task is not None:
            self._gates_task.cancel()
            await asyncio.gather(self._gates_task, return_exceptions=True)
            self._gates_task = None
        if self.control is not None:
            control, self.control = self.control, None
            try:
                await control.close()
            except Exception:  # the tills must stop whatever the control plane raised; logged
                self.log.exception("fleet_control_stop_failed")
        tills, self.tills = self.tills, []
        await stop_tills(tills)
        if self.options.ready_file is not None:
            try:
                self.options.ready_file.unlink(missing_ok=True)
            except OSError as exc:  # the file announces a running fleet: best effort
                self.log.warning("fleet_ready_file_kept", path=str(exc.filename), error=str(exc))

    def till_infos(self) -> tuple[TillInfo, ...]:
        """Every till, as the ready-file lists them."""
        return tuple(TillInfo.of(t) for t in self.tills)

    def ready_info(self) -> dict[str, Any]:
        """What the ready-file says: the cloud, points, tills, broker, clock, state and pid.

        ``base_url`` and ``mqtt`` make it a ready-file the control commands take
        (``status --ready-file``); ``points`` make it one ``till fleet --from-ready`` takes.
        """
        return {
            "base_url": self.server,
            "points": list(self.points),
            "tills": [t.to_json() for t in self.till_infos()],
            "ofd": self.options.ofd,
            "mqtt": self.mqtt_url,
            "clock": str(self.clock.mode),
            "state_dir": str(self.options.state_dir),
            "pid": os.getpid(),
        }

    def summary(self) -> str:
        """One line for people: how many tills, where, and the control plane."""
        return (
            f"fleet of {len(self.tills)} till(s) × {self.options.profile.name} on "
            f"{len(self.points)} retail point(s) of {self.server}; control plane "
            f"{self.mqtt_url or 'off'}; state in {self.options.state_dir}"
        )


# ---------------------------------------------------------------------------------- supervision


class _UntilEof(asyncio.Protocol):
    def __init__(self, closed: asyncio.Event) -> None:
        self.closed = closed

    def data_received(self, data: bytes) -> None:
        """Whatever the supervisor writes is ignored: only the end of the pipe matters."""

    def eof_received(self) -> bool | None:
        self.closed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        del exc
        self.closed.set()


async def stdin_closed() -> None:
    """Return once standard input reaches its end (the supervising process is gone).

    A worker of ``up --workers`` holds a pipe from its parent on stdin: when the parent dies,
    even by SIGKILL, the pipe closes and the worker stops instead of running on as an orphan.
    """
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(lambda: _UntilEof(closed), sys.stdin)
    try:
        await closed.wait()
    finally:
        transport.close()
