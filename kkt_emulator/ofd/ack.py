"""The operator's acknowledgement («Подтверждение оператора», document code 7; FN spec §11.4).

The real operator signs its acknowledgement with the ФПО/ФПП, whose algorithms are not public; the
stand-in omits them as the reference mock OFD does (FN spec §14.1), and the drive does not check
them. The acknowledgement carries 1068 with 1022 (FFD 1.05) or 1206 flags (FFD 1.1/1.2).
"""

from __future__ import annotations

import functools
import struct
from datetime import datetime

from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.container import build_container
from kkt_emulator.fn.tlv import (
    encode_tlv,
    encode_unixtime,
    tlv_byte,
    tlv_fixed_string,
    tlv_stlv,
    tlv_u32,
    tlv_unixtime,
)

__all__ = ["OFD_ACCEPTED", "OFD_FLC_FAILED", "OFD_NOT_RECOGNISED", "build_ack"]

OFD_ACCEPTED = 0
OFD_NOT_RECOGNISED = 11
OFD_FLC_FAILED = 14

_OFD_SIGN_KEY = b"kkt-emulator-ofd"


def build_ack(
    fn_serial: str,
    fd_number: int,
    ofd_inn: str,
    when: datetime,
    *,
    ffd: str = "1.05",
    code: int = OFD_ACCEPTED,
    flags: int = 0,
) -> bytes:
    """Build the acknowledgement container for document ``fd_number`` of drive ``fn_serial``.

    Args:
        fn_serial: the drive's 16-digit serial.
        fd_number: the fiscal document acknowledged.
        ofd_inn: the operator's ИНН (tag 1017), checked by the drive.
        when: when the operator received the document (timezone-aware; sent as UTC, tag 1012).
        ffd: "1.05" puts 1022 in 1068; "1.1"/"1.2" add the 1206 flags byte as well.
        code: the operator's answer code (1022): 0 accepted, 11 not recognised, 14 failed ФЛК.
        flags: 1206 flags for FFD 1.1/1.2 (bit 1 ФЛК error, bit 2 check the cabinet …).
    """
    if 0 <= code <= _BYTE_MAX and 0 <= flags <= _BYTE_MAX and 0 <= fd_number <= _UINT32_MAX:
        # The stand-in answers every document: the same bytes as the general encoders below
        # give, packed at once (tests/ofd compare both).
        body = (
            _ack_head(ofd_inn, fn_serial)
            + _U32_1040.pack(1040, 4, fd_number)
            + _TIME_1012
            + encode_unixtime(when)
            + _MESSAGE_1068.pack(1068, 5, 1022, 1, code)
        )
        if ffd != "1.05":
            body += _BYTE_TLV.pack(1206, 1, flags)
    else:  # out of range: the general encoders raise their ValidationError
        body = b"".join(
            _general_body(fn_serial, fd_number, ofd_inn, when, ffd=ffd, code=code, flags=flags)
        )
    stlv = encode_tlv(DocCode.OPERATOR_ACK, body)
    return build_container(DocCode.OPERATOR_ACK, fn_serial, fd_number, stlv, _OFD_SIGN_KEY)


_BYTE_MAX = 0xFF
_UINT32_MAX = 0xFFFFFFFF
_U32_1040 = struct.Struct("<HHI")
_TIME_1012 = struct.pack("<HH", 1012, 4)
_MESSAGE_1068 = struct.Struct("<HHHHB")
_BYTE_TLV = struct.Struct("<HHB")


@functools.lru_cache(maxsize=1024)
def _ack_head(ofd_inn: str, fn_serial: str) -> bytes:
    """1017 and 1041, the same for every acknowledgement of one drive."""
    return tlv_fixed_string(1017, ofd_inn, 12) + tlv_fixed_string(1041, fn_serial, 16)


def _general_body(
    fn_serial: str, fd_number: int, ofd_inn: str, when: datetime, *, ffd: str, code: int, flags: int
) -> list[bytes]:
    body = [
        tlv_fixed_string(1017, ofd_inn, 12),
        tlv_fixed_string(1041, fn_serial, 16),
        tlv_u32(1040, fd_number),
        tlv_unixtime(1012, when),
        tlv_stlv(1068, [tlv_byte(1022, code)]),
    ]
    if ffd != "1.05":
        body.append(tlv_byte(1206, flags))
    return body
