"""The OFD stand-in over real loopback TCP: the golden capture, bad input, storage, faults, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.errors import ConfigError, EmulatorError, TransportError
from kkt_emulator.fn.container import Container, SessionHeader, build_container
from kkt_emulator.fn.tlv import encode_tlv, parse_tlvs, tlv_string
from kkt_emulator.ofd.server import OfdServer, ReceivedDocument
from kkt_emulator.transport.tcp import tcp_connect

GOLDEN = (Path(__file__).parents[1] / "golden" / "ofd-registration-change-fn1.bin").read_bytes()
SERIAL = "9999078900005488"
T0 = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
INN = "7704358518"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures logging globally (onto a captured stream): start clean, put it back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


async def talk(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data``, optionally end our side, and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await reader.read()
    except ConnectionResetError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and keep our side open, as a drive does: read one whole reply, then leave.

    The server keeps such a connection for the next exchange (up to its read timeout), so reading
    until it closes would wait that timeout out.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await reader.readexactly(30)
        return head + await reader.readexactly(SessionHeader.decode(head).body_length)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def reply_of(raw: bytes) -> tuple[SessionHeader, Container, dict[int, bytes]]:
    header = SessionHeader.decode(raw[:30])
    assert header.body_length == len(raw) - 30
    container = Container.parse(raw[30:])
    return header, container, {t.tag: t.value for t in parse_tlvs(container.document_value)}


def ofd_code(tags: dict[int, bytes]) -> int:
    inner = {t.tag: t.value for t in parse_tlvs(tags[1068])}
    return inner[1022][0]


def with_a_version(a_version: str, data: bytes = GOLDEN) -> bytes:
    return data[:6] + bytes.fromhex(a_version) + data[8:]


def receipt_container(fd: int, serial: str = SERIAL) -> bytes:
    stlv = encode_tlv(3, tlv_string(1021, "Кассир"))
    return build_container(3, serial, fd, stlv, b"secret")


def framed(container: bytes, serial: str = SERIAL, ffd: str = "1.05") -> bytes:
    return SessionHeader.for_container(serial, len(container), ffd).encode() + container


async def test_golden_capture_is_acknowledged() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        raw = await exchange(ofd.port, GOLDEN)
        header, ack, tags = reply_of(raw)
        assert header.a_version == bytes.fromhex("0001")
        assert (header.flags, header.crc, header.fn_serial) == (0x0014, 0, SERIAL)
        assert (ack.doc_code, ack.fn_serial, ack.fd_number) == (7, SERIAL, 1)
        assert int.from_bytes(tags[1040], "little") == 1
        assert tags[1017] == b"7704358518  "
        assert tags[1041] == SERIAL.encode()
        assert int.from_bytes(tags[1012], "little") == int(T0.timestamp())
        assert ofd_code(tags) == 0
        assert 1206 not in tags
        assert ofd.received() == [ReceivedDocument(SERIAL, 1, 11, T0, 436, 0)]
        assert ofd.received("0000000000000001") == []
        assert ofd.acknowledged_fds(SERIAL) == {1}
        assert ofd.raw_container(SERIAL, 1) == GOLDEN[30:]
        assert (ofd.connections, ofd.malformed, ofd.rejected, ofd.errors) == (1, 0, 0, 0)


@pytest.mark.parametrize(
    ("a_version", "has_1206"),
    [
        ("0001", False),
        ("0002", False),
        ("0100", False),
        ("0105", False),
        ("0110", True),
        ("0120", True),
    ],
)
async def test_the_ack_follows_the_a_version(a_version: str, has_1206: bool) -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        header, _, tags = reply_of(await talk(ofd.port, with_a_version(a_version)))
        assert header.a_version == bytes.fromhex(a_version)
        assert (1206 in tags) is has_1206


def _bad_crc() -> bytes:
    data = bytearray(GOLDEN)
    data[100] ^= 0x01
    return bytes(data)


def _ack_sent_to_the_ofd() -> bytes:
    stlv = encode_tlv(7, tlv_string(1017, INN))
    return framed(build_container(7, SERIAL, 5, stlv, b"secret"))


def _length_field_lies() -> bytes:
    data = bytearray(GOLDEN)
    data[30:32] = (435).to_bytes(2, "little")
    return bytes(data)


CLOSED_WITHOUT_ANSWER = {
    "garbage": bytes(range(7, 71)) * 2,
    "truncated header": GOLDEN[:17],
    "wrong signature": bytes.fromhex("DD80CAA1") + GOLDEN[4:],
    "test message s-version": GOLDEN[:4] + bytes.fromhex("82FB") + GOLDEN[6:],
    "unknown a-version": with_a_version("0999"),
    "body shorter than announced": GOLDEN[:200],
    "body too short to identify": SessionHeader.for_container(SERIAL, 20).encode() + bytes(20),
}


@pytest.mark.parametrize("name", sorted(CLOSED_WITHOUT_ANSWER))
async def test_bad_input_is_closed_counted_and_survived(name: str) -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        assert await talk(ofd.port, CLOSED_WITHOUT_ANSWER[name]) == b""
        assert (ofd.connections, ofd.malformed, ofd.errors) == (1, 1, 0)
        assert ofd.received() == []
        _, _, tags = reply_of(await talk(ofd.port, GOLDEN))
        assert ofd_code(tags) == 0
        assert ofd.acknowledged_fds(SERIAL) == {1}


UNRECOGNISED = {
    "bad crc": (_bad_crc(), 1),
    "length field lies": (_length_field_lies(), 1),
    "an acknowledgement sent to the ofd": (_ack_sent_to_the_ofd(), 5),
}


@pytest.mark.parametrize("name", sorted(UNRECOGNISED))
async def test_an_unparseable_container_is_answered_not_recognised(name: str) -> None:
    data, fd = UNRECOGNISED[name]
    async with OfdServer(ManualClock(T0)) as ofd:
        _, ack, tags = reply_of(await talk(ofd.port, data))
        assert (ack.fn_serial, int.from_bytes(tags[1040], "little")) == (SERIAL, fd)
        assert ofd_code(tags) == 11
        assert (ofd.malformed, ofd.rejected) == (1, 1)
        assert ofd.received() == []


async def test_a_silent_peer_is_dropped_after_the_read_timeout() -> None:
    async with OfdServer(ManualClock(T0), read_timeout=0.05) as ofd:
        assert await talk(ofd.port, GOLDEN[:40], half_close=False) == b""
        assert ofd.malformed == 1


async def test_an_empty_connection_is_not_malformed() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        assert await talk(ofd.port, b"") == b""
        assert (ofd.connections, ofd.malformed) == (1, 0)


async def test_concurrent_tills_are_all_acknowledged() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        replies = await asyncio.gather(
            *(talk(ofd.port, framed(receipt_container(fd))) for fd in range(1, 9))
        )
        assert sorted(reply_of(r)[1].fd_number for r in replies) == list(range(1, 9))
        assert ofd.acknowledged_fds(SERIAL) == set(range(1, 9))


async def test_a_repeated_document_is_stored_once_and_answered_again(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    async with OfdServer(clock, db_path=tmp_path / "ofd.db") as ofd:
        await talk(ofd.port, GOLDEN)
        await clock.advance(timedelta(minutes=5))
        _, _, tags = reply_of(await talk(ofd.port, GOLDEN))
        assert ofd_code(tags) == 0
        assert [d.received_at for d in ofd.received()] == [T0]


async def test_the_database_keeps_documents_across_restarts(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "ofd.db"
    async with OfdServer(ManualClock(T0), db_path=db) as ofd:
        await talk(ofd.port, GOLDEN)
        await talk(ofd.port, framed(receipt_container(2, "9999078900005489")))
        first = ofd.received()
    async with OfdServer(ManualClock(T0), db_path=db) as ofd:
        assert ofd.received() == first
        assert ofd.acknowledged_fds(SERIAL) == {1}
        assert ofd.raw_container(SERIAL, 1) == GOLDEN[30:]
        await talk(ofd.port, framed(receipt_container(3)))
        assert [d.fd_number for d in ofd.received(SERIAL)] == [1, 3]
    async with OfdServer(ManualClock(T0)) as ofd:
        assert ofd.received() == []


async def test_an_unusable_database_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot open the OFD database"):
        async with OfdServer(ManualClock(T0), db_path=tmp_path / "file" / "ofd.db"):
            pass


async def test_down_refuses_connections_and_clearing_listens_on_the_same_port() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        port = ofd.port
        await ofd.set_fault("ofd.down")
        assert ofd.active_faults() == {"ofd.down": {}}
        with pytest.raises(TransportError, match="cannot connect"):
            await tcp_connect("127.0.0.1", port)
        await ofd.clear_faults()
        assert not ofd.down
        assert ofd.port == port
        _, _, tags = reply_of(await talk(port, GOLDEN))
        assert ofd_code(tags) == 0


async def test_down_before_start_keeps_the_port_closed() -> None:
    ofd = OfdServer(ManualClock(T0))
    await ofd.set_down(True)
    async with ofd:
        with pytest.raises(TransportError):
            await tcp_connect("127.0.0.1", ofd.port)
        await ofd.set_down(False)
        assert reply_of(await talk(ofd.port, GOLDEN))[1].fd_number == 1


async def test_reject_answers_the_code_and_stores_the_document() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        await ofd.set_fault("ofd.reject")
        _, _, tags = reply_of(await talk(ofd.port, GOLDEN))
        assert ofd_code(tags) == 14
        _, _, tags = reply_of(await talk(ofd.port, with_a_version("0120")))
        assert (ofd_code(tags), tags[1206]) == (14, b"\x02")
        await ofd.set_fault("ofd.reject", code=11)
        _, _, tags = reply_of(await talk(ofd.port, framed(receipt_container(2))))
        assert ofd_code(tags) == 11
        assert [d.ofd_code for d in ofd.received()] == [14, 11]
        assert ofd.acknowledged_fds(SERIAL) == set()
        assert ofd.rejected == 3
        await ofd.clear_faults()
        _, _, tags = reply_of(await talk(ofd.port, GOLDEN))
        assert ofd_code(tags) == 0
        assert ofd.acknowledged_fds(SERIAL) == {1}


async def test_slow_still_acknowledges() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        await ofd.set_fault("ofd.slow", delay_ms=20)
        assert ofd.ack_delay_s == pytest.approx(0.02)
        assert ofd.active_faults() == {"ofd.slow": {"delay_ms": pytest.approx(20)}}
        _, _, tags = reply_of(await talk(ofd.port, GOLDEN))
        assert ofd_code(tags) == 0


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("ofd.lost", {}, "unknown OFD fault"),
        ("ofd.reject", {"code": 0}, "code must be 1..255"),
        ("ofd.reject", {"code": "x"}, "must be an integer"),
        ("ofd.slow", {"delay_ms": -1}, "non-negative"),
        ("ofd.down", {"code": 1}, "takes no parameter code"),
    ],
)
async def test_bad_faults_are_config_errors(
    name: str, params: dict[str, object], match: str
) -> None:
    ofd = OfdServer(ManualClock(T0))
    with pytest.raises(ConfigError, match=match):
        await ofd.set_fault(name, **params)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"port": 70000}, "port"), ({"ofd_inn": "123"}, "ИНН")]
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OfdServer(ManualClock(T0), **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- kkt-emulator ofd serve


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "70000"], "--port"), (["--ofd-inn", "7704358519"], "--ofd-inn")],
)
def test_cli_bad_flags_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["ofd", "serve", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_cli_port_in_use_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["ofd", "serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


async def test_cli_serves_until_sigterm_and_keeps_its_database(tmp_path: Path) -> None:
    db = tmp_path / "ofd.db"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kkt_emulator",
        "ofd",
        "serve",
        "--port",
        "0",
        "--db",
        str(db),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        info = json.loads(await process.stdout.readline())
        assert info["address"] == f"127.0.0.1:{info['port']}"
        _, _, tags = reply_of(await talk(info["port"], GOLDEN))
        assert ofd_code(tags) == 0
        process.send_signal(signal.SIGTERM)
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    async with OfdServer(ManualClock(T0), db_path=db) as ofd:
        assert ofd.acknowledged_fds(SERIAL) == {1}


async def test_a_failure_inside_the_stand_in_is_logged_with_the_drive_and_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with OfdServer(ManualClock(T0)) as ofd:

        def broken_store(document: ReceivedDocument, _raw: bytes) -> None:
            raise EmulatorError(f"cannot store document {document.fd_number}: disk I/O error")

        monkeypatch.setattr(ofd._archive, "store", broken_store)
        with structlog.testing.capture_logs() as logs:
            assert await talk(ofd.port, framed(receipt_container(5))) == b""
        assert (ofd.connections, ofd.malformed, ofd.errors) == (1, 0, 1)
        assert ofd.received() == []
    failed = [entry for entry in logs if entry["event"] == "ofd_connection_failed"]
    assert len(failed) == 1
    assert (failed[0]["fn_serial"], failed[0]["fd"]) == (SERIAL, 5)
    assert failed[0]["exc_info"] is True


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(30)
    return head + await reader.readexactly(SessionHeader.decode(head).body_length)


async def test_one_connection_carries_several_exchanges() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        reader, writer = await asyncio.open_connection("127.0.0.1", ofd.port)
        try:
            for fd in (1, 2, 3):
                writer.write(framed(receipt_container(fd)))
                await writer.drain()
                assert reply_of(await read_reply(reader))[1].fd_number == fd
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert ofd.acknowledged_fds(SERIAL) == {1, 2, 3}
        assert (ofd.connections, ofd.malformed) == (1, 0)


async def test_down_closes_a_kept_idle_connection() -> None:
    async with OfdServer(ManualClock(T0)) as ofd:
        reader, writer = await asyncio.open_connection("127.0.0.1", ofd.port)
        try:
            writer.write(framed(receipt_container(1)))
            await writer.drain()
            await read_reply(reader)
            await ofd.set_fault("ofd.down")
            # The kept connection ends: a document sent on it is never answered.
            assert await asyncio.wait_for(reader.read(), 10.0) == b""
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        assert ofd.acknowledged_fds(SERIAL) == {1}
        assert ofd.malformed == 0
