"""The operator's acknowledgement («Подтверждение оператора», document code 7; FN spec §11.4).

The real operator signs its acknowledgement with the ФПО/ФПП, whose algorithms are not public; the
stand-in omits them as the reference mock OFD does (FN spec §14.1), and the drive does not check
them. The acknowledgement carries 1068 with 1022 (FFD 1.05) or 1206 flags (FFD 1.1/1.2).
"""

from __future__ import annotations

from datetime import datetime

from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.container import build_container
from kkt_emulator.fn.tlv import (
    encode_tlv,
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
    message = tlv_stlv(1068, [tlv_byte(1022, code)])
    body = [
        tlv_fixed_string(1017, ofd_inn, 12),
        tlv_fixed_string(1041, fn_serial, 16),
        tlv_u32(1040, fd_number),
        tlv_unixtime(1012, when),
        message,
    ]
    if ffd != "1.05":
        body.append(tlv_byte(1206, flags))
    stlv = encode_tlv(DocCode.OPERATOR_ACK, b"".join(body))
    return build_container(DocCode.OPERATOR_ACK, fn_serial, fd_number, stlv, _OFD_SIGN_KEY)
