"""The cloud on a real loopback port under uvicorn, with a real shop callback server."""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn
from cloud_helpers import FakeTill, doc_status, make_point, minimal_doc, post_doc

from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.net import listen_socket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from starlette.types import Receive, Scope, Send

    from kkt_emulator.clock import ManualClock


def free_socket() -> socket.socket:
    return listen_socket("127.0.0.1", 0, backlog=128)


@asynccontextmanager
async def serving(app: Any, clock: ManualClock) -> AsyncIterator[str]:
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(3000):
        if server.started:
            break
        await clock.pace(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Shop:
    """A tiny ASGI shop that records callback query strings and answers 200."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.queries.append(scope["query_string"].decode())
        self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"OK"})


async def test_full_lifecycle_over_real_http(db_path: Path, clock: ManualClock) -> None:
    shop = Shop()
    cloud = Cloud(db_path, clock, CloudSettings(password_iterations=1000))
    async with (
        serving(shop, clock) as shop_url,
        serving(cloud.app, clock) as cloud_url,
        httpx.AsyncClient(base_url=cloud_url) as http,
    ):
        point = await make_point(http)
        till = await FakeTill(http, point).bind()
        await till.heartbeat()
        status = await http.get("/fn/v1/status", auth=point.assoc)
        assert status.json()["status"] == "READY"
        doc = minimal_doc(responseURL=f"{shop_url}/cb?token=abc")
        queued = await post_doc(http, point, doc)
        assert queued.json()["status"] == "QUEUED"
        leased = await till.lease(wait=5)
        info = till.fiscal_info()
        await till.succeed(leased[0], info)
        await asyncio.wait_for(shop.arrived.wait(), timeout=10)
        assert shop.queries[0].startswith("token=abc&status=SUCCESS&qr=t%3D20190904T141400")
        for _ in range(100):
            if (await doc_status(http, point, doc["id"]))["status"] == "COMPLETED":
                break
            await clock.pace(0.01)
        final = await doc_status(http, point, doc["id"])
        assert final["status"] == "COMPLETED"
        assert final["message"] == "Document successfully completed with callback"
        too_big = await http.post(
            "/api/fn/v2/doc", auth=point.assoc, content=b"x" * (1024 * 1024 + 1)
        )
        assert too_big.status_code == 413
    assert not cloud.running
