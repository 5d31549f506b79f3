"""``kkt-emulator bench``: every speed figure of the project, side by side, in one run.

Each part measures one figure against its goal (``docs/benchmarks.md``):

* ``bare`` — requests/s of a bare FastAPI endpoint (:mod:`kkt_emulator.app.bare`) that uvicorn
  serves in its own process on a socket it binds itself: the reference of the server stack.
* ``status`` — requests/s of ``GET /api/fn/v1/status`` with Basic auth on an installation that
  ``kkt-emulator up --tills 8`` runs as a process; ``status_ratio`` is status ÷ bare.
* ``e2e`` — sales posted to that installation until every one is COMPLETED; receipts/s from the
  first POST to the last callback, ``e2e_ratio`` against the status rate; and ``cpu``, the CPU the
  installation's processes spent per receipt meanwhile (``/proc/<pid>/stat``).
* ``latency`` — POST → COMPLETED at a steady rate (50 a second): p50, p99 and max.
* ``drive`` — the whole-receipt exchange on the drive with the SQLite archive against the
  115200-baud line (:func:`kkt_emulator.app.bench.bench_fn`).
* ``plugin`` — what the pytest plugin adds to pytest's own start for tests that each make a sale.
* ``startup`` — ``up --tills 1`` from exec to its ready-file, best of three.

The load generator is always another process: ``wrk`` when it is installed, else
:mod:`kkt_emulator.app.loadgen`; the posted sales always go through the loadgen, which also runs
the ``responseURL`` server the cloud calls back. Progress goes to a callback (stderr in the CLI);
the result is one JSON-ready dict. A part that cannot start raises :class:`BenchStartError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kkt_emulator import eventloop
from kkt_emulator.app.loadgen import basic_auth
from kkt_emulator.clock import RealClock
from kkt_emulator.errors import EmulatorError

__all__ = ["PARTS", "BenchStartError", "SuiteOptions", "run_suite"]


class BenchStartError(EmulatorError):
    """A process a benchmark part needs (uvicorn, ``up``, the load generator) would not start."""


PARTS = ("bare", "status", "e2e", "latency", "drive", "plugin", "startup")
"""The parts in the order they run (``cpu`` is measured by ``e2e``)."""

_CLOCK = RealClock()
_READY_TIMEOUT = 60.0
_STOP_GRACE = 3.0
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

Progress = Callable[[str], None]


@dataclass(slots=True)
class SuiteOptions:
    """What one ``kkt-emulator bench`` run measures, and how long."""

    seconds: float = 5.0
    """Duration of each requests/s measurement (bare, status)."""
    docs: int = 2000
    tills: int = 8
    workers: int | None = field(default_factory=lambda: 1 if (os.cpu_count() or 1) > 1 else None)
    """``up --workers N`` for the measured installation (``None``: the tills in ``up``'s process).

    One worker by default where there are cores for it: the cloud and the tills each get one,
    as a load test should run them (D114 lets the worker's tills overlap their syncs).
    """
    connections: int = 16
    latency_seconds: float = 10.0
    latency_rate: float = 50.0
    drive_seconds: float = 1.0
    plugin_tests: int = 20
    startup_runs: int = 3
    e2e_timeout: float = 300.0
    parts: tuple[str, ...] = PARTS
    wrk: str | None = field(default_factory=lambda: shutil.which("wrk"))

    @classmethod
    def quick(cls, **overrides: Any) -> SuiteOptions:
        """Small counts: a run of seconds that checks every part works, not how fast."""
        values: dict[str, Any] = {
            "seconds": 1.0,
            "docs": 100,
            "latency_seconds": 2.0,
            "drive_seconds": 0.2,
            "plugin_tests": 3,
            "startup_runs": 1,
            "e2e_timeout": 60.0,
        }
        values.update(overrides)
        return cls(**values)


def _check(value: float | None, op: str, goal: float, *, measured: bool = True) -> dict[str, Any]:
    """One figure against its goal; a missing value fails unless its inputs were not measured."""
    if value is None:
        ok = False if measured else None
    elif op == ">=":
        ok = value >= goal
    elif op == ">":
        ok = value > goal
    else:
        ok = value <= goal
    return {"value": value, "goal": f"{op} {goal:g}", "ok": ok}


def _judge(part: dict[str, Any], **checks: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Give ``part`` its ``goals`` and ``ok``: False on an error or a missed goal, None when unjudged."""
    part["goals"] = {name: c["goal"] for name, c in checks.items()}
    oks = [c["ok"] for c in checks.values()]
    if "error" in part or False in oks:
        part["ok"] = False
    elif all(o is None for o in oks):
        part["ok"] = None
    else:
        part["ok"] = True
    return list(checks.items())


# ---------------------------------------------------------------------------- processes


class _Child:
    """A child process in its own session, its output in a log file; stopped with its group."""

    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = 0.0

    async def start(self, *, stdout_pipe: bool = False, stdin_pipe: bool = False) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
        with self.log.open("ab") as out:
            self.started_at = _CLOCK.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE if stdin_pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if stdout_pipe else out,
                stderr=out,
                env=env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def last_line(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return "no output"
        return lines[-1][:300] if lines else "no output"

    def failed(self, what: str) -> BenchStartError:
        return BenchStartError(
            f"{self.name} {what}; its log {self.log} ends with: {self.last_line()}"
        )

    async def stop(self, grace: float = _STOP_GRACE) -> None:
        """SIGTERM the group, SIGKILL it after ``grace`` seconds (at once when 0)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), grace or None)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "kkt_emulator", *args]


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds (utime + stime) of ``root`` and every live descendant, plus the children they waited for."""
    return sum(_tree_cpu(root).values())


def _tree_cpu(root: int) -> dict[int, float]:
    """:func:`_tree_cpu_seconds` by process: ``root``'s own first, then each live descendant's."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text("ascii", "replace")
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    found: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            # fields after the command: state=0 ppid=1 … utime=11 stime=12 cutime=13 cstime=14
            found[pid] = sum(int(v) for v in stats[pid][11:15]) / _TICKS
        todo.extend(children.get(pid, []))
    return found


def _cpu_split(before: dict[int, float], after: dict[int, float], root: int) -> dict[str, float]:
    """CPU seconds between two :func:`_tree_cpu` readings: ``root``'s own and the rest's."""
    spent = {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}
    own = spent.pop(root, 0.0)
    return {"up": own, "workers": sum(spent.values())}


async def _wait_file(path: Path, child: _Child, timeout: float) -> float:  # noqa: ASYNC109 - a budget
    """Seconds from the child's start until ``path`` exists (it must not exit meanwhile)."""
    assert child.proc is not None
    deadline = _CLOCK.monotonic() + timeout
    while not path.exists():  # noqa: ASYNC240 - a stat every 5 ms, nothing else runs
        if child.proc.returncode is not None:
            raise child.failed(f"exited with {child.proc.returncode} before writing {path.name}")
        if _CLOCK.monotonic() > deadline:
            await child.stop()
            raise child.failed(f"wrote no {path.name} within {timeout:g} s")
        await _CLOCK.pace(0.005)
    return _CLOCK.monotonic() - child.started_at


@dataclass(frozen=True, slots=True)
class _Installation:
    child: _Child
    store_api: str
    login: str
    password: str
    poll: dict[str, Any]


async def _long_poll_supported() -> bool:
    proc = await asyncio.create_subprocess_exec(
        *_cli("up", "--help"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
    )
    out, _ = await proc.communicate()
    return b"--long-poll" in out


@contextlib.asynccontextmanager
async def _installation(
    tills: int, workdir: Path, poll_args: list[str], poll: dict[str, Any]
) -> AsyncIterator[_Installation]:
    name = "up"
    ready = workdir / f"{name}-ready.json"
    args = [
        "up",
        "--tills",
        str(tills),
        "--mqtt",
        "none",
        "--state-dir",
        str(workdir / f"{name}-state"),
        "--ready-file",
        str(ready),
        *poll_args,
    ]
    child = _Child(name, _cli(*args), workdir)
    await child.start()
    try:
        await _wait_file(ready, child, _READY_TIMEOUT)
        try:
            info = json.loads(ready.read_text("utf-8"))
            yield _Installation(child, info["store_api"], info["login"], info["password"], poll)
        except (OSError, ValueError, KeyError) as exc:
            raise child.failed(f"wrote an unreadable ready-file ({exc})") from exc
    finally:
        await child.stop()


# ---------------------------------------------------------------------------- load


async def _rate(options: SuiteOptions, url: str, auth: str | None) -> dict[str, Any]:
    """Requests/s of ``GET url`` from wrk (when installed) or the loadgen, in another process."""
    seconds = max(1, round(options.seconds)) if options.wrk else options.seconds
    if options.wrk:
        argv = [options.wrk, "-t1", f"-c{options.connections}", f"-d{seconds}s"]
        if auth is not None:
            argv += ["-H", f"Authorization: Basic {auth}"]
        argv.append(url)
    else:
        argv = [sys.executable, "-m", "kkt_emulator.app.loadgen", "get", url]
        argv += ["--connections", str(options.connections), "--seconds", str(seconds)]
        if auth is not None:  # the loadgen takes login/password; decode what we encoded
            import base64  # noqa: PLC0415 - only the fall-back needs it

            login, _, password = base64.b64decode(auth).decode().partition(":")
            argv += ["--login", login, "--password", password]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    text = out.decode("utf-8", "replace")
    base: dict[str, Any] = {
        "load_generator": "wrk" if options.wrk else "loadgen",
        "connections": options.connections,
        "seconds": seconds,
    }
    if options.wrk:
        found = re.search(r"Requests/sec:\s+([\d.]+)", text)
        if proc.returncode != 0 or found is None:
            return {**base, "requests_per_second": None, "error": _tail(err or out)}
        non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        errors = re.search(r"Socket errors:.*", text)
        return {
            **base,
            "requests_per_second": float(found.group(1)),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": errors.group(0) if errors else None,
        }
    try:
        result = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {**base, "requests_per_second": None, "error": _tail(err or out)}
    return {**base, **result}


def _tail(data: bytes) -> str:
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


async def _loadgen_e2e(
    inst: _Installation,
    workdir: Path,
    name: str,
    *,
    docs: int,
    connections: int,
    rate: float | None,
    timeout: float,  # noqa: ASYNC109 - a budget for the run, handed to the loadgen
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the loadgen's ``e2e`` mode; its result and the CPU seconds from go to done.

    The CPU is split as ``up`` (the cloud and the OFD stand-in, and the tills without workers),
    ``workers`` (the till processes of ``up --workers``) and ``load_generator`` (not counted in the
    installation's figure).
    """
    argv = [sys.executable, "-m", "kkt_emulator.app.loadgen", "e2e", inst.store_api]
    argv += ["--login", inst.login, "--password", inst.password, "--docs", str(docs)]
    argv += ["--connections", str(connections), "--timeout", str(timeout)]
    if rate is not None:
        argv += ["--rate", str(rate)]
    gen = _Child(name, argv, workdir)
    await gen.start(stdout_pipe=True, stdin_pipe=True)
    assert gen.proc is not None
    assert gen.proc.stdout is not None
    assert gen.proc.stdin is not None
    try:

        async def line() -> dict[str, Any]:
            assert gen.proc is not None
            assert gen.proc.stdout is not None
            raw = await gen.proc.stdout.readline()
            if not raw:
                await gen.proc.wait()
                raise gen.failed(f"exited with {gen.proc.returncode}")
            try:
                parsed: dict[str, Any] = json.loads(raw)
            except ValueError as exc:
                raise gen.failed(f"printed {raw[:100]!r}") from exc
            return parsed

        await asyncio.wait_for(line(), _READY_TIMEOUT)  # {"event": "ready"}
        inst_pid = inst.child.pid
        before = _tree_cpu(inst_pid)
        gen_before = _tree_cpu(gen.proc.pid)
        gen.proc.stdin.write(b"go\n")
        await gen.proc.stdin.drain()
        await asyncio.wait_for(line(), timeout + 60)  # completed or timeout
        split = _cpu_split(before, _tree_cpu(inst_pid), inst_pid)
        split["load_generator"] = sum(_tree_cpu(gen.proc.pid).values()) - sum(gen_before.values())
        result = await asyncio.wait_for(line(), 120)
        return result, split
    finally:
        await gen.stop()


# ---------------------------------------------------------------------------- parts


def machine(options: SuiteOptions) -> dict[str, Any]:
    """Where the figures were measured."""
    loadavg = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "event_loop": eventloop.loop_name(),
        "http_parser": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "wrk": options.wrk is not None,
        "load_generator": "wrk" if options.wrk else "python -m kkt_emulator.app.loadgen",
        "loadavg_1m_at_start": round(loadavg[0], 2) if loadavg else None,
    }


async def _bare(options: SuiteOptions, workdir: Path) -> dict[str, Any]:
    loop = "uvloop" if eventloop.loop_name() == "uvloop" else "asyncio"
    child = _Child(
        "bare",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "kkt_emulator.app.bare:app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--loop",
            loop,
            "--no-access-log",
            "--log-level",
            "info",
        ],
        workdir,
    )
    await child.start()
    try:
        port = await _uvicorn_port(child)
        result = await _rate(options, f"http://127.0.0.1:{port}/status", None)
    finally:
        await child.stop()
    return {"endpoint": "GET /status (kkt_emulator.app.bare)", **result}


async def _uvicorn_port(child: _Child) -> int:
    """The port uvicorn reports in its log line ``Uvicorn running on http://host:port``."""
    assert child.proc is not None
    deadline = _CLOCK.monotonic() + _READY_TIMEOUT
    while _CLOCK.monotonic() < deadline:
        found = re.search(
            r"running on http://[^:\s]+:(\d+)", child.log.read_text("utf-8", "replace")
        )
        if found:
            return int(found.group(1))
        if child.proc.returncode is not None:
            raise child.failed(f"exited with {child.proc.returncode}")
        await _CLOCK.pace(0.02)
    await child.stop()
    raise child.failed(f"did not listen within {_READY_TIMEOUT:g} s")


async def _status(options: SuiteOptions, inst: _Installation) -> dict[str, Any]:
    auth = basic_auth(inst.login, inst.password)
    result = await _rate(options, f"{inst.store_api}/v1/status", auth)
    return {"endpoint": "GET /api/fn/v1/status (Basic auth)", "tills": options.tills, **result}


async def _e2e(
    options: SuiteOptions, inst: _Installation, workdir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    result, cpu = await _loadgen_e2e(
        inst,
        workdir,
        "loadgen-e2e",
        docs=options.docs,
        connections=options.connections,
        rate=None,
        timeout=options.e2e_timeout,
    )
    completed = result["statuses"].get("COMPLETED", 0)
    e2e = {"tills": options.tills, "connections": options.connections, "poll": inst.poll, **result}
    spent = cpu["up"] + cpu["workers"]

    def per_receipt(seconds: float) -> float | None:
        return round(seconds * 1000 / completed, 2) if completed else None

    cpu_part = {
        "cpu_seconds": round(spent, 3),
        "receipts": completed,
        "cpu_ms_per_receipt": per_receipt(spent),
        "by_process_ms_per_receipt": {name: per_receipt(sec) for name, sec in cpu.items()},
        "counts": "the installation's processes (utime+stime from /proc, children included);"
        " by process: up (cloud, OFD stand-in), workers (tills), load_generator (not counted)",
    }
    return e2e, cpu_part


async def _latency(options: SuiteOptions, inst: _Installation, workdir: Path) -> dict[str, Any]:
    docs = max(1, round(options.latency_rate * options.latency_seconds))
    result, _ = await _loadgen_e2e(
        inst,
        workdir,
        "loadgen-latency",
        docs=docs,
        connections=options.connections,
        rate=options.latency_rate,
        timeout=options.e2e_timeout,
    )
    return {"rate_per_second": options.latency_rate, "poll": inst.poll, **result}


async def _drive(options: SuiteOptions) -> dict[str, Any]:
    from kkt_emulator.app.bench import bench_fn  # noqa: PLC0415 - imports the drive stack

    result = await asyncio.to_thread(bench_fn, options.drive_seconds, "sqlite")
    case = next(c for c in result["results"] if c["case"].startswith("receipt_"))
    return {"store": "sqlite", **case}


_PLUGIN_TEST = """
import pytest


@pytest.mark.parametrize("n", range({count}))
async def test_sale(kkt_stack, kkt_documents, n):
    doc = kkt_documents.sale(total=10.0 + n)
    await kkt_stack.post_document(doc)
    status = await kkt_stack.wait_for_status(doc["id"], "COMPLETED")
    assert status["status"] == "COMPLETED"
"""

_TRIVIAL_TEST = """
def test_nothing():
    assert True
"""


async def _pytest_seconds(folder: Path, test_file: str) -> tuple[float, int, str]:
    """Wall seconds of ``python -m pytest test_file`` with the plugin loaded; (seconds, rc, tail)."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "pytest_asyncio.plugin"]
    argv += ["-p", "kkt_emulator.testing.plugin", "-p", "no:cacheprovider", test_file]
    began = _CLOCK.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    elapsed = _CLOCK.monotonic() - began
    assert proc.returncode is not None
    return elapsed, proc.returncode, _tail(out)


async def _plugin(options: SuiteOptions, workdir: Path) -> dict[str, Any]:
    folder = workdir / "plugin"
    folder.mkdir()
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n",
        encoding="utf-8",
    )
    (folder / "test_start.py").write_text(_TRIVIAL_TEST, encoding="utf-8")
    (folder / "test_sales.py").write_text(
        _PLUGIN_TEST.format(count=options.plugin_tests), encoding="utf-8"
    )
    start, rc_start, tail_start = await _pytest_seconds(folder, "test_start.py")
    run, rc_run, tail_run = await _pytest_seconds(folder, "test_sales.py")
    part: dict[str, Any] = {
        "tests": options.plugin_tests,
        "pytest_start_seconds": round(start, 2),
        "run_seconds": round(run, 2),
        "seconds_beyond_start": round(run - start, 2),
        "per_test_seconds": round((run - start) / options.plugin_tests, 3),
        "seconds_beyond_start_per_20_tests": round((run - start) * 20 / options.plugin_tests, 2),
        "pytest_summary": tail_run,
    }
    if rc_start != 0 or rc_run != 0:
        part["error"] = f"pytest exited {rc_start}/{rc_run}: {tail_start} / {tail_run}"
        part["seconds_beyond_start_per_20_tests"] = None
    return part


async def _startup(options: SuiteOptions, workdir: Path) -> dict[str, Any]:
    runs = []
    for n in range(options.startup_runs):
        ready = workdir / f"startup-{n}-ready.json"
        child = _Child(
            f"startup-{n}",
            _cli(
                "up",
                "--tills",
                "1",
                "--mqtt",
                "none",
                "--state-dir",
                str(workdir / f"startup-{n}-state"),
                "--ready-file",
                str(ready),
            ),
            workdir,
        )
        await child.start()
        try:
            runs.append(await _wait_file(ready, child, _READY_TIMEOUT))
        finally:
            await child.stop(grace=0)  # a throw-away state directory: no need to wait for a stop
    return {
        "command": "up --tills 1 --mqtt none (fresh state directory)",
        "runs_seconds": [round(r, 3) for r in runs],
        "seconds": round(min(runs), 3),
    }


# ---------------------------------------------------------------------------- the run


async def run_suite(options: SuiteOptions, progress: Progress) -> dict[str, Any]:
    """Run the chosen parts in order; every figure with its goal, and ``ok`` over all of them.

    The processes' logs go to a temporary directory, removed after a completed run and kept when
    a part could not start (the error names the log).

    Raises:
        BenchStartError: a process a part needs did not start (uvicorn, ``up``, the loadgen).
    """
    out: dict[str, Any] = {"benchmark": "suite", "machine": machine(options)}
    workdir = Path(tempfile.mkdtemp(prefix="kkt-bench-suite-"))
    try:
        await _run_parts(options, progress, workdir, out)
    except BenchStartError:
        progress(f"logs kept in {workdir}")
        raise
    except BaseException:  # interrupted: nothing to look at
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(workdir, ignore_errors=True)
    return _judge_all(out)


async def _run_parts(
    options: SuiteOptions, progress: Progress, workdir: Path, out: dict[str, Any]
) -> None:
    wanted = set(options.parts)
    if "bare" in wanted:
        progress(f"bare: uvicorn + {out['machine']['load_generator']}, {options.seconds:g} s")
        out["bare"] = await _bare(options, workdir)
    if wanted & {"status", "e2e", "latency"}:
        long_poll = await _long_poll_supported()
        poll_args = (
            ["--poll-interval", "0", "--long-poll", "5"]
            if long_poll
            else ["--poll-interval", "0.05"]
        )
        if options.workers is not None:
            poll_args += ["--workers", str(options.workers)]
        poll = {"up_args": " ".join(poll_args), "long_poll": long_poll}
        progress(f"installation: up --tills {options.tills} --mqtt none {poll['up_args']}")
        async with _installation(options.tills, workdir, poll_args, poll) as inst:
            if "status" in wanted:
                progress(f"status: GET /api/fn/v1/status, {options.seconds:g} s")
                out["status"] = await _status(options, inst)
            if "e2e" in wanted:
                progress(f"e2e: {options.docs} sales to COMPLETED")
                out["e2e"], out["cpu"] = await _e2e(options, inst, workdir)
            if "latency" in wanted:
                progress(f"latency: {options.latency_rate:g}/s for {options.latency_seconds:g} s")
                out["latency"] = await _latency(options, inst, workdir)
    if "drive" in wanted:
        progress(f"drive: bench_fn sqlite, {options.drive_seconds:g} s a case")
        out["drive"] = await _drive(options)
    if "plugin" in wanted:
        progress(f"plugin: pytest, {options.plugin_tests} sale tests vs one trivial test")
        out["plugin"] = await _plugin(options, workdir)
    if "startup" in wanted:
        progress(f"startup: up --tills 1, best of {options.startup_runs}")
        out["startup"] = await _startup(options, workdir)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _judge_all(out: dict[str, Any]) -> dict[str, Any]:
    """Every figure against its goal; ``summary`` lists them side by side, ``ok`` is all of them."""
    judged: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    bare = out["bare"].get("requests_per_second") if "bare" in out else None
    status = out["status"].get("requests_per_second") if "status" in out else None
    if "bare" in out:
        checks = _judge(out["bare"], requests_per_second=_check(bare, ">", 0))
        judged.append(("bare", checks))
    if "status" in out:
        part = out["status"]
        part["status_ratio"] = _ratio(status, bare)
        checks = _judge(
            part,
            requests_per_second=_check(status, ">", 0),
            status_ratio=_check(part["status_ratio"], ">=", 0.7, measured="bare" in out),
        )
        judged.append(("status", checks))
    if "e2e" in out:
        part = out["e2e"]
        part["all_completed"] = part["statuses"].get("COMPLETED", 0) == part["documents"]
        part["e2e_ratio"] = _ratio(part["receipts_per_second"], status)
        checks = _judge(
            part,
            all_completed=_check(float(part["all_completed"]), ">=", 1),
            e2e_ratio=_check(part["e2e_ratio"], ">=", 0.2, measured="status" in out),
            receipts_per_second=_check(part["receipts_per_second"], ">=", 500),
        )
        judged.append(("e2e", checks))
        cpu = out["cpu"]
        judged.append(
            ("cpu", _judge(cpu, cpu_ms_per_receipt=_check(cpu["cpu_ms_per_receipt"], "<=", 3)))
        )
    if "latency" in out:
        part = out["latency"]
        part["all_completed"] = part["statuses"].get("COMPLETED", 0) == part["documents"]
        checks = _judge(
            part,
            all_completed=_check(float(part["all_completed"]), ">=", 1),
            p50_ms=_check(part["latency_ms"]["p50"], "<=", 30),
            p99_ms=_check(part["latency_ms"]["p99"], "<=", 100),
        )
        judged.append(("latency", checks))
    if "drive" in out:
        ratio = out["drive"]["line_rate_ratio"]
        judged.append(("drive", _judge(out["drive"], line_rate_ratio=_check(ratio, ">=", 50))))
    if "plugin" in out:
        seconds = out["plugin"]["seconds_beyond_start_per_20_tests"]
        checks = _judge(out["plugin"], seconds_beyond_start_per_20_tests=_check(seconds, "<=", 3))
        judged.append(("plugin", checks))
    if "startup" in out:
        seconds = out["startup"]["seconds"]
        judged.append(("startup", _judge(out["startup"], seconds=_check(seconds, "<=", 1.5))))
    out["summary"] = [
        {"part": name, "figure": figure, **check}
        for name, checks in judged
        for figure, check in checks
    ]
    out["ok"] = all(out[name]["ok"] is not False for name, _ in judged)
    return out
