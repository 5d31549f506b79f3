"""Benchmarks that print JSON: how fast the emulated drive answers compared with a real UART.

Speed targets live here, never in timed tests (the machines are shared and noisy). Each figure is
frames per second through :class:`~kkt_emulator.fn.endpoint.DriveEndpoint` (bytes in, bytes out,
the archive committed), and ``line_rate_ratio`` compares it with how many such exchanges a
115200-baud 8N1 line could carry at all: above 1 the emulator is faster than the wire.
"""

from __future__ import annotations

import contextlib
import resource
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kkt_emulator.app.drivebench import DriveBench, Item, item_tlv
from kkt_emulator.clock import RealClock
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.frame import encode_frame
from kkt_emulator.fn.state import DriveStore, MemoryStore
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    import httpx

    from kkt_emulator.app.stack import PointAccess, Stack
    from kkt_emulator.till.till import Till

__all__ = ["BAUD", "bench_fleet", "bench_fn", "line_rate"]

BAUD = 115200
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit
_START = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)


def line_rate(exchange_bytes: int) -> float:
    """Exchanges per second a 115200-baud line carries for ``exchange_bytes`` (request + answer)."""
    return BAUD / BITS_PER_BYTE / exchange_bytes


class _Timer:
    def __init__(self) -> None:
        self.clock = RealClock()

    def measure(self, fn: Callable[[], int], seconds: float) -> tuple[int, float]:
        """Call ``fn`` (which returns frames done) until ``seconds`` pass; (frames, elapsed)."""
        start = self.clock.monotonic()
        frames = 0
        while True:
            frames += fn()
            elapsed = self.clock.monotonic() - start
            if elapsed >= seconds:
                return frames, elapsed


def _bench(store: DriveStore) -> DriveBench:
    bench = DriveBench(
        DEFAULT_PROFILE, store=store, start=_START, ofd_storage_bytes=1 << 40, capacity=10**9
    )
    bench.register()
    bench.open_shift()
    return bench


def _case_results(
    name: str, frames: int, elapsed: float, wire_bytes: float, frames_per_op: int
) -> dict[str, Any]:
    fps = frames / elapsed
    ops = fps / frames_per_op
    return {
        "case": name,
        "frames": frames,
        "seconds": round(elapsed, 3),
        "frames_per_second": round(fps, 1),
        "wire_bytes_per_operation": round(wire_bytes, 1),
        "line_operations_per_second": round(line_rate(int(wire_bytes)), 1),
        "line_rate_ratio": round(ops / line_rate(int(wire_bytes)), 2),
    }


def bench_fn(seconds: float = 1.0, store_kind: str = "memory") -> dict[str, Any]:
    """Run the drive benchmarks; returns a JSON-ready dict.

    Args:
        seconds: how long each case runs.
        store_kind: ``memory`` (the state machine alone) or ``sqlite`` (every command committed
            to the drive's WAL archive as ``till run`` does: fsynced when it holds a signed
            document or an acknowledgement, ``synchronous=NORMAL`` otherwise, so a whole
            receipt costs one fsync and the figure follows the disk's fsync latency).
    """
    timer = _Timer()
    workdir = tempfile.TemporaryDirectory(prefix="kkt-bench-")
    counter = iter(range(1, 10**9))

    def store() -> DriveStore:
        if store_kind == "sqlite":
            return SqliteStore(Path(workdir.name) / f"drive-{next(counter)}.sqlite3")
        return MemoryStore()

    results = []
    try:
        # 30h status: 6 bytes out, 36 back.
        bench = _bench(store())
        status = encode_frame(Command.STATUS)
        wire = len(status) + len(bench.endpoint.receive(status, bench.now)[0])
        frames, elapsed = timer.measure(
            lambda: len(bench.endpoint.receive(status, bench.now)), seconds
        )
        results.append(_case_results("status_30h", frames, elapsed, wire, 1))

        # 07h with one item STLV inside an open receipt (re-opened every 90 items).
        bench = _bench(store())
        item = encode_frame(Command.SEND_DOCUMENT_DATA, item_tlv(Item()))
        start = encode_frame(
            Command.START_RECEIPT, cmd.build_request(Command.START_RECEIPT, when=bench.local)
        )
        cancel = encode_frame(Command.CANCEL_DOCUMENT)
        sent = [0]

        def one_item() -> int:
            if sent[0] % 90 == 0:
                bench.endpoint.receive(cancel, bench.now)
                bench.endpoint.receive(start, bench.now)
            sent[0] += 1
            return len(bench.endpoint.receive(item, bench.now))

        wire = len(item) + 6
        frames, elapsed = timer.measure(one_item, seconds)
        results.append(_case_results("item_07h", frames, elapsed, wire, 1))

        # A whole receipt: 15h, 07h × 3 (receipt data, two items), 16h.
        bench = _bench(store())
        local = bench.local
        items = [Item(), Item(name="Молоко", price=8990)]
        total = sum(i.total for i in items)
        receipt = [
            encode_frame(
                Command.START_RECEIPT, cmd.build_request(Command.START_RECEIPT, when=local)
            ),
            encode_frame(Command.SEND_DOCUMENT_DATA, bench.receipt_tlv(total)),
            *(encode_frame(Command.SEND_DOCUMENT_DATA, item_tlv(i)) for i in items),
            encode_frame(
                Command.FINISH_RECEIPT,
                cmd.build_request(Command.FINISH_RECEIPT, when=local, operation=1, total=total),
            ),
        ]
        answers = [bench.endpoint.receive(frame, bench.now)[0] for frame in receipt]
        wire = sum(len(f) for f in receipt) + sum(len(a) for a in answers)

        def one_receipt() -> int:
            done = 0
            for frame in receipt:
                answer = bench.endpoint.receive(frame, bench.now)[0]
                if answer[3] & 0x7F:
                    raise RuntimeError(f"benchmark receipt refused: {answer.hex(' ')}")
                done += 1
            return done

        frames, elapsed = timer.measure(one_receipt, seconds)
        results.append(_case_results("receipt_15h_07hx3_16h", frames, elapsed, wire, len(receipt)))
    finally:
        workdir.cleanup()

    return {
        "benchmark": "fn",
        "store": store_kind,
        "baud": BAUD,
        "results": results,
        "cpu_seconds": round(_cpu_seconds(), 2),
        "peak_rss_mib": _peak_rss_mib(),
    }


async def bench_e2e(
    tills: int = 1,
    docs: int = 100,
    points: int = 1,
    concurrency: int = 20,
    profile: str = DEFAULT_PROFILE,
) -> dict[str, Any]:
    """Post ``docs`` sales over real HTTP and wait until every one is COMPLETED.

    Completion is observed the way a shop observes it: each document carries a ``responseURL`` on
    a local shop endpoint, and the cloud's callback (sent when the document is fiscalised, answered
    200, which completes it) stops that document's clock. Reports receipts per second from the
    first POST to the last completion, latency percentiles, CPU seconds per receipt (this process
    runs cloud, OFD and tills) and peak RSS. Every status is checked at the end.
    """
    import asyncio  # noqa: PLC0415 - only the async benchmark needs it

    import uvicorn  # noqa: PLC0415
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.requests import Request  # noqa: PLC0415
    from starlette.responses import PlainTextResponse  # noqa: PLC0415
    from starlette.routing import Route  # noqa: PLC0415

    from kkt_emulator.app.stack import sale_document  # noqa: PLC0415 - it imports the world
    from kkt_emulator.net import listen_socket  # noqa: PLC0415

    clock = RealClock()
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    all_done = asyncio.Event()

    async def callback(request: Request) -> PlainTextResponse:
        doc_id = request.query_params.get("doc", "")
        if doc_id in started and doc_id not in finished:
            finished[doc_id] = clock.monotonic()
            if len(finished) == docs:
                all_done.set()
        return PlainTextResponse("ok")

    shop_socket = listen_socket("127.0.0.1", 0)
    shop = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/cb", callback)]),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    shop_task = asyncio.create_task(shop.serve(sockets=[shop_socket]))
    shop_url = f"http://127.0.0.1:{shop_socket.getsockname()[1]}/cb"
    try:
        async with _bench_stack(
            "e2e",
            clock,
            profile=profile,
            tills=tills,
            points=points,
            till_settings={"poll_interval": 0.0, "long_poll": 5.0},
        ) as (stack, http, store):
            limit = asyncio.Semaphore(concurrency)
            posted: list[tuple[str, tuple[str, str]]] = []

            async def post(n: int) -> None:
                point = stack.points[n % len(stack.points)]
                auth = (point["login"], point["password"])
                doc = sale_document(10.0 + n % 100)
                doc["responseURL"] = f"{shop_url}?doc={doc['id']}"
                async with limit:
                    started[doc["id"]] = clock.monotonic()
                    (await http.post(f"{store}/v2/doc", json=doc, auth=auth)).raise_for_status()
                posted.append((doc["id"], auth))

            before = _cpu_seconds()
            began = clock.monotonic()
            await asyncio.gather(*(post(n) for n in range(docs)))
            await asyncio.wait_for(all_done.wait(), timeout=max(60.0, docs * 0.5))
            elapsed = max(finished.values()) - began
            cpu = _cpu_seconds() - before
            statuses: dict[str, int] = {}
            for doc_id, auth in posted:
                async with limit:
                    status = (await http.get(f"{store}/v1/doc/{doc_id}/status", auth=auth)).json()[
                        "status"
                    ]
                statuses[status] = statuses.get(status, 0) + 1
    finally:
        shop.should_exit = True
        await shop_task
        shop_socket.close()
    latencies = sorted(finished[d] - started[d] for d in finished)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "benchmark": "e2e",
        "tills": tills,
        "points": points,
        "documents": docs,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "receipts_per_second": round(docs / elapsed, 1),
        "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": round(latencies[-1] * 1000, 1)},
        "cpu_seconds_per_receipt": round(cpu / docs, 4),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextlib.asynccontextmanager
async def _bench_stack(
    name: str,
    clock: RealClock,
    *,
    profile: str,
    tills: int,
    points: int,
    till_settings: dict[str, Any],
    mqtt: str | None = None,
) -> AsyncIterator[tuple[Stack, httpx.AsyncClient, str]]:
    """An installation in a throw-away state directory, an HTTP client, and its store API URL."""
    import httpx  # noqa: PLC0415 - only the async benchmarks need it

    from kkt_emulator.app.stack import Stack, StackOptions  # noqa: PLC0415 - it imports the world
    from kkt_emulator.profiles import load_profile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix=f"kkt-bench-{name}-") as workdir:
        options = StackOptions(
            profile=load_profile(profile),
            state_dir=Path(workdir),
            tills=tills,
            points=points,
            till_settings=till_settings,
            mqtt=mqtt,
        )
        async with Stack(options, clock) as stack, httpx.AsyncClient(timeout=60.0) as http:
            yield stack, http, stack.ready().store_api


def _open_fds() -> int | None:
    try:
        return len(list(Path("/proc/self/fd").iterdir()))
    except OSError:  # not Linux
        return None


SETTLE_TIMEOUT = 120.0
"""Seconds a started fleet may take to settle (:func:`_unsettled`); then it is measured as it is."""


def _unsettled(stack: Stack) -> int:
    """Tills still working off start-up, read from the in-process objects only.

    A till is settled when its drive has nothing unsent and its OFD connection is closed; a
    long-polling till also once its databases and its kept connection to the cloud closed for
    being idle (D71): from then on it does nothing until a document, a command or its rare
    heartbeat comes. A till on the timer-paced poll uses both all the time.
    """
    return sum(1 for till in stack.tills if not _settled(till))


def _settled(till: Till) -> bool:
    drive, store, sender = till.drive, till.store, till.ofd_sender
    if drive is not None and drive.state.unsent:
        return False
    if sender is not None and sender.connected:
        return False
    if till.settings.long_poll <= 0:
        return True
    if till.link.holds_connection or (store is not None and store.connection.is_open):
        return False
    archive = drive.store if drive is not None else None
    return not (isinstance(archive, SqliteStore) and archive.connection.is_open)


async def bench_fleet(
    tills: int = 200,
    points: int = 20,
    docs_per_point: int = 1,
    *,
    poll_interval: float = 5.0,
    idle_seconds: float = 5.0,
    long_poll: float | None = None,
    mqtt: str | None = "spawn",
    profile: str = DEFAULT_PROFILE,
    timeout: float = 600.0,  # noqa: ASYNC109 - a budget for the whole benchmark, not one call
) -> dict[str, Any]:
    """A fleet as ``kkt-emulator up --tills N --points M`` runs it: start-up, idle cost, throughput.

    Starts the installation (real clock, the ``up`` defaults: poll interval 5 s, the control plane
    when ``mqtt`` is ``"spawn"`` or a URL; ``long_poll`` as ``up --long-poll``), measures how
    long start-up takes (to the ready-file), how long the started fleet then takes to send its
    drives' start-up documents to the OFD and quieten (``settle``, D119; ``unsettled_tills`` the
    ones still busy after :data:`SETTLE_TIMEOUT`) and what the idle fleet costs in CPU after that, then posts ``docs_per_point`` sales to every retail point and waits until every
    one is final: ``seconds`` runs from before the first POST to the cabinet read (one request
    every 50 ms) that found as many final documents as were posted, and ``all_completed`` says
    whether each one's own status, read then, is COMPLETED. Reports start-up
    seconds, receipts per second, CPU seconds, open file descriptors (the most seen by the end of
    start-up and settling, after the idle period — per till too — and the most seen while the
    documents run) and peak RSS (this process; the broker's own RSS is reported apart).

    Raises:
        TimeoutError: not every document reached a final status within ``timeout`` seconds.
    """
    import asyncio  # noqa: PLC0415 - only the async benchmarks need it

    from kkt_emulator.app.stack import (  # noqa: PLC0415 - it imports the world
        default_long_poll,
        sale_document,
    )

    long_poll = default_long_poll(tills, long_poll)  # as `up` resolves it (D117)
    clock = RealClock()
    cpu_start = _cpu_seconds()
    began = clock.monotonic()
    async with _bench_stack(
        "fleet",
        clock,
        profile=profile,
        tills=tills,
        points=points,
        till_settings={
            "poll_interval": poll_interval,
            "long_poll": long_poll,
        },
        mqtt=mqtt,
    ) as (stack, http, store):
        startup = clock.monotonic() - began
        cabinet = stack.ready().cabinet_api
        startup_cpu = _cpu_seconds() - cpu_start
        fds = _open_fds()

        # The drives' start-up documents (registration reports) go to the OFD once every till
        # has started (D119): the fleet is idle once they are sent and reported and the tills'
        # databases closed, not before.
        settle_began = clock.monotonic()
        while (
            unsettled := _unsettled(stack)
        ) and clock.monotonic() - settle_began < SETTLE_TIMEOUT:
            await clock.pace(0.1)
        settle = clock.monotonic() - settle_began
        settle_cpu = _cpu_seconds() - cpu_start - startup_cpu
        fds = max(fds or 0, _open_fds() or 0) or None

        idle_cpu = _cpu_seconds()
        await clock.pace(idle_seconds)
        idle_cpu = _cpu_seconds() - idle_cpu
        # After the idle period the databases and OFD connections idle tills close are closed.
        idle_fds = _open_fds()
        peak_fds = max(fds or 0, idle_fds or 0)

        limit = asyncio.Semaphore(20)
        pending: dict[str, tuple[str, str]] = {}

        async def post(point: PointAccess, n: int) -> None:
            auth = (point["login"], point["password"])
            doc = sale_document(10.0 + n)
            async with limit:
                (await http.post(f"{store}/v2/doc", json=doc, auth=auth)).raise_for_status()
            pending[doc["id"]] = auth

        run_cpu = _cpu_seconds()
        run_began = clock.monotonic()
        await asyncio.gather(*(post(p, n) for p in stack.points for n in range(docs_per_point)))
        posted = len(pending)
        statuses: dict[str, int] = {}

        async def check(doc_id: str, auth: tuple[str, str]) -> None:
            async with limit:
                answer = await http.get(f"{store}/v1/doc/{doc_id}/status", auth=auth)
            status = answer.raise_for_status().json()["status"]
            statuses[status] = statuses.get(status, 0) + 1

        # One cabinet request a round asks whether the last posted document is final: a
        # status read of every pending document every round cost the loop as much as the
        # documents themselves, so the figure measured the observer too.
        final = f"status=COMPLETED&status=FAILED&limit=1&offset={posted - 1}"
        deadline = clock.monotonic() + timeout
        while not (await http.get(f"{cabinet}/documents?{final}")).raise_for_status().json():
            if clock.monotonic() > deadline:
                raise TimeoutError(f"not every one of {posted} documents is final yet")
            peak_fds = max(peak_fds, _open_fds() or 0)
            await clock.pace(0.05)
        elapsed = clock.monotonic() - run_began
        await asyncio.gather(*(check(d, a) for d, a in list(pending.items())))
        run_cpu = _cpu_seconds() - run_cpu
        broker_pid = stack.control.broker.pid if stack.control and stack.control.broker else None
        broker_rss = _rss_mib(broker_pid)
        stop_began = clock.monotonic()
    stopped = clock.monotonic() - stop_began
    return {
        "benchmark": "fleet",
        "tills": tills,
        "points": points,
        "documents": posted,
        "statuses": statuses,
        "mqtt": mqtt is not None,
        "poll_interval": poll_interval,
        "long_poll": long_poll,
        "startup_seconds": round(startup, 2),
        "startup_cpu_seconds": round(startup_cpu, 2),
        "settle_seconds": round(settle, 2),
        "unsettled_tills": unsettled,
        "settle_cpu_seconds": round(settle_cpu, 2),
        "idle_cpu_percent": round(100 * idle_cpu / idle_seconds, 1),
        "open_fds": fds,
        "idle_open_fds": idle_fds,
        "idle_fds_per_till": None if idle_fds is None else round(idle_fds / tills, 2),
        "peak_open_fds": peak_fds or None,
        "all_completed": statuses == {"COMPLETED": posted},
        "seconds": round(elapsed, 2),
        "receipts_per_second": round(posted / elapsed, 1),
        "run_cpu_seconds": round(run_cpu, 2),
        "stop_seconds": round(stopped, 2),
        "cpu_seconds": round(_cpu_seconds(), 2),
        "peak_rss_mib": _peak_rss_mib(),
        "broker_rss_mib": broker_rss,
    }


def _rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None
