"""The OFD stand-in keeps the drive's own container: a forged one never pre-empts or displaces it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from kkt_emulator.app.drivebench import DriveBench
from kkt_emulator.clock import ManualClock
from kkt_emulator.fn.container import Container, SessionHeader, build_container
from kkt_emulator.fn.signing import drive_secret, strip_tlv, tag1077_value
from kkt_emulator.ofd.server import OfdServer

T0 = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)


async def talk(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # the server may have closed first
            await writer.wait_closed()


def signed_receipt() -> tuple[DriveBench, bytes]:
    """A receipt's container as the emulator's drive gives it to the till (21h–25h)."""
    bench = DriveBench()
    bench.register()
    bench.open_shift()
    bench.sale()
    while True:  # registration and shift opening come first
        message = bench.read_message()
        container = Container.parse(message)
        bench.acknowledge(container.fd_number)
        if container.doc_code == 3:
            return bench, message


def forged_from(real: bytes, *, secret: bytes = b"not the drive's") -> bytes:
    """The same document with another total's fiscal sign, re-signed with a wrong secret."""
    container = Container.parse(real)
    rest, _ = strip_tlv(container.document_value, 1077)
    forged_tlv = rest + (1077).to_bytes(2, "little") + b"\x06\x00" + tag1077_value(123456789)
    stlv = container.document_tag.to_bytes(2, "little") + len(forged_tlv).to_bytes(2, "little")
    return build_container(
        container.doc_code, container.fn_serial, container.fd_number, stlv + forged_tlv, secret
    )


def framed(container: bytes) -> bytes:
    parsed = Container.parse(container)
    header = SessionHeader.for_container(parsed.fn_serial, len(container), "1.2")
    return header.encode() + container


async def test_a_forged_container_sent_first_is_replaced_by_the_real_one(tmp_path: Path) -> None:
    bench, real = signed_receipt()
    parsed = Container.parse(real)
    forged = forged_from(real)
    async with OfdServer(ManualClock(T0), db_path=tmp_path / "ofd.db") as ofd:
        await talk(ofd.port, framed(forged))
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == forged
        await talk(ofd.port, framed(real))
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == real
        await talk(ofd.port, framed(forged))
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == real
        assert ofd.unverified == 2
        (doc,) = [d for d in ofd.received() if d.fd_number == parsed.fd_number]
        assert doc.verified
    # and after a restart on the same database
    async with OfdServer(ManualClock(T0), db_path=tmp_path / "ofd.db") as ofd:
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == real
        await talk(ofd.port, framed(forged))
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == real
    assert bench.serial == parsed.fn_serial


async def test_a_container_signed_with_the_right_secret_but_a_wrong_fiscal_sign_is_unverified() -> (
    None
):
    bench, real = signed_receipt()
    secret = drive_secret(bench.serial, bench.profile.drive.seed)
    tampered = forged_from(real, secret=secret)  # a valid message sign, a bad 1077
    parsed = Container.parse(real)
    async with OfdServer(ManualClock(T0)) as ofd:
        await talk(ofd.port, framed(tampered))
        await talk(ofd.port, framed(real))
        assert ofd.raw_container(parsed.fn_serial, parsed.fd_number) == real
        assert ofd.unverified == 1


async def test_another_installation_seed_does_not_verify() -> None:
    _, real = signed_receipt()
    async with OfdServer(ManualClock(T0), signing_seed="another installation") as ofd:
        await talk(ofd.port, framed(real))
        assert ofd.unverified == 1
        assert not ofd.received()[0].verified
