"""Golden vectors: TLV values, item STLV, session headers (fn-protocol.md §15.5, §15.6, §15.7).

Every expected byte string is copied from the spec, never computed by the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from kkt_emulator.fn.container import SessionHeader
from kkt_emulator.fn.frame import decode_frame
from kkt_emulator.fn.tlv import (
    Tlv,
    decode_fvln,
    decode_string,
    decode_tree,
    decode_unixtime,
    decode_value,
    decode_vln,
    encode_fvln,
    encode_string,
    encode_tlv,
    encode_unixtime,
    encode_vln,
    parse_tlvs,
    tlv_byte,
    tlv_fvln,
    tlv_stlv,
    tlv_string,
    tlv_vln,
    tree_to_json,
    validate_value,
)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


# --- §15.5 TLV value encodings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "raw", "value", "max_len"),
    [
        ("T01", "E9 2D 06", 404969, 8),
        ("T02", "31 04 00 01 F0 4F", 87892227523633, 6),
        ("T10", "C6 11", 4550, 6),
        ("T11", "A0 86 01", 100000, 6),
    ],
)
def test_vln(vector: str, raw: str, value: int, max_len: int) -> None:
    assert decode_vln(_hex(raw)) == value, vector
    assert encode_vln(value, max_len) == _hex(raw), vector


@pytest.mark.parametrize(
    ("vector", "raw", "value"),
    [
        ("T03", "02 15 CD 5B 07", "1234567.89"),
        ("T07", "03 E8 03", "1.000"),
        ("T08", "01 19", "2.5"),
        ("T09", "03 63 01", "0.355"),
    ],
)
def test_fvln(vector: str, raw: str, value: str) -> None:
    decoded = decode_fvln(_hex(raw))
    assert decoded == Decimal(value), vector
    assert str(decoded) == value, vector  # the number of places survives
    assert encode_fvln(Decimal(value)) == _hex(raw), vector


def test_fvln_8_byte_form_t04() -> None:
    # yandex/ofd's padded form decodes; the emulator writes the minimal form (fn-protocol.md §10.2).
    assert decode_fvln(_hex("02 D7 37 02 00 00 00 00")) == Decimal("1453.67")
    assert str(decode_fvln(_hex("02 D7 37 02 00 00 00 00"))) == "1453.67"
    validate_value(1023, _hex("02 D7 37 02 00 00 00 00"))


@pytest.mark.parametrize(
    ("vector", "raw", "seconds", "moment"),
    [
        ("T05", "8A 02 9E 55", 1436418698, datetime(2015, 7, 9, 5, 11, 38, tzinfo=UTC)),
        ("T16", "98 55 B9 58", 1488541080, datetime(2017, 3, 3, 11, 38, tzinfo=UTC)),
        ("T17", "28 54 0E 57", 1460556840, datetime(2016, 4, 13, 14, 14, tzinfo=UTC)),
    ],
)
def test_unixtime(vector: str, raw: str, seconds: int, moment: datetime) -> None:
    decoded = decode_unixtime(_hex(raw))
    assert decoded == moment, vector
    assert decoded.timestamp() == seconds, vector
    assert encode_unixtime(moment) == _hex(raw), vector


@pytest.mark.parametrize(
    ("vector", "raw", "text"),
    [("T06", "92 A5 E1 E2", "Тест"), ("T12", "95 AB A5 A1", "Хлеб")],
)
def test_cp866_string(vector: str, raw: str, text: str) -> None:
    assert decode_string(_hex(raw)) == text, vector
    assert encode_string(text) == _hex(raw), vector


def test_tag_on_the_wire_t13() -> None:
    assert encode_tlv(1059, b"")[:2] == _hex("23 04")
    assert parse_tlvs(_hex("23 04 00 00")) == [Tlv(1059, b"")]


@pytest.mark.parametrize(
    ("vector", "raw", "printed"),
    [("T14", "21 04 AA 10 75 41", 2853205313), ("T15", "21 04 1C 6B 81 A4", 476807588)],
)
def test_tag_1077(vector: str, raw: str, printed: int) -> None:
    value = decode_value(1077, _hex(raw))
    assert value == _hex(raw), vector
    validate_value(1077, _hex(raw))
    (node,) = decode_tree(encode_tlv(1077, _hex(raw)))
    assert node.name == "ФПД"
    assert int.from_bytes(node.raw[2:6], "big") == printed, vector


# --- §15.6 the item STLV of the 07h frame ------------------------------------------------------

FRAME_15_6 = _hex(
    "04 2F 00 07 23 04 2A 00 06 04 04 00 95 AB A5 A1 37 04 02 00 C6 11 FF 03 03 00 03 E8 03"
    "13 04 02 00 C6 11 AF 04 01 00 01 BC 04 01 00 01 BE 04 01 00 04 6E C9"
)
ITEM_15_6 = FRAME_15_6[4:-2]


def test_item_stlv_is_the_frame_data() -> None:
    assert len(FRAME_15_6) == 52
    assert len(ITEM_15_6) == 46
    frame = decode_frame(FRAME_15_6)
    assert frame.code == 0x07
    assert frame.data == ITEM_15_6


def test_item_stlv_decodes_tag_by_tag() -> None:
    (item,) = parse_tlvs(ITEM_15_6)
    assert (item.tag, len(item.value)) == (1059, 42)
    children = item.children()
    assert [(c.tag, c.value) for c in children] == [
        (1030, _hex("95 AB A5 A1")),
        (1079, _hex("C6 11")),
        (1023, _hex("03 E8 03")),
        (1043, _hex("C6 11")),
        (1199, _hex("01")),
        (1212, _hex("01")),
        (1214, _hex("04")),
    ]
    decoded = [decode_value(c.tag, c.value) for c in children]
    assert decoded == ["Хлеб", 4550, Decimal("1.000"), 4550, 1, 1, 4]
    assert str(decoded[2]) == "1.000"
    validate_value(1059, item.value)


def test_item_stlv_reencodes_byte_identically() -> None:
    (item,) = parse_tlvs(ITEM_15_6)
    assert item.encode() == ITEM_15_6
    assert tlv_stlv(1059, [child.encode() for child in item.children()]) == ITEM_15_6
    built = tlv_stlv(
        1059,
        [
            tlv_string(1030, "Хлеб"),
            tlv_vln(1079, 4550),
            tlv_fvln(1023, Decimal("1.000")),
            tlv_vln(1043, 4550),
            tlv_byte(1199, 1),
            tlv_byte(1212, 1),
            tlv_byte(1214, 4),
        ],
    )
    assert built == ITEM_15_6


def test_item_stlv_as_json() -> None:
    (item,) = tree_to_json(decode_tree(ITEM_15_6))
    assert (item["tag"], item["name"], item["type"], item["length"]) == (
        1059,
        "предмет расчета",
        "stlv",
        42,
    )
    assert [(c["tag"], c["value"]) for c in item["children"]] == [
        (1030, "Хлеб"),
        (1079, 4550),
        (1023, "1.000"),
        (1043, 4550),
        (1199, 1),
        (1212, 1),
        (1214, 4),
    ]


# --- §15.7 session headers ---------------------------------------------------------------------

S01 = _hex(
    "2A 08 41 0A 81 A2 00 01 39 39 39 39 30 37 38 39 30 30 30 30 35 34 38 38 B4 01 14 00 00 00"
)
S02 = _hex(
    "2A 08 41 0A 81 A2 00 01 39 39 39 39 30 37 38 39 35 30 20 20 20 20 20 20 31 01 14 00 00 00"
)


@pytest.mark.parametrize(
    ("raw", "serial", "length"), [(S01, "9999078900005488", 436), (S02, "9999078950", 305)]
)
def test_session_headers(raw: bytes, serial: str, length: int) -> None:
    header = SessionHeader.decode(raw)
    assert header.signature == _hex("2A 08 41 0A")
    assert header.s_version == _hex("81 A2")
    assert header.a_version == _hex("00 01")
    assert header.fn_serial == serial
    assert header.body_length == length
    assert header.flags == 0x0014
    assert header.crc == 0
    assert header.encode() == raw
