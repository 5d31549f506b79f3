"""The drive's fast paths answer exactly as the general code they stand in for.

Each fast path handles the common case and hands everything else to the general path; these
tests put both side by side on generated input: the endpoint's whole-frame path against the
framer, the one-pass TLV check against the catalogue walk it replaces.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.frame import Frame, encode_frame
from kkt_emulator.fn.tags import TAGS, TagType
from kkt_emulator.fn.tlv import (
    MAX_DEPTH,
    TlvError,
    _check_size,
    encode_tlv,
    parse_tlvs,
    validate_tlv,
    validate_value,
)
from kkt_emulator.testing.drive import DriveBench, Item, item_tlv

# ---------------------------------------------------------------------------- endpoint


def _bench() -> DriveBench:
    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    bench.open_shift()
    return bench


def _by_framer(bench: DriveBench, data: bytes) -> list[bytes]:
    """What ``receive`` answered before the whole-frame path: every item through the framer."""
    return [bench.endpoint.handle(item, bench.now) for item in bench.endpoint.split(data)]


def _observed(bench: DriveBench) -> tuple[object, ...]:
    f = bench.endpoint.framer
    return (
        bench.drive.state.to_json(),
        f.crc_errors,
        f.garbage_bytes,
        f.oversize,
        bench.endpoint.commands,
        bench.endpoint.enq_count,
        bytes(bench.endpoint._buffer),
    )


_RECEIPT = [
    encode_frame(Command.START_RECEIPT, b"\x1a\x01\x0c\x09\x00"),
    encode_frame(Command.SEND_DOCUMENT_DATA, item_tlv(Item())),
    encode_frame(Command.STATUS),
]


def _mangle(frame: bytes, how: int, at: int) -> bytes:
    at %= len(frame)
    if how == 0:
        return frame
    if how == 1:  # one byte flipped: a bad CRC, a bad length or a bad start
        return frame[:at] + bytes((frame[at] ^ 0x5A,)) + frame[at + 1 :]
    if how == 2:  # cut short: the rest arrives later (or never)
        return frame[:at]
    if how == 3:  # garbage in front
        return b"\x00\x13" + frame
    if how == 4:  # two frames at once
        return frame + frame
    return b"\x05"  # ENQ


chunks = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(_RECEIPT), st.builds(encode_frame, st.integers(0, 255))),
        st.integers(0, 5),
        st.integers(0, 200),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks)
def test_whole_frame_path_answers_as_the_framer(script: list[tuple[bytes, int, int]]) -> None:
    fast, reference = _bench(), _bench()
    for frame, how, at in script:
        data = _mangle(frame, how, at)
        assert fast.endpoint.receive(data, fast.now) == _by_framer(reference, data)
        assert _observed(fast) == _observed(reference)


def test_whole_frame_path_is_taken_for_a_whole_frame() -> None:
    bench = _bench()
    bench.endpoint.split = None  # type: ignore[assignment,method-assign]  # must not be needed
    (answer,) = bench.endpoint.receive(encode_frame(Command.STATUS), bench.now)
    assert answer[3] == 0


def test_trace_sees_the_answer_frame() -> None:
    bench = _bench()
    seen: list[tuple[Frame, Frame]] = []
    bench.endpoint.trace = lambda request, answer, _now: seen.append((request, answer))
    (raw,) = bench.endpoint.receive(encode_frame(Command.STATUS), bench.now)
    ((request, answer),) = seen
    assert request == Frame(Command.STATUS)
    assert answer.encode() == raw


# ---------------------------------------------------------------------------- TLV checks


def _reference_validate(tag: int, raw: bytes, depth: int = 0) -> None:
    """The catalogue walk ``validate_value`` made before its size table (the reference)."""
    info = TAGS.get(tag)
    if info is None:
        return
    _check_size(info, len(raw))
    if info.type is not TagType.STLV:
        return
    if depth >= MAX_DEPTH:
        raise ValidationError(
            f"tag {tag} ({info.name})", f"STLV nested deeper than {MAX_DEPTH} levels"
        )
    try:
        children = parse_tlvs(raw)
    except TlvError as exc:
        raise ValidationError(f"tag {tag} ({info.name})", f"body is not a TLV list: {exc}") from exc
    for child in children:
        _reference_validate(child.tag, child.value, depth + 1)


def _outcome(check: object, tag: int, raw: bytes) -> tuple[str, object]:
    try:
        result = check(tag, raw)  # type: ignore[operator]
    except ValidationError as exc:
        return ("error", str(exc))
    return ("ok", result)


known_tags = st.sampled_from(sorted(TAGS))
any_tag = st.one_of(known_tags, st.integers(0, 0xFFFF))
stlv_tags = st.sampled_from(sorted(t for t, info in TAGS.items() if info.type is TagType.STLV))


def _tlvs(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    leaf = st.builds(encode_tlv, any_tag, st.binary(max_size=40))
    nested = st.builds(encode_tlv, stlv_tags, children)
    return st.lists(st.one_of(leaf, nested), max_size=6).map(b"".join)


values = st.one_of(
    st.binary(max_size=80),
    st.recursive(st.binary(max_size=20), _tlvs, max_leaves=12),
)


@settings(max_examples=400)
@given(tag=st.one_of(stlv_tags, any_tag), raw=values)
def test_validate_tlv_checks_as_the_catalogue_walk(tag: int, raw: bytes) -> None:
    expected = _outcome(_reference_validate, tag, raw)
    got = _outcome(validate_tlv, tag, raw)
    assert got[0] == expected[0]
    if got[0] == "error":
        assert got == expected
        assert _outcome(validate_value, tag, raw) == expected
    else:
        info = TAGS.get(tag)
        stlv = info is not None and info.type is TagType.STLV
        assert got[1] == (parse_tlvs(raw) if stlv else None)
        assert _outcome(validate_value, tag, raw) == ("ok", None)
