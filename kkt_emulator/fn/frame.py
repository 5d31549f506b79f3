"""Drive frames and the framer (fn-protocol.md §2.2).

A frame is ``04h | LEN Uint16 LE | CMD/ANSWER | DATA | CRC16 LE`` with LEN = 1 + len(DATA) and the
CRC-16/CCITT-FALSE over LEN+CMD+DATA. The same layout carries requests (CMD) and answers (ANSWER,
whose bit 7 is the warning flag).

:class:`Framer` is the incremental decoder: ``feed(buffer) -> (consumed, frame | None)``. It never
raises for short input, skips garbage before ``04h``, and drops frames whose CRC does not match
(counting them), so that construct only ever sees complete, CRC-checked bytes.
"""

from __future__ import annotations

from binascii import crc_hqx
from dataclasses import dataclass

import construct as cs

from kkt_emulator.errors import FramingError
from kkt_emulator.fn.crc import crc16_ccitt

__all__ = [
    "ENQ",
    "FRAME_SCHEMA",
    "MAX_DATA_1_2",
    "MAX_DATA_2016",
    "MSG_START",
    "WARNING_BIT",
    "BadFrame",
    "Enq",
    "Frame",
    "Framer",
    "decode_frame",
    "encode_frame",
    "whole_frame",
]

MSG_START = 0x04
ENQ = 0x05
MAX_DATA_2016 = 1024
MAX_DATA_1_2 = 1536
WARNING_BIT = 0x80
_START = bytes((MSG_START,))

_BODY = cs.Struct(
    "length" / cs.Int16ul,
    "code" / cs.Int8ub,
    "data" / cs.Bytes(cs.this.length - 1),
)

FRAME_SCHEMA = cs.Struct(
    "start" / cs.Const(bytes([MSG_START])),
    "body" / cs.RawCopy(_BODY),
    "crc" / cs.Checksum(cs.Int16ul, crc16_ccitt, cs.this.body.data),
)
"""The frame as a construct schema; use :func:`encode_frame`/:func:`decode_frame` for speed."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: ``code`` is the command (request) or the raw answer byte (answer)."""

    code: int
    data: bytes = b""

    @property
    def result(self) -> int:
        """The answer's result code: the low 7 bits of the answer byte."""
        return self.code & 0x7F

    @property
    def warning(self) -> bool:
        """Whether the answer's warning bit (bit 7) is set."""
        return bool(self.code & WARNING_BIT)

    def encode(self) -> bytes:
        """Encode to wire bytes."""
        return encode_frame(self.code, self.data)


@dataclass(frozen=True, slots=True)
class Enq:
    """A lone ENQ byte (05h): the till asks the drive to repeat its last answer."""


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A complete frame whose CRC does not match: the drive answers 01h, the till asks again."""

    raw: bytes
    expected_crc: int
    got_crc: int


def encode_frame(code: int, data: bytes = b"") -> bytes:
    """Encode a frame.

    Raises:
        FramingError: the code is not a byte or the data does not fit Uint16 LEN.
    """
    if not 0 <= code <= 0xFF:
        raise FramingError(f"frame code {code} is not a byte")
    n = len(data) + 1
    if n > 0xFFFF:
        raise FramingError(f"frame data of {n - 1} bytes does not fit the length field")
    # The CRC runs on over LEN+CMD and then DATA, so the body is never joined twice (D139).
    head = bytes((n & 0xFF, n >> 8, code))
    crc = crc_hqx(data, crc_hqx(head, 0xFFFF))
    return b"".join((_START, head, data, bytes((crc & 0xFF, crc >> 8))))


def whole_frame(data: bytes | bytearray, max_data: int) -> Frame | None:
    """``data`` as exactly one well-formed frame of at most ``max_data`` bytes of data, else ``None``.

    What :meth:`Framer.feed` finds in such bytes, with none of its counters changed (D113, D139):
    the drive's endpoint and the till's client take it for a request or an answer that arrived in
    one piece, and give anything else (a split, garbage, ENQ, a bad CRC, two frames) to the framer.
    """
    n = len(data)
    if n < 6 or data[0] != MSG_START:
        return None
    length = data[1] | data[2] << 8
    if n != length + 5 or length - 1 > max_data:
        return None
    if crc_hqx(memoryview(data)[1 : n - 2], 0xFFFF) != data[n - 2] | data[n - 1] << 8:
        return None
    return Frame(data[3], bytes(data[4 : n - 2]))


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one complete frame.

    Raises:
        FramingError: wrong start byte, length mismatch, or CRC mismatch (the message says which).
    """
    if len(raw) < 6:
        raise FramingError(f"a frame is at least 6 bytes, got {len(raw)}")
    if raw[0] != MSG_START:
        raise FramingError(f"frame must start with 04h, got {raw[0]:02X}h")
    length = int.from_bytes(raw[1:3], "little")
    if length < 1:
        raise FramingError("frame length field is 0 (it counts the command byte)")
    if len(raw) != length + 5:
        raise FramingError(
            f"frame length field says {length} (so {length + 5} bytes in all), got {len(raw)} bytes"
        )
    body = raw[1 : 3 + length]
    expected = crc16_ccitt(body)
    got = int.from_bytes(raw[3 + length : 5 + length], "little")
    if expected != got:
        raise FramingError(f"CRC mismatch: frame carries {got:04X}h, computed {expected:04X}h")
    return Frame(code=raw[3], data=bytes(raw[4 : 3 + length]))


class Framer:
    """Incremental frame decoder for one direction of a byte stream.

    Args:
        max_data: the largest DATA size accepted (1024 or 1536 per profile); a longer LEN is
            treated as garbage, so a corrupted length byte cannot stall the stream.
        accept_enq: report a lone ``05h`` between frames as :class:`Enq` (the drive side).
    """

    def __init__(self, max_data: int = MAX_DATA_1_2, accept_enq: bool = False) -> None:
        self.max_data = max_data
        self.accept_enq = accept_enq
        self.crc_errors = 0
        self.garbage_bytes = 0
        self.oversize = 0

    def feed(
        self, buffer: bytes | bytearray | memoryview
    ) -> tuple[int, Frame | Enq | BadFrame | None]:
        """Look for one frame at the start of ``buffer``.

        Returns ``(consumed, item)``: the caller drops ``consumed`` bytes from its buffer. ``item`` is
        a :class:`Frame`; an :class:`Enq`; a :class:`BadFrame` for a complete frame with a wrong
        CRC (dropped whole, counted in ``crc_errors``); or ``None`` when more bytes are needed
        (``consumed`` then counts only skipped garbage, so calling again after dropping it makes
        progress).
        """
        buf = memoryview(buffer)
        pos = 0
        n = len(buf)
        while pos < n:
            byte = buf[pos]
            if byte == ENQ and self.accept_enq:
                return pos + 1, Enq()
            if byte != MSG_START:
                pos += 1
                self.garbage_bytes += 1
                continue
            if n - pos < 3:
                return pos, None
            length = buf[pos + 1] | (buf[pos + 2] << 8)
            if length < 1 or length - 1 > self.max_data:
                # Not a plausible frame start: resync from the next byte.
                self.oversize += 1
                self.garbage_bytes += 1
                pos += 1
                continue
            end = pos + 5 + length
            if n < end:
                return pos, None
            body = bytes(buf[pos + 1 : pos + 3 + length])
            got = buf[end - 2] | (buf[end - 1] << 8)
            expected = crc16_ccitt(body)
            if expected != got:
                # A corrupted frame is dropped whole and reported, so the drive can answer 01h and
                # the till can ask again (ENQ for an answer, a resend for a request).
                self.crc_errors += 1
                return end, BadFrame(bytes(buf[pos:end]), expected, got)
            return end, Frame(code=body[2], data=body[3:])
        return pos, None
