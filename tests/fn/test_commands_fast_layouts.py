"""The registration and heartbeat layouts (D138) agree with the construct schemas on inputs of their size.

``tests/fn/test_commands_fast.py`` runs every fast path on short random payloads; the layouts
added for the registration (02h/03h, A2h/A3h, 04h) and the heartbeat's reads (31h, 3Ah, 32h) are
longer, with text, DATE and optional fields, so here the payloads and fields are drawn around
exactly those shapes: right sizes, one byte off, impossible dates, texts that do not fit or do not
encode, optional fields absent, ``None``, out of range or of another type.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, Phase

_REQUESTS = [
    Command.START_REGISTRATION,
    Command.FINISH_REGISTRATION,
    Command.START_REGISTRATION_12,
    Command.FINISH_REGISTRATION_12,
    Command.CLOSE_FN,
]
_ANSWERS = [
    Command.FINISH_REGISTRATION,
    Command.FINISH_REGISTRATION_12,
    Command.CLOSE_FN,
    Command.SERIAL,
    Command.FREE_RESOURCES,
    Command.EXPIRY,
]


def _fields(container: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(container).items() if not k.startswith("_")}


def _size(layout: cmd.Layout) -> int:
    return sum(cmd._size(kind) for _, kind in layout)


_DATE_TIME = st.builds(
    lambda y, mo, d, h, mi: bytes((y, mo, d, h, mi)),
    st.integers(0, 255),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
)
_TEXT_BYTES = st.one_of(
    st.binary(min_size=1, max_size=20),
    st.text(alphabet="0123456789 АБВ\x00", max_size=20).map(lambda t: t.encode("cp866")),
)


@st.composite
def _payload(draw: st.DrawFn, layout: cmd.Layout) -> bytes:
    """A payload laid out field by field (often valid), sometimes cut or one byte long."""
    parts = []
    for _, kind in layout:
        size = cmd._size(kind)
        if kind == "dt":
            parts.append(draw(_DATE_TIME))
        elif kind == "date":
            parts.append(draw(_DATE_TIME)[:3])
        elif kind in cmd._ASCII:
            parts.append(draw(_TEXT_BYTES).ljust(size, b" ")[:size])
        elif kind in cmd._OPTIONAL:
            parts.append(draw(st.sampled_from([b"", bytes(size), b"\xff" * size])))
        else:
            parts.append(draw(st.binary(min_size=size, max_size=size)))
    data = b"".join(parts)
    cut = draw(st.sampled_from(["whole", "whole", "short", "long"]))
    if cut == "short":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if cut == "long":
        return data + draw(st.binary(min_size=1, max_size=3))
    return data


def _schema_parse(schema: cs.Construct, data: bytes) -> dict[str, Any] | None:
    try:
        return _fields(schema.parse(data))
    except cs.ConstructError:
        return None


@pytest.mark.parametrize("code", _REQUESTS, ids=lambda c: Command(c).name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_requests_parse_as_the_schema_says(code: int, data: st.DataObject) -> None:
    payload = data.draw(_payload(cmd.REQUEST_LAYOUTS[code]))
    fast = cmd._FAST_REQUESTS[code](payload)
    expected = _schema_parse(cmd.REQUESTS[code], payload)
    assert (None if fast is None else _fields(fast)) == expected


@pytest.mark.parametrize("code", _ANSWERS, ids=lambda c: Command(c).name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_answers_parse_as_the_schema_says(code: int, data: st.DataObject) -> None:
    payload = data.draw(_payload(cmd.ANSWER_LAYOUTS[code]))
    fast = cmd._FAST_ANSWERS[code](payload)
    expected = _schema_parse(cmd.ANSWERS[code], payload)
    assert (None if fast is None else _fields(fast)) == expected


_WHEN = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2300, 1, 1))  # noqa: DTZ001 - drive wall time
_DAY = st.dates(min_value=date(1990, 1, 1), max_value=date(2300, 1, 1))
_INT = st.one_of(
    st.integers(-2, 300),
    st.integers(-(2**33), 2**33),
    st.booleans(),
    st.sampled_from(list(Phase)),
)
_TEXT = st.one_of(
    st.text(alphabet="0123456789", max_size=22),
    st.text(max_size=14),
    st.sampled_from(["7701234567", "0000000001012345"]),
)
_ANY = st.one_of(_WHEN, _DAY, _INT, _TEXT, st.binary(max_size=4), st.none(), st.floats())


def _value(kind: str | int) -> st.SearchStrategy[Any]:
    if kind == "dt":
        return st.one_of(_WHEN, _WHEN, _ANY)
    if kind == "date":
        return st.one_of(_DAY, _DAY, _WHEN, _ANY)
    if kind in cmd._ASCII:
        return st.one_of(_TEXT, _TEXT, _ANY)
    return st.one_of(_INT, _INT, _ANY)


@st.composite
def _field_set(draw: st.DrawFn, layout: cmd.Layout) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, kind in layout:
        if kind in cmd._OPTIONAL and draw(st.booleans()):
            continue  # left out: the schema builds it as None
        fields[name] = draw(_value(kind))
    if draw(st.integers(0, 9)) == 0:
        fields["extra"] = 1
    if fields and draw(st.integers(0, 9)) == 0:
        fields.pop(draw(st.sampled_from(sorted(fields))))
    return fields


def _schema_build(schema: cs.Construct, fields: dict[str, Any]) -> bytes | None:
    try:
        built: bytes = schema.build(fields)
    except (cs.ConstructError, AttributeError, KeyError, TypeError, ValueError, UnicodeError):
        return None
    return built


def _exact(layout: cmd.Layout, fields: dict[str, Any]) -> bool:
    """Only the layout's fields, each of exactly the type the schema takes (the fast path's own)."""
    names = {name for name, _ in layout}
    for name, kind in layout:
        if name not in fields:
            if kind not in cmd._OPTIONAL:
                return False
            continue
        value = fields[name]
        if kind == "dt" and type(value) is not datetime:
            return False
        if kind == "date" and type(value) is not date:
            return False
        if kind in cmd._ASCII and type(value) is not str:
            return False
        if kind in ("B", "H", "I") and not isinstance(value, int):
            return False
    return set(fields) <= names


@pytest.mark.parametrize(
    ("table", "code"),
    [("request", c) for c in _REQUESTS] + [("answer", c) for c in _ANSWERS],
    ids=lambda v: v if isinstance(v, str) else Command(v).name,
)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_fields_build_as_the_schema_says(table: str, code: int, data: st.DataObject) -> None:
    layouts, fast_table, schemas = (
        (cmd.REQUEST_LAYOUTS, cmd._FAST_BUILD_REQUESTS, cmd.REQUESTS)
        if table == "request"
        else (cmd.ANSWER_LAYOUTS, cmd._FAST_BUILD_ANSWERS, cmd.ANSWERS)
    )
    layout = layouts[code]
    fields = data.draw(_field_set(layout))
    fast = fast_table[code](fields)
    expected = _schema_build(schemas[code], fields)
    if fast is not None:
        assert fast == expected
    elif _exact(layout, fields):
        # The fast path steps aside with exactly the schema's fields only where the schema fails.
        assert expected is None


def test_a_registration_round_trips_through_the_fast_paths() -> None:
    when = datetime(2026, 1, 12, 9, 30)  # noqa: DTZ001 - drive wall time
    fields: dict[str, Any] = {
        "when": when,
        "inn": "7701234567",
        "rnm": "0000000001012345",
        "tax_systems": 1,
        "mode": 0x24,
        "ext_flags": 0,
        "ofd_inn": "7704358518",
        "reason": None,
    }
    data = cmd.build_request(Command.FINISH_REGISTRATION_12, **fields)
    assert data == cmd.REQUESTS[Command.FINISH_REGISTRATION_12].build(fields)
    assert _fields(cmd.parse_request(Command.FINISH_REGISTRATION_12, data)) == fields
    assert cmd.build_request(Command.START_REGISTRATION_12, report_type=0, ffd=4) == b"\x00\x04"
    assert cmd.build_request(Command.START_REGISTRATION, report_type=None) == b""
