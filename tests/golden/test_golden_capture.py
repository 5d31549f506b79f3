"""Golden captures of fn-protocol.md §15.9 and §15.10, parsed tag by tag; §15.1 C03/C04; §15.8 H/R.

The expected values are copied from the spec's tables; the hex dumps are copied from the spec too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kkt_emulator.fn.container import Container, SessionHeader, container_crc
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.tlv import decode_tree, decode_value, parse_tlvs, tree_to_json, validate_value

CAPTURE_FILE = Path(__file__).parent / "ofd-registration-change-fn1.bin"


def _dump(text: str) -> bytes:
    """Bytes of a spec hex dump: an offset column, then up to 16 hex pairs per line."""
    return bytes.fromhex("".join(line[6:] for line in text.strip().splitlines()))


# fn-protocol.md §15.9 (captured, yandex/ofd tests/example_test.py).
DUMP_15_9 = _dump(
    """
0000  2A 08 41 0A 81 A2 00 01 39 39 39 39 30 37 38 39
0010  30 30 30 30 35 34 38 38 B4 01 14 00 00 00 B4 01
0020  25 78 A5 0B 01 10 09 99 99 07 89 00 00 54 88 00
0030  00 01 84 EC 4C 14 C2 00 00 01 00 04 01 8A 0B 00
0040  86 01 11 04 10 00 39 39 39 39 30 37 38 39 30 30
0050  30 30 35 34 38 38 0D 04 14 00 30 30 30 30 30 30
0060  30 30 30 35 30 30 38 35 37 30 20 20 20 20 FA 03
0070  0C 00 37 37 30 32 32 30 33 32 37 36 20 20 10 04
0080  04 00 01 00 00 00 F4 03 04 00 98 55 B9 58 35 04
0090  06 00 21 04 AA 10 75 41 20 04 01 00 00 EA 03 01
00A0  00 00 E9 03 01 00 00 55 04 01 00 01 56 04 01 00
00B0  00 54 04 01 00 00 26 04 01 00 06 4D 04 01 00 01
00C0  F5 03 0C 00 30 30 30 30 30 30 30 30 30 30 30 32
00D0  18 04 11 00 8E 8E 8E 20 90 80 8F 8A 80 92 2D E6
00E0  A5 AD E2 E0 20 F1 03 30 00 31 31 31 31 34 31 20
00F0  A3 2E 8C AE E1 AA A2 A0 2C 20 E3 AB 2E 20 8A E3
0100  E1 AA AE A2 E1 AA A0 EF 20 A4 2E 32 30 80 20 AE
0110  E4 A8 E1 20 82 2D 32 30 32 F9 03 0C 00 37 37 30
0120  34 33 35 38 35 31 38 20 20 24 04 08 00 6E 61 6C
0130  6F 67 2E 72 75 5D 04 13 00 65 78 61 6D 70 6C 65
0140  40 65 78 61 6D 70 6C 65 2E 63 6F 6D FD 03 0A 00
0150  98 A5 AD AD AE AD 20 8A 2E 20 16 04 0A 00 4F 4F
0160  4F 20 54 41 58 43 4F 4D A5 04 01 00 02 B9 04 01
0170  00 02 A4 04 03 00 32 2E 30 A3 04 31 00 31 31 31
0180  31 34 31 20 A3 2E 8C AE E1 AA A2 A0 2C 20 E3 AB
0190  2E 20 8A E3 E1 AA AE A2 E1 AA A0 EF 0D 0A A4 2E
01A0  32 30 80 20 AE E4 A8 E1 20 82 2D 32 30 32 B3 04
01B0  0C 00 37 37 31 32 33 34 35 36 37 38 39 30 C5 04
01C0  01 00 00 B7 04 01 00 01 81 06 A5 5A E1 0C 4D 75
01D0  00 00
"""
)

# fn-protocol.md §15.10 (captured, yandex/ofd tests/ofd_test.py).
DUMP_15_10 = _dump(
    """
0000  31 01 03 EC A5 01 01 10 09 99 99 07 89 12 34 56
0010  7F 00 00 01 00 23 09 82 C4 00 00 01 00 02 01 07
0020  01 00 03 01 11 04 10 00 39 39 39 39 30 37 38 39
0030  31 32 33 34 35 36 37 20 0D 04 14 00 31 32 30 30
0040  30 30 31 33 30 30 30 30 20 20 20 20 20 20 20 20
0050  FA 03 0C 00 31 31 32 32 33 33 34 34 35 35 36 36
0060  10 04 04 00 01 00 00 00 F4 03 04 00 28 54 0E 57
0070  35 04 06 00 21 04 1C 6B 81 A4 E9 03 01 00 00 EA
0080  03 01 00 00 20 04 01 00 00 26 04 01 00 01 18 04
0090  09 00 8E 8E 8E 20 22 8C 8C 8C 22 21 04 01 00 00
00A0  22 04 01 00 00 F1 03 26 00 8C AE E1 AA A2 A0 2C
00B0  20 87 A5 AB A5 AD EB A9 20 AF E0 AE E1 AF A5 AA
00C0  E2 2C 20 A4 2E 36 36 20 AA AE E0 AF 2E 20 32 16
00D0  04 08 00 8E 94 84 2D E2 A5 E1 E2 25 04 0A 00 77
00E0  77 77 2E 6F 66 64 2E 72 75 24 04 0C 00 77 77 77
00F0  2E 6E 61 6C 6F 67 2E 72 75 19 04 06 00 31 31 31
0100  32 33 34 FD 03 12 00 91 88 91 2E 20 80 84 8C 88
0110  8D 88 91 92 90 80 92 8E 90 F5 03 0A 00 30 36 32
0120  30 30 30 30 30 30 31 81 06 73 FC A3 4B 28 72 00
0130  00
"""
)

# fn-protocol.md §15.9 body table: tag, length, decoded value, in order.
EXPECTED_15_9: list[tuple[int, int, object]] = [
    (1041, 16, "9999078900005488"),
    (1037, 20, "0000000005008570    "),
    (1018, 12, "7702203276  "),
    (1040, 4, 1),
    (1012, 4, datetime(2017, 3, 3, 11, 38, tzinfo=UTC)),
    (1077, 6, bytes.fromhex("21 04 AA 10 75 41")),
    (1056, 1, 0),
    (1002, 1, 0),
    (1001, 1, 0),
    (1109, 1, 1),
    (1110, 1, 0),
    (1108, 1, 0),
    (1062, 1, 6),
    (1101, 1, 1),
    (1013, 12, "000000000002"),
    (1048, 17, "ООО РАПКАТ-центр "),
    (1009, 48, "111141 г.Москва, ул. Кусковская д.20А офис В-202"),
    (1017, 12, "7704358518  "),
    (1060, 8, "nalog.ru"),
    (1117, 19, "example@example.com"),
    (1021, 10, "Шеннон К. "),
    (1046, 10, "OOO TAXCOM"),
    (1189, 1, 2),
    (1209, 1, 2),
    (1188, 3, "2.0"),
    (1187, 49, "111141 г.Москва, ул. Кусковская\r\nд.20А офис В-202"),
    (1203, 12, "771234567890"),
    (1221, 1, 0),
    (1207, 1, 1),
]

# fn-protocol.md §15.10 body list, in order (lengths read off the dump).
EXPECTED_15_10: list[tuple[int, int, object]] = [
    (1041, 16, "999907891234567 "),
    (1037, 20, "120000130000        "),
    (1018, 12, "112233445566"),
    (1040, 4, 1),
    (1012, 4, datetime(2016, 4, 13, 14, 14, tzinfo=UTC)),
    (1077, 6, bytes.fromhex("21 04 1C 6B 81 A4")),
    (1001, 1, 0),
    (1002, 1, 0),
    (1056, 1, 0),
    (1062, 1, 1),
    (1048, 9, 'ООО "МММ"'),
    (1057, 1, 0),
    (1058, 1, 0),
    (1009, 38, "Москва, Зеленый проспект, д.66 корп. 2"),
    (1046, 8, "ОФД-тест"),
    (1061, 10, "www.ofd.ru"),
    (1060, 12, "www.nalog.ru"),
    (1049, 6, "111234"),
    (1021, 18, "СИС. АДМИНИСТРАТОР"),
    (1013, 10, "0620000001"),
]

H01 = bytes.fromhex(
    "B4 01 25 78 A5 0B 01 10 09 99 99 07 89 00 00 54 88 00 00 01 84 EC 4C 14 C2 00 00 01 00 04 01 8A"
)
H02 = bytes.fromhex(
    "31 01 03 EC A5 01 01 10 09 99 99 07 89 12 34 56 7F 00 00 01 00 23 09 82 C4 00 00 01 00 02 01 07"
)
R01 = bytes.fromhex("81 06 A5 5A E1 0C 4D 75 00 00")
R02 = bytes.fromhex("81 06 73 FC A3 4B 28 72 00 00")
S01 = bytes.fromhex(
    "2A 08 41 0A 81 A2 00 01 39 39 39 39 30 37 38 39 30 30 30 30 35 34 38 38 B4 01 14 00 00 00"
)


def test_capture_file_is_the_spec_dump() -> None:
    raw = CAPTURE_FILE.read_bytes()
    assert len(raw) == 466
    assert raw == DUMP_15_9
    assert len(DUMP_15_10) == 305


def test_capture_layers() -> None:
    raw = CAPTURE_FILE.read_bytes()
    assert raw[:30] == S01
    header = SessionHeader.decode(raw[:30])
    assert (header.fn_serial, header.body_length, header.flags, header.crc) == (
        "9999078900005488",
        436,
        0x0014,
        0,
    )
    assert header.a_version == bytes.fromhex("00 01")
    container_raw = raw[30:]
    assert len(container_raw) == header.body_length
    assert container_raw[:32] == H01
    container = Container.parse(container_raw)
    assert container.crc == 0x7825
    assert container.body[:4] == bytes.fromhex("0B 00 86 01")  # STLV tag 11, length 390
    assert container.trailer == R01
    assert len(parse_tlvs(container.document_value)) == 29


def test_container_crcs_c03_c04() -> None:
    c03 = DUMP_15_9[0x1E:]
    assert container_crc(c03) == 0x7825
    assert c03[2:4] == bytes.fromhex("25 78")
    assert crc16_ccitt(c03[0:2] + c03[4:]) == 0x7825
    assert container_crc(DUMP_15_10) == 60419  # 0xEC03
    assert DUMP_15_10[2:4] == bytes.fromhex("03 EC")


@pytest.mark.parametrize(
    ("raw", "header", "expected"),
    [
        (
            DUMP_15_9[0x1E:],
            H01,
            (436, 0x7825, 0xA5, 11, 1, "1009", "9999078900005488", 1, "84EC4C14C20000010004018A"),
        ),
        (
            DUMP_15_10,
            H02,
            (305, 0xEC03, 0xA5, 1, 1, "1009", "999907891234567", 1, "00230982C400000100020107"),
        ),
    ],
)
def test_container_headers_h01_h02(
    raw: bytes, header: bytes, expected: tuple[int, int, int, int, int, str, str, int, str]
) -> None:
    assert raw[:32] == header
    c = Container.parse(raw)
    length, crc, msg_type, doc_code, version, svc1, serial, fd, svc2 = expected
    assert (c.length, c.crc, c.msg_type, c.doc_code, c.version) == (
        length,
        crc,
        msg_type,
        doc_code,
        version,
    )
    assert c.svc1 == bytes.fromhex(svc1)
    assert c.fn_serial == serial
    assert c.fd_number == fd
    assert c.svc2 == bytes.fromhex(svc2)


def _check_body(
    body: bytes, tag: int, length: int, expected: list[tuple[int, int, object]]
) -> None:
    assert int.from_bytes(body[0:2], "little") == tag
    assert int.from_bytes(body[2:4], "little") == length == len(body) - 4
    tlvs = parse_tlvs(body[4:])
    assert [(t.tag, len(t.value)) for t in tlvs] == [(tag, size) for tag, size, _ in expected]
    for tlv, (number, _, value) in zip(tlvs, expected, strict=True):
        assert decode_value(tlv.tag, tlv.value) == value, number


def test_capture_15_9_tag_by_tag() -> None:
    container = Container.parse(CAPTURE_FILE.read_bytes()[30:])
    _check_body(container.body, 11, 390, EXPECTED_15_9)


def test_capture_15_10_tag_by_tag() -> None:
    container = Container.parse(DUMP_15_10)
    assert container.trailer == R02
    _check_body(container.body, 1, 259, EXPECTED_15_10)


def test_capture_1187_keeps_cr_lf() -> None:
    container = Container.parse(CAPTURE_FILE.read_bytes()[30:])
    (root,) = decode_tree(container.body)
    place = next(node for node in root.children if node.tag == 1187)
    assert place.value == "111141 г.Москва, ул. Кусковская\r\nд.20А офис В-202"
    assert b"\x0d\x0a" in place.raw


def test_captures_decode_and_validate_cleanly() -> None:
    for raw in (CAPTURE_FILE.read_bytes()[30:], DUMP_15_10):
        container = Container.parse(raw)
        (root,) = tree_to_json(decode_tree(container.body))
        assert "error" not in root
        assert all("error" not in child for child in root["children"])
        for tlv in parse_tlvs(container.document_value):
            validate_value(tlv.tag, tlv.value)
