"""Fiscal sign, message sign, РНМ, ИНН and QR: golden vectors (fn-protocol.md §15.11–§15.13)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.signing import (
    TAG_FISCAL_SIGN,
    drive_secret,
    fiscal_sign,
    fpd_from_1077,
    inn_is_valid,
    make_inn,
    make_rnm,
    message_sign,
    parse_qr,
    receipt_qr,
    rnm_check_digits,
    strip_tlv,
    tag1077_value,
    validate_rnm,
    verify_document,
)
from kkt_emulator.profiles import list_profiles, load_profile

SERIAL = "9999078900012345"
SECRET = drive_secret(SERIAL, "kkt-emulator")


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("<HH", tag, len(value)) + value


def signed_document(body: list[tuple[int, bytes]], fd_number: int = 42) -> bytes:
    """A document with 1077 placed among the other TLVs, signed over the rest."""
    rest = b"".join(tlv(tag, value) for tag, value in body)
    fpd = fiscal_sign(SECRET, SERIAL, fd_number, rest)
    head = b"".join(tlv(tag, value) for tag, value in body[:1])
    tail = b"".join(tlv(tag, value) for tag, value in body[1:])
    return head + tlv(TAG_FISCAL_SIGN, tag1077_value(fpd)) + tail


RECEIPT_BODY = [
    (1012, bytes.fromhex("5c3fe765")),
    (1040, bytes.fromhex("2a000000")),
    (1020, bytes.fromhex("3930")),
    (1059, tlv(1030, "Товар".encode("cp866")) + tlv(1079, bytes.fromhex("3930"))),
]

tlv_items = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF).filter(lambda t: t != TAG_FISCAL_SIGN),
        st.binary(max_size=40),
    ),
    max_size=6,
)


# -- §15.11 ФПД forms ---------------------------------------------------------------------------


def test_fp1_printed_fpd_from_1077() -> None:
    assert fpd_from_1077(bytes.fromhex("2104AA107541")) == 2853205313


def test_fp2_drive_answer_le_is_the_same_integer() -> None:
    from_answer = int.from_bytes(bytes.fromhex("417510AA"), "little")
    assert from_answer == 2853205313 == fpd_from_1077(bytes.fromhex("2104AA107541"))


def test_fp3_printed_fpd_from_1077() -> None:
    assert fpd_from_1077(bytes.fromhex("21041C6B81A4")) == 476807588


def test_fp4_encoding_into_1077() -> None:
    assert tag1077_value(2853205313) == bytes.fromhex("2104AA107541")


@given(st.integers(0, 0xFFFF_FFFF))
def test_1077_round_trip(fpd: int) -> None:
    assert fpd_from_1077(tag1077_value(fpd)) == fpd


@pytest.mark.parametrize("value", [b"", b"\x21\x04\xaa\x10\x75", b"\x21\x04\xaa\x10\x75\x41\x00"])
def test_fpd_from_1077_needs_six_bytes(value: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        fpd_from_1077(value)
    assert info.value.field == "1077"


@pytest.mark.parametrize("fpd", [-1, 2**32, True])
def test_tag1077_value_rejects_non_uint32(fpd: int) -> None:
    with pytest.raises(ValidationError):
        tag1077_value(fpd)


# -- the fiscal sign ----------------------------------------------------------------------------


def test_drive_secret_is_hmac_of_serial_keyed_by_seed() -> None:
    expected = hmac.new(b"seed", SERIAL.encode(), hashlib.sha256).digest()
    assert drive_secret(SERIAL, "seed") == expected
    assert drive_secret(SERIAL, "другое") != drive_secret(SERIAL, "seed")
    assert drive_secret("9999078900012346", "seed") != expected


def test_fiscal_sign_is_the_documented_hmac() -> None:
    doc = b"".join(tlv(tag, value) for tag, value in RECEIPT_BODY)
    digest = hmac.new(
        SECRET, SERIAL.encode() + (42).to_bytes(4, "little") + doc, hashlib.sha256
    ).digest()
    assert fiscal_sign(SECRET, SERIAL, 42, doc) == int.from_bytes(digest[:4], "big")


@given(st.binary(max_size=32), st.integers(0, 0xFFFF_FFFF), st.binary(max_size=200))
def test_fiscal_sign_is_deterministic_and_uint32(secret: bytes, fd: int, doc: bytes) -> None:
    first = fiscal_sign(secret, SERIAL, fd, doc)
    assert first == fiscal_sign(secret, SERIAL, fd, doc)
    assert 0 <= first <= 0xFFFF_FFFF


@given(
    secret=st.binary(min_size=1, max_size=32),
    fd=st.integers(0, 0xFFFF_FFFF),
    doc=st.binary(min_size=1, max_size=200),
    data=st.data(),
)
def test_fiscal_sign_depends_on_every_input(
    secret: bytes, fd: int, doc: bytes, data: st.DataObject
) -> None:
    # A 32-bit sign collides with probability 2**-32 per pair: never in practice.
    base = fiscal_sign(secret, SERIAL, fd, doc)
    # HMAC pads short keys with zeros, so compare keys of the same length (drive secrets are 32).
    same_size = st.binary(min_size=len(secret), max_size=len(secret))
    other_secret = data.draw(same_size.filter(lambda s: s != secret))
    assert fiscal_sign(other_secret, SERIAL, fd, doc) != base
    position = data.draw(st.integers(0, 15))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda c: c != SERIAL[position]))
    other_serial = SERIAL[:position] + digit + SERIAL[position + 1 :]
    assert fiscal_sign(secret, other_serial, fd, doc) != base
    other_fd = data.draw(st.integers(0, 0xFFFF_FFFF).filter(lambda n: n != fd))
    assert fiscal_sign(secret, SERIAL, other_fd, doc) != base
    index = data.draw(st.integers(0, len(doc) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(doc)
    flipped[index] ^= 1 << bit
    assert fiscal_sign(secret, SERIAL, fd, bytes(flipped)) != base
    assert fiscal_sign(secret, SERIAL, fd, doc + b"\x00") != base


@pytest.mark.parametrize("serial", ["999907890001234", "99990789000123456", "99990789000123ё5"])
def test_fiscal_sign_needs_a_16_char_ascii_serial(serial: str) -> None:
    with pytest.raises(ValidationError) as info:
        fiscal_sign(SECRET, serial, 1, b"")
    assert info.value.field == "fn_serial"


@pytest.mark.parametrize("fd", [-1, 2**32])
def test_fiscal_sign_needs_a_uint32_fd_number(fd: int) -> None:
    with pytest.raises(ValidationError) as info:
        fiscal_sign(SECRET, SERIAL, fd, b"")
    assert info.value.field == "fd_number"


def test_message_sign_is_six_bytes_of_hmac() -> None:
    data = bytes(range(50))
    assert message_sign(SECRET, data) == hmac.new(SECRET, data, hashlib.sha256).digest()[:6]
    assert len(message_sign(b"", b"")) == 6
    assert message_sign(SECRET, data + b"\x00") != message_sign(SECRET, data)


# -- strip_tlv and verify_document --------------------------------------------------------------


def test_strip_tlv_removes_every_occurrence_and_returns_the_first() -> None:
    doc = tlv(1012, b"abcd") + tlv(1077, b"first!") + tlv(1040, b"\x01") + tlv(1077, b"second")
    rest, value = strip_tlv(doc, 1077)
    assert rest == tlv(1012, b"abcd") + tlv(1040, b"\x01")
    assert value == b"first!"


def test_strip_tlv_leaves_nested_tags_alone() -> None:
    # 1077 inside an STLV is not top level: the walk must not look inside values.
    doc = tlv(1059, tlv(1077, b"nested")) + tlv(1020, b"\x01")
    assert strip_tlv(doc, 1077) == (doc, None)


def test_strip_tlv_empty() -> None:
    assert strip_tlv(b"", 1077) == (b"", None)


@pytest.mark.parametrize(
    "doc",
    [
        b"\x35",
        b"\x35\x04\x06",
        tlv(1012, b"abcd") + b"\x35\x04\x06\x00\x21\x04",
        tlv(1012, b"abcd")[:-1],
    ],
)
def test_strip_tlv_rejects_truncated_input(doc: bytes) -> None:
    with pytest.raises(ValidationError) as info:
        strip_tlv(doc, 1077)
    assert info.value.field == "document_tlv"


@given(tlv_items, st.integers(0, 6), st.binary(max_size=10))
def test_strip_tlv_round_trip(items: list[tuple[int, bytes]], where: int, value: bytes) -> None:
    others = b"".join(tlv(tag, v) for tag, v in items)
    split = min(where, len(items))
    doc = (
        b"".join(tlv(tag, v) for tag, v in items[:split])
        + tlv(TAG_FISCAL_SIGN, value)
        + b"".join(tlv(tag, v) for tag, v in items[split:])
    )
    assert strip_tlv(doc, TAG_FISCAL_SIGN) == (others, value)
    assert strip_tlv(others, TAG_FISCAL_SIGN) == (others, None)


def test_verify_document_accepts_a_signed_document() -> None:
    doc = signed_document(RECEIPT_BODY)
    assert verify_document(SECRET, SERIAL, 42, doc)


def test_verify_document_checks_serial_number_and_secret() -> None:
    doc = signed_document(RECEIPT_BODY)
    assert not verify_document(SECRET, SERIAL, 43, doc)
    assert not verify_document(SECRET, "9999078900012346", 42, doc)
    assert not verify_document(drive_secret(SERIAL, "other seed"), SERIAL, 42, doc)


def test_verify_document_without_1077_is_false() -> None:
    doc = b"".join(tlv(tag, value) for tag, value in RECEIPT_BODY)
    assert not verify_document(SECRET, SERIAL, 42, doc)


def test_verify_document_detects_every_changed_byte() -> None:
    doc = signed_document(RECEIPT_BODY)
    for index in range(len(doc)):
        for mask in (0x01, 0x80, 0xFF):
            changed = bytearray(doc)
            changed[index] ^= mask
            # ValidationError: the change broke the TLV structure, detected as well.
            with contextlib.suppress(ValidationError):
                assert not verify_document(SECRET, SERIAL, 42, bytes(changed)), (index, mask)


@given(tlv_items, st.integers(0, 0xFFFF_FFFF), st.data())
def test_verify_document_detects_any_changed_byte(
    items: list[tuple[int, bytes]], fd: int, data: st.DataObject
) -> None:
    doc = signed_document(items, fd)
    assert verify_document(SECRET, SERIAL, fd, doc)
    index = data.draw(st.integers(0, len(doc) - 1))
    delta = data.draw(st.integers(1, 255))
    changed = bytearray(doc)
    changed[index] ^= delta
    # ValidationError: the change broke the TLV structure, detected as well.
    with contextlib.suppress(ValidationError):
        assert not verify_document(SECRET, SERIAL, fd, bytes(changed))


# -- §15.12 РНМ ---------------------------------------------------------------------------------


def test_rnm_example_crc_input_and_value() -> None:
    text = "000000000500770220327600000000000000000002"
    assert len(text) == 42
    assert crc16_ccitt(text.encode("ascii")) == 0x217A
    assert f"{0x217A:06d}" == "008570"


def test_rnm_example_check_digits() -> None:
    assert rnm_check_digits("0000000005", "007702203276", "00000000000000000002") == "008570"
    # Short fields are zero-padded on the left to the same string.
    assert rnm_check_digits("5", "7702203276", "2") == "008570"


def test_rnm_example_full_number() -> None:
    assert make_rnm(5, "7702203276", "2") == "0000000005008570"
    assert make_rnm("0000000005", "7702203276", "00000000000000000002") == "0000000005008570"


def test_validate_rnm_accepts_both_forms() -> None:
    assert validate_rnm("0000000005008570", "7702203276", "2")
    assert validate_rnm("0000000005008570    ", "7702203276", "2")


@pytest.mark.parametrize(
    "rnm",
    [
        "0000000005008571",
        "0000000006008570",
        "000000000500857",
        "00000000050085700",
        "0000000005008570   ",
        "    0000000005008570",
        "000000000500857x",
        "",
    ],
)
def test_validate_rnm_rejects_wrong_numbers(rnm: str) -> None:
    assert not validate_rnm(rnm, "7702203276", "2")


def test_validate_rnm_depends_on_inn_and_serial() -> None:
    assert not validate_rnm("0000000005008570", "7704358518", "2")
    assert not validate_rnm("0000000005008570", "7702203276", "3")


@given(st.integers(0, 10**10 - 1), st.from_regex(r"[0-9]{10}|[0-9]{12}", fullmatch=True))
def test_make_rnm_validates(sequence: int, inn: str) -> None:
    rnm = make_rnm(sequence, inn, "0001000000123")
    assert len(rnm) == 16
    assert rnm.isdigit()
    assert validate_rnm(rnm, inn, "0001000000123")
    assert validate_rnm(rnm.ljust(20), inn, "0001000000123")


@pytest.mark.parametrize(
    ("sequence", "inn", "serial", "field"),
    [
        ("12345678901", "7702203276", "2", "sequence"),
        ("", "7702203276", "2", "sequence"),
        ("12a", "7702203276", "2", "sequence"),
        ("5", "7702203276123", "2", "inn"),
        ("5", "77022O3276", "2", "inn"),
        ("5", "７７０２２０３２７６", "2", "inn"),
        ("5", "7702203276", "1" * 21, "kkt_serial"),
        ("5", "7702203276", "AB12", "kkt_serial"),
    ],
)
def test_rnm_rejects_bad_fields(sequence: str, inn: str, serial: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        rnm_check_digits(sequence, inn, serial)
    assert info.value.field == field


@pytest.mark.parametrize("sequence", [-1, 10**10, True])
def test_make_rnm_rejects_bad_sequence_numbers(sequence: int) -> None:
    with pytest.raises(ValidationError):
        make_rnm(sequence, "7702203276", "2")


def test_validate_rnm_rejects_bad_inn() -> None:
    with pytest.raises(ValidationError):
        validate_rnm("0000000005008570", "77022032761234", "2")
    with pytest.raises(ValidationError):
        validate_rnm("bad", "x", "2")


# -- ИНН ----------------------------------------------------------------------------------------

KNOWN_GOOD_INNS = [
    "7702203276",  # the shipped profiles' user
    "7704358518",  # the shipped profiles' OFD
    "7707083893",
    "7736207543",
    "7830002293",
    "500100732259",  # 12-digit personal ИНН
]


@pytest.mark.parametrize("inn", KNOWN_GOOD_INNS)
def test_known_inns_are_valid(inn: str) -> None:
    assert inn_is_valid(inn)


@pytest.mark.parametrize("inn", KNOWN_GOOD_INNS)
def test_every_single_digit_change_is_caught(inn: str) -> None:
    # The last digit is a pure function of the others, so every change of it is caught; other
    # positions are caught unless the weighted sum happens to land on the same residue.
    for digit in "0123456789":
        if digit != inn[-1]:
            assert not inn_is_valid(inn[:-1] + digit)
    caught = 0
    for position in range(len(inn) - 1):
        for digit in "0123456789":
            if digit != inn[position]:
                caught += not inn_is_valid(inn[:position] + digit + inn[position + 1 :])
    assert caught >= 0.8 * 9 * (len(inn) - 1)


def test_shipped_profile_inns_are_valid() -> None:
    for name in list_profiles():
        registration = load_profile(name).registration
        assert inn_is_valid(registration.inn), (name, registration.inn)
        assert inn_is_valid(registration.ofd_inn), (name, registration.ofd_inn)


@pytest.mark.parametrize(
    "inn",
    [
        "",
        "770220327",
        "77022032760",
        "7702203277",
        "770220327a",
        "７７０２２０３２７６",
        "500100732258",
    ],
)
def test_malformed_inns_are_invalid(inn: str) -> None:
    assert not inn_is_valid(inn)


def test_make_inn_examples() -> None:
    assert make_inn("770220327") == "7702203276"
    assert make_inn("5001007322") == "500100732259"
    assert make_inn("50010073225") == "500100732259"


@given(st.from_regex(r"[0-9]{9,10}", fullmatch=True))
def test_make_inn_is_valid(prefix: str) -> None:
    inn = make_inn(prefix)
    assert inn.startswith(prefix)
    assert len(inn) == (10 if len(prefix) == 9 else 12)
    assert inn_is_valid(inn)


@pytest.mark.parametrize("prefix", ["", "12345678", "123456789012", "12345678a", "50010073224"])
def test_make_inn_rejects_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValidationError):
        make_inn(prefix)


# -- §15.13 QR ----------------------------------------------------------------------------------

Q01 = "t=20150720T1638&s=9999999.00&fn=000110000105&i=12345678&fp=123456&n=2"
Q02 = "t=20190418T211655&s=3943.26&fn=9282000100072197&i=64318&fp=2918241905&n=1"
Q03 = "t=20240305T1407&s=123.45&fn=9999078900012345&i=42&fp=2853205313&n=1"


def test_q01_official_example() -> None:
    assert parse_qr(Q01) == {
        "when": datetime(2015, 7, 20, 16, 38),  # noqa: DTZ001 - QR times carry no zone
        "total_kopecks": 999999900,
        "fn_serial": "000110000105",
        "fd_number": 12345678,
        "fpd": 123456,
        "operation": 2,
        "seconds": False,
    }


def test_q02_real_world_with_seconds() -> None:
    assert parse_qr(Q02) == {
        "when": datetime(2019, 4, 18, 21, 16, 55),  # noqa: DTZ001 - QR times carry no zone
        "total_kopecks": 394326,
        "fn_serial": "9282000100072197",
        "fd_number": 64318,
        "fpd": 2918241905,
        "operation": 1,
        "seconds": True,
    }


def test_q03_parse() -> None:
    assert parse_qr(Q03) == {
        "when": datetime(2024, 3, 5, 14, 7),  # noqa: DTZ001 - QR times carry no zone
        "total_kopecks": 12345,
        "fn_serial": SERIAL,
        "fd_number": 42,
        "fpd": 2853205313,
        "operation": 1,
        "seconds": False,
    }


def test_q03_built_from_f16_a04_a05() -> None:
    # F16: 2024-03-05 14:07, приход, 12345 коп; A04: FD 42, ФПД 41 75 10 AA (LE); A05: ФН serial.
    fpd = int.from_bytes(bytes.fromhex("417510AA"), "little")
    when = datetime(2024, 3, 5, 14, 7, tzinfo=timezone(timedelta(hours=3)))
    assert receipt_qr(when, 12345, SERIAL, 42, fpd, 1) == Q03


@pytest.mark.parametrize("text", [Q01, Q02, Q03])
def test_qr_rebuilds_byte_for_byte(text: str) -> None:
    assert receipt_qr(**cast("dict[str, Any]", parse_qr(text))) == text


def test_qr_seconds_and_small_sums() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert receipt_qr(when, 5, SERIAL, 1, 0, 4, seconds=True) == (
        f"t=20240102T030405&s=0.05&fn={SERIAL}&i=1&fp=0&n=4"
    )


def test_qr_fields_in_another_order_and_short_sums() -> None:
    parsed = parse_qr("n=1&fp=7&i=3&fn=123&s=100.5&t=20240305T1407")
    assert parsed["total_kopecks"] == 10050
    assert parse_qr("t=20240305T1407&s=100&fn=123&i=3&fp=7&n=1")["total_kopecks"] == 10000


@given(
    when=st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)),  # noqa: DTZ001 - QR times carry no zone
    total=st.integers(0, 10**12),
    serial=st.from_regex(r"[0-9]{1,16}", fullmatch=True),
    fd=st.integers(0, 0xFFFF_FFFF),
    fpd=st.integers(0, 0xFFFF_FFFF),
    operation=st.integers(1, 4),
    seconds=st.booleans(),
)
def test_qr_round_trip(  # noqa: PLR0917 - hypothesis passes one argument per field
    when: datetime, total: int, serial: str, fd: int, fpd: int, operation: int, seconds: bool
) -> None:
    when = when.replace(microsecond=0, second=when.second if seconds else 0)
    text = receipt_qr(when, total, serial, fd, fpd, operation, seconds=seconds)
    assert parse_qr(text) == {
        "when": when,
        "total_kopecks": total,
        "fn_serial": serial,
        "fd_number": fd,
        "fpd": fpd,
        "operation": operation,
        "seconds": seconds,
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        Q03.replace("&n=1", ""),
        Q03 + "&n=1",
        Q03 + "&x=1",
        Q03.replace("n=1", "n=5"),
        Q03.replace("n=1", "n=0"),
        Q03.replace("T1407", "1407"),
        Q03.replace("T1407", "T2560"),
        Q03.replace("20240305", "20240230"),
        Q03.replace("T1407", "T14071"),
        Q03.replace("s=123.45", "s=123.456"),
        Q03.replace("s=123.45", "s=-1.00"),
        Q03.replace("s=123.45", "s=1,00"),
        Q03.replace("s=123.45", "s="),
        Q03.replace("i=42", "i=4x"),
        Q03.replace("i=42", "i=٤٢"),
        Q03.replace("fp=2853205313", "fp=4294967296"),
        Q03.replace(SERIAL, SERIAL + "0"),
        Q03.replace(SERIAL, ""),
        Q03.replace("&", "&&", 1),
        "https://example.com/?" + Q03,
    ],
)
def test_parse_qr_rejects_malformed(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_qr(text)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"total_kopecks": -1}, "total_kopecks"),
        ({"fn_serial": "99990789000123456"}, "fn_serial"),
        ({"fn_serial": "ABC"}, "fn_serial"),
        ({"fd_number": 2**32}, "fd_number"),
        ({"fpd": -1}, "fpd"),
        ({"operation": 0}, "operation"),
        ({"operation": 5}, "operation"),
    ],
)
def test_receipt_qr_rejects_bad_values(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "when": datetime(2024, 3, 5, 14, 7, tzinfo=UTC),
        "total_kopecks": 12345,
        "fn_serial": SERIAL,
        "fd_number": 42,
        "fpd": 1,
        "operation": 1,
    }
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        receipt_qr(**args)
    assert info.value.field == field
