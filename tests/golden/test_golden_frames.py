"""Golden frame vectors of fn-protocol.md §2.4, §15.1–§15.4 and §15.6, as literal bytes."""

from __future__ import annotations

import binascii
from datetime import date, datetime

import pytest

from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.frame import Frame, decode_frame, encode_frame


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_c01_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1
    assert binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1


def test_c02_status_request_crc() -> None:
    assert crc16_ccitt(h("01 00 30")) == 0xCDFF


def test_c05_rnm_input_crc() -> None:
    assert crc16_ccitt(b"000000000500770220327600000000000000000002") == 0x217A


# (id, bytes, command/answer code, data)
REQUESTS = [
    ("F01", "04 01 00 30 FF CD", 0x30, ""),
    ("F02", "04 01 00 02 EE DB", 0x02, ""),
    ("F03", "04 01 00 31 DE DD", 0x31, ""),
    ("F04", "04 01 00 32 BD ED", 0x32, ""),
    ("F05", "04 01 00 33 9C FD", 0x33, ""),
    ("F06", "04 01 00 10 9D E9", 0x10, ""),
    ("F07", "04 01 00 20 CE DF", 0x20, ""),
    ("F08", "04 01 00 06 6A 9B", 0x06, ""),
    ("F09", "04 02 00 21 01 5E 4C", 0x21, "01"),
    ("F10", "04 01 00 22 8C FF", 0x22, ""),
    ("F11", "04 05 00 23 00 00 00 04 8B 2E", 0x23, "00 00 00 04"),
    ("F12", "04 01 00 25 6B 8F", 0x25, ""),
    ("F13", "04 05 00 40 01 00 00 00 B5 EF", 0x40, "01 00 00 00"),
    ("F14", "04 06 00 11 18 03 05 09 00 12 22", 0x11, "18 03 05 09 00"),
    ("F15", "04 06 00 15 18 03 05 0E 07 C3 CD", 0x15, "18 03 05 0E 07"),
    (
        "F16",
        "04 0C 00 16 18 03 05 0E 07 01 39 30 00 00 00 F4 F8",
        0x16,
        "18 03 05 0E 07 01 39 30 00 00 00",
    ),
    ("F17", "04 03 00 A2 00 04 A6 6C", 0xA2, "00 04"),
    ("F18", "04 02 00 60 16 75 10", 0x60, "16"),
    (
        "F19",
        (
            "04 2F 00 07 23 04 2A 00 06 04 04 00 95 AB A5 A1 37 04 02 00 C6 11 FF 03 03 00 03 E8 03"
            " 13 04 02 00 C6 11 AF 04 01 00 01 BC 04 01 00 01 BE 04 01 00 04 6E C9"
        ),
        0x07,
        (
            "23 04 2A 00 06 04 04 00 95 AB A5 A1 37 04 02 00 C6 11 FF 03 03 00 03 E8 03"
            " 13 04 02 00 C6 11 AF 04 01 00 01 BC 04 01 00 01 BE 04 01 00 04"
        ),
    ),
    ("A01", "04 01 00 00 AC FB", 0x00, ""),
    ("A02", "04 01 00 02 EE DB", 0x02, ""),
    ("A03", "04 01 00 82 66 4A", 0x82, ""),
    (
        "A04",
        "04 0B 00 00 05 00 2A 00 00 00 41 75 10 AA 94 F8",
        0x00,
        "05 00 2A 00 00 00 41 75 10 AA",
    ),
    (
        "A05",
        (
            "04 1F 00 00 03 00 00 01 00 18 03 05 0E 07 39 39 39 39 30 37 38 39 30 30 30 31 32 33 34 35"
            " 2A 00 00 00 4B 4D"
        ),
        0x00,
        "03 00 00 01 00 18 03 05 0E 07 39 39 39 39 30 37 38 39 30 30 30 31 32 33 34 35 2A 00 00 00",
    ),
]


@pytest.mark.parametrize(("vid", "wire", "code", "data"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_frames_encode_and_decode(vid: str, wire: str, code: int, data: str) -> None:
    assert encode_frame(code, h(data)) == h(wire), vid
    assert decode_frame(h(wire)) == Frame(code, h(data)), vid


def test_f19_length_is_47_and_total_52_bytes() -> None:
    wire = h(REQUESTS[18][1])
    assert len(wire) == 52
    assert int.from_bytes(wire[1:3], "little") == 47


def test_a03_warning_bit() -> None:
    frame = decode_frame(h("04 01 00 82 66 4A"))
    assert frame.warning
    assert frame.result == ResultCode.WRONG_STATE
    assert not decode_frame(h("04 01 00 02 EE DB")).warning


def test_f14_f15_f16_decode_fields() -> None:
    f14 = cmd.parse_request(0x11, h("18 03 05 09 00"))
    assert f14.when == datetime(2024, 3, 5, 9, 0)  # noqa: DTZ001 - drive wall time
    f16 = cmd.parse_request(0x16, h("18 03 05 0E 07 01 39 30 00 00 00"))
    assert (f16.when, f16.operation, f16.total) == (datetime(2024, 3, 5, 14, 7), 1, 12345)  # noqa: DTZ001
    assert cmd.build_request(0x16, when=datetime(2024, 3, 5, 14, 7), operation=1, total=12345) == h(  # noqa: DTZ001
        "18 03 05 0E 07 01 39 30 00 00 00"
    )


def test_f09_f11_f13_f17_f18_fields() -> None:
    assert cmd.parse_request(0x21, h("01")).connected == 1
    f11 = cmd.parse_request(0x23, h("00 00 00 04"))
    assert (f11.offset, f11.length) == (0, 1024)
    assert cmd.parse_request(0x40, h("01 00 00 00")).fd == 1
    f17 = cmd.parse_request(0xA2, h("00 04"))
    assert (f17.report_type, f17.ffd) == (0, 4)
    assert cmd.parse_request(0x60, h("16")).code == 0x16
    assert cmd.parse_request(0x02, b"").report_type is None


def test_a04_receipt_answer_fields() -> None:
    a04 = cmd.parse_answer(Command.FINISH_RECEIPT, h("05 00 2A 00 00 00 41 75 10 AA"))
    assert (a04.receipt_number, a04.fd, a04.fpd) == (5, 42, 2853205313)


def test_a05_status_answer_fields() -> None:
    data = decode_frame(h(REQUESTS[-1][1])).data
    a05 = cmd.parse_answer(Command.STATUS, data)
    assert a05.phase == 3
    assert a05.current_document == 0
    assert a05.document_data == 0
    assert a05.shift_open == 1
    assert a05.warnings == 0
    assert a05.last_document_time == datetime(2024, 3, 5, 14, 7)  # noqa: DTZ001 - drive wall time
    assert a05.serial == "9999078900012345"
    assert a05.last_fd == 42
    assert (
        cmd.build_answer(Command.STATUS, **{k: v for k, v in a05.items() if not k.startswith("_")})
        == data
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0F 07 14 12 21", datetime(2015, 7, 20, 18, 33)),  # noqa: DTZ001 - P01
        ("15 01 01 00 00", datetime(2021, 1, 1, 0, 0)),  # noqa: DTZ001 - P05
        ("18 03 05 0E 07", datetime(2024, 3, 5, 14, 7)),  # noqa: DTZ001 - P06
    ],
)
def test_p_datetime(raw: str, expected: datetime) -> None:
    assert cmd.decode_datetime(h(raw)) == expected
    assert cmd.encode_datetime(expected) == h(raw)


def test_p02_date_p03_uint16_p07_uint40() -> None:
    assert cmd.Date.parse(h("0F 07 14")) == date(2015, 7, 20)
    assert cmd.Date.build(date(2015, 7, 20)) == h("0F 07 14")
    assert int.from_bytes(h("D2 04"), "little") == 1234
    assert cmd.Int40ul.parse(h("39 30 00 00 00")) == 12345
    assert cmd.Int40ul.build(12345) == h("39 30 00 00 00")
