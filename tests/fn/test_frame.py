"""Frame codec and framer: whole, in halves, byte by byte, with garbage; hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.errors import FramingError
from kkt_emulator.fn.frame import (
    FRAME_SCHEMA,
    BadFrame,
    Enq,
    Frame,
    Framer,
    decode_frame,
    encode_frame,
)

STATUS = bytes.fromhex("04 01 00 30 FF CD")
RECEIPT = bytes.fromhex("04 0C 00 16 18 03 05 0E 07 01 39 30 00 00 00 F4 F8")

frames = st.builds(Frame, code=st.integers(0, 255), data=st.binary(max_size=300))
# Garbage never contains the start byte, so it can never be mistaken for a frame start.
garbage = st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in (0x04, 0x05)))


def drain(framer: Framer, stream: bytes, chunks: list[int] | None = None) -> list[object]:
    """Feed ``stream`` in the given chunk sizes and collect every item."""
    buffer = bytearray()
    items: list[object] = []
    pos = 0
    sizes = chunks or [len(stream)]
    i = 0
    while pos < len(stream) or buffer:
        if pos < len(stream):
            size = sizes[i % len(sizes)] or 1
            buffer += stream[pos : pos + size]
            pos += size
            i += 1
        while True:
            consumed, item = framer.feed(buffer)
            del buffer[:consumed]
            if item is not None:
                items.append(item)
            elif consumed == 0:
                break
        if pos >= len(stream):
            break
    return items


def test_whole_halves_and_byte_by_byte() -> None:
    stream = STATUS + RECEIPT
    expected = [decode_frame(STATUS), decode_frame(RECEIPT)]
    assert drain(Framer(), stream) == expected
    assert drain(Framer(), stream, [len(stream) // 2]) == expected
    assert drain(Framer(), stream, [1]) == expected


def test_garbage_before_and_after_is_skipped_and_counted() -> None:
    framer = Framer()
    items = drain(framer, b"\xff\x00\x13" + STATUS + b"\x99\x98", [1])
    assert items == [decode_frame(STATUS)]
    assert framer.garbage_bytes == 5


def test_short_input_never_raises() -> None:
    framer = Framer()
    for cut in range(len(RECEIPT)):
        assert framer.feed(RECEIPT[:cut]) == (0, None)


def test_crc_error_is_reported_and_next_frame_survives() -> None:
    bad = bytearray(RECEIPT)
    bad[6] ^= 0x01
    framer = Framer()
    items = drain(framer, bytes(bad) + STATUS)
    assert isinstance(items[0], BadFrame)
    assert items[1] == decode_frame(STATUS)
    assert framer.crc_errors == 1


def test_enq_only_on_the_drive_side() -> None:
    assert drain(Framer(accept_enq=True), b"\x05" + STATUS) == [Enq(), decode_frame(STATUS)]
    assert drain(Framer(), b"\x05" + STATUS) == [decode_frame(STATUS)]


def test_oversize_length_resyncs() -> None:
    framer = Framer(max_data=1024)
    fake = b"\x04\xff\xff"  # a start byte with an impossible length
    assert drain(framer, fake + STATUS) == [decode_frame(STATUS)]
    assert framer.oversize == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x04\x01", "at least 6"),
        (b"\x05\x01\x00\x30\xff\xcd", "start with 04h"),
        (b"\x04\x02\x00\x30\xff\xcd", "length field"),
        (b"\x04\x01\x00\x30\xff\xce", "CRC mismatch"),
        (b"\x04\x00\x00\x30\xff\xcd", "is 0"),
    ],
)
def test_decode_frame_errors(raw: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message):
        decode_frame(raw)


def test_encode_rejects_bad_code() -> None:
    with pytest.raises(FramingError):
        encode_frame(256)


def test_construct_schema_agrees_with_fast_codec() -> None:
    parsed = FRAME_SCHEMA.parse(RECEIPT)
    assert parsed.body.value.code == 0x16
    built = FRAME_SCHEMA.build({"body": {"value": {"length": 1, "code": 0x30, "data": b""}}})
    assert built == STATUS


@given(frames)
def test_round_trip(frame: Frame) -> None:
    assert decode_frame(frame.encode()) == frame


@given(frames)
def test_construct_and_fast_codec_build_the_same_bytes(frame: Frame) -> None:
    built = FRAME_SCHEMA.build(
        {"body": {"value": {"length": len(frame.data) + 1, "code": frame.code, "data": frame.data}}}
    )
    assert built == frame.encode()


@settings(max_examples=200)
@given(
    st.lists(st.tuples(garbage, frames), min_size=1, max_size=6),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
)
def test_framer_yields_same_frames_under_any_split_and_garbage(
    parts: list[tuple[bytes, Frame]], splits: list[int]
) -> None:
    stream = b"".join(g + f.encode() for g, f in parts)
    expected = [f for _, f in parts]
    assert drain(Framer(max_data=1536), stream, splits) == expected
