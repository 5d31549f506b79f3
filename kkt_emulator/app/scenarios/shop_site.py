"""A shop's ``responseURL`` site for the cases that watch callbacks (store-api.md, D44).

It runs on a loopback port of the machine the scenario runs on, so the cloud of a local
installation (``kkt-emulator up``) and of an in-process one both reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from kkt_emulator.clock import RealClock
from kkt_emulator.net import listen_socket

__all__ = ["ShopSite", "shop_site"]


@dataclass(slots=True)
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
