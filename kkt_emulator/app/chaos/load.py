"""The steady load: store-API documents at a fixed rate, each retried with its id until answered.

A document whose POST failed on the connection (refused, reset, cut by the proxy, timed out) is
posted again with the same id (the retail point replays duplicates, store-api.md §5), so a kill
between the cloud's commit and its answer must end in one document, answered 200 on a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from kkt_emulator.logging import get_logger

__all__ = ["Load", "LoadTally", "sale"]

log = get_logger(component="chaos")

RETRY_PAUSE = 0.2
RETRY_PAUSE_MAX = 2.0
IN_FLIGHT = 16
"""Requests open at once: a restarted cloud checks every new connection's password once, and
hundreds of retries arriving together would keep it busy for many seconds (a shop's client
pool is bounded the same way)."""
REQUEST_TIMEOUT = 10.0

_SALE: dict[str, Any] = {
    "docNum": "CHAOS",
    "docType": "SALE",
    "checkoutDateTime": "2026-01-01T12:00:00+03:00",
    "email": "buyer@example.com",
    "taxMode": "COMMON",
    "inventPositions": [{"name": "Хлеб", "price": 45.5, "quantity": 1, "vatTag": 1105}],
    "moneyPositions": [{"paymentType": "CARD", "sum": 45.5}],
}


def sale(doc_id: str, n: int) -> dict[str, Any]:
    """Sale number ``n``: one position paid by card, a total that varies with ``n``."""
    doc = copy.deepcopy(_SALE)
    total = 10.0 + n % 100
    doc["id"] = doc_id
    doc["docNum"] = f"CHAOS-{n}"
    doc["inventPositions"][0]["price"] = total
    doc["moneyPositions"][0]["sum"] = total
    return doc


@dataclass(slots=True)
class LoadTally:
    """What the store API answered, per document id."""

    posted: list[str] = field(default_factory=list)
    answered_200: set[str] = field(default_factory=set)
    answered_other: dict[str, str] = field(default_factory=dict)
    never_answered: set[str] = field(default_factory=set)
    retries: int = 0

    def other_by_status(self) -> dict[str, int]:
        """How many documents got each non-200 answer (``"409: …"``)."""
        return dict(Counter(self.answered_other.values()))


class Load:
    """Posts documents to ``store_url`` (``…/api/fn``) at ``rate`` per second until :meth:`stop`.

    Args:
        store_url: the store API base, through the proxy.
        auth: association credentials (login, password).
        rate: documents per second.
        prefix: the id prefix; ids are ``{prefix}-{n}``.
        give_up_after: seconds after :meth:`stop` during which unanswered documents keep retrying.
    """

    def __init__(
        self,
        store_url: str,
        auth: tuple[str, str],
        rate: float,
        prefix: str,
        give_up_after: float,
    ) -> None:
        self.store_url = store_url
        self.auth = auth
        self.rate = rate
        self.prefix = prefix
        self.give_up_after = give_up_after
        self.tally = LoadTally()
        self._stopping = asyncio.Event()
        self._give_up = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def run(self) -> None:
        """Post until :meth:`stop`; then wait for the documents in flight (bounded)."""
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT, limits=limits, auth=self.auth
        ) as http:
            began = loop.time()
            n = 0
            while not self._stopping.is_set():
                n += 1
                task = asyncio.create_task(self._post(http, n))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                due = began + n / self.rate
                delay = due - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):  # the next document is due
                        await asyncio.wait_for(self._stopping.wait(), delay)
            if self._tasks:
                _, late = await asyncio.wait(list(self._tasks), timeout=self.give_up_after)
                self._give_up.set()
                if late:
                    await asyncio.wait(late)

    def stop(self) -> None:
        """Post no more documents."""
        self._stopping.set()

    async def _post(self, http: httpx.AsyncClient, n: int) -> None:
        doc_id = f"{self.prefix}-{n}"
        self.tally.posted.append(doc_id)
        body = sale(doc_id, n)
        pause = RETRY_PAUSE
        while True:
            try:
                async with self._in_flight:
                    answer = await http.post(f"{self.store_url}/v2/doc", json=body)
            except httpx.TransportError:  # refused, reset, cut by the proxy, timed out
                if self._give_up.is_set():
                    self.tally.never_answered.add(doc_id)
                    return
                self.tally.retries += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_PAUSE_MAX)
                continue
            if answer.status_code == httpx.codes.OK:
                self.tally.answered_200.add(doc_id)
            else:
                self.tally.answered_other[doc_id] = f"{answer.status_code}: {answer.text[:200]}"
                log.warning("chaos_store_api_refused", doc_id=doc_id, status=answer.status_code)
            return
