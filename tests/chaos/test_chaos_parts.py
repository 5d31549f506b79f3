"""The chaos harness's parts without processes: the checks, the kill proxy, the command line."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from kkt_emulator.app.chaos.checks import DriveReceipt, StoredDocument, check
from kkt_emulator.app.chaos.proxy import Answer, KillProxy
from kkt_emulator.cli.main import main

FN = "9999078902000001"


def _doc(
    doc_id: str, status: str = "COMPLETED", fd: int | None = 2, ofd: str = "acknowledged"
) -> StoredDocument:
    return StoredDocument(doc_id, status, None, FN if fd else None, fd, ofd)


def _drive(*fds: int, acked: bool = True) -> dict[str, list[DriveReceipt]]:
    entries = [DriveReceipt(FN, 1, "OPEN_SHIFT", acked)]
    entries += [DriveReceipt(FN, fd, "RECEIPT", acked) for fd in fds]
    return {FN: entries}


def test_a_clean_run_passes() -> None:
    found = check({"a", "b"}, {"a": _doc("a", fd=2), "b": _doc("b", fd=3)}, _drive(2, 3))
    assert found.ok
    assert (found.completed, found.receipts, found.acknowledged_in_drives) == (2, 2, 2)


def test_lost_stuck_and_failed_documents_are_counted() -> None:
    documents = {
        "q": _doc("q", "QUEUED", fd=None, ofd="not_sent"),
        "p": _doc("p", "PENDING", fd=None, ofd="not_sent"),
        "f": StoredDocument("f", "FAILED", "timeout", None, None, "not_sent"),
    }
    found = check({"lost", "q", "p", "f"}, documents, _drive())
    assert found.lost == ["lost"]
    assert found.stuck == {"QUEUED": ["q"], "PENDING": ["p"]}
    assert found.stuck_count == 2
    assert found.failed == {"timeout": 1}
    assert not found.ok


def test_two_documents_on_one_receipt_are_doubled_and_orphan_receipts_are_shown() -> None:
    found = check({"a", "b"}, {"a": _doc("a", fd=2), "b": _doc("b", fd=2)}, _drive(2, 3))
    assert sorted(found.doubled) == ["a", "b"]
    assert found.receipts_without_document == [f"{FN}:3"]


def test_gaps_missing_receipts_and_missing_acknowledgements() -> None:
    documents = {"a": _doc("a", fd=2, ofd="not_sent"), "b": _doc("b", fd=9)}
    found = check({"a", "b"}, documents, {FN: [DriveReceipt(FN, 2, "RECEIPT", acknowledged=True)]})
    assert found.fd_gaps == {FN: [1]}
    assert found.completed_without_receipt == ["b"]
    assert found.acks_missing == ["a"]


async def test_the_proxy_forwards_and_drops_an_answer_it_is_told_to() -> None:
    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the proxy hung up
        finally:
            writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    seen: list[Answer] = []

    def drop_the_second(answer: Answer) -> bool:
        seen.append(answer)
        return len(seen) == 2

    proxy = KillProxy(server.sockets[0].getsockname()[1], drop_the_second, "test")
    await proxy.start()
    outcomes = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as http:
            for _ in range(3):
                try:
                    outcomes.append((await http.post("/api/device/v1/lease?max=1")).text)
                except httpx.TransportError:
                    outcomes.append("dropped")
    finally:
        await proxy.close()
        await asyncio.sleep(0.2)  # let the upstream handlers see the proxy hang up and return
        server.close()
        await server.wait_closed()
    assert outcomes == ["ok", "dropped", "ok"]
    assert seen[0] == Answer("POST", "/api/device/v1/lease", 200)
    assert proxy.dropped == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--kill-delay", "3:1"],
        ["--targets", "till,printer"],
        ["--rate", "0"],
        ["--profile", "no-such-profile"],
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "chaos", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
