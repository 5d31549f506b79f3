"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0): fn-protocol.md §2.3.

Used for drive frames (over LEN+CMD+DATA), OFD containers and RNM check digits. The check value
for ``b"123456789"`` is ``0x29B1``.
"""

from __future__ import annotations

from binascii import crc_hqx
from typing import TYPE_CHECKING, cast

import crcmod.predefined

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["crc16_ccitt", "crc16_ccitt_crcmod"]

_crc: Callable[[bytes], int] = cast(
    "Callable[[bytes], int]", crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
)


def crc16_ccitt(data: bytes) -> int:
    """Return the CRC-16/CCITT-FALSE of ``data``.

    ``binascii.crc_hqx`` is this CRC (poly 0x1021, no reflection) given the init 0xFFFF: one C
    call, where crcmod's function is a Python wrapper round its C table code. crcmod stays the
    reference (tests/fn/test_drive_fast_paths.py compares the two on any data).
    """
    return crc_hqx(data, 0xFFFF)


def crc16_ccitt_crcmod(data: bytes) -> int:
    """The same CRC computed by crcmod (the reference implementation)."""
    return _crc(bytes(data))
