"""The hand-coded payloads of the hot commands agree with the construct schemas, on any input.

``fn/commands.py`` parses and builds 15h, 07h, 16h, 30h and the commands without fields by hand;
the schemas stay the definition. Each property below runs both on the same bytes or fields: either
both succeed with the same result, or the fast path steps aside and the schema's error is raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command


def _codes(fast: dict[int, Any]) -> list[int]:
    """The commands with a fast path; of those sharing one function (no fields), only the first."""
    seen: set[Any] = set()
    codes = []
    for code in sorted(fast):
        if fast[code] in (cmd._fast_empty, cmd._fast_build_empty):
            if fast[code] in seen:
                continue
            seen.add(fast[code])
        codes.append(code)
    return codes


FAST_REQUESTS = _codes(cmd._FAST_REQUESTS)
FAST_ANSWERS = _codes(cmd._FAST_ANSWERS)
FAST_BUILD_REQUESTS = _codes(cmd._FAST_BUILD_REQUESTS)
FAST_BUILD_ANSWERS = _codes(cmd._FAST_BUILD_ANSWERS)


def _fields(container: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(container).items() if not k.startswith("_")}


def _schema_parse(schema: cs.Construct, data: bytes) -> dict[str, Any] | None:
    """The fields the schema reads from ``data``, or ``None`` where it refuses them."""
    try:
        return _fields(schema.parse(data))
    except cs.ConstructError:  # DateFieldError (07h) is one too
        return None


def _payloads(size: int) -> st.SearchStrategy[bytes]:
    """Bytes around ``size``, often a valid DATE_TIME first: what the schemas care about."""
    date_times = st.builds(
        lambda y, mo, d, h, mi: bytes((y, mo, d, h, mi)),
        st.integers(0, 255),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
    )
    return st.one_of(
        st.binary(max_size=size + 3),
        st.tuples(date_times, st.binary(max_size=size + 2)).map(lambda t: t[0] + t[1]),
    )


@pytest.mark.parametrize("code", FAST_REQUESTS, ids=lambda c: Command(c).name)
@settings(max_examples=25, deadline=None)
@given(data=_payloads(11))
def test_requests_parse_as_the_schema_says(code: int, data: bytes) -> None:
    expected = _schema_parse(cmd.REQUESTS[code], data)
    fast = cmd._FAST_REQUESTS[code](data)
    if isinstance(expected, dict):
        assert fast is not None
        assert _fields(fast) == expected
    else:
        assert fast is None
        with pytest.raises(DriveError):
            cmd.parse_request(code, data)


@pytest.mark.parametrize("code", FAST_ANSWERS, ids=lambda c: Command(c).name)
@settings(max_examples=25, deadline=None)
@given(data=_payloads(30))
def test_answers_parse_as_the_schema_says(code: int, data: bytes) -> None:
    expected = _schema_parse(cmd.ANSWERS[code], data)
    fast = cmd._FAST_ANSWERS[code](data)
    if isinstance(expected, dict):
        assert fast is not None
        assert _fields(fast) == expected
    else:
        assert fast is None


def test_a_status_answer_parses_whole() -> None:
    data = cmd.ANSWERS[Command.STATUS].build(
        {
            "phase": 3,
            "current_document": 4,
            "document_data": 1,
            "shift_open": 1,
            "warnings": 0x81,
            "last_document_time": datetime(2026, 1, 12, 9, 30),  # noqa: DTZ001 - drive wall time
            "serial": "9999078900000001",
            "last_fd": 70000,
        }
    )
    assert len(data) == 30
    assert _fields(cmd.parse_answer(Command.STATUS, data)) == _fields(
        cmd.ANSWERS[Command.STATUS].parse(data)
    )


_WHEN = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2300, 1, 1))  # noqa: DTZ001 - drive wall time
_INT = st.one_of(st.integers(-2, 300), st.integers(-(2**41), 2**41), st.booleans())
_VALUE = st.one_of(_WHEN, _INT, st.binary(max_size=8), st.text(max_size=20), st.none())


def _layout_shape(layout: cmd.Layout) -> dict[str, st.SearchStrategy[Any]]:
    shape: dict[str, st.SearchStrategy[Any]] = {}
    for name, kind in layout:
        if isinstance(kind, int):
            shape[name] = st.binary(min_size=kind - 1, max_size=kind + 1)
        elif kind == "rest":
            shape[name] = st.binary(max_size=10)
        elif kind == "dt":
            shape[name] = _WHEN
        else:
            shape[name] = _INT
    return shape


_REQUEST_FIELDS: dict[int, dict[str, st.SearchStrategy[Any]]] = {
    **{code: _layout_shape(layout) for code, layout in cmd.REQUEST_LAYOUTS.items()},
    **{
        code: {"when": _WHEN}
        for code in (
            Command.START_RECEIPT,
            Command.START_CORRECTION,
            Command.START_OPEN_SHIFT,
            Command.START_CLOSE_SHIFT,
            Command.START_SETTLEMENT_REPORT,
        )
    },
    Command.FINISH_RECEIPT: {"when": _WHEN, "operation": _INT, "total": _INT},
    Command.SEND_DOCUMENT_DATA: {"tlv": st.binary(max_size=20)},
}
_ANSWER_FIELDS: dict[int, dict[str, st.SearchStrategy[Any]]] = {
    **{code: _layout_shape(layout) for code, layout in cmd.ANSWER_LAYOUTS.items()},
    Command.FINISH_RECEIPT: {"receipt_number": _INT, "fd": _INT, "fpd": _INT},
    Command.STATUS: {
        "phase": _INT,
        "current_document": _INT,
        "document_data": _INT,
        "shift_open": _INT,
        "warnings": _INT,
        "last_document_time": _WHEN,
        "serial": st.one_of(st.text(max_size=18), st.sampled_from(["9999078900000001"])),
        "last_fd": _INT,
    },
}
_BYTES_FIELDS = {"tlv", "block", "message", "details", "operator_sign", "first_time"}


def _typed(fields: dict[str, Any]) -> bool:
    """Every value has exactly the type its schema field takes (no bool, no int for bytes)."""

    def expected(name: str) -> type:
        if name in ("when", "last_document_time"):
            return datetime
        if name == "serial":
            return str
        return bytes if name in _BYTES_FIELDS else int

    return all(type(value) is expected(name) for name, value in fields.items())


def _field_sets(shapes: dict[int, dict[str, st.SearchStrategy[Any]]], code: int) -> Any:
    shape = shapes.get(code, {})
    exact = st.fixed_dictionaries(shape)
    # Sometimes a field missing, one too many, or a value of the wrong type.
    broken = st.dictionaries(st.sampled_from([*shape, "extra"]), _VALUE, max_size=len(shape) + 1)
    return st.one_of(exact, exact, broken)


def _schema_build(schema: cs.Construct, fields: dict[str, Any]) -> bytes | None:
    try:
        built: bytes = schema.build(fields)
    except (cs.ConstructError, AttributeError, KeyError, TypeError, ValueError, UnicodeError):
        return None
    return built


@pytest.mark.parametrize("code", FAST_BUILD_REQUESTS, ids=lambda c: Command(c).name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_requests_build_as_the_schema_says(code: int, data: st.DataObject) -> None:
    fields = data.draw(_field_sets(_REQUEST_FIELDS, code))
    fast = cmd._FAST_BUILD_REQUESTS[code](fields)
    if fast is not None:
        # What the fast path builds, the schema builds the same (it may take more: extra keys).
        assert _schema_build(cmd.REQUESTS[code], fields) == fast
    elif set(fields) == set(_REQUEST_FIELDS.get(code, {})) and _typed(fields):
        # With exactly the schema's fields, the fast path steps aside only where the schema fails
        # (bools and subclasses it leaves to the schema, which may take them).
        assert _schema_build(cmd.REQUESTS[code], fields) is None


@pytest.mark.parametrize("code", FAST_BUILD_ANSWERS, ids=lambda c: Command(c).name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_answers_build_as_the_schema_says(code: int, data: st.DataObject) -> None:
    fields = data.draw(_field_sets(_ANSWER_FIELDS, code))
    fast = cmd._FAST_BUILD_ANSWERS[code](fields)
    if fast is not None:
        assert _schema_build(cmd.ANSWERS[code], fields) == fast
    elif set(fields) == set(_ANSWER_FIELDS.get(code, {})) and _typed(fields):
        assert _schema_build(cmd.ANSWERS[code], fields) is None


def test_receipt_commands_round_trip_through_the_fast_paths() -> None:
    when = datetime(2026, 1, 12, 9, 30)  # noqa: DTZ001 - drive wall time
    data = cmd.build_request(Command.FINISH_RECEIPT, when=when, operation=1, total=13540)
    assert data == bytes.fromhex("1a 01 0c 09 1e 01 e4 34 00 00 00")
    parsed = cmd.parse_request(Command.FINISH_RECEIPT, data)
    assert (parsed.when, parsed.operation, parsed.total) == (when, 1, 13540)
    answer = cmd.build_answer(Command.FINISH_RECEIPT, receipt_number=7, fd=12, fpd=0xDEADBEEF)
    assert cmd.parse_answer(Command.FINISH_RECEIPT, answer).fpd == 0xDEADBEEF
