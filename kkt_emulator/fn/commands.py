"""Payload schemas of every drive command a till uses (fn-protocol.md §5, §6), as construct structs.

Each command has a request schema (what the till sends after the command byte) and an answer
schema (what the drive returns after a 00h result). construct only ever sees complete, CRC-checked
payloads (the framer guarantees that); trailing bytes are refused so a malformed request is never
half-understood.

Primitive types (fn-protocol.md §3): DATE_TIME is five binary bytes YY MM DD hh mm (not BCD) read as a
naive local datetime; DATE is three; ASCII fields are CP866, space-padded on the right; money is
Uint40 LE kopecks; counters are Uint48 LE.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, cast

import construct as cs

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import Command, ResultCode

__all__ = [
    "ANSWERS",
    "REQUESTS",
    "Date",
    "DateTime",
    "FixedAscii",
    "Int40ul",
    "Int48ul",
    "build_answer",
    "build_request",
    "decode_datetime",
    "encode_datetime",
    "error_answer_fields",
    "parse_answer",
    "parse_request",
]


class DateFieldError(cs.AdaptationError):  # type: ignore[misc]  # construct is untyped
    """A DATE/DATE_TIME field holds an impossible date (the drive answers 07h)."""


def encode_datetime(value: datetime) -> bytes:
    """Encode DATE_TIME: YY MM DD hh mm as binary bytes (fn-protocol.md §3)."""
    if not 2000 <= value.year <= 2255:
        raise DateFieldError(f"year {value.year} does not fit DATE_TIME")
    return bytes((value.year - 2000, value.month, value.day, value.hour, value.minute))


def decode_datetime(raw: bytes) -> datetime:
    """Decode DATE_TIME into a naive local datetime (the drive's wall clock)."""
    try:
        return datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4])  # noqa: DTZ001 - the wire carries local wall time without a zone
    except ValueError as exc:
        raise DateFieldError(f"impossible DATE_TIME {raw.hex(' ')}: {exc}") from exc


class _DateTimeAdapter(cs.Adapter):  # type: ignore[misc]  # construct is untyped
    def _decode(self, obj: bytes, context: Any, path: Any) -> datetime:  # noqa: ARG002 - construct signature
        return decode_datetime(obj)

    def _encode(self, obj: datetime, context: Any, path: Any) -> bytes:  # noqa: ARG002 - construct signature
        return encode_datetime(obj)


class _DateAdapter(cs.Adapter):  # type: ignore[misc]  # construct is untyped
    def _decode(self, obj: bytes, context: Any, path: Any) -> date:  # noqa: ARG002 - construct signature
        try:
            return date(2000 + obj[0], obj[1], obj[2])
        except ValueError as exc:
            raise DateFieldError(f"impossible DATE {obj.hex(' ')}: {exc}") from exc

    def _encode(self, obj: date, context: Any, path: Any) -> bytes:  # noqa: ARG002 - construct signature
        if obj.year < 2000:
            return bytes(3)  # "no date" is sent as zeros
        return bytes((obj.year - 2000, obj.month, obj.day))


class _FixedAsciiAdapter(cs.Adapter):  # type: ignore[misc]  # construct is untyped
    def __init__(self, length: int) -> None:
        super().__init__(cs.Bytes(length))
        self.length = length

    def _decode(self, obj: bytes, context: Any, path: Any) -> str:  # noqa: ARG002 - construct signature
        return obj.decode("cp866").rstrip(" \x00")

    def _encode(self, obj: str, context: Any, path: Any) -> bytes:  # noqa: ARG002 - construct signature
        raw = obj.encode("cp866")
        if len(raw) > self.length:
            raise cs.AdaptationError(f"{obj!r} is longer than {self.length} bytes")
        return raw.ljust(self.length, b" ")


DateTime = _DateTimeAdapter(cs.Bytes(5))
Date = _DateAdapter(cs.Bytes(3))


def FixedAscii(length: int) -> cs.Construct:  # noqa: N802 - reads like a construct type
    """A CP866 text field of ``length`` bytes, space-padded on the right."""
    return _FixedAsciiAdapter(length)


Int40ul = cs.BytesInteger(5, swapped=True)
Int48ul = cs.BytesInteger(6, swapped=True)

_EMPTY = cs.Struct(cs.Terminated)


def _s(*fields: cs.Construct) -> cs.Construct:
    return cs.Struct(*fields, cs.Terminated)


_STATUS = _s(
    "phase" / cs.Int8ub,
    "current_document" / cs.Int8ub,
    "document_data" / cs.Int8ub,
    "shift_open" / cs.Int8ub,
    "warnings" / cs.Int8ub,
    "last_document_time" / DateTime,
    "serial" / FixedAscii(16),
    "last_fd" / cs.Int32ul,
)

REQUESTS: dict[int, cs.Construct] = {
    Command.START_REGISTRATION: _s("report_type" / cs.Optional(cs.Int8ub)),
    Command.FINISH_REGISTRATION: _s(
        "when" / DateTime,
        "inn" / FixedAscii(12),
        "rnm" / FixedAscii(20),
        "tax_systems" / cs.Int8ub,
        "mode" / cs.Int8ub,
        "reason" / cs.Optional(cs.Int8ub),
    ),
    Command.START_CLOSE_FN: _EMPTY,
    Command.CLOSE_FN: _s("when" / DateTime, "rnm" / FixedAscii(20)),
    Command.CANCEL_DOCUMENT: _EMPTY,
    Command.SEND_DOCUMENT_DATA: cs.Struct("tlv" / cs.GreedyBytes),
    Command.SHIFT_PARAMS: _EMPTY,
    Command.START_OPEN_SHIFT: _s("when" / DateTime),
    Command.OPEN_SHIFT: _EMPTY,
    Command.START_CLOSE_SHIFT: _s("when" / DateTime),
    Command.CLOSE_SHIFT: _EMPTY,
    Command.START_RECEIPT: _s("when" / DateTime),
    Command.FINISH_RECEIPT: _s("when" / DateTime, "operation" / cs.Int8ub, "total" / Int40ul),
    Command.START_CORRECTION: _s("when" / DateTime),
    Command.START_SETTLEMENT_REPORT: _s("when" / DateTime),
    Command.FINISH_SETTLEMENT_REPORT: _EMPTY,
    Command.OFD_STATUS: _EMPTY,
    Command.OFD_TRANSPORT: _s("connected" / cs.Int8ub),
    Command.OFD_START_READ: _EMPTY,
    Command.OFD_READ_BLOCK: _s("offset" / cs.Int16ul, "length" / cs.Int16ul),
    Command.OFD_CANCEL_READ: _EMPTY,
    Command.OFD_FINISH_READ: _EMPTY,
    Command.OFD_RECEIPT: cs.Struct("message" / cs.GreedyBytes),
    Command.STATUS: _EMPTY,
    Command.SERIAL: _EMPTY,
    Command.EXPIRY: _EMPTY,
    Command.VERSION: _EMPTY,
    Command.LAST_ERRORS: _EMPTY,
    Command.FORMAT: _EMPTY,
    Command.DAYS_LEFT: _s("when" / DateTime),
    Command.FREE_RESOURCES: _EMPTY,
    Command.FIND_DOCUMENT: _s("fd" / cs.Int32ul),
    Command.OFD_ACK_BY_NUMBER: _s("fd" / cs.Int32ul),
    Command.UNCONFIRMED_COUNT: _EMPTY,
    Command.REGISTRATION_RESULTS: _s("ordinal" / cs.Optional(cs.Int8ub)),
    Command.REGISTRATION_PARAMETER: _s("tag" / cs.Int16ul),
    Command.READ_DOCUMENT_TLV: _s("fd" / cs.Int32ul),
    Command.READ_DOCUMENT_TLV_NEXT: _EMPTY,
    Command.READ_REGISTRATION_TLV_NEXT: _EMPTY,
    Command.RESET: _s("code" / cs.Int8ub),
    Command.START_REGISTRATION_12: _s("report_type" / cs.Int8ub, "ffd" / cs.Optional(cs.Int8ub)),
    Command.FINISH_REGISTRATION_12: _s(
        "when" / DateTime,
        "inn" / FixedAscii(12),
        "rnm" / FixedAscii(20),
        "tax_systems" / cs.Int8ub,
        "mode" / cs.Int8ub,
        "ext_flags" / cs.Int8ub,
        "ofd_inn" / FixedAscii(12),
        "reason" / cs.Optional(cs.Int32ul),
    ),
}

_SHIFT_ANSWER = _s(
    "shift_number" / cs.Int16ul,
    "fd" / cs.Int32ul,
    "fpd" / cs.Int32ul,
    "warnings" / cs.Optional(cs.Int8ub),
)

ANSWERS: dict[int, cs.Construct] = {
    Command.START_REGISTRATION: _EMPTY,
    Command.FINISH_REGISTRATION: _s("fd" / cs.Int32ul, "fpd" / cs.Int32ul),
    Command.START_CLOSE_FN: _EMPTY,
    Command.CLOSE_FN: _s("fd" / cs.Int32ul, "fpd" / cs.Int32ul),
    Command.CANCEL_DOCUMENT: _EMPTY,
    Command.SEND_DOCUMENT_DATA: _EMPTY,
    Command.SHIFT_PARAMS: _s(
        "shift_open" / cs.Int8ub, "shift_number" / cs.Int16ul, "receipt_number" / cs.Int16ul
    ),
    Command.START_OPEN_SHIFT: _EMPTY,
    Command.OPEN_SHIFT: _SHIFT_ANSWER,
    Command.START_CLOSE_SHIFT: _EMPTY,
    Command.CLOSE_SHIFT: _SHIFT_ANSWER,
    Command.START_RECEIPT: _EMPTY,
    Command.FINISH_RECEIPT: _s(
        "receipt_number" / cs.Int16ul, "fd" / cs.Int32ul, "fpd" / cs.Int32ul
    ),
    Command.START_CORRECTION: _EMPTY,
    Command.START_SETTLEMENT_REPORT: _EMPTY,
    Command.FINISH_SETTLEMENT_REPORT: _s(
        "fd" / cs.Int32ul,
        "fpd" / cs.Int32ul,
        "unconfirmed" / cs.Int32ul,
        "first_unconfirmed" / Date,
    ),
    Command.OFD_STATUS: _s(
        "status" / cs.Int8ub,
        "reading" / cs.Int8ub,
        "unsent" / cs.Int16ul,
        "first_fd" / cs.Int32ul,
        "first_time" / cs.Bytes(5),
    ),
    Command.OFD_TRANSPORT: _EMPTY,
    Command.OFD_START_READ: _s("length" / cs.Int16ul),
    Command.OFD_READ_BLOCK: cs.Struct("block" / cs.GreedyBytes),
    Command.OFD_CANCEL_READ: _EMPTY,
    Command.OFD_FINISH_READ: _EMPTY,
    Command.OFD_RECEIPT: cs.Struct("ofd_code" / cs.Int8ub, "message" / cs.GreedyBytes),
    Command.STATUS: _STATUS,
    Command.SERIAL: _s("serial" / FixedAscii(16)),
    Command.EXPIRY: _s(
        "expiry" / Date, "registrations_left" / cs.Int8ub, "registrations_done" / cs.Int8ub
    ),
    Command.VERSION: _s("version" / FixedAscii(16), "serial_firmware" / cs.Int8ub),
    Command.LAST_ERRORS: cs.Struct("dump" / cs.GreedyBytes),
    Command.FORMAT: _s("ffd_in_use" / cs.Int8ub, "ffd_max" / cs.Int8ub),
    Command.DAYS_LEFT: _s("days" / cs.Int16ul),
    Command.FREE_RESOURCES: _s(
        "documents_left" / cs.Int32ul,
        "ofd_free_kb" / cs.Int32ul,
        "marking_percent" / cs.Optional(cs.Int8ub),
    ),
    Command.FIND_DOCUMENT: cs.Struct(
        "doc_type" / cs.Int8ub, "acknowledged" / cs.Int8ub, "details" / cs.GreedyBytes
    ),
    Command.OFD_ACK_BY_NUMBER: _s(
        "when" / DateTime, "operator_sign" / cs.Bytes(18), "fd" / cs.Int32ul
    ),
    Command.UNCONFIRMED_COUNT: _s("count" / cs.Int16ul),
    Command.REGISTRATION_RESULTS: cs.Struct(
        "when" / DateTime,
        "inn" / FixedAscii(12),
        "rnm" / FixedAscii(20),
        "tax_systems" / cs.Int8ub,
        "mode" / cs.Int8ub,
        "rest" / cs.GreedyBytes,
    ),
    Command.REGISTRATION_PARAMETER: cs.Struct("tlv" / cs.GreedyBytes),
    Command.READ_DOCUMENT_TLV: _s("doc_type" / cs.Int16ul, "length" / cs.Int16ul),
    Command.READ_DOCUMENT_TLV_NEXT: cs.Struct("tlv" / cs.GreedyBytes),
    Command.READ_REGISTRATION_TLV_NEXT: cs.Struct("tlv" / cs.GreedyBytes),
    Command.RESET: _EMPTY,
    Command.START_REGISTRATION_12: _EMPTY,
    Command.FINISH_REGISTRATION_12: _s("fd" / cs.Int32ul, "fpd" / cs.Int32ul),
}

# 40h type-specific details, by FFD document code (fn-protocol.md §6.7).
_DOC_HEAD = ("when" / DateTime, "fd" / cs.Int32ul, "fpd" / cs.Int32ul)
FIND_DOCUMENT_DETAILS: dict[int, cs.Construct] = {
    1: cs.Struct(
        *_DOC_HEAD,
        "inn" / FixedAscii(12),
        "rnm" / FixedAscii(20),
        "tax_systems" / cs.Int8ub,
        "mode" / cs.Int8ub,
        "rest" / cs.GreedyBytes,
    ),
    11: cs.Struct(
        *_DOC_HEAD,
        "inn" / FixedAscii(12),
        "rnm" / FixedAscii(20),
        "tax_systems" / cs.Int8ub,
        "mode" / cs.Int8ub,
        "rest" / cs.GreedyBytes,
    ),
    2: _s(*_DOC_HEAD, "shift_number" / cs.Int16ul),
    5: _s(*_DOC_HEAD, "shift_number" / cs.Int16ul),
    3: _s(*_DOC_HEAD, "operation" / cs.Int8ub, "total" / Int40ul),
    31: _s(*_DOC_HEAD, "operation" / cs.Int8ub, "total" / Int40ul),
    4: _s(*_DOC_HEAD, "operation" / cs.Int8ub, "total" / Int40ul),
    41: _s(*_DOC_HEAD, "operation" / cs.Int8ub, "total" / Int40ul),
    6: _s(*_DOC_HEAD, "inn" / FixedAscii(12), "rnm" / FixedAscii(20)),
    21: _s(*_DOC_HEAD, "unconfirmed" / cs.Int32ul, "first_unconfirmed" / Date),
}

# KassArray reports high-bit document types on FFD 1.1/1.2 drives; decoders map exactly these by
# their low 6 bits and keep the raw byte (fn-protocol.md §6.7 project decision).
KASSARRAY_DOC_TYPES = frozenset({0x41, 0x4B, 0x83, 0xC3, 0x9F, 0xDF, 0x84, 0xC4, 0xA9, 0xE9})


def doc_code_of_type_byte(raw: int) -> int | None:
    """Map a 40h type byte to the FFD document code, or ``None`` for an unknown byte."""
    if raw in FIND_DOCUMENT_DETAILS:
        return raw
    if raw in KASSARRAY_DOC_TYPES:
        return raw & 0x3F
    return None


# --- fast paths ----------------------------------------------------------------------------------
#
# The schemas above are the definition. The commands of every receipt (15h, 07h, 16h), the status
# (30h), the commands without fields, the OFD loop's, the heartbeat's reads and the registration
# (D138) are also coded by hand below, since construct costs several microseconds per payload and
# these run on every frame. A fast function returns ``None`` for anything it does not take (a
# wrong length, an impossible date, a field out of range), and the schema then decides — so errors
# stay exactly the schema's, and tests/fn/test_commands_fast.py and test_commands_fast_layouts.py
# check that both give the same results on any bytes and any fields.

_U32 = struct.Struct("<I")
_FINISH_RECEIPT_ANSWER = struct.Struct("<HII")


def _fast_empty(data: bytes) -> cs.Container | None:
    return None if data else cs.Container()


def _fast_when(data: bytes) -> cs.Container | None:
    if len(data) != 5:
        return None
    try:
        return cs.Container(when=decode_datetime(data))
    except DateFieldError:
        return None  # the schema answers 07h with its message


def _fast_finish_receipt(data: bytes) -> cs.Container | None:
    if len(data) != 11:
        return None
    try:
        when = decode_datetime(data[:5])
    except DateFieldError:
        return None  # the schema answers 07h with its message
    return cs.Container(when=when, operation=data[5], total=int.from_bytes(data[6:11], "little"))


def _fast_tlv(data: bytes) -> cs.Container:
    return cs.Container(tlv=bytes(data))


def _fast_message(data: bytes) -> cs.Container:
    return cs.Container(message=bytes(data))


# Fixed layouts, for the commands of the OFD loop, the heartbeats and the registration: each
# field is a struct format ("B", "H", "I"), "dt" (DATE_TIME), "date" (DATE), "a12"/"a16"/"a20"
# (FixedAscii of that many bytes), "B?"/"I?" (``cs.Optional`` of the format; last only), a byte
# count (fixed bytes) or "rest" (GreedyBytes, last). A schema ending in GreedyBytes takes any
# length from the fixed part on; any other is Terminated, so it takes exactly the fixed length
# (with or without its optional last field).
Layout = tuple[tuple[str, str | int], ...]

REQUEST_LAYOUTS: dict[int, Layout] = {
    Command.OFD_TRANSPORT: (("connected", "B"),),
    Command.OFD_READ_BLOCK: (("offset", "H"), ("length", "H")),
    Command.FIND_DOCUMENT: (("fd", "I"),),
    Command.OFD_ACK_BY_NUMBER: (("fd", "I"),),
    Command.READ_DOCUMENT_TLV: (("fd", "I"),),
    Command.REGISTRATION_PARAMETER: (("tag", "H"),),
    Command.DAYS_LEFT: (("when", "dt"),),
    # The registration (D138): every new till runs these once, a fleet a thousand times at start.
    Command.START_REGISTRATION: (("report_type", "B?"),),
    Command.FINISH_REGISTRATION: (
        ("when", "dt"),
        ("inn", "a12"),
        ("rnm", "a20"),
        ("tax_systems", "B"),
        ("mode", "B"),
        ("reason", "B?"),
    ),
    Command.START_REGISTRATION_12: (("report_type", "B"), ("ffd", "B?")),
    Command.FINISH_REGISTRATION_12: (
        ("when", "dt"),
        ("inn", "a12"),
        ("rnm", "a20"),
        ("tax_systems", "B"),
        ("mode", "B"),
        ("ext_flags", "B"),
        ("ofd_inn", "a12"),
        ("reason", "I?"),
    ),
    Command.CLOSE_FN: (("when", "dt"), ("rnm", "a20")),
}
ANSWER_LAYOUTS: dict[int, Layout] = {
    Command.OFD_STATUS: (
        ("status", "B"),
        ("reading", "B"),
        ("unsent", "H"),
        ("first_fd", "I"),
        ("first_time", 5),
    ),
    Command.OFD_START_READ: (("length", "H"),),
    Command.OFD_READ_BLOCK: (("block", "rest"),),
    Command.OFD_RECEIPT: (("ofd_code", "B"), ("message", "rest")),
    Command.OFD_ACK_BY_NUMBER: (("when", "dt"), ("operator_sign", 18), ("fd", "I")),
    Command.SHIFT_PARAMS: (("shift_open", "B"), ("shift_number", "H"), ("receipt_number", "H")),
    Command.UNCONFIRMED_COUNT: (("count", "H"),),
    Command.FIND_DOCUMENT: (("doc_type", "B"), ("acknowledged", "B"), ("details", "rest")),
    Command.READ_DOCUMENT_TLV: (("doc_type", "H"), ("length", "H")),
    Command.READ_DOCUMENT_TLV_NEXT: (("tlv", "rest"),),
    # The registration and the heartbeat's reads (D138).
    Command.FINISH_REGISTRATION: (("fd", "I"), ("fpd", "I")),
    Command.FINISH_REGISTRATION_12: (("fd", "I"), ("fpd", "I")),
    Command.CLOSE_FN: (("fd", "I"), ("fpd", "I")),
    Command.SERIAL: (("serial", "a16"),),
    Command.FREE_RESOURCES: (
        ("documents_left", "I"),
        ("ofd_free_kb", "I"),
        ("marking_percent", "B?"),
    ),
    Command.EXPIRY: (
        ("expiry", "date"),
        ("registrations_left", "B"),
        ("registrations_done", "B"),
    ),
}
_SIZES = {
    "B": 1,
    "H": 2,
    "I": 4,
    "dt": 5,
    "date": 3,
    "a12": 12,
    "a16": 16,
    "a20": 20,
    "B?": 1,
    "I?": 4,
    "rest": 0,
}
_LIMITS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "B?": 0xFF, "I?": 0xFFFFFFFF}
_ASCII = frozenset({"a12", "a16", "a20"})
_OPTIONAL = frozenset({"B?", "I?"})


def _size(kind: str | int) -> int:
    return kind if isinstance(kind, int) else _SIZES[kind]


def _layout_parser(layout: Layout) -> Callable[[bytes], cs.Container | None]:
    last = layout[-1][1] if layout else None
    greedy = last == "rest"
    optional = _size(last) if last in _OPTIONAL and last is not None else 0
    fixed = sum(_size(kind) for _, kind in layout) - optional

    def parse(data: bytes) -> cs.Container | None:
        n = len(data)
        if n < fixed or (not greedy and n != fixed and (not optional or n != fixed + optional)):
            return None
        out = cs.Container()
        pos = 0
        for name, kind in layout:
            if isinstance(kind, int):
                out[name] = bytes(data[pos : pos + kind])
                pos += kind
            elif kind == "rest":
                out[name] = bytes(data[pos:])
            elif kind == "dt":
                try:
                    out[name] = decode_datetime(data[pos : pos + 5])
                except DateFieldError:
                    return None  # the schema answers 07h with its message
                pos += 5
            elif kind == "date":
                try:
                    out[name] = date(2000 + data[pos], data[pos + 1], data[pos + 2])
                except ValueError:
                    return None  # the schema says what is wrong with it
                pos += 3
            elif kind in _ASCII:
                size = _SIZES[kind]
                out[name] = bytes(data[pos : pos + size]).decode("cp866").rstrip(" \x00")
                pos += size
            elif kind in _OPTIONAL:
                # cs.Optional: the field when its bytes are there, else None (Terminated follows).
                out[name] = int.from_bytes(data[pos:], "little") if n > pos else None
            else:
                size = _SIZES[kind]
                out[name] = int.from_bytes(data[pos : pos + size], "little")
                pos += size
        return out

    return parse


def _build_field(kind: str | int, value: Any) -> bytes | None:
    """One field's bytes, or ``None`` where the schema is to decide."""
    if isinstance(kind, int):
        return value if type(value) is bytes and len(value) == kind else None
    if kind == "rest":
        return value if type(value) is bytes else None
    if kind == "dt":
        if type(value) is not datetime or not 2000 <= value.year <= 2255:
            return None
        return encode_datetime(value)
    if kind == "date":
        if type(value) is not date or value.year > 2255:
            return None
        if value.year < 2000:
            return bytes(3)  # "no date" is sent as zeros, as _DateAdapter does
        return bytes((value.year - 2000, value.month, value.day))
    if kind in _ASCII:
        if type(value) is not str:
            return None
        try:
            raw = value.encode("cp866")
        except UnicodeEncodeError:
            return None  # the schema raises its own error
        size = _SIZES[kind]
        return raw.ljust(size, b" ") if len(raw) <= size else None
    # Integers; an IntEnum or a bool is packed by construct as its value, so it is taken here too.
    if not isinstance(value, int) or not 0 <= value <= _LIMITS[kind]:
        # cs.Optional builds nothing for whatever its format cannot pack (None included).
        return b"" if kind in _OPTIONAL else None
    return value.to_bytes(_SIZES[kind], "little")


def _layout_builder(layout: Layout) -> Callable[[dict[str, Any]], bytes | None]:
    names = {name for name, _ in layout}
    # An optional field may be left out: the schema builds it as None (nothing).
    required = {name for name, kind in layout if kind not in _OPTIONAL}

    def build(fields: dict[str, Any]) -> bytes | None:
        keys = fields.keys()
        if not required <= keys <= names:
            return None
        parts = []
        for name, kind in layout:
            part = _build_field(kind, fields.get(name))
            if part is None:
                return None
            parts.append(part)
        return b"".join(parts)

    return build


_FAST_REQUESTS: dict[int, Callable[[bytes], cs.Container | None]] = {
    **{code: _fast_empty for code, schema in REQUESTS.items() if schema is _EMPTY},
    Command.START_RECEIPT: _fast_when,
    Command.START_CORRECTION: _fast_when,
    Command.START_OPEN_SHIFT: _fast_when,
    Command.START_CLOSE_SHIFT: _fast_when,
    Command.START_SETTLEMENT_REPORT: _fast_when,
    Command.FINISH_RECEIPT: _fast_finish_receipt,
    Command.SEND_DOCUMENT_DATA: _fast_tlv,
    Command.OFD_RECEIPT: _fast_message,
    **{code: _layout_parser(layout) for code, layout in REQUEST_LAYOUTS.items()},
}


def _fast_build_empty(fields: dict[str, Any]) -> bytes | None:
    return b"" if not fields else None


def _fast_build_when(fields: dict[str, Any]) -> bytes | None:
    when = fields.get("when")
    if len(fields) != 1 or type(when) is not datetime or not 2000 <= when.year <= 2255:
        return None
    return bytes((when.year - 2000, when.month, when.day, when.hour, when.minute))


def _fast_build_finish_receipt(fields: dict[str, Any]) -> bytes | None:
    if len(fields) != 3:
        return None
    when, operation, total = fields.get("when"), fields.get("operation"), fields.get("total")
    if (
        type(when) is not datetime
        or not 2000 <= when.year <= 2255
        or type(operation) is not int
        or not 0 <= operation <= 0xFF
        or type(total) is not int
        or not 0 <= total < 1 << 40
    ):
        return None
    return bytes(
        (when.year - 2000, when.month, when.day, when.hour, when.minute, operation)
    ) + total.to_bytes(5, "little")


def _fast_build_tlv(fields: dict[str, Any]) -> bytes | None:
    tlv = fields.get("tlv")
    return tlv if len(fields) == 1 and type(tlv) is bytes else None


_FAST_BUILD_REQUESTS: dict[int, Callable[[dict[str, Any]], bytes | None]] = {
    **{code: _fast_build_empty for code, schema in REQUESTS.items() if schema is _EMPTY},
    Command.START_RECEIPT: _fast_build_when,
    Command.START_CORRECTION: _fast_build_when,
    Command.START_OPEN_SHIFT: _fast_build_when,
    Command.START_CLOSE_SHIFT: _fast_build_when,
    Command.START_SETTLEMENT_REPORT: _fast_build_when,
    Command.FINISH_RECEIPT: _fast_build_finish_receipt,
    Command.SEND_DOCUMENT_DATA: _fast_build_tlv,
    **{code: _layout_builder(layout) for code, layout in REQUEST_LAYOUTS.items()},
}


def _fast_answer_finish_receipt(data: bytes) -> cs.Container | None:
    if len(data) != 10:
        return None
    number, fd, fpd = _FINISH_RECEIPT_ANSWER.unpack(data)
    return cs.Container(receipt_number=number, fd=fd, fpd=fpd)


def _fast_answer_status(data: bytes) -> cs.Container | None:
    if len(data) != 30:
        return None
    try:
        when = decode_datetime(data[5:10])
    except DateFieldError:
        return None  # the schema says what is wrong with it
    return cs.Container(
        phase=data[0],
        current_document=data[1],
        document_data=data[2],
        shift_open=data[3],
        warnings=data[4],
        last_document_time=when,
        serial=data[10:26].decode("cp866").rstrip(" \x00"),
        last_fd=_U32.unpack_from(data, 26)[0],
    )


_FAST_ANSWERS: dict[int, Callable[[bytes], cs.Container | None]] = {
    **{code: _fast_empty for code, schema in ANSWERS.items() if schema is _EMPTY},
    Command.FINISH_RECEIPT: _fast_answer_finish_receipt,
    Command.STATUS: _fast_answer_status,
    **{code: _layout_parser(layout) for code, layout in ANSWER_LAYOUTS.items()},
}


def _fast_build_answer_finish_receipt(fields: dict[str, Any]) -> bytes | None:
    number, fd, fpd = fields.get("receipt_number"), fields.get("fd"), fields.get("fpd")
    if (
        len(fields) != 3
        or type(number) is not int
        or type(fd) is not int
        or type(fpd) is not int
        or not 0 <= number <= 0xFFFF
        or not 0 <= fd <= 0xFFFFFFFF
        or not 0 <= fpd <= 0xFFFFFFFF
    ):
        return None
    return _FINISH_RECEIPT_ANSWER.pack(number, fd, fpd)


def _fast_build_answer_status(fields: dict[str, Any]) -> bytes | None:
    if len(fields) != 8:
        return None
    head = [fields.get(name) for name in _STATUS_BYTES]
    when, serial, last_fd = (
        fields.get("last_document_time"),
        fields.get("serial"),
        fields.get("last_fd"),
    )
    if (
        # An IntEnum (the phase) or a bool packs as its value, in construct as here (D138).
        any(not isinstance(v, int) or not 0 <= v <= 0xFF for v in head)
        or type(when) is not datetime
        or not 2000 <= when.year <= 2255
        or type(serial) is not str
        or not isinstance(last_fd, int)
        or not 0 <= last_fd <= 0xFFFFFFFF
    ):
        return None
    try:
        raw_serial = serial.encode("cp866")
    except UnicodeEncodeError:
        return None  # the schema raises its own error
    if len(raw_serial) > 16:
        return None
    return (
        bytes(cast("list[int]", head))
        + bytes((when.year - 2000, when.month, when.day, when.hour, when.minute))
        + raw_serial.ljust(16, b" ")
        + _U32.pack(last_fd)
    )


_STATUS_BYTES = ("phase", "current_document", "document_data", "shift_open", "warnings")

_FAST_BUILD_ANSWERS: dict[int, Callable[[dict[str, Any]], bytes | None]] = {
    **{code: _fast_build_empty for code, schema in ANSWERS.items() if schema is _EMPTY},
    Command.FINISH_RECEIPT: _fast_build_answer_finish_receipt,
    Command.STATUS: _fast_build_answer_status,
    **{code: _layout_builder(layout) for code, layout in ANSWER_LAYOUTS.items()},
}


def error_answer_fields(result: int, data: bytes) -> dict[str, Any]:
    """Decode the data that goes with an error answer (tag for 0Bh/0Ch/18h/19h/3Ch, reason for 20h)."""
    if result in (0x0B, 0x0C, 0x18, 0x19, 0x3C) and len(data) >= 2:
        return {"tag": int.from_bytes(data[:2], "little")}
    if result == ResultCode.OFD_MESSAGE_REJECTED and data:
        return {"reason": data[0]}
    if result == ResultCode.MISSING_ACCOUNTING_DATA and data:
        return {"received_mask": data[0]}
    return {"data": data.hex()} if data else {}


def _command(code: int) -> Command:
    try:
        return Command(code)
    except ValueError as exc:
        raise DriveError(ResultCode.UNKNOWN_COMMAND, detail=f"unknown command {code:02X}h") from exc


def parse_request(code: int, data: bytes) -> Any:
    """Parse a request payload.

    Raises:
        DriveError: 01h for an unknown command or a payload of the wrong shape, 07h for an
            impossible date.
    """
    fast = _FAST_REQUESTS.get(code)
    if fast is not None and (parsed := fast(data)) is not None:
        return parsed
    command = _command(code)
    try:
        return REQUESTS[command].parse(data)
    except DateFieldError as exc:
        raise DriveError(ResultCode.BAD_DATETIME, detail=str(exc)) from exc
    except cs.ConstructError as exc:
        raise DriveError(
            ResultCode.UNKNOWN_COMMAND,
            detail=f"{command.name} payload {data.hex(' ') or '(empty)'} is malformed",
        ) from exc


def build_request(code: int, /, **fields: Any) -> bytes:
    """Build a request payload from keyword fields.

    Raises:
        DriveError: 01h when the fields do not fit the schema (a programming error on the till side).
    """
    fast = _FAST_BUILD_REQUESTS.get(code)
    if fast is not None and (payload := fast(fields)) is not None:
        return payload
    command = _command(code)
    try:
        built: bytes = REQUESTS[command].build(fields)
    except cs.ConstructError as exc:
        raise DriveError(
            ResultCode.UNKNOWN_COMMAND, detail=f"cannot build {command.name}: {exc}"
        ) from exc
    return built


def parse_answer(code: int, data: bytes) -> Any:
    """Parse the data of a successful answer to command ``code``.

    Raises:
        DriveError: 01h if the answer does not have the documented shape.
    """
    fast = _FAST_ANSWERS.get(code)
    if fast is not None and (parsed := fast(data)) is not None:
        return parsed
    command = _command(code)
    try:
        return ANSWERS[command].parse(data)
    except cs.ConstructError as exc:
        raise DriveError(
            ResultCode.UNKNOWN_COMMAND,
            detail=f"answer to {command.name} {data.hex(' ') or '(empty)'} is malformed: {exc}",
        ) from exc


def build_answer(code: int, /, **fields: Any) -> bytes:
    """Build the data of a successful answer to command ``code``."""
    fast = _FAST_BUILD_ANSWERS.get(code)
    if fast is not None and (payload := fast(fields)) is not None:
        return payload
    command = _command(code)
    built: bytes = ANSWERS[command].build(fields)
    return built
