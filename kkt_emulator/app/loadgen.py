"""The load generator of ``kkt-emulator bench``: a process of its own, raw keep-alive HTTP/1.1.

``python -m kkt_emulator.app.loadgen get URL ...`` hammers one URL (the fall-back when ``wrk`` is
not installed); ``python -m kkt_emulator.app.loadgen e2e STORE_API ...`` posts sales and waits
for their ``responseURL`` callbacks. It runs in its own process so it never shares the event loop
(or the CPU accounting) of what it measures, and it speaks HTTP over bare asyncio streams with
prebuilt requests, because a full client (httpx) costs more per request than the servers under
test and would measure itself.

The ``e2e`` protocol with the parent, one line each on stdout: ``{"event": "ready"}`` once the
callback server listens and every request is built; then it waits for one line on stdin ("go");
``{"event": "completed"}`` (or ``"timeout"``) when the last callback has come; then the result
document after every status was read back with ``GET /v1/doc/{id}/status``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kkt_emulator.clock import RealClock
from kkt_emulator.net import host_port, listen_socket

__all__ = ["Connection", "Target", "main"]

_CLOCK = RealClock()
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: host, port and the path prefix of an ``http://`` URL."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """Split ``http://host:port/path``; ``ValueError`` for anything else."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r}: only http://host:port/... URLs are supported")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))

    def request(
        self, method: str, path: str, auth: str | None = None, body: bytes | None = None
    ) -> bytes:
        """The bytes of one keep-alive request."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host_port(self.host, self.port)}"]
        if auth is not None:
            lines.append(f"Authorization: Basic {auth}")
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def basic_auth(login: str, password: str) -> str:
    """The credentials of an ``Authorization: Basic`` header."""
    return base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


class Connection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
        return self._reader, self._writer

    def close(self) -> None:
        """Drop the socket (the next request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` and read the answer: (status code, body).

        Raises:
            OSError: the connection failed (it is closed; the next call reconnects).
            asyncio.IncompleteReadError: the server closed it mid-answer (likewise).
        """
        reader, writer = await self._open()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length: int | None = None
            chunked = close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                key = name.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif key == b"connection":
                    close = value.strip().lower() == b"close"
            if chunked:
                body = await _read_chunked(reader)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read()
                close = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise
        if close:
            self.close()
        return status, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _fail(message: str) -> None:
    sys.stderr.write(f"loadgen: {message}\n")


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------- get


async def run_get(url: str, auth: str | None, connections: int, seconds: float) -> dict[str, Any]:
    """Keep ``connections`` connections busy with ``GET url`` for ``seconds``; requests/s."""
    target = Target.parse(url)
    raw = target.request("GET", target.path or "/", auth)
    done = errors = non_2xx = 0
    deadline = _CLOCK.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, errors, non_2xx
        conn = Connection(target)
        try:
            while _CLOCK.monotonic() < deadline:
                try:
                    status, _ = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    await _CLOCK.pace(0.01)
                    continue
                done += 1
                if not 200 <= status < 300:
                    non_2xx += 1
        finally:
            conn.close()

    began = _CLOCK.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = _CLOCK.monotonic() - began
    return {
        "requests": done,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(done / elapsed, 1),
        "errors": errors,
        "non_2xx": non_2xx,
    }


# ---------------------------------------------------------------------------- e2e


@dataclass(slots=True)
class _Run:
    total: int
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    callback_statuses: dict[str, int] = field(default_factory=dict)
    post_errors: int = 0
    first_error: str | None = None
    last_answer: float = 0.0
    all_done: asyncio.Event = field(default_factory=asyncio.Event)
    callers: set[asyncio.StreamWriter] = field(default_factory=set)

    def error(self, text: str, *, post: bool = True) -> None:
        if self.first_error is None:
            self.first_error = text[:300]
        if not post:
            return
        self.post_errors += 1
        if len(self.finished) + self.post_errors >= self.total:
            self.all_done.set()

    def done(self, doc_id: str, status: str) -> None:
        if doc_id in self.started and doc_id not in self.finished:
            self.finished[doc_id] = _CLOCK.monotonic()
            self.callback_statuses[status] = self.callback_statuses.get(status, 0) + 1
            if len(self.finished) + self.post_errors >= self.total:
                self.all_done.set()


async def _callback_server(run: _Run) -> tuple[asyncio.Server, str]:
    """A minimal keep-alive HTTP server for the cloud's ``responseURL`` calls (GET or POST)."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        run.callers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, rest = head.partition(b"\r\n")
                length = 0
                close = False
                for line in rest.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"connection":
                        close = value.strip().lower() == b"close"
                if length:
                    await reader.readexactly(length)
                query = parse_qs(urlsplit(request_line.split(b" ")[1].decode("latin-1")).query)
                run.done(query.get("doc", [""])[0], query.get("status", ["?"])[0])
                writer.write(answer)
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the cloud closed its keep-alive connection
        except (asyncio.LimitOverrunError, ValueError, IndexError) as exc:
            run.error(f"bad callback request: {exc}", post=False)
        finally:
            run.callers.discard(writer)
            writer.close()

    sock = listen_socket("127.0.0.1", 0)
    server = await asyncio.start_server(handle, sock=sock)
    return server, f"http://{host_port('127.0.0.1', sock.getsockname()[1])}/cb"


def _documents(count: int, callback: str) -> list[dict[str, Any]]:
    from kkt_emulator.app.stack import sale_document  # noqa: PLC0415 - it imports the world

    docs = []
    for n in range(count):
        doc = sale_document(10.0 + n % 100)
        doc["responseURL"] = f"{callback}?doc={doc['id']}"
        docs.append(doc)
    return docs


_FINAL = ("COMPLETED", "FAILED")


async def _read_statuses(
    pool: asyncio.Queue[Connection],
    target: Target,
    auth: str,
    ids: Sequence[str],
    statuses: dict[str, str],
) -> None:
    """``GET /v1/doc/{id}/status`` of every id into ``statuses``, over the pool's connections."""
    queue = iter(ids)

    async def reader() -> None:
        conn = await pool.get()
        try:
            for doc_id in queue:
                path = f"{target.path}/v1/doc/{doc_id}/status"
                try:
                    code, body = await conn.request(target.request("GET", path, auth))
                    status = json.loads(body)["status"] if code == 200 else f"HTTP {code}"
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
                    status = f"unreadable: {type(exc).__name__}"
                statuses[doc_id] = str(status)
        finally:
            pool.put_nowait(conn)

    await asyncio.gather(*(reader() for _ in range(pool.qsize())))


def _percentiles(latencies: Sequence[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)

    return {"p50": pct(0.50), "p99": pct(0.99), "max": round(ordered[-1] * 1000, 1)}


async def run_e2e(
    store_api: str,
    auth: str,
    docs: int,
    *,
    connections: int,
    rate: float | None,
    timeout: float,  # noqa: ASYNC109 - a budget for the whole run, not one call
) -> dict[str, Any]:
    """Post ``docs`` sales (as fast as ``connections`` allow, or at ``rate`` a second) and wait.

    Latency of a document: from just before its POST is written to its callback's arrival.
    """
    target = Target.parse(store_api)
    run = _Run(docs)
    server, callback = await _callback_server(run)
    requests = [
        (
            doc["id"],
            target.request(
                "POST",
                f"{target.path}/v2/doc",
                auth,
                json.dumps(doc, ensure_ascii=False).encode(),
            ),
        )
        for doc in _documents(docs, callback)
    ]
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(target))

    async def post(doc_id: str, raw: bytes) -> None:
        run.started[doc_id] = _CLOCK.monotonic()  # at a fixed rate, waiting for a connection counts
        conn = await pool.get()
        try:
            status, body = await conn.request(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            run.error(f"POST failed: {type(exc).__name__}: {exc}")
            return
        finally:
            pool.put_nowait(conn)
            run.last_answer = _CLOCK.monotonic()
        if not 200 <= status < 300:
            run.error(f"POST answered {status}: {body[:200].decode('utf-8', 'replace')}")

    _emit({"event": "ready"})
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    began = _CLOCK.monotonic()
    tasks: list[asyncio.Task[None]] = []
    if rate is None:

        async def worker() -> None:
            for doc_id, raw in queue:
                await post(doc_id, raw)

        queue = iter(requests)
        tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    else:
        for n, (doc_id, raw) in enumerate(requests):
            await _CLOCK.pace(began + n / rate - _CLOCK.monotonic())
            tasks.append(asyncio.create_task(post(doc_id, raw)))
    timed_out = False
    try:
        await asyncio.wait_for(run.all_done.wait(), timeout=timeout)
    except TimeoutError:
        timed_out = True
    last = max(run.finished.values(), default=_CLOCK.monotonic())
    _emit({"event": "timeout" if timed_out else "completed"})
    await asyncio.gather(*tasks)
    elapsed = max(last - began, 1e-9)

    # The cloud completes a document when our 200 reaches it, just after the callback arrived:
    # what is not COMPLETED yet is read again a few times before it counts.
    statuses: dict[str, str] = {}
    pending = list(run.started)
    for _ in range(20):
        await _read_statuses(pool, target, auth, pending, statuses)
        pending = [d for d in pending if statuses[d] not in _FINAL]
        if not pending:
            break
        await _CLOCK.pace(0.1)
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    while not pool.empty():
        pool.get_nowait().close()
    server.close()
    for writer in list(run.callers):  # the cloud's idle keep-alive connections
        writer.close()
    await _CLOCK.pace(0.01)  # lets each handler see its end of stream and return
    latencies = [run.finished[d] - run.started[d] for d in run.finished]
    return {
        "documents": docs,
        "posted": len(run.started),
        "post_errors": run.post_errors,
        "first_error": run.first_error,
        "completed": len(run.finished),
        "callback_statuses": run.callback_statuses,
        "statuses": counts,
        "timed_out": timed_out,
        "seconds": round(elapsed, 3),
        "posting_seconds": round(max(run.last_answer - began, 0.0), 3),
        "receipts_per_second": round(len(run.finished) / elapsed, 1),
        "latency_ms": _percentiles(latencies),
    }


# ---------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kkt_emulator.app.loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    get = sub.add_parser("get", help="GET one URL over keep-alive connections; requests/s")
    get.add_argument("url")
    get.add_argument("--login")
    get.add_argument("--password")
    get.add_argument("--connections", type=int, default=16)
    get.add_argument("--seconds", type=float, default=5.0)
    e2e = sub.add_parser("e2e", help="POST sales, wait for their callbacks; receipts/s, latency")
    e2e.add_argument("store_api")
    e2e.add_argument("--login", required=True)
    e2e.add_argument("--password", required=True)
    e2e.add_argument("--docs", type=int, default=2000)
    e2e.add_argument("--connections", type=int, default=16)
    e2e.add_argument(
        "--rate", type=float, default=None, help="documents a second (default: flat out)"
    )
    e2e.add_argument("--timeout", type=float, default=300.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode and print its JSON result on stdout."""
    from kkt_emulator import eventloop  # noqa: PLC0415 - keeps ``--help`` light

    args = _parser().parse_args(argv)
    if args.mode == "e2e":
        bad = args.docs < 1 or (args.rate is not None and args.rate <= 0) or args.timeout <= 0
    else:
        bad = args.seconds <= 0
    if bad or args.connections < 1:
        _fail("--connections, --docs, --rate, --seconds and --timeout must be positive")
        return 2
    auth = basic_auth(args.login, args.password) if args.login is not None else None
    try:
        if args.mode == "get":
            result = eventloop.run(run_get(args.url, auth, args.connections, args.seconds))
        else:
            assert auth is not None
            result = eventloop.run(
                run_e2e(
                    args.store_api,
                    auth,
                    args.docs,
                    connections=args.connections,
                    rate=args.rate,
                    timeout=args.timeout,
                )
            )
    except ValueError as exc:
        _fail(str(exc))
        return 2
    except OSError as exc:
        _fail(f"cannot reach the server: {exc}")
        return 2
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
