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

from datetime import date, datetime
from typing import Any

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
    command = _command(code)
    built: bytes = ANSWERS[command].build(fields)
    return built
