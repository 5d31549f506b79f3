"""FFD TLV and STLV codec (fn-protocol.md §10.1–§10.2).

A TLV is ``tag Uint16 LE | length Uint16 LE | value``; an STLV is a TLV whose value is a list of
TLVs. Repeated tags are simply repeated. Value types (ФФД table 1):

- VLN: unsigned integer, little endian, variable length; the emulator writes minimal VLNs;
- FVLN: first byte = digits after the point, then the VLN of the number without the point;
- UnixTime: Uint32 LE seconds since 1970-01-01;
- strings: CP866; fixed-length strings are right-padded with spaces.

Three layers: the framing (:func:`iter_tlvs`, :func:`encode_tlv`), value codecs
(:func:`encode_vln` …), and the catalogue-driven layer (:func:`encode_value`,
:func:`decode_value`, :func:`decode_tree`, :func:`validate_value`) that uses
:data:`kkt_emulator.fn.tags.TAGS`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.tags import TAGS, TagInfo, TagType, tag_info, tag_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "HEADER_SIZE",
    "MAX_DEPTH",
    "Tlv",
    "TlvError",
    "TlvNode",
    "decode_fvln",
    "decode_string",
    "decode_tree",
    "decode_uint",
    "decode_unixtime",
    "decode_value",
    "decode_vln",
    "encode_fixed_string",
    "encode_fvln",
    "encode_string",
    "encode_tlv",
    "encode_uint",
    "encode_unixtime",
    "encode_value",
    "encode_vln",
    "iter_tlvs",
    "parse_tlvs",
    "tlv_byte",
    "tlv_bytes",
    "tlv_fixed_string",
    "tlv_fvln",
    "tlv_stlv",
    "tlv_string",
    "tlv_u16",
    "tlv_u32",
    "tlv_unixtime",
    "tlv_vln",
    "tree_to_json",
    "validate_tlv",
    "validate_value",
]

HEADER_SIZE = 4
"""Tag Uint16 LE + length Uint16 LE."""

MAX_DEPTH = 16
"""The deepest STLV nesting decoded or validated; real documents nest four levels at most."""

_UINT16_MAX = 0xFFFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENCODING = "cp866"
_FIXED_WIDTH = {TagType.BYTE: 1, TagType.UINT16: 2, TagType.UINT32: 4, TagType.UNIXTIME: 4}


class TlvError(ValidationError):
    """Bytes that do not form a TLV list: a truncated header or a length beyond the data.

    Attributes:
        offset: where the bad TLV starts, counted from the start of the outermost data decoded.
        tag: the tag of the bad TLV, or ``None`` when not even the tag could be read.
    """

    def __init__(self, offset: int, reason: str, tag: int | None = None) -> None:
        self.offset = offset
        self.tag = tag
        where = f"TLV at offset {offset}" if tag is None else f"tag {tag} at offset {offset}"
        super().__init__(where, reason)


class Tlv(NamedTuple):
    """One TLV: a tag and its raw value (for an STLV, the encoded children).

    A named tuple rather than a frozen dataclass: the drive makes dozens per receipt, and a tuple
    is built several times faster.
    """

    tag: int
    value: bytes

    def encode(self) -> bytes:
        """Encode to wire bytes.

        Raises:
            ValidationError: the tag or the length does not fit Uint16.
        """
        return encode_tlv(self.tag, self.value)

    def children(self) -> list[Tlv]:
        """Parse the value as an STLV body.

        Raises:
            TlvError: the value is not a TLV list.
        """
        return parse_tlvs(self.value)


# --- framing -------------------------------------------------------------------------------------


def _scan(data: bytes, base: int = 0) -> Iterator[tuple[int, Tlv]]:
    raw = bytes(data)
    end = len(raw)
    pos = 0
    while pos < end:
        tlv = _next_tlv(raw, pos, end, base)
        yield base + pos, tlv
        pos += HEADER_SIZE + len(tlv.value)


def _next_tlv(raw: bytes, pos: int, end: int, base: int) -> Tlv:
    """The TLV at ``pos`` of ``raw`` (which ends at ``end``); offsets in errors count from ``base``."""
    left = end - pos
    if left < HEADER_SIZE:
        tag = raw[pos] | raw[pos + 1] << 8 if left >= 2 else None
        raise TlvError(
            base + pos, f"truncated TLV header: {left} byte(s) left, a header needs 4", tag
        )
    start = pos + HEADER_SIZE
    stop = start + (raw[pos + 2] | raw[pos + 3] << 8)
    if stop > end:
        raise TlvError(
            base + pos,
            f"length {stop - start} runs past the end of the data ({end - start} byte(s) left)",
            raw[pos] | raw[pos + 1] << 8,
        )
    return Tlv(raw[pos] | raw[pos + 1] << 8, raw[start:stop])


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Yield the top-level TLVs of ``data`` in order (STLV values are not parsed).

    Raises:
        TlvError: while iterating, on a truncated header or a length beyond the data.
    """
    for _, tlv in _scan(data):
        yield tlv


def parse_tlvs(data: bytes) -> list[Tlv]:
    """Parse the top-level TLVs of ``data``.

    Raises:
        TlvError: a truncated header or a length beyond the data.
    """
    # The hot path of every 07h and 16h: one loop, no generator, the header read byte by byte.
    raw = data if type(data) is bytes else bytes(data)
    end = len(raw)
    pos = 0
    out = []
    while pos < end:
        start = pos + HEADER_SIZE
        if start > end:
            out.append(_next_tlv(raw, pos, end, 0))  # raises with the reason
        stop = start + (raw[pos + 2] | raw[pos + 3] << 8)
        if stop > end:
            out.append(_next_tlv(raw, pos, end, 0))  # raises with the reason
        out.append(_new_tlv(Tlv, (raw[pos] | raw[pos + 1] << 8, raw[start:stop])))
        pos = stop
    return out


_new_tlv = tuple.__new__  # Tlv(tag, value) without NamedTuple's Python-level __new__


def encode_tlv(tag: int, value: bytes) -> bytes:
    """Encode one TLV: tag and length as Uint16 LE, then the value.

    Raises:
        ValidationError: the tag or the value length does not fit Uint16.
    """
    if not 0 <= tag <= _UINT16_MAX:
        raise ValidationError("tag", f"tag {tag} does not fit Uint16")
    if len(value) > _UINT16_MAX:
        raise ValidationError(f"tag {tag}", f"value of {len(value)} bytes does not fit Uint16")
    return tag.to_bytes(2, "little") + len(value).to_bytes(2, "little") + bytes(value)


# --- value codecs --------------------------------------------------------------------------------


def encode_uint(value: int, size: int) -> bytes:
    """Encode an unsigned little-endian integer of exactly ``size`` bytes (Byte, Uint16, Uint32).

    Raises:
        ValidationError: the value is negative or does not fit ``size`` bytes.
    """
    if not 0 <= value < 1 << (8 * size):
        raise ValidationError("uint", f"{value} does not fit an unsigned {size}-byte integer")
    return value.to_bytes(size, "little")


def decode_uint(raw: bytes, size: int) -> int:
    """Decode an unsigned little-endian integer that must be exactly ``size`` bytes long.

    Raises:
        ValidationError: the length is not ``size``.
    """
    if len(raw) != size:
        raise ValidationError("uint", f"expected {size} byte(s), got {len(raw)}")
    return int.from_bytes(raw, "little")


def encode_vln(value: int, max_len: int = 8) -> bytes:
    """Encode a VLN: the minimal little-endian bytes of ``value``, at least one byte.

    Raises:
        ValidationError: ``value`` is negative or needs more than ``max_len`` bytes.
    """
    if value < 0:
        raise ValidationError("VLN", f"{value} is negative; a VLN is unsigned")
    size = max(1, (value.bit_length() + 7) // 8)
    if size > max_len:
        raise ValidationError("VLN", f"{value} needs {size} bytes, more than the maximum {max_len}")
    return value.to_bytes(size, "little")


def decode_vln(raw: bytes) -> int:
    """Decode a VLN (little endian, any length of at least one byte).

    Raises:
        ValidationError: the value is empty.
    """
    if not raw:
        raise ValidationError("VLN", "empty value; a VLN has at least one byte")
    return int.from_bytes(raw, "little")


def encode_fvln(value: Decimal, max_len: int = 8) -> bytes:
    """Encode an FVLN, keeping the Decimal's own exponent: ``Decimal("1.000")`` → ``03 E8 03``.

    Raises:
        ValidationError: the value is negative, not finite, has more than 255 decimal places, or
            needs more than ``max_len`` bytes.
    """
    if not value.is_finite():
        raise ValidationError("FVLN", f"{value} is not a finite number")
    if value < 0:
        raise ValidationError("FVLN", f"{value} is negative; an FVLN is unsigned")
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - excluded by is_finite() above
        raise ValidationError("FVLN", f"{value} is not a finite number")
    coefficient = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        places, integer = 0, int(coefficient * 10**exponent)
    else:
        places, integer = -exponent, coefficient
    if places > 0xFF:
        raise ValidationError("FVLN", f"{value} has {places} decimal places, more than 255")
    size = max(1, (integer.bit_length() + 7) // 8)
    if 1 + size > max_len:
        raise ValidationError(
            "FVLN", f"{value} needs {1 + size} bytes, more than the maximum {max_len}"
        )
    return bytes((places,)) + integer.to_bytes(size, "little")


def decode_fvln(raw: bytes) -> Decimal:
    """Decode an FVLN into a Decimal with exactly the encoded number of decimal places.

    Raises:
        ValidationError: fewer than two bytes.
    """
    if len(raw) < 2:
        raise ValidationError("FVLN", f"expected at least 2 bytes, got {len(raw)}")
    places = raw[0]
    integer = int.from_bytes(raw[1:], "little")
    return Decimal((0, tuple(int(d) for d in str(integer)), -places))


def encode_unixtime(dt: datetime) -> bytes:
    """Encode a timezone-aware datetime as UnixTime (Uint32 LE seconds, fractions dropped).

    Raises:
        ValidationError: ``dt`` is naive or outside 1970-01-01 … 2106-02-07.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValidationError(
            "UnixTime", "naive datetime; pass a timezone-aware one (tzinfo=UTC for wall-clock time)"
        )
    seconds = (dt - _EPOCH) // timedelta(seconds=1)
    if not 0 <= seconds <= 0xFFFFFFFF:
        raise ValidationError("UnixTime", f"{dt.isoformat()} does not fit Uint32 seconds")
    return seconds.to_bytes(4, "little")


def decode_unixtime(raw: bytes) -> datetime:
    """Decode UnixTime into a UTC-aware datetime.

    Raises:
        ValidationError: the value is not 4 bytes.
    """
    if len(raw) != 4:
        raise ValidationError("UnixTime", f"expected 4 bytes, got {len(raw)}")
    return _EPOCH + timedelta(seconds=int.from_bytes(raw, "little"))


def encode_string(text: str, max_len: int | None = None) -> bytes:
    """Encode text in CP866.

    Raises:
        ValidationError: a character has no CP866 code, or the result exceeds ``max_len`` bytes.
    """
    try:
        raw = text.encode(_ENCODING)
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise ValidationError(
            "string", f"character {bad!r} (U+{ord(bad):04X}) at {exc.start} has no CP866 code"
        ) from exc
    if max_len is not None and len(raw) > max_len:
        raise ValidationError("string", f"{len(raw)} bytes, more than the maximum {max_len}")
    return raw


def decode_string(raw: bytes) -> str:
    """Decode CP866 text (every byte has a CP866 character, so this never fails)."""
    return bytes(raw).decode(_ENCODING)


def encode_fixed_string(text: str, length: int) -> bytes:
    """Encode CP866 text right-padded with spaces to exactly ``length`` bytes (ФФД note 3, table 2).

    Raises:
        ValidationError: a character has no CP866 code, or the text is longer than ``length``.
    """
    raw = encode_string(text)
    if len(raw) > length:
        raise ValidationError("string", f"{len(raw)} bytes, longer than the fixed length {length}")
    return raw.ljust(length, b" ")


# --- builders ------------------------------------------------------------------------------------


class _AboutTag:
    """Name the tag in a ValidationError raised by a value codec (``with _AboutTag(tag): ...``).

    A class rather than a ``@contextmanager`` generator: every TLV the drive forms goes through it.
    """

    __slots__ = ("tag",)

    def __init__(self, tag: int) -> None:
        self.tag = tag

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if (
            isinstance(exc, ValidationError)
            and not isinstance(exc, TlvError)
            and not exc.field.startswith("tag ")
        ):
            raise ValidationError(f"tag {self.tag} ({tag_name(self.tag)})", exc.reason) from exc


def _catalogue_max(tag: int, kind: TagType, default: int) -> int:
    info = tag_info(tag)
    return info.max_len if info is not None and info.type is kind else default


# The builders below take the drive's own values (counters, flags, sums it checked): a value in
# range is packed at once, and anything else (out of range, not an int) goes through the codecs,
# which raise the same errors as before (D108; tests/fn/test_drive_fast_paths.py compares both).
_PACK_HH = struct.Struct("<HH").pack
_PACK_BYTE = struct.Struct("<HHB").pack
_PACK_U32 = struct.Struct("<HHI").pack
_SECOND = timedelta(seconds=1)
_VLN_MAX: dict[int, int] = {}


def _plain(tag: object, value: object) -> bool:
    """Whether ``tag`` and ``value`` are ints the fast packing takes as the codecs would."""
    return isinstance(tag, int) and isinstance(value, int) and 0 <= tag <= _UINT16_MAX


def tlv_byte(tag: int, value: int) -> bytes:
    """Encode a Byte TLV."""
    if _plain(tag, value) and 0 <= value <= 0xFF:
        return _PACK_BYTE(tag, 1, value)
    with _AboutTag(tag):
        return encode_tlv(tag, encode_uint(value, 1))


def tlv_u16(tag: int, value: int) -> bytes:
    """Encode a Uint16 LE TLV."""
    with _AboutTag(tag):
        return encode_tlv(tag, encode_uint(value, 2))


def tlv_u32(tag: int, value: int) -> bytes:
    """Encode a Uint32 LE TLV."""
    if _plain(tag, value) and 0 <= value <= 0xFFFFFFFF:
        return _PACK_U32(tag, 4, value)
    with _AboutTag(tag):
        return encode_tlv(tag, encode_uint(value, 4))


def tlv_vln(tag: int, value: int, max_len: int | None = None) -> bytes:
    """Encode a VLN TLV; ``max_len`` defaults to the catalogue's (6 for money), else 8."""
    if _plain(tag, value) and value >= 0:
        limit = max_len if max_len is not None else _VLN_MAX.get(tag)
        if limit is None:
            limit = _VLN_MAX[tag] = _catalogue_max(tag, TagType.VLN, 8)
        size = (value.bit_length() + 7) >> 3 or 1
        if size <= limit:
            return _PACK_HH(tag, size) + value.to_bytes(size, "little")
    with _AboutTag(tag):
        limit = max_len if max_len is not None else _catalogue_max(tag, TagType.VLN, 8)
        return encode_tlv(tag, encode_vln(value, limit))


def tlv_fvln(tag: int, value: Decimal, max_len: int | None = None) -> bytes:
    """Encode an FVLN TLV; ``max_len`` defaults to the catalogue's, else 8."""
    with _AboutTag(tag):
        limit = max_len if max_len is not None else _catalogue_max(tag, TagType.FVLN, 8)
        return encode_tlv(tag, encode_fvln(value, limit))


def tlv_string(tag: int, text: str) -> bytes:
    """Encode a CP866 string TLV, checked against the catalogue's maximum length.

    Fixed-length tags of the catalogue (1017, 1018, 1037, 1041, 1203, 1226 …) are right-padded
    with spaces to their length.
    """
    info = tag_info(tag)
    with _AboutTag(tag):
        if info is not None and info.type is TagType.FIXED_STRING and info.fixed_len is not None:
            return encode_tlv(tag, encode_fixed_string(text, info.fixed_len))
        limit = info.max_len if info is not None and info.type is TagType.STRING else None
        return encode_tlv(tag, encode_string(text, limit))


def tlv_fixed_string(tag: int, text: str, length: int) -> bytes:
    """Encode a CP866 string TLV right-padded with spaces to ``length`` bytes."""
    with _AboutTag(tag):
        return encode_tlv(tag, encode_fixed_string(text, length))


def tlv_unixtime(tag: int, dt: datetime) -> bytes:
    """Encode a UnixTime TLV from a timezone-aware datetime."""
    if (
        isinstance(tag, int)
        and 0 <= tag <= _UINT16_MAX
        and isinstance(dt, datetime)
        and dt.utcoffset() is not None
    ):
        seconds = (dt - _EPOCH) // _SECOND
        if 0 <= seconds <= 0xFFFFFFFF:
            return _PACK_U32(tag, 4, seconds)
    with _AboutTag(tag):
        return encode_tlv(tag, encode_unixtime(dt))


def tlv_bytes(tag: int, value: bytes) -> bytes:
    """Encode a TLV holding raw bytes."""
    return encode_tlv(tag, value)


def tlv_stlv(tag: int, children: Iterable[bytes]) -> bytes:
    """Encode an STLV from already encoded child TLVs (its length counts their headers)."""
    return encode_tlv(tag, b"".join(children))


# --- catalogue-driven layer ----------------------------------------------------------------------


def _wrong_type(value: object, what: str) -> ValidationError:
    return ValidationError("value", f"expected {what}, got {type(value).__name__}")


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(value, "an int")
    return value


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise _wrong_type(value, "a str")
    return value


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _wrong_type(value, "bytes")
    return bytes(value)


def _encode_int(info: TagInfo, value: object) -> bytes:
    if info.type is TagType.UNIXTIME and isinstance(value, datetime):
        return encode_unixtime(value)
    return encode_uint(_as_int(value), _FIXED_WIDTH.get(info.type, info.max_len))


def _encode_vln(info: TagInfo, value: object) -> bytes:
    return encode_vln(_as_int(value), info.max_len)


def _encode_fvln(info: TagInfo, value: object) -> bytes:
    number = value if isinstance(value, Decimal) else Decimal(_as_int(value))
    return encode_fvln(number, info.max_len)


def _encode_str(info: TagInfo, value: object) -> bytes:
    return encode_string(_as_str(value), info.max_len)


def _encode_fixed_str(info: TagInfo, value: object) -> bytes:
    return encode_fixed_string(_as_str(value), info.fixed_len or info.max_len)


def _encode_stlv(_info: TagInfo, value: object) -> bytes:
    if isinstance(value, (list, tuple)):
        return b"".join(
            item.encode() if isinstance(item, Tlv) else _as_bytes(item) for item in value
        )
    return _as_bytes(value)


def _encode_bytes(info: TagInfo, value: object) -> bytes:
    raw = _as_bytes(value)
    if info.fixed_len is not None and len(raw) != info.fixed_len:
        raise ValidationError("value", f"{len(raw)} bytes, the fixed length is {info.fixed_len}")
    return raw


_ENCODERS: dict[TagType, Callable[[TagInfo, object], bytes]] = {
    TagType.BYTE: _encode_int,
    TagType.UINT16: _encode_int,
    TagType.UINT32: _encode_int,
    TagType.FLAGS: _encode_int,
    TagType.UNIXTIME: _encode_int,
    TagType.VLN: _encode_vln,
    TagType.FVLN: _encode_fvln,
    TagType.STRING: _encode_str,
    TagType.FIXED_STRING: _encode_fixed_str,
    TagType.STLV: _encode_stlv,
    TagType.BYTES: _encode_bytes,
}


def encode_value(tag: int, value: object) -> bytes:
    """Encode the value of ``tag`` according to its catalogue type (not the TLV header).

    Python types by tag type: int for Byte/Uint16/Uint32/VLN/flags, Decimal (or int) for FVLN,
    timezone-aware datetime (or int seconds) for UnixTime, str for strings, bytes or a list of
    :class:`Tlv`/encoded TLV bytes for STLV, bytes for byte arrays and for unknown tags.

    Raises:
        ValidationError: the value has the wrong Python type or violates the catalogue.
    """
    info = tag_info(tag)
    with _AboutTag(tag):
        if info is None:
            return _as_bytes(value)
        raw = _ENCODERS[info.type](info, value)
        if len(raw) > info.max_len:
            raise ValidationError(
                "value", f"{len(raw)} bytes, more than the maximum {info.max_len}"
            )
        return raw


def decode_value(tag: int, raw: bytes) -> object:
    """Decode the value of ``tag`` according to its catalogue type.

    Returns int (Byte, Uint16, Uint32, VLN, flags), Decimal (FVLN), UTC datetime (UnixTime), str
    (strings, padding kept), list of :class:`Tlv` (STLV) or bytes (byte arrays, unknown tags).

    Raises:
        ValidationError: the raw value cannot be decoded as the tag's type.
    """
    info = tag_info(tag)
    raw = bytes(raw)
    if info is None:
        return raw
    kind = info.type
    with _AboutTag(tag):
        if kind is TagType.UNIXTIME:
            return decode_unixtime(raw)
        if kind in _FIXED_WIDTH:
            return decode_uint(raw, _FIXED_WIDTH[kind])
        if kind is TagType.FLAGS:
            if not 1 <= len(raw) <= info.max_len:
                raise ValidationError(
                    "flags", f"expected 1 to {info.max_len} bytes, got {len(raw)}"
                )
            return int.from_bytes(raw, "little")
        if kind is TagType.VLN:
            return decode_vln(raw)
        if kind is TagType.FVLN:
            return decode_fvln(raw)
        if kind in (TagType.STRING, TagType.FIXED_STRING):
            return decode_string(raw)
        if kind is TagType.STLV:
            return parse_tlvs(raw)
        return raw


@dataclass(slots=True)
class TlvNode:
    """One decoded TLV with its catalogue name and type, for display and JSON.

    Attributes:
        tag: the tag number.
        name: the official name, or ``"unknown tag N"``.
        type: the catalogue type (``BYTES`` for unknown tags).
        value: the decoded value (see :func:`decode_value`); ``None`` for an STLV and for a value
            that failed to decode.
        raw: the raw value bytes (without the TLV header).
        children: the decoded children of an STLV.
        error: why the value or the STLV body could not be decoded, else ``None``.
        offset: where the TLV header starts in the data given to :func:`decode_tree`.
    """

    tag: int
    name: str
    type: TagType
    value: object
    raw: bytes
    children: list[TlvNode] = field(default_factory=list)
    error: str | None = None
    offset: int = 0


def _decode_node(offset: int, tlv: Tlv, depth: int) -> TlvNode:
    info = tag_info(tlv.tag)
    kind = info.type if info is not None else TagType.BYTES
    node = TlvNode(tlv.tag, tag_name(tlv.tag), kind, None, tlv.value, offset=offset)
    if kind is TagType.STLV:
        if depth >= MAX_DEPTH:
            node.error = f"STLV nested deeper than {MAX_DEPTH} levels; not decoded"
            return node
        try:
            for child_offset, child in _scan(tlv.value, offset + HEADER_SIZE):
                node.children.append(_decode_node(child_offset, child, depth + 1))
        except TlvError as exc:
            node.error = str(exc)
        return node
    try:
        node.value = decode_value(tlv.tag, tlv.value)
    except ValidationError as exc:
        node.error = exc.reason
    return node


def decode_tree(data: bytes) -> list[TlvNode]:
    """Decode a TLV list, recursing into STLVs (document codes and STLV tags of the catalogue).

    A value that does not decode as its catalogue type, or an STLV whose body is not a TLV list,
    becomes a node with ``error`` set and the raw bytes kept; only the top level must be a valid
    TLV list.

    Raises:
        TlvError: the top level is not a TLV list.
    """
    return [_decode_node(offset, tlv, 0) for offset, tlv in _scan(data)]


_FISCAL_SIGN_TAG = 1077  # ФПД: 2 bytes of unknown meaning + the printed sign, UInt32 big endian
_FISCAL_SIGN_SIZE = 6


def _json_value(node: TlvNode) -> object:
    value = node.value
    if node.error is not None:
        return node.raw.hex()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def tree_to_json(nodes: Iterable[TlvNode]) -> list[dict[str, Any]]:
    """Turn decoded nodes into JSON-friendly dicts.

    Each dict has ``tag``, ``name``, ``type``, ``length``, ``value`` (str, int, Decimal as str,
    datetime in ISO format, bytes as hex, ``None`` for an STLV) and ``children``; a node that failed
    to decode has its raw value as hex and an ``error``. Tag 1077 keeps its six raw bytes in
    ``value`` and adds ``fiscal_sign``, the ФПД as the receipt prints it: bytes 2–5 read as a
    big-endian UInt32 (fn-protocol.md §12.1).
    """
    result: list[dict[str, Any]] = []
    for node in nodes:
        item: dict[str, Any] = {
            "tag": node.tag,
            "name": node.name,
            "type": str(node.type),
            "length": len(node.raw),
            "value": _json_value(node),
            "children": tree_to_json(node.children),
        }
        if node.error is not None:
            item["error"] = node.error
        elif node.tag == _FISCAL_SIGN_TAG and len(node.raw) == _FISCAL_SIGN_SIZE:
            item["fiscal_sign"] = int.from_bytes(node.raw[2:6], "big")
        result.append(item)
    return result


def _check_size(info: TagInfo, size: int) -> None:
    low, high = _size_bounds(info)
    if low <= size <= high:
        return
    where = f"tag {info.number} ({info.name})"
    if size > info.max_len:
        raise ValidationError(where, f"value is {size} bytes, more than the maximum {info.max_len}")
    if info.fixed_len is not None and size != info.fixed_len:
        raise ValidationError(where, f"value is {size} bytes, the fixed length is {info.fixed_len}")
    kind = info.type
    exact = info.max_len if kind is TagType.FLAGS else _FIXED_WIDTH.get(kind)
    if exact is not None and size != exact:
        raise ValidationError(where, f"value is {size} bytes, a {kind} value is {exact}")
    least = _LEAST_SIZE.get(kind, 0)
    raise ValidationError(where, f"value is {size} bytes, a {kind} value needs {least}")


_LEAST_SIZE = {TagType.VLN: 1, TagType.FVLN: 2}
_BOUNDS: dict[int, tuple[int, int]] = {}


def _size_bounds(info: TagInfo) -> tuple[int, int]:
    """The value sizes ``low..high`` that :func:`_check_size` accepts for a tag (computed once)."""
    bounds = _BOUNDS.get(info.number)
    if bounds is None:
        kind = info.type
        exact = info.max_len if kind is TagType.FLAGS else _FIXED_WIDTH.get(kind)
        if info.fixed_len is not None:
            exact = info.fixed_len if exact in (None, info.fixed_len) else -1
        if exact is not None:
            bounds = (exact, exact) if _LEAST_SIZE.get(kind, 0) <= exact <= info.max_len else (1, 0)
        else:
            bounds = (_LEAST_SIZE.get(kind, 0), info.max_len)
        _BOUNDS[info.number] = bounds
    return bounds


_ANY_SIZE = (0, 1 << 62, False)
_LIMITS: dict[int, tuple[int, int, bool]] = {}


def _limits(tag: int) -> tuple[int, int, bool]:
    """``(low, high, is_stlv)`` of a tag: the sizes :func:`_check_size` accepts (computed once)."""
    limits = _LIMITS.get(tag)
    if limits is None:
        info = TAGS.get(tag)
        if info is None:
            limits = _ANY_SIZE  # unknown tags pass (the drive decides about those)
        else:
            low, high = _size_bounds(info)
            limits = (low, high, info.type is TagType.STLV)
        _LIMITS[tag] = limits
    return limits


def _validate(tag: int, raw: bytes, depth: int) -> list[Tlv] | None:
    # The hot path of every 07h: one table look-up per value, the catalogue only for the error.
    low, high, stlv = _LIMITS.get(tag) or _limits(tag)
    if not low <= len(raw) <= high:
        _check_size(TAGS[tag], len(raw))  # raises with the reason
    if not stlv:
        return None
    if depth >= MAX_DEPTH:
        info = TAGS[tag]
        raise ValidationError(
            f"tag {tag} ({info.name})", f"STLV nested deeper than {MAX_DEPTH} levels"
        )
    try:
        children = parse_tlvs(raw)
    except TlvError as exc:
        raise ValidationError(
            f"tag {tag} ({TAGS[tag].name})", f"body is not a TLV list: {exc}"
        ) from exc
    for child in children:
        _validate(child.tag, child.value, depth + 1)
    return children


def validate_value(tag: int, raw: bytes) -> None:
    """Check a raw value against the catalogue: lengths, exact widths, STLV bodies.

    STLV children are checked recursively. Unknown tags pass (the drive decides about those).
    Strings are not checked for content: every byte is a CP866 character.

    Raises:
        ValidationError: the value violates the catalogue (the drive answers 18h).
    """
    _validate(tag, bytes(raw), 0)


def validate_tlv(tag: int, raw: bytes) -> list[Tlv] | None:
    """:func:`validate_value`, returning the parsed children of an STLV (``None`` for a plain value).

    For callers that look into the children next (07h checks an item against the registration),
    so the body is parsed once.

    Raises:
        ValidationError: as :func:`validate_value`.
    """
    return _validate(tag, bytes(raw), 0)
