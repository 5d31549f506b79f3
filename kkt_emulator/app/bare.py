"""The reference of ``kkt-emulator bench``: a bare FastAPI endpoint with nothing of the emulator.

``bench`` serves it with ``python -m uvicorn kkt_emulator.app.bare:app`` in a process of its own
(uvicorn binds the socket itself) and loads it the way it loads the cloud's ``GET /api/fn/v1/status``,
so the two rates differ only by what the emulator adds to the same server stack.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["app"]

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/status")
async def status() -> dict[str, str]:
    """A small JSON answer, about the size of the cloud's status."""
    return {"status": "READY"}
