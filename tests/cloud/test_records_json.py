"""The JSON columns read back what was written: orjson where it is exact, the standard library where not."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.cloud.records import dumps, loads

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8", categories=("Nd", "L", "P", "Zs"))),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_VALUES)
def test_a_value_reads_back_as_written(value: Any) -> None:
    text = dumps(value)
    back = loads(text)
    assert back == value
    assert type(back) is type(value)


def test_integers_beyond_64_bits_stay_integers() -> None:
    for number in (2**64, -(2**63) - 1, 10**19, 12345678901234567890123):
        assert loads(dumps({"n": number, "s": "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩"})) == {
            "n": number,
            "s": "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩",
        }
    assert loads('{"a":"1234567890123456789"}') == {"a": "1234567890123456789"}
    assert loads("[18446744073709551615]") == [2**64 - 1]
