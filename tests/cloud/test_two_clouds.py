"""Two ``cloud serve`` processes on one PostgreSQL are one cloud, even when one is SIGKILLed (D75-D77).

Real processes on real ports: two clouds on one database, two ``till run`` processes on each,
1,000 documents posted alternately to both clouds with a ``responseURL`` served by this test. Cloud
A is SIGKILLed mid-run and restarted on its port. Then: every document COMPLETED exactly once, the
four drives' archives hold exactly 1,000 receipts and each belongs to exactly one document, each
document's history holds one success, one dispatch and one delivered callback, and every callback
reached the shop (at least once; more only for an attempt in flight when its cloud died, D77).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from kkt_emulator.app.chaos.checks import DriveReceipt, StoredDocument, check
from kkt_emulator.app.chaos.load import sale
from kkt_emulator.app.chaos.procs import Kind, Managed, cli_command, free_port
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

if TYPE_CHECKING:
    from pathlib import Path

    from pg_server import PgServer

pytestmark = pytest.mark.slow

DOCUMENTS = 1000
KILL_AFTER = 400  # cloud A is SIGKILLed once this many documents were accepted
POSTERS = 12
_BOUND = re.compile(r"bound as ")


class CallbackShop:
    """The shop's ``responseURL`` endpoint: a keep-alive HTTP/1.1 server counting callbacks."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._exchanges(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the cloud hung up
        finally:
            writer.close()  # also when cancelled at the end, so no open writer outlives the loop

    async def _exchanges(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            target = lines[0].split(" ")[1]
            match = re.search(r"doc=([^&]+)", target)
            if match and "status=SUCCESS" in target:
                self.calls[match.group(1)] += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            answer = await http.get(url)
    except httpx.TransportError:  # not listening yet
        return False
    return answer.status_code == httpx.codes.OK


def _cloud(name: str, port: int, db: str, work: Path) -> Managed:
    url = f"http://127.0.0.1:{port}/api/cabinet/v1/clock"

    async def ready(_: Managed) -> bool:
        return await _http_ok(url)

    argv = cli_command("cloud", "serve", "--port", str(port), "--db", db)
    return Managed(name, Kind.CLOUD, argv, work, ready)


def _till(name: str, port: int, point: dict[str, str], secret: Path, work: Path) -> Managed:
    async def ready(till: Managed) -> bool:
        return _BOUND.search(till.log_text()) is not None

    argv = cli_command(
        "till",
        "run",
        "--server",
        f"http://127.0.0.1:{port}",
        "--retail-point",
        point["id"],
        "--login",
        point["service_login"],
        "--password-file",
        str(secret),
        "--state-dir",
        str(work / name),
        "--poll-interval",
        "0",
        "--long-poll",
        "2",
    )
    return Managed(name, Kind.TILL, argv, work, ready)


async def _set_up_point(http: httpx.AsyncClient, base: str) -> dict[str, str]:
    registration = load_profile(DEFAULT_PROFILE).registration
    body = {
        "name": "Two clouds",
        "address": registration.addresses[0].address,
        "inn": registration.inn,
        "internetDocsEnabled": True,
    }
    point = (await http.post(f"{base}/api/cabinet/v1/retail-points", json=body)).json()
    creds = (
        await http.post(f"{base}/api/cabinet/v1/retail-points/{point['id']}/credentials")
    ).json()
    assoc = await http.post(
        f"{base}/api/fn/v1/associate/{point['id']}", auth=(creds["login"], creds["password"])
    )
    assoc.raise_for_status()
    return {
        "id": point["id"],
        "service_login": creds["login"],
        "service_password": creds["password"],
        "login": assoc.json()["userName"],
        "password": assoc.json()["password"],
    }


async def _post_all(
    http: httpx.AsyncClient,
    bases: list[str],
    point: dict[str, str],
    shop_port: int,
    kill: Managed,
) -> set[str]:
    """Post every document (document n to cloud n % 2), retrying until it is answered 200."""
    answered: set[str] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(DOCUMENTS):
        queue.put_nowait(n)
    auth = (point["login"], point["password"])
    killed = False

    async def poster() -> None:
        nonlocal killed
        while not queue.empty():
            n = queue.get_nowait()
            doc = sale(f"two-clouds-{n:04d}", n)
            doc["responseURL"] = f"http://127.0.0.1:{shop_port}/cb?doc={doc['id']}"
            for attempt in range(400):  # a cloud being restarted answers again within seconds
                base = bases[(n + attempt) % 2] if attempt else bases[n % 2]
                try:
                    answer = await http.post(f"{base}/api/fn/v2/doc", json=doc, auth=auth)
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
                    continue
                if answer.status_code == httpx.codes.OK:
                    answered.add(doc["id"])
                    break
                await asyncio.sleep(0.05)
            if len(answered) >= KILL_AFTER and not killed:
                killed = True
                assert kill.kill()  # SIGKILL mid-run; its keeper restarts it on the same port

    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    return answered


async def _documents(http: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        answer = await http.get(
            f"{base}/api/cabinet/v1/documents", params={"limit": 500, "offset": len(found)}
        )
        page: list[dict[str, Any]] = answer.raise_for_status().json()
        found.extend(page)
        if len(page) < 500:
            return found


async def _wait_completed(
    http: httpx.AsyncClient, base: str, seconds: float
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    rows: list[dict[str, Any]] = []
    while loop.time() < deadline:
        rows = await _documents(http, base)
        if len(rows) >= DOCUMENTS and all(r["status"] == "COMPLETED" for r in rows):
            return rows
        await asyncio.sleep(0.5)
    return rows


def _archives(work: Path, names: list[str]) -> dict[str, list[DriveReceipt]]:
    drives: dict[str, list[DriveReceipt]] = {}
    for name in names:
        path = work / name / "drive.sqlite3"
        serial = SqliteStore.read_meta(path).get("serial", "")
        store = SqliteStore(path, serial=serial or None)
        try:
            drives[serial] = [
                DriveReceipt(serial, doc.fd, DocCode(doc.doc_code).name, acknowledged=False)
                for doc in store.documents()
            ]
        finally:
            store.close()
    return drives


async def test_two_clouds_on_one_database_are_one_cloud(pg: PgServer, tmp_path: Path) -> None:
    db = pg.new_database("two_clouds")
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    clouds = [_cloud(f"cloud-{x}", port, db, tmp_path) for x, port in zip("ab", ports, strict=True)]
    shop = CallbackShop()
    await shop.start()
    tills: list[Managed] = []
    limits = httpx.Limits(max_connections=POSTERS * 2)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
        try:
            await asyncio.gather(*(cloud.start() for cloud in clouds))
            point = await _set_up_point(http, bases[0])
            secret = tmp_path / "service-password"
            secret.write_text(point["service_password"] + "\n", encoding="utf-8")
            tills = [_till(f"till-{n}", ports[n // 2], point, secret, tmp_path) for n in range(4)]
            await asyncio.gather(*(till.start() for till in tills))

            answered = await _post_all(http, bases, point, shop.port, clouds[0])
            assert len(answered) == DOCUMENTS
            assert clouds[0].kills == 1
            await clouds[0].ready.wait()
            rows = await _wait_completed(http, bases[1], seconds=45.0)
            statuses = Counter(r["status"] for r in rows)
            assert statuses == {"COMPLETED": DOCUMENTS}, statuses
            assert rows == await _documents(http, bases[0])  # the restarted cloud sees the same

            auth = (point["login"], point["password"])
            stored: dict[str, StoredDocument] = {}
            for row in rows:
                status = await http.get(
                    f"{bases[len(stored) % 2]}/api/fn/v1/doc/{row['id']}/status", auth=auth
                )
                stored[row["id"]] = StoredDocument.from_api(status.json(), row)
        finally:
            await asyncio.gather(*(till.stop() for till in tills))
            await asyncio.gather(*(cloud.stop() for cloud in clouds))
            await shop.close()

    findings = check(answered, stored, _archives(tmp_path, [t.name for t in tills]))
    assert findings.completed == DOCUMENTS
    assert findings.receipts == DOCUMENTS  # the four drives together: one receipt per document
    assert findings.doubled == []
    assert findings.lost == []
    assert findings.completed_without_receipt == []
    assert findings.receipts_without_document == []
    assert findings.fd_gaps == {}

    # Every timer fired once: one success, one dispatch, one delivered callback per document.
    with psycopg.connect(db) as conn:
        rows_of_history = conn.execute(
            "SELECT d.doc_id, h.event, h.detail FROM history h JOIN documents d ON d.seq = h.seq"
        ).fetchall()
    events: Counter[tuple[str, str]] = Counter()
    for doc_id, event, detail in rows_of_history:
        if event == "callback_result":
            delivered = '"delivered":true' in (detail or "")
            events[doc_id, "delivered" if delivered else "not_delivered"] += 1
        else:
            events[doc_id, event] += 1
    for doc_id in answered:
        assert events[doc_id, "accepted"] == 1, doc_id
        assert events[doc_id, "success"] == 1, doc_id
        assert events[doc_id, "dispatch"] == 1, doc_id
        assert events[doc_id, "delivered"] == 1, doc_id
    assert set(shop.calls) == answered  # every shop heard of its document
    repeated = [doc_id for doc_id, n in shop.calls.items() if n > 1]
    # Only an attempt in flight when cloud A was killed may be made again (D77).
    assert len(repeated) <= 2 * POSTERS, repeated
