"""Shared pieces of the support-case scenarios: a shop's callback site, waits with timeouts.

Every scenario runs the real pieces through :class:`~kkt_emulator.testing.stack.StackHarness`;
these helpers only add what several scenarios look at the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from kkt_emulator.clock import RealClock
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.net import listen_socket
from kkt_emulator.testing.stack import StackHarness

FN = "Сообщение ФН об ошибке: "


@dataclass
class ShopSite:
    """A shop's ``responseURL`` endpoint: records every callback, answers ``status_code``."""

    url: str = ""
    status_code: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def shop_site(status_code: int = 200) -> AsyncIterator[ShopSite]:
    """Serve a :class:`ShopSite` on a loopback port for the duration of the block."""
    site = ShopSite(status_code=status_code)
    app = FastAPI()

    @app.api_route("/callback", methods=["GET", "POST"])
    async def callback(request: Request) -> Response:
        site.received.append({"method": request.method, "query": dict(request.query_params)})
        return Response(status_code=site.status_code)

    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await RealClock().pace(0.01)
        site.url = f"http://127.0.0.1:{sock.getsockname()[1]}/callback"
        yield site
    finally:
        server.should_exit = True
        await task
        sock.close()


async def until(
    kkt: StackHarness, predicate: Callable[[], Awaitable[bool]], seconds: float = 10.0
) -> None:
    """Wait (real time, paced) until ``predicate`` holds; fail the test after ``seconds``."""
    deadline = kkt.clock.monotonic() + seconds
    while not await predicate():
        assert kkt.clock.monotonic() < deadline, "condition not reached in time"
        await kkt.clock.pace(0.05)


async def ofd_state(kkt: StackHarness, doc_id: str) -> str:
    """The cabinet's OFD delivery state of a document (not sent / sent / acknowledged)."""
    detail = await kkt.document_detail(doc_id)
    state: str = detail["ofd"]["state"]
    return state


async def fail_with(kkt: StackHarness, doc: dict[str, Any]) -> dict[str, Any]:
    """Post ``doc`` and return its FAILED status (the store API's DocumentStatus)."""
    await kkt.post_document(doc)
    return await kkt.wait_for_status(doc["id"], "FAILED")


def drive_receipts(kkt: StackHarness) -> list[int]:
    """Fiscal document numbers of every receipt in the first till's drive archive."""
    drive = kkt.till.drive
    assert drive is not None
    return [
        fd
        for fd in range(1, drive.state.last_fd + 1)
        if (doc := drive.store.get_document(fd)) is not None and doc.doc_code == DocCode.RECEIPT
    ]


def history_statuses(detail: dict[str, Any]) -> list[str]:
    """The statuses a document went through, in order, without repeats."""
    seen: list[str] = []
    for entry in detail["history"]:
        if not seen or seen[-1] != entry["status"]:
            seen.append(entry["status"])
    return seen
