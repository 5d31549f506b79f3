"""A running installation for tests: :class:`StackHarness` wraps :class:`~kkt_emulator.app.stack.Stack`.

Everything is real — the cloud on a loopback port, the OFD stand-in, tills with their drives —
and the harness adds what a test needs: post a document, wait for a status, read the cabinet,
move the manual clock::

    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale()
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"], "COMPLETED")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from kkt_emulator.app.stack import Stack, StackOptions, sale_document
from kkt_emulator.clock import Clock, ManualClock, parse_duration
from kkt_emulator.errors import CloudError
from kkt_emulator.net import client_tls
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.till import Till

__all__ = ["StackHarness", "http_client", "sale_document", "settle"]

FINAL = ("COMPLETED", "FAILED")


def http_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` (the arguments are its own) that shares one TLS context."""
    return httpx.AsyncClient(verify=client_tls(), **kwargs)


class StackHarness:
    """Test access to a running :class:`Stack`."""

    def __init__(self, stack: Stack, clock: Clock) -> None:
        self.stack = stack
        self.clock = clock
        ready = stack.ready()
        self.info = ready.to_json()
        self.store_url = ready.store_api
        self.cabinet_url = ready.cabinet_api
        self.retail_point_id = ready.point["retail_point_id"]
        self.login = ready.point["login"]
        self.password = ready.point["password"]
        self.http = http_client(timeout=30.0)

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        state_dir: Path,
        *,
        profile: str = DEFAULT_PROFILE,
        tills: int = 1,
        points: int = 1,
        clock: Clock | None = None,
        poll_interval: float = 0.05,
        drive_timeout: float = 5.0,
        **till_settings: Any,
    ) -> AsyncIterator[StackHarness]:
        """Start an installation in ``state_dir`` (manual clock by default) and stop it after."""
        clock = clock or ManualClock(datetime.now(UTC).replace(microsecond=0))
        options = StackOptions(
            profile=load_profile(profile),
            state_dir=state_dir,
            tills=tills,
            points=points,
            till_settings={"poll_interval": poll_interval, **till_settings},
            drive_timeout=drive_timeout,
        )
        async with Stack(options, clock) as stack:
            harness = cls(stack, clock)
            try:
                yield harness
            finally:
                await harness.http.aclose()
                await settle(stack)

    @property
    def till(self) -> Till:
        """The first till."""
        return self.stack.tills[0]

    def sale(self, total: float = 45.5, **kwargs: Any) -> dict[str, Any]:
        """A valid sale document (see :func:`sale_document`)."""
        return sale_document(total, **kwargs)

    async def post_document(
        self, doc: dict[str, Any], auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """POST /v2/doc; returns the DocumentStatus (raises CloudError on 4xx/5xx)."""
        response = await self.http.post(
            f"{self.store_url}/v2/doc", json=doc, auth=auth or (self.login, self.password)
        )
        return _store_answer(response)

    async def status(self, doc_id: str) -> dict[str, Any]:
        """GET /v1/doc/{id}/status."""
        response = await self.http.get(
            f"{self.store_url}/v1/doc/{doc_id}/status", auth=(self.login, self.password)
        )
        return _store_answer(response)

    async def wait_for_status(
        self,
        doc_id: str,
        *statuses: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - the fixture API names it timeout, like asyncio.wait_for
    ) -> dict[str, Any]:
        """Poll the document until its status is one of ``statuses`` (default: a final one).

        Raises:
            TimeoutError: not reached within ``timeout`` seconds of real time, with the last status.
        """
        wanted = statuses or FINAL
        deadline = self.clock.monotonic() + timeout
        while True:
            status = await self.status(doc_id)
            if status["status"] in wanted:
                return status
            if self.clock.monotonic() > deadline:
                raise TimeoutError(
                    f"document {doc_id} is {status['status']}, not {'/'.join(wanted)}: {status}"
                )
            await self.clock.pace(0.02)

    async def cabinet(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the cabinet API; returns the JSON answer."""
        response = await self.http.request(method, f"{self.cabinet_url}{path}", **kwargs)
        if response.status_code >= 400:
            raise CloudError(response.status_code, response.text)
        return response.json() if response.content else None

    async def document_detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's document detail: history, OFD delivery, error detail."""
        detail: dict[str, Any] = await self.cabinet(
            "GET", f"/retail-points/{self.retail_point_id}/documents/{doc_id}"
        )
        return detail

    async def advance(self, delta: timedelta | str) -> datetime:
        """Move the shared manual clock (business time) forward."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance needs the manual clock")
        step = parse_duration(delta) if isinstance(delta, str) else delta
        return await self.clock.advance(step)


async def settle(stack: Stack, within_s: float = 1.0) -> bool:
    """Wake every till and wait (real time, at most ``within_s``) until none has work in hand.

    Called before an installation stops. A till in the middle of an OFD exchange when it is
    stopped may miss the cancellation (Python 3.11's ``asyncio.wait_for`` swallows one that
    arrives as the awaited read completes) and then sleeps out its OFD idle check, five seconds,
    before it sees it should stop. A till with no document in hand, nothing in its outbox and
    nothing for the OFD stops at once. Tills under a fault or not polling are not waited for:
    their loops sit on timers, which stop cleanly. Returns whether everything settled.
    """
    for till in stack.tills:
        till.ctx.wake_all()
    deadline = stack.clock.monotonic() + within_s
    while not await _settled(stack):
        if stack.clock.monotonic() > deadline:
            return False
        await stack.clock.pace(0.005)
    return True


async def _settled(stack: Stack) -> bool:
    ofd_faults = stack.ofd is not None and bool(stack.ofd.active_faults())
    for till in stack.tills:
        if till.store is None:
            continue
        state = await till.snapshot_state()
        if state["faults"] or not state["polling"]:
            continue
        queue = state["queue"]
        if queue["inFlight"] or queue["outbox"]:
            return False
        if state["ofdBacklog"]["unsent"] and not ofd_faults:
            return False
    return True


def _store_answer(response: httpx.Response) -> dict[str, Any]:
    """The store API's JSON answer; its error body's ``message`` in a CloudError for 4xx/5xx."""
    if response.status_code >= httpx.codes.BAD_REQUEST:
        raise CloudError(response.status_code, response.json().get("message", ""))
    data: dict[str, Any] = response.json()
    return data
