"""The drive's fast paths answer exactly as the general code they stand in for.

Each fast path handles the common case and hands everything else to the general path; these
tests put both side by side on generated input: the endpoint's whole-frame path against the
framer, the one-pass TLV check against the catalogue walk it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.commands import build_request
from kkt_emulator.fn.crc import crc16_ccitt, crc16_ccitt_crcmod
from kkt_emulator.fn.frame import Frame, encode_frame
from kkt_emulator.fn.state import DriveState, _dt
from kkt_emulator.fn.tags import TAGS, TagType
from kkt_emulator.fn.tlv import (
    MAX_DEPTH,
    Tlv,
    TlvError,
    _AboutTag,
    _catalogue_max,
    _check_size,
    encode_tlv,
    encode_uint,
    encode_unixtime,
    encode_vln,
    parse_tlvs,
    tlv_byte,
    tlv_u32,
    tlv_unixtime,
    tlv_vln,
    validate_tlv,
    validate_value,
)
from kkt_emulator.fnio.archive import RECENT_DOCUMENTS, SqliteStore
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


# ---------------------------------------------------------------------------- TLV builders


def _codec_byte(tag: int, value: int) -> bytes:
    with _AboutTag(tag):
        return encode_tlv(tag, encode_uint(value, 1))


def _codec_u32(tag: int, value: int) -> bytes:
    with _AboutTag(tag):
        return encode_tlv(tag, encode_uint(value, 4))


def _codec_vln(tag: int, value: int, max_len: int | None = None) -> bytes:
    with _AboutTag(tag):
        limit = max_len if max_len is not None else _catalogue_max(tag, TagType.VLN, 8)
        return encode_tlv(tag, encode_vln(value, limit))


def _codec_unixtime(tag: int, dt: datetime) -> bytes:
    with _AboutTag(tag):
        return encode_tlv(tag, encode_unixtime(dt))


def _built(build: Callable[..., bytes], *args: object) -> tuple[str, object]:
    try:
        return ("ok", build(*args))
    except ValidationError as exc:
        return (type(exc).__name__, str(exc))


builder_tags = st.one_of(known_tags, st.integers(-2, 0x10001))
builder_ints = st.one_of(
    st.integers(-3, 300), st.integers(0, 1 << 70), st.sampled_from([0xFF, 0x100, 2**32 - 1, 2**32])
)


@given(tag=builder_tags, value=builder_ints)
def test_int_builders_pack_as_the_codecs(tag: int, value: int) -> None:
    assert _built(tlv_byte, tag, value) == _built(_codec_byte, tag, value)
    assert _built(tlv_u32, tag, value) == _built(_codec_u32, tag, value)
    assert _built(tlv_vln, tag, value) == _built(_codec_vln, tag, value)
    for max_len in (1, 5, 8):
        assert _built(tlv_vln, tag, value, max_len) == _built(_codec_vln, tag, value, max_len)


@given(
    tag=builder_tags,
    when=st.datetimes(
        min_value=datetime(1960, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2120, 1, 1),  # noqa: DTZ001
        timezones=st.one_of(st.none(), st.just(UTC), st.timezones()),
    ),
)
def test_unixtime_builder_packs_as_the_codec(tag: int, when: datetime) -> None:
    assert _built(tlv_unixtime, tag, when) == _built(_codec_unixtime, tag, when)


# ---------------------------------------------------------------------------- the saved state


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), st.timezones())),
        ),
        max_size=30,
    )
)
def test_state_times_serialise_as_isoformat(times: list[datetime | None]) -> None:
    # Equal instants at different offsets are equal keys: each keeps its own text.
    for when in [*times, *(t.astimezone(UTC) for t in times if t and t.tzinfo), *times]:
        assert _dt(when) == (when.isoformat() if when is not None else None)


def _items(prices: list[int]) -> list[bytes]:
    return [item_tlv(Item(price=p)) for p in prices]


@settings(max_examples=30, deadline=None)
@given(prices=st.lists(st.integers(1, 10**6), min_size=1, max_size=4), restore=st.booleans())
def test_a_receipt_signs_alike_from_the_07h_parse_and_from_its_bytes(
    prices: list[int], restore: bool
) -> None:
    benches = [_bench(), _bench()]
    answers = []
    for n, bench in enumerate(benches):
        total = sum(prices)
        bench.call(Command.START_RECEIPT, when=bench.local)
        bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(total))
        for item in _items(prices):
            bench.call(Command.SEND_DOCUMENT_DATA, data=item)
        doc = bench.drive.state.open_doc
        assert doc is not None
        if n == 1:
            # The second drive signs from the bytes alone: as a restored drive, or after the
            # data was changed behind 07h's back.
            if restore:
                bench.drive.state = DriveState.from_json(bench.drive.state.to_json())
            else:
                doc.tlv = bytes(bytearray(doc.tlv))
            reopened = bench.drive.state.open_doc
            assert reopened is not None
            assert reopened.parsed is None or reopened.parsed[0] is not reopened.tlv
        else:
            assert doc.parsed is not None
            assert doc.parsed[0] is doc.tlv
        answers.append(bench.raw(Command.FINISH_RECEIPT, _finish(bench, total)))
    assert answers[0] == answers[1]
    assert benches[0].drive.store.get_document(benches[0].drive.state.last_fd) == (
        benches[1].drive.store.get_document(benches[1].drive.state.last_fd)
    )


def _finish(bench: DriveBench, total: int) -> bytes:
    return build_request(Command.FINISH_RECEIPT, when=bench.local, operation=1, total=total)


# ---------------------------------------------------------------------------- the archive


def _registered_with_a_shift(tmp_path: Path) -> tuple[Path, SqliteStore, DriveBench]:
    """A drive on a SQLite archive, registered, with a shift open."""
    path = tmp_path / "drive.sqlite3"
    store = SqliteStore(path)
    bench = DriveBench("modulkassa-ffd12", store=store)
    bench.register()
    bench.open_shift()
    return path, store, bench


def test_a_core_only_step_is_one_normal_statement_and_reads_back(tmp_path: Path) -> None:
    path, store, bench = _registered_with_a_shift(tmp_path)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    bench.call(Command.OFD_TRANSPORT, connected=1)
    # After the FULL commit of the shift: back to NORMAL, then one UPDATE per command.
    assert [s.split()[0] for s in statements] == ["PRAGMA", "UPDATE"]
    assert statements[0] == "PRAGMA synchronous=NORMAL"
    assert store.synchronous == "NORMAL"
    statements.clear()
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(4550))
    # An open document's steps are held until the next write, a reload or a close (D136).
    assert statements == []
    store._db.set_trace_callback(None)
    expected = bench.drive.state.to_json()
    store.close()
    reopened = SqliteStore(path)
    loaded = reopened.load_state()
    assert loaded is not None
    assert loaded.to_json() == expected
    # The receipt goes on from the reopened archive as from the first.
    bench.drive = bench.drive.__class__(bench.config, reopened)
    bench.endpoint = bench.endpoint.__class__(bench.drive)
    bench.call(Command.SEND_DOCUMENT_DATA, data=item_tlv(Item()))
    bench.call(Command.FINISH_RECEIPT, when=bench.local, operation=1, total=4550)
    assert reopened.synchronous == "FULL"
    assert reopened.document_count() == 3
    reopened.close()


def test_a_document_just_signed_is_read_without_the_file(tmp_path: Path) -> None:
    """D124: the OFD reads of a document 16h just signed need no SELECT; the file has it too."""
    path, store, bench = _registered_with_a_shift(tmp_path)
    for _ in range(RECENT_DOCUMENTS + 2):
        bench.call(Command.START_RECEIPT, when=bench.local)
        bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(4550))
        bench.call(Command.SEND_DOCUMENT_DATA, data=item_tlv(Item()))
        bench.call(Command.FINISH_RECEIPT, when=bench.local, operation=1, total=4550)
    fd = bench.drive.state.last_fd
    assert fd > RECENT_DOCUMENTS + 2
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    first = store.get_document(fd)
    assert first is not None
    assert store.get_document(fd) is first
    assert statements == []
    store._db.set_trace_callback(None)
    reopened = SqliteStore(path)
    from_file = reopened.get_document(fd)
    assert from_file == first
    reopened.close()
    for older in range(1, fd - RECENT_DOCUMENTS + 1):  # only the latest are kept
        statements.clear()
        store._db.set_trace_callback(statements.append)
        assert store.get_document(older) == SqliteStore(path).get_document(older)
        store._db.set_trace_callback(None)
        assert statements, older
    store.wipe()
    assert store.get_document(fd) is None
    store.close()


# ---------------------------------------------------------------------------- CRC


@given(st.binary(max_size=2000))
def test_crc_is_crcmods_crc(data: bytes) -> None:
    assert crc16_ccitt(data) == crc16_ccitt_crcmod(data)
    assert crc16_ccitt(bytes(bytearray(data))) == crc16_ccitt_crcmod(data)


def test_crc_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1 == crc16_ccitt_crcmod(b"123456789")


@given(values)
def test_parsed_tlvs_are_plain_tlvs(raw: bytes) -> None:
    try:
        parsed = parse_tlvs(raw)
    except TlvError:
        return
    assert all(type(t) is Tlv and t == Tlv(t.tag, t.value) for t in parsed)
    assert b"".join(encode_tlv(t.tag, t.value) for t in parsed) == raw
