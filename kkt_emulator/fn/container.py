"""OFD transport: the till's session header (fn-protocol.md §11.1) and the drive's container (§11.2).

Session header, 30 bytes::

    signature 2A 08 41 0A | S-version 81 A2 | A-version (2) | ФН number ASCII (16)
    | body length Uint16 LE | flags Uint16 LE (0x0014) | CRC Uint16 LE (0)

Container, 32-byte header then the document::

    length Uint16 LE (whole container) | CRC Uint16 LE | A5h | document code | 01
    | service data 1 (2) | ФН number BCD (8, F-padded) | FD number Uint24 BE | service data 2 (12)
    | document STLV | trailer

The container CRC is CRC-16/CCITT-FALSE over everything except the CRC field. The trailer written
by the emulator is the Project decision of fn-protocol.md §11.2: ``81 06`` + a 6-byte message sign (ФПС)
+ ``00 00``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from kkt_emulator.errors import FramingError, ValidationError
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.signing import message_sign
from kkt_emulator.fn.tlv import HEADER_SIZE, parse_tlvs

__all__ = [
    "ACCEPTED_A_VERSIONS",
    "A_VERSIONS",
    "A_VERSION_FFD_11",
    "A_VERSION_FFD_12",
    "A_VERSION_FFD_105",
    "CONTAINER_HEADER_SIZE",
    "CONTAINER_VERSION",
    "MESSAGE_TYPE",
    "SESSION_FLAGS",
    "SESSION_HEADER_SIZE",
    "SESSION_SIGNATURE",
    "S_VERSION",
    "TRAILER_PREFIX",
    "TRAILER_SIZE",
    "Container",
    "SessionHeader",
    "build_container",
    "container_crc",
    "decode_bcd_serial",
    "encode_bcd_serial",
    "verify_trailer",
]

SESSION_SIGNATURE = bytes.fromhex("2A08410A")
"""Signature of an OFD session header («сигнатура»)."""
S_VERSION = bytes.fromhex("81A2")
"""The only session-protocol version the emulator speaks (fn-protocol.md §11.1, Project decision)."""
A_VERSION_FFD_105 = bytes.fromhex("0105")
"""A-protocol version bytes for FFD 1.0/1.05."""
A_VERSION_FFD_11 = bytes.fromhex("0110")
"""A-protocol version bytes for FFD 1.1."""
A_VERSION_FFD_12 = bytes.fromhex("0120")
"""A-protocol version bytes for FFD 1.2."""
A_VERSIONS: dict[str, bytes] = {
    "1.05": A_VERSION_FFD_105,
    "1.1": A_VERSION_FFD_11,
    "1.2": A_VERSION_FFD_12,
}
"""A-protocol version bytes written by a till, by FFD version."""
ACCEPTED_A_VERSIONS: frozenset[bytes] = frozenset(
    bytes.fromhex(h) for h in ("0001", "0002", "0100", "0105", "0110", "0120")
)
"""Every A-protocol version the OFD stand-in accepts (yandex/ofd's list plus ``01 20``)."""

SESSION_HEADER_SIZE = 30
SESSION_FLAGS = 0x0014
"""Bit 4: a response is expected; bit 2: a container follows; bits 0–1: no CRC."""

CONTAINER_HEADER_SIZE = 32
MESSAGE_TYPE = 0xA5
"""«Тип сообщения протокола» of every container."""
CONTAINER_VERSION = 0x01
"""«Версия протокола» of every container."""
TRAILER_PREFIX = b"\x81\x06"
TRAILER_SIZE = 10
_SIGN_SIZE = 6
_SERIAL_DIGITS = 16
_UINT16_MAX = 0xFFFF
_UINT24_MAX = 0xFFFFFF


def encode_bcd_serial(serial: str) -> bytes:
    """Encode a ФН number as 8 bytes of packed BCD; fewer than 16 digits are padded with ``F``.

    Trailing spaces (the padding of tag 1041) are ignored.

    Raises:
        ValidationError: the number is empty, longer than 16 digits, or not all digits.
    """
    digits = serial.rstrip(" ")
    if not (digits.isascii() and digits.isdigit() and 1 <= len(digits) <= _SERIAL_DIGITS):
        raise ValidationError("fn_serial", f"{serial!r} is not 1 to 16 decimal digits")
    return bytes.fromhex(digits.ljust(_SERIAL_DIGITS, "F"))


def decode_bcd_serial(raw: bytes) -> str:
    """Decode a packed-BCD ФН number, dropping the trailing ``F`` padding nibbles.

    Raises:
        FramingError: a nibble other than 0–9 before the padding, or no digits at all.
    """
    nibbles = bytes(raw).hex().upper().rstrip("F")
    if not nibbles.isdigit():
        raise FramingError(f"BCD ФН number {bytes(raw).hex(' ')} is not decimal digits + F padding")
    return nibbles


@dataclass(frozen=True)
class SessionHeader:
    """The 30-byte session header a till puts before a container (fn-protocol.md §11.1).

    Attributes:
        signature: ``2A 08 41 0A``.
        s_version: the session-protocol version, ``81 A2``.
        a_version: the A-protocol version bytes (see ``A_VERSIONS``).
        fn_serial: the ФН number (ASCII, at most 16 characters; padding stripped when decoding).
        body_length: the length of the container that follows.
        flags: ``0x0014`` as real tills send.
        crc: ``0``: the flags say "no CRC" (Project decision).
    """

    signature: bytes
    s_version: bytes
    a_version: bytes
    fn_serial: str
    body_length: int
    flags: int = SESSION_FLAGS
    crc: int = 0

    @classmethod
    def for_container(
        cls, fn_serial: str, body_length: int, ffd_version: str = "1.05"
    ) -> SessionHeader:
        """Build the header a till sends before a container of ``body_length`` bytes.

        Raises:
            ValidationError: unknown FFD version.
        """
        try:
            a_version = A_VERSIONS[ffd_version]
        except KeyError:
            raise ValidationError("ffd_version", f"unknown FFD version {ffd_version!r}") from None
        return cls(SESSION_SIGNATURE, S_VERSION, a_version, fn_serial, body_length)

    def encode(self) -> bytes:
        """Encode the 30 bytes; the ФН number is right-padded with spaces to 16 characters.

        Raises:
            ValidationError: a field does not fit its place.
        """
        for name, value, size in (
            ("signature", self.signature, 4),
            ("s_version", self.s_version, 2),
            ("a_version", self.a_version, 2),
        ):
            if len(value) != size:
                raise ValidationError(name, f"must be {size} bytes, got {len(value)}")
        if not self.fn_serial.isascii() or len(self.fn_serial) > _SERIAL_DIGITS:
            raise ValidationError("fn_serial", f"{self.fn_serial!r} is not ASCII of ≤ 16 chars")
        for name, number in (("body_length", self.body_length), ("flags", self.flags)):
            if not 0 <= number <= _UINT16_MAX:
                raise ValidationError(name, f"{number} does not fit Uint16")
        if not 0 <= self.crc <= _UINT16_MAX:
            raise ValidationError("crc", f"{self.crc} does not fit Uint16")
        return (
            bytes(self.signature)
            + bytes(self.s_version)
            + bytes(self.a_version)
            + self.fn_serial.encode("ascii").ljust(_SERIAL_DIGITS, b" ")
            + self.body_length.to_bytes(2, "little")
            + self.flags.to_bytes(2, "little")
            + self.crc.to_bytes(2, "little")
        )

    @classmethod
    def decode(cls, raw: bytes) -> SessionHeader:
        """Decode exactly 30 bytes.

        Raises:
            FramingError: wrong length, signature, S-version, or a non-ASCII ФН number.
        """
        raw = bytes(raw)
        if len(raw) != SESSION_HEADER_SIZE:
            raise FramingError(f"a session header is 30 bytes, got {len(raw)}")
        if raw[0:4] != SESSION_SIGNATURE:
            raise FramingError(
                f"session signature is {raw[0:4].hex(' ')}, expected {SESSION_SIGNATURE.hex(' ')}"
            )
        if raw[4:6] != S_VERSION:
            raise FramingError(
                f"session protocol version is {raw[4:6].hex(' ')}, expected {S_VERSION.hex(' ')}"
            )
        try:
            serial = raw[8:24].decode("ascii")
        except UnicodeDecodeError as exc:
            raise FramingError(f"session ФН number {raw[8:24].hex(' ')} is not ASCII") from exc
        return cls(
            signature=raw[0:4],
            s_version=raw[4:6],
            a_version=raw[6:8],
            fn_serial=serial.rstrip(" \x00"),
            body_length=int.from_bytes(raw[24:26], "little"),
            flags=int.from_bytes(raw[26:28], "little"),
            crc=int.from_bytes(raw[28:30], "little"),
        )


def container_crc(raw: bytes) -> int:
    """The container CRC: CRC-16/CCITT-FALSE over ``raw[0:2] + raw[4:]`` (all but the CRC field)."""
    return crc16_ccitt(bytes(raw[0:2]) + bytes(raw[4:]))


@dataclass(frozen=True)
class Container:
    """A drive-built container (fn-protocol.md §11.2), as read by :meth:`parse`.

    Attributes:
        length: the length field (the whole container, header included).
        crc: the stored CRC.
        msg_type: ``A5h``.
        doc_code: the FFD document code.
        version: ``01``.
        svc1: service data 1 (2 opaque bytes).
        fn_serial: the ФН number from the BCD field, ``F`` padding stripped.
        fd_number: the FD number (Uint24 BE).
        svc2: service data 2 (12 opaque bytes).
        body: the leading document STLV, header included.
        trailer: every byte after that STLV (the message sign in the emulator's layout).
    """

    length: int
    crc: int
    msg_type: int
    doc_code: int
    version: int
    svc1: bytes
    fn_serial: str
    fd_number: int
    svc2: bytes
    body: bytes
    trailer: bytes

    @property
    def document_tag(self) -> int:
        """The tag of the document STLV (normally equal to ``doc_code``)."""
        return int.from_bytes(self.body[0:2], "little")

    @property
    def document_value(self) -> bytes:
        """The value of the document STLV: the document's TLVs."""
        return self.body[HEADER_SIZE:]

    @classmethod
    def parse(cls, raw: bytes, check_crc: bool = True) -> Container:
        """Parse one whole container.

        Raises:
            FramingError: too short, the length field does not match the data, CRC mismatch
                (when ``check_crc``), an unknown message type or version, a bad BCD ФН number, or
                a document STLV that runs past the end.
        """
        raw = bytes(raw)
        if len(raw) < CONTAINER_HEADER_SIZE + HEADER_SIZE:
            raise FramingError(
                f"a container is at least {CONTAINER_HEADER_SIZE + HEADER_SIZE} bytes "
                f"(header and STLV header), got {len(raw)}"
            )
        length = int.from_bytes(raw[0:2], "little")
        if length != len(raw):
            raise FramingError(f"container length field says {length} bytes, got {len(raw)}")
        stored = int.from_bytes(raw[2:4], "little")
        if check_crc:
            computed = container_crc(raw)
            if stored != computed:
                raise FramingError(
                    f"container CRC mismatch: stored {stored:04X}h, computed {computed:04X}h"
                )
        if raw[4] != MESSAGE_TYPE:
            raise FramingError(f"container message type is {raw[4]:02X}h, expected A5h")
        if raw[6] != CONTAINER_VERSION:
            raise FramingError(f"container protocol version is {raw[6]:02X}h, expected 01h")
        stlv_length = int.from_bytes(raw[34:36], "little")
        body_end = CONTAINER_HEADER_SIZE + HEADER_SIZE + stlv_length
        if body_end > len(raw):
            raise FramingError(
                f"document STLV of {stlv_length} bytes runs past the end of the container "
                f"({len(raw) - CONTAINER_HEADER_SIZE - HEADER_SIZE} bytes left)"
            )
        return cls(
            length=length,
            crc=stored,
            msg_type=raw[4],
            doc_code=raw[5],
            version=raw[6],
            svc1=raw[7:9],
            fn_serial=decode_bcd_serial(raw[9:17]),
            fd_number=int.from_bytes(raw[17:20], "big"),
            svc2=raw[20:32],
            body=raw[CONTAINER_HEADER_SIZE:body_end],
            trailer=raw[body_end:],
        )


def build_container(
    doc_code: int,
    fn_serial: str,
    fd_number: int,
    document_stlv: bytes,
    secret: bytes,
    *,
    svc1: bytes = b"\x10\x09",
    svc2: bytes = bytes(12),
) -> bytes:
    """Build the container the drive returns through 22h/23h (fn-protocol.md §11.2, Project decision).

    The trailer is ``81 06`` + the first 6 bytes of HMAC-SHA256(``secret``, the container bytes
    before the trailer, with the final length already set and the CRC field ``00 00``) + ``00 00``;
    the CRC is computed last, over everything including the trailer.

    Args:
        doc_code: the FFD document code; the STLV's tag must equal it.
        fn_serial: the ФН number (up to 16 digits; trailing spaces ignored).
        fd_number: the FD number (Uint24).
        document_stlv: exactly one encoded STLV, the document.
        secret: the drive secret that keys the message sign.
        svc1: service data 1 (2 bytes).
        svc2: service data 2 (12 bytes).

    Raises:
        ValidationError: an argument does not fit its field, or ``document_stlv`` is not one STLV
            tagged ``doc_code``.
    """
    if not 0 <= doc_code <= 0xFF:
        raise ValidationError("doc_code", f"{doc_code} is not a byte")
    if not 0 <= fd_number <= _UINT24_MAX:
        raise ValidationError("fd_number", f"{fd_number} does not fit Uint24")
    if len(svc1) != 2:
        raise ValidationError("svc1", f"must be 2 bytes, got {len(svc1)}")
    if len(svc2) != 12:
        raise ValidationError("svc2", f"must be 12 bytes, got {len(svc2)}")
    document = parse_tlvs(document_stlv)
    if len(document) != 1:
        raise ValidationError("document_stlv", f"must be exactly one STLV, got {len(document)}")
    if document[0].tag != doc_code:
        raise ValidationError(
            "document_stlv", f"STLV tag {document[0].tag} differs from document code {doc_code}"
        )
    length = CONTAINER_HEADER_SIZE + len(document_stlv) + TRAILER_SIZE
    if length > _UINT16_MAX:
        raise ValidationError("document_stlv", f"container of {length} bytes does not fit Uint16")
    before_trailer = (
        length.to_bytes(2, "little")
        + b"\x00\x00"
        + bytes((MESSAGE_TYPE, doc_code, CONTAINER_VERSION))
        + bytes(svc1)
        + encode_bcd_serial(fn_serial)
        + fd_number.to_bytes(3, "big")
        + bytes(svc2)
        + bytes(document_stlv)
    )
    sign = message_sign(secret, before_trailer)[:_SIGN_SIZE]
    raw = bytearray(before_trailer + TRAILER_PREFIX + sign + b"\x00\x00")
    raw[2:4] = container_crc(bytes(raw)).to_bytes(2, "little")
    return bytes(raw)


def verify_trailer(raw: bytes, secret: bytes) -> bool:
    """Whether a container's trailer carries the message sign ``secret`` gives (emulator layout).

    Raises:
        FramingError: ``raw`` is not a container.
    """
    container = Container.parse(raw, check_crc=False)
    if len(container.trailer) != TRAILER_SIZE:
        return False
    before = bytearray(raw[: len(raw) - TRAILER_SIZE])
    before[2:4] = b"\x00\x00"
    expected = TRAILER_PREFIX + message_sign(secret, bytes(before))[:_SIGN_SIZE] + b"\x00\x00"
    return hmac.compare_digest(container.trailer, expected)
