"""OFD session header and drive container: layout, errors, the trailer, round trips, CRC."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.errors import FramingError, ValidationError
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.container import (
    A_VERSION_FFD_12,
    A_VERSIONS,
    ACCEPTED_A_VERSIONS,
    S_VERSION,
    SESSION_SIGNATURE,
    Container,
    SessionHeader,
    build_container,
    container_crc,
    decode_bcd_serial,
    encode_bcd_serial,
    verify_trailer,
)
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.tlv import encode_tlv, tlv_byte, tlv_stlv, tlv_u32

SECRET = b"drive secret"
RECEIPT = tlv_stlv(3, [tlv_u32(1040, 42), tlv_byte(1054, 1)])


# --- BCD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "raw"),
    [
        ("9999078900005488", "9999078900005488"),
        ("999907891234567", "999907891234567F"),
        ("999907891234567 ", "999907891234567F"),  # the padding of tag 1041 is ignored
        ("1", "1FFFFFFFFFFFFFFF"),
    ],
)
def test_bcd_serial(serial: str, raw: str) -> None:
    assert encode_bcd_serial(serial) == bytes.fromhex(raw)
    assert decode_bcd_serial(bytes.fromhex(raw)) == serial.rstrip()


@pytest.mark.parametrize("serial", ["", "12345678901234567", "99990789A0005488", "١٢٣", " 1"])
def test_bcd_serial_rejects(serial: str) -> None:
    with pytest.raises(ValidationError, match="fn_serial"):
        encode_bcd_serial(serial)


@pytest.mark.parametrize("raw", ["99990789F0005488", "FFFFFFFFFFFFFFFF", "9999A78900005488"])
def test_bcd_serial_decode_rejects(raw: str) -> None:
    with pytest.raises(FramingError, match="BCD"):
        decode_bcd_serial(bytes.fromhex(raw))


# --- session header ------------------------------------------------------------------------


def test_session_header_round_trip() -> None:
    header = SessionHeader.for_container("9999078900012345", 305, "1.2")
    raw = header.encode()
    assert len(raw) == 30
    assert raw[0:4] == SESSION_SIGNATURE
    assert raw[4:6] == S_VERSION
    assert raw[6:8] == A_VERSION_FFD_12
    assert raw[24:] == bytes.fromhex("3101 1400 0000")
    assert SessionHeader.decode(raw) == header


def test_session_header_pads_short_serials() -> None:
    header = SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "9999078950", 305)
    raw = header.encode()
    assert raw[8:24] == b"9999078950      "
    assert SessionHeader.decode(raw).fn_serial == "9999078950"


def test_a_versions() -> None:
    assert A_VERSIONS == {"1.05": b"\x01\x05", "1.1": b"\x01\x10", "1.2": b"\x01\x20"}
    assert set(A_VERSIONS.values()) <= ACCEPTED_A_VERSIONS
    assert b"\x00\x01" in ACCEPTED_A_VERSIONS
    with pytest.raises(ValidationError, match="ffd_version"):
        SessionHeader.for_container("1", 1, "1.0")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes(29), "a session header is 30 bytes, got 29"),
        (bytes(31), "a session header is 30 bytes, got 31"),
        (bytes.fromhex("2A08410B") + bytes(26), "signature is 2a 08 41 0b, expected 2a 08 41 0a"),
        (
            bytes.fromhex("2A08410A 82A2") + bytes(24),
            "session protocol version is 82 a2, expected 81 a2",
        ),
        (bytes.fromhex("2A08410A 81A2 0001") + "ФН".encode() + bytes(18), "is not ASCII"),
    ],
)
def test_session_header_decode_errors(raw: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        SessionHeader.decode(raw)


@pytest.mark.parametrize(
    ("header", "field"),
    [
        (SessionHeader(b"\x2a", S_VERSION, b"\x00\x01", "1", 1), "signature"),
        (SessionHeader(SESSION_SIGNATURE, b"\x81", b"\x00\x01", "1", 1), "s_version"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"", "1", 1), "a_version"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "1" * 17, 1), "fn_serial"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "№", 1), "fn_serial"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "1", 70000), "body_length"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "1", 1, flags=-1), "flags"),
        (SessionHeader(SESSION_SIGNATURE, S_VERSION, b"\x00\x01", "1", 1, crc=1 << 16), "crc"),
    ],
)
def test_session_header_encode_errors(header: SessionHeader, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        header.encode()
    assert info.value.field == field


# --- container -----------------------------------------------------------------------------


def test_build_container_layout() -> None:
    raw = build_container(3, "9999078900012345", 42, RECEIPT, SECRET)
    assert len(raw) == 32 + len(RECEIPT) + 10
    assert int.from_bytes(raw[0:2], "little") == len(raw)
    assert raw[4:7] == bytes.fromhex("A5 03 01")
    assert raw[7:9] == bytes.fromhex("10 09")
    assert raw[9:17] == bytes.fromhex("9999078900012345")
    assert raw[17:20] == bytes.fromhex("00 00 2A")
    assert raw[20:32] == bytes(12)
    assert raw[32:-10] == RECEIPT
    assert raw[-10:-8] == bytes.fromhex("81 06")
    assert raw[-2:] == bytes.fromhex("00 00")


def test_build_container_trailer_and_crc_order() -> None:
    raw = build_container(3, "9999078900012345", 42, RECEIPT, SECRET, svc2=bytes(range(12)))
    # The sign covers the bytes before the trailer, final length set, CRC field zero.
    before = raw[0:2] + b"\x00\x00" + raw[4:-10]
    expected_sign = hmac.new(SECRET, before, hashlib.sha256).digest()[:6]
    assert raw[-8:-2] == expected_sign
    # The CRC is computed last, over everything but itself, trailer included.
    assert int.from_bytes(raw[2:4], "little") == crc16_ccitt(raw[0:2] + raw[4:])
    assert container_crc(raw) == int.from_bytes(raw[2:4], "little")
    assert verify_trailer(raw, SECRET)
    assert not verify_trailer(raw, b"another secret")


def test_parse_built_container() -> None:
    raw = build_container(3, "999907891234567", 0xABCDEF, RECEIPT, SECRET, svc1=b"\x01\x02")
    container = Container.parse(raw)
    assert container.length == len(raw)
    assert container.crc == container_crc(raw)
    assert (container.msg_type, container.doc_code, container.version) == (0xA5, 3, 1)
    assert container.svc1 == b"\x01\x02"
    assert container.fn_serial == "999907891234567"
    assert container.fd_number == 0xABCDEF
    assert container.body == RECEIPT
    assert container.document_tag == 3
    assert container.document_value == RECEIPT[4:]
    assert container.trailer == raw[-10:]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"doc_code": 256}, "doc_code"),
        ({"fd_number": 1 << 24}, "fd_number"),
        ({"fd_number": -1}, "fd_number"),
        ({"svc1": b"\x10"}, "svc1"),
        ({"svc2": bytes(11)}, "svc2"),
        ({"document_stlv": b""}, "document_stlv"),
        ({"document_stlv": RECEIPT + tlv_byte(1054, 1)}, "document_stlv"),
        ({"document_stlv": tlv_stlv(2, [])}, "document_stlv"),
        ({"document_stlv": encode_tlv(3, bytes(0xFFF0))}, "document_stlv"),
        ({"fn_serial": "FN"}, "fn_serial"),
    ],
)
def test_build_container_errors(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {
        "doc_code": 3,
        "fn_serial": "9999078900012345",
        "fd_number": 1,
        "document_stlv": RECEIPT,
        "secret": SECRET,
    } | kwargs
    with pytest.raises(ValidationError) as info:
        build_container(**arguments)  # type: ignore[arg-type]
    assert info.value.field == field


def test_build_container_rejects_a_broken_stlv() -> None:
    with pytest.raises(ValidationError, match="runs past the end"):
        build_container(3, "9999078900012345", 1, RECEIPT[:-1], SECRET)


def _with_crc(raw: bytes) -> bytes:
    fixed = bytearray(raw)
    fixed[2:4] = container_crc(raw).to_bytes(2, "little")
    return bytes(fixed)


def test_parse_errors() -> None:
    raw = build_container(3, "9999078900012345", 1, RECEIPT, SECRET)
    with pytest.raises(FramingError, match="at least 36 bytes"):
        Container.parse(raw[:35])
    with pytest.raises(
        FramingError, match=f"length field says {len(raw)} bytes, got {len(raw) - 1}"
    ):
        Container.parse(raw[:-1])
    corrupt = bytearray(raw)
    corrupt[40] ^= 0x01
    stored, computed = int.from_bytes(raw[2:4], "little"), container_crc(bytes(corrupt))
    with pytest.raises(
        FramingError, match=f"CRC mismatch: stored {stored:04X}h, computed {computed:04X}h"
    ):
        Container.parse(bytes(corrupt))
    assert Container.parse(bytes(corrupt), check_crc=False).body != RECEIPT
    with pytest.raises(FramingError, match="message type is A6h"):
        Container.parse(_with_crc(raw[:4] + b"\xa6" + raw[5:]))
    with pytest.raises(FramingError, match="protocol version is 02h"):
        Container.parse(_with_crc(raw[:6] + b"\x02" + raw[7:]))
    with pytest.raises(FramingError, match="BCD"):
        Container.parse(_with_crc(raw[:9] + b"\xab" + raw[10:]))


def test_parse_truncated_stlv() -> None:
    raw = build_container(3, "9999078900012345", 1, RECEIPT, SECRET)
    long_stlv = bytearray(raw)
    assert len(raw) - 36 == 23  # STLV value (13) and trailer (10)
    long_stlv[34:36] = (26).to_bytes(2, "little")  # 3 bytes beyond the trailer
    with pytest.raises(FramingError, match=r"STLV of 26 bytes runs past .* \(23 bytes left\)"):
        Container.parse(_with_crc(bytes(long_stlv)))


def test_verify_trailer_needs_the_emulator_layout() -> None:
    raw = build_container(3, "9999078900012345", 1, RECEIPT, SECRET)
    without = bytearray(raw[:-10])
    without[0:2] = len(without).to_bytes(2, "little")
    assert not verify_trailer(_with_crc(bytes(without)), SECRET)


# --- round trips ---------------------------------------------------------------------------

serials = st.integers(min_value=15, max_value=16).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
)
documents = st.tuples(
    st.sampled_from([int(code) for code in DocCode]),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=8),
)


def _build(doc: tuple[int, list[tuple[int, bytes]]], serial: str, fd: int, secret: bytes) -> bytes:
    code, tlvs = doc
    stlv = tlv_stlv(code, [encode_tlv(tag, value) for tag, value in tlvs])
    return build_container(code, serial, fd, stlv, secret)


@given(documents, serials, st.integers(0, 0xFFFFFF), st.binary(max_size=32))
def test_build_parse_round_trip(
    doc: tuple[int, list[tuple[int, bytes]]], serial: str, fd: int, secret: bytes
) -> None:
    raw = _build(doc, serial, fd, secret)
    container = Container.parse(raw, check_crc=True)
    code, tlvs = doc
    assert container.doc_code == code
    assert container.fn_serial == serial
    assert container.fd_number == fd
    assert container.body == tlv_stlv(code, [encode_tlv(t, v) for t, v in tlvs])
    assert len(container.trailer) == 10
    assert verify_trailer(raw, secret)
    header = SessionHeader.for_container(serial, len(raw))
    assert SessionHeader.decode(header.encode()) == header


@given(documents, serials, st.data())
def test_any_single_bit_flip_is_detected(
    doc: tuple[int, list[tuple[int, bytes]]], serial: str, data: st.DataObject
) -> None:
    raw = _build(doc, serial, 1, SECRET)
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FramingError):
        Container.parse(bytes(flipped))
