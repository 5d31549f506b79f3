"""The cloud benchmark: document posts and status reads per second over real HTTP.

:func:`bench_cloud` starts a cloud on a free loopback port (uvicorn, a throwaway database), posts
documents and reads their status with a few concurrent clients, and measures the plain
``GET /v1/status`` of the same server for comparison. With ``in_process`` the requests go
through ``httpx.ASGITransport`` instead of a socket, which measures the application alone. Wall
time is pacing time (the clock's monotonic seconds); business time does not move.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.net import listen_socket

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["bench_cloud"]


def _document(index: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "docNum": f"BENCH-{index}",
        "docType": "SALE",
        "checkoutDateTime": "2024-05-01T12:00:00+03:00",
        "email": "buyer@example.com",
        "inventPositions": [{"name": "Товар", "price": 100, "quantity": 1, "vatTag": 1105}],
        "moneyPositions": [{"paymentType": "CARD", "sum": 100}],
    }


async def _rate(
    clock: ManualClock, count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for index in queue:
            await call(index)

    started = clock.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = max(clock.monotonic() - started, 1e-9)
    return round(count / elapsed, 1)


async def _run(
    documents: int, reads: int, concurrency: int, db: Path, *, in_process: bool
) -> dict[str, Any]:
    clock = ManualClock()
    cloud = Cloud(db, clock, CloudSettings())
    if in_process:
        async with cloud:
            transport = httpx.ASGITransport(app=cloud.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
                rates = await _measure(http, clock, documents, reads, concurrency)
        return {"transport": "asgi", **rates}
    sock = listen_socket("127.0.0.1", 0, backlog=1024)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(cloud.app, lifespan="on", log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(3000):
            if server.started:
                break
            await clock.pace(0.01)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
            rates = await _measure(http, clock, documents, reads, concurrency)
    finally:
        server.should_exit = True
        await serving
        sock.close()
    return {"transport": "http", **rates}


async def _measure(
    http: httpx.AsyncClient, clock: ManualClock, documents: int, reads: int, concurrency: int
) -> dict[str, Any]:
    point = (await http.post("/api/cabinet/v1/retail-points", json={"name": "B"})).json()
    creds = (await http.post(f"/api/cabinet/v1/retail-points/{point['id']}/credentials")).json()
    assoc = (
        await http.post(
            f"/api/fn/v1/associate/{point['id']}", auth=(creds["login"], creds["password"])
        )
    ).json()
    auth = (assoc["userName"], assoc["password"])
    docs = [_document(n) for n in range(documents)]

    async def post(index: int) -> None:
        response = await http.post("/api/fn/v2/doc", json=docs[index], auth=auth)
        response.raise_for_status()

    async def read(index: int) -> None:
        doc_id = docs[index % documents]["id"]
        response = await http.get(f"/api/fn/v1/doc/{doc_id}/status", auth=auth)
        response.raise_for_status()

    async def status(_: int) -> None:
        response = await http.get("/api/fn/v1/status", auth=auth)
        response.raise_for_status()

    posts = await _rate(clock, documents, concurrency, post)
    status_reads = await _rate(clock, reads, concurrency, read)
    plain = await _rate(clock, reads, concurrency, status)
    return {
        "benchmark": "cloud",
        "concurrency": concurrency,
        "documents": documents,
        "reads": reads,
        "document_posts_per_second": posts,
        "document_status_reads_per_second": status_reads,
        "service_status_per_second": plain,
    }


def bench_cloud(
    documents: int = 500, reads: int = 1000, concurrency: int = 8, *, in_process: bool = False
) -> dict[str, Any]:
    """Run the cloud benchmark and return its JSON-ready result."""
    with tempfile.TemporaryDirectory(prefix="kkt-cloud-bench-") as tmp:
        db = Path(tmp) / "cloud.db"
        return asyncio.run(_run(documents, reads, concurrency, db, in_process=in_process))
