"""The stand-in's packed acknowledgement is byte for byte what the general TLV encoders give."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.container import build_container
from kkt_emulator.fn.tlv import encode_tlv
from kkt_emulator.ofd.ack import _OFD_SIGN_KEY, _general_body, build_ack

WHEN = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)


def general(serial: str, fd: int, inn: str, *, ffd: str, code: int, flags: int) -> bytes:
    body = b"".join(_general_body(serial, fd, inn, WHEN, ffd=ffd, code=code, flags=flags))
    stlv = encode_tlv(DocCode.OPERATOR_ACK, body)
    return build_container(DocCode.OPERATOR_ACK, serial, fd, stlv, _OFD_SIGN_KEY)


DRIVES = [("9999078900005488", "7704358518"), ("9287440300", "770435851800")]
ANSWERS = [(1, 0, 0), (0xFFFFFF, 14, 2), (70000, 11, 255)]


@pytest.mark.parametrize("ffd", ["1.05", "1.1", "1.2"])
@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("drive", DRIVES)
def test_the_packed_ack_equals_the_general_encoding(
    ffd: str, answer: tuple[int, int, int], drive: tuple[str, str]
) -> None:
    (fd, code, flags), (serial, inn) = answer, drive
    packed = build_ack(serial, fd, inn, WHEN, ffd=ffd, code=code, flags=flags)
    assert packed == general(serial, fd, inn, ffd=ffd, code=code, flags=flags)


@pytest.mark.parametrize("values", [{"code": 256}, {"flags": -1}, {"code": -1}])
def test_out_of_range_values_still_raise_validation_errors(values: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        build_ack("9999078900005488", 1, "7704358518", WHEN, ffd="1.2", **values)
