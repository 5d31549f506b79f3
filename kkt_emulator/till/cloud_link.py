"""``CloudLink``: the only module that speaks the till-facing HTTP API (``till-protocol.md`` §1).

Every call is idempotent on the server, so after a timeout the till simply repeats it. Timeouts and
back-off are pacing (real time); nothing here touches business time. Foreign errors become
:class:`~kkt_emulator.errors.CloudError` (an HTTP answer) or
:class:`~kkt_emulator.errors.TransportError` (no answer), once, here.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx

from kkt_emulator.errors import CloudError, TransportError
from kkt_emulator.till.lean_http import LeanHttp, LeanHttpError

__all__ = ["Binding", "CloudLink", "Heartbeat", "Lease", "ResultAck"]

API = "/api/device/v1"


def _text(answer: Mapping[str, Any], key: str, path: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise CloudError(502, f"{path}: the answer has no {key}")
    return value


@dataclass(frozen=True, slots=True)
class Binding:
    """``/bind``: the till's bearer token and its device id at a retail point."""

    token: str
    device_id: str
    retail_point_id: str | None
    heartbeat: Heartbeat | None = None
    """The answer to the heartbeat the bind carried (D134); ``None`` from a cloud that ignored it."""

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> Binding:
        """From the JSON answer.

        Raises:
            CloudError: the answer lacks the token or the device id.
        """
        point = answer.get("retailPointId")
        beat = answer.get("heartbeat")
        return cls(
            token=_text(answer, "token", "/bind"),
            device_id=_text(answer, "deviceId", "/bind"),
            retail_point_id=str(point) if point is not None else None,
            heartbeat=Heartbeat.parse(beat) if isinstance(beat, Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``/heartbeat``: the server's time and the retail point's settings."""

    server_time: str | None
    settings: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, answer: Mapping[str, Any]) -> Heartbeat:
        """From the JSON answer (missing parts are empty)."""
        settings = answer.get("settings")
        server_time = answer.get("serverTime")
        return cls(
            server_time=str(server_time) if server_time is not None else None,
            settings=dict(settings) if isinstance(settings, Mapping) else {},
            raw=dict(answer),
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """One leased document (``/lease``): the shop's document and the lease that covers it."""

    doc_id: str
    lease_id: str | None
    document: dict[str, Any]

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> Lease:
        """From one entry of the answer's ``documents``.

        Raises:
            CloudError: the entry has no document id or no document.
        """
        document = item.get("document")
        if item.get("docId") is None or not isinstance(document, Mapping):
            raise CloudError(502, "/lease: an entry without docId or document")
        lease_id = item.get("leaseId")
        return cls(
            doc_id=str(item["docId"]),
            lease_id=str(lease_id) if lease_id is not None else None,
            document=dict(document),
        )

    def to_json(self) -> dict[str, Any]:
        """The entry as the journal and the fiscaliser take it."""
        return {"docId": self.doc_id, "leaseId": self.lease_id, "document": self.document}


@dataclass(frozen=True, slots=True)
class ResultAck:
    """The server's answer to one reported result (``/results``)."""

    doc_id: str
    outcome: str
    status: str | None

    @classmethod
    def parse(cls, item: Mapping[str, Any]) -> ResultAck:
        """From one entry of the answer's ``results``."""
        status = item.get("status")
        return cls(
            doc_id=str(item.get("docId", "")),
            outcome=str(item.get("outcome", "")),
            status=str(status) if status is not None else None,
        )


#: Seconds a kept connection to the cloud stays open unused: longer than the 5 s poll, so a polling
#: till keeps its one connection; an idle till of a fleet watch lets it go (D71).
IDLE_CLOSE = 15.0


class _Answer(Protocol):
    """What the link reads of an HTTP answer (httpx's or the lean client's)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class CloudLink:
    """A till's connection to the cloud.

    A plain ``http`` server is reached with the lean HTTP/1.1 client
    (:mod:`kkt_emulator.till.lean_http`); ``https``, or an httpx ``transport`` given (tests, a
    shared TLS context), goes through httpx.

    Args:
        server: the cloud's base URL (``http://127.0.0.1:8080``).
        timeout: seconds for one request (long polls add their wait).
        transport: an httpx transport to use instead of the network (tests, TLS).
    """

    def __init__(
        self, server: str, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None
        self.before_call: Callable[[], Awaitable[None]] | None = None
        self._resume = False
        self._split_outbox = False
        self._lean: LeanHttp | None = None
        self._client: httpx.AsyncClient | None = None
        if transport is None and self.server.startswith("http://"):
            self._lean = LeanHttp(self.server + API, idle_close=IDLE_CLOSE)
        else:
            self._client = httpx.AsyncClient(
                base_url=self.server, timeout=timeout, transport=transport
            )

    @property
    def plain_http(self) -> bool:
        """Whether the link speaks plain HTTP itself (the lean client), not through httpx."""
        return self._lean is not None

    @property
    def holds_connection(self) -> bool:
        """Whether the lean client keeps a connection to the cloud open now (D71)."""
        return self._lean is not None and self._lean.kept > 0

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._lean is not None:
            await self._lean.aclose()
        if self._client is not None:
            await self._client.aclose()

    async def _call(
        self,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: tuple[str, str] | None = None,
        extra_timeout: float = 0.0,
        method: str = "POST",
    ) -> _Answer:
        if self.before_call is not None:
            await self.before_call()
        headers: dict[str, str] = {}
        if auth is None:
            if self.token is None:
                raise CloudError(401, "the till is not bound to a retail point")
            headers["Authorization"] = f"Bearer {self.token}"
        else:
            basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {basic}"
        timeout = self.timeout + extra_timeout
        response: _Answer
        try:
            if self._lean is not None:
                query = f"?{urlencode(params)}" if params else ""
                response = await self._lean.post(
                    path + query, body=json, headers=headers, timeout=timeout, method=method
                )
            else:
                assert self._client is not None
                response = await self._client.request(
                    method, API + path, json=json, params=params, headers=headers, timeout=timeout
                )
        except (httpx.HTTPError, LeanHttpError) as exc:
            raise TransportError(
                f"cloud {self.server} unreachable: {exc.__class__.__name__}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = response.text[:200]
            raise CloudError(response.status_code, message)
        return response

    async def bind(
        self,
        login: str,
        password: str,
        *,
        till_serial: str,
        fn_serial: str,
        model: str,
        profile: str,
        retail_point_id: str | None,
        heartbeat: dict[str, Any] | None = None,
    ) -> Binding:
        """Bind to a retail point with its service credentials; keeps the bearer token.

        ``heartbeat``: the till's first heartbeat, carried by the bind (D134).

        Raises:
            CloudError: an HTTP error, or an answer without a token or device id.
            TransportError: no answer.
        """
        body: dict[str, Any] = {
            "tillSerial": till_serial,
            "fnSerial": fn_serial,
            "model": model,
            "firmwareProfile": profile,
            "retailPointId": retail_point_id,
        }
        if heartbeat is not None:
            body["heartbeat"] = heartbeat
        binding = Binding.parse(
            (await self._call("/bind", json=body, auth=(login, password))).json()
        )
        self.token = binding.token
        return binding

    async def heartbeat(self, state: dict[str, Any]) -> Heartbeat:
        """Report the till's state; returns server time and the retail point's settings."""
        return Heartbeat.parse((await self._call("/heartbeat", json=state)).json())

    def resume_leases(self) -> None:
        """Ask the next lease for what the cloud still holds leased to this till, too.

        Called when the till starts (and restarts after a crash): documents the cloud leased to
        it that it never journalled (the answer was lost with the process) come back to it, and
        to no other till (``till-protocol.md`` §1).
        """
        self._resume = True

    async def lease(self, max_docs: int = 1, wait: float = 0.0) -> list[Lease]:
        """Take up to ``max_docs`` documents; long-polls up to ``wait`` seconds (204 → none)."""
        params: dict[str, Any] = {"max": max_docs, "wait": wait}
        if self._resume:
            params["resume"] = 1
        response = await self._call("/lease", params=params, extra_timeout=wait)
        self._resume = False
        if response.status_code == 204 or not response.content:
            return []
        documents: list[dict[str, Any]] = response.json().get("documents", [])
        return [Lease.parse(item) for item in documents]

    async def results(self, items: list[dict[str, Any]]) -> list[ResultAck]:
        """Report outcomes; the server answers one entry per item."""
        answer: list[dict[str, Any]] = (
            await self._call("/results", json={"results": items})
        ).json()["results"]
        return [ResultAck.parse(item) for item in answer]

    async def outbox(
        self, results: list[dict[str, Any]], acks: list[dict[str, Any]]
    ) -> list[ResultAck]:
        """Report outcomes and OFD deliveries in one exchange (``/outbox``, store-api.md D63).

        The cloud applies the results first, so an acknowledgement may travel with the result of
        its own document. A cloud without ``/outbox`` (404) gets the two older calls instead,
        from then on.
        """
        if not self._split_outbox:
            try:
                answer: dict[str, Any] = (
                    await self._call("/outbox", json={"results": results, "acks": acks})
                ).json()
            except CloudError as exc:
                if exc.status != 404:
                    raise
                self._split_outbox = True
            else:
                return [ResultAck.parse(item) for item in answer.get("results", [])]
        answers = await self.results(results) if results else []
        if acks:
            await self.ofd_acks(acks)
        return answers

    async def catalog(self, since: int) -> dict[str, Any]:
        """``GET /catalog?since=REV``: the retail point's catalogue changed after ``since`` (B16).

        Raises:
            CloudError: an HTTP error, or an answer without a revision.
            TransportError: no answer.
        """
        answer = (await self._call("/catalog", params={"since": since}, method="GET")).json()
        if not isinstance(answer, dict) or not isinstance(answer.get("revision"), int):
            raise CloudError(502, "/catalog: the answer has no revision")
        return answer

    async def cashdocs(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upload cash documents in FIFO order (``/cashdocs``, ``orders-and-backoffice.md`` B9).

        Idempotent per document id: the answer lists ``stored`` or ``duplicate`` for each.
        """
        answer: dict[str, Any] = (
            await self._call("/cashdocs", json={"documents": documents})
        ).json()
        results: list[dict[str, Any]] = answer.get("results", [])
        return results

    async def ofd_acks(self, acks: list[dict[str, Any]]) -> dict[str, Any]:
        """Report OFD deliveries by fiscal document number."""
        answer: dict[str, Any] = (await self._call("/ofd-acks", json={"acks": acks})).json()
        return answer

    # -- orders (orders-and-backoffice.md O7, O14) ----------------------------------------------------

    async def orders(self, since: int, wait: float = 0.0) -> dict[str, Any]:
        """``GET /orders``: the point's orders changed after revision ``since`` (long-polls)."""
        params: dict[str, Any] = {"since": since, "wait": wait}
        response = await self._call("/orders", params=params, extra_timeout=wait, method="GET")
        answer: dict[str, Any] = response.json()
        return answer

    async def claim_order(self, order_id: str) -> dict[str, Any]:
        """``POST /orders/{id}/claim``: this till takes the order (409: another till has it)."""
        answer: dict[str, Any] = (await self._call(f"/orders/{quote(order_id)}/claim")).json()
        return answer

    async def release_order(self, order_id: str) -> dict[str, Any]:
        """``POST /orders/{id}/release``: give a claimed order back to the point's tills."""
        answer: dict[str, Any] = (await self._call(f"/orders/{quote(order_id)}/release")).json()
        return answer
