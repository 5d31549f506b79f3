"""JSON answers (D7, D60): orjson writes what the standard library wrote, with its fall-backs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.cloud import records
from kkt_emulator.cloud.responses import JsonResponse, render_json


def _stdlib(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# What the views produce: text (Cyrillic, controls, quotes), 64-bit integers, booleans, nulls.
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_values)
def test_the_bytes_are_those_of_the_standard_library(content: Any) -> None:
    assert render_json(content) == _stdlib(content)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_keep_their_value(value: float) -> None:
    assert json.loads(render_json({"sum": value})) == {"sum": value}


def test_a_lone_surrogate_falls_back_to_ascii_escapes() -> None:
    body = render_json({"message": "id: Товар\ud800"})
    assert body == b'{"message":"id: \\u0422\\u043e\\u0432\\u0430\\u0440\\ud800"}'
    body.decode("ascii")


def test_what_orjson_refuses_the_standard_library_writes() -> None:
    assert render_json({"n": 2**70, 1: "one"}) == _stdlib({"n": 2**70, 1: "one"})


def test_the_content_type_names_utf8() -> None:
    response = JsonResponse({"message": "Касса"})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.body == '{"message":"Касса"}'.encode()


# -- the JSON columns of the database (records.dumps and records.loads) -----------------------------

_stored = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: written and read by the standard library
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _old_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@given(_stored)
def test_a_column_reads_back_as_the_standard_library_read_it(value: Any) -> None:
    text = records.dumps(value)
    assert records.loads(text) == json.loads(_old_dumps(value))
    assert records.loads(_old_dumps(value)) == json.loads(_old_dumps(value))


@given(_values)
def test_a_column_is_written_as_the_standard_library_wrote_it(value: Any) -> None:
    assert records.dumps(value) == _old_dumps(value)


def test_long_integers_and_infinities_keep_their_value() -> None:
    assert records.loads('{"n":123456789012345678901234567890}') == {
        "n": 123456789012345678901234567890
    }
    assert records.loads('["12345678901234567890",1]') == ["12345678901234567890", 1]
    assert records.loads("[1e400]") == [float("inf")]  # as a column written before orjson
    assert records.loads(None) is None


def test_non_finite_floats_are_written_as_null() -> None:
    # No validated input holds one; orjson writes null, as every JSON answer does (D60).
    assert records.dumps([float("inf"), float("nan")]) == "[null,null]"
    assert render_json([float("-inf")]) == b"[null]"
