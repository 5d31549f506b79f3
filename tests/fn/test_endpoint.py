"""DriveEndpoint: never raises, answers every frame, ENQ repeats, counters never decrease."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.frame import Frame, Framer, decode_frame, encode_frame
from kkt_emulator.testing.drive import DriveBench

STATUS = encode_frame(Command.STATUS)

known_codes = st.sampled_from([int(c) for c in Command])
any_code = st.one_of(known_codes, st.integers(0, 255))
requests = st.builds(Frame, code=any_code, data=st.binary(max_size=64))


def fiscal_bench() -> DriveBench:
    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    bench.open_shift()
    bench.sale()
    return bench


def answers(bench: DriveBench, stream: bytes) -> list[Frame]:
    return [decode_frame(raw) for raw in bench.endpoint.receive(stream, bench.now)]


def test_enq_repeats_the_last_answer() -> None:
    bench = fiscal_bench()
    first = bench.endpoint.receive(STATUS, bench.now)
    again = bench.endpoint.receive(b"\x05", bench.now)
    assert first == again
    assert bench.endpoint.enq_count == 1


def test_bad_crc_is_answered_with_01h() -> None:
    bench = fiscal_bench()
    corrupted = bytearray(STATUS)
    corrupted[-1] ^= 0xFF
    (answer,) = answers(bench, bytes(corrupted))
    assert answer.result == ResultCode.UNKNOWN_COMMAND


def test_unknown_command_and_malformed_payload() -> None:
    bench = fiscal_bench()
    (unknown,) = answers(bench, encode_frame(0x99))
    assert unknown.result == ResultCode.UNKNOWN_COMMAND
    (short,) = answers(bench, encode_frame(Command.FINISH_RECEIPT, b"\x18\x03"))
    assert short.result == ResultCode.UNKNOWN_COMMAND
    (extra,) = answers(bench, encode_frame(Command.STATUS, b"\x00"))
    assert extra.result == ResultCode.UNKNOWN_COMMAND
    (bad_date,) = answers(bench, encode_frame(Command.START_RECEIPT, bytes([26, 13, 40, 0, 0])))
    assert bad_date.result == ResultCode.BAD_DATETIME


def test_receive_handles_any_split_and_garbage() -> None:
    bench = fiscal_bench()
    stream = b"\xff\x00" + STATUS + b"\x13" + encode_frame(Command.SERIAL)
    collected: list[bytes] = []
    for byte in stream:
        collected += bench.endpoint.receive(bytes((byte,)), bench.now)
    assert [decode_frame(a).result for a in collected] == [0, 0]
    assert decode_frame(collected[1]).data.decode() == bench.serial


def test_warning_bit_on_answers() -> None:
    bench = fiscal_bench()
    bench.advance(days=31)
    (answer,) = answers(bench, STATUS)
    assert answer.warning
    assert answer.result == ResultCode.OK


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests, max_size=25))
def test_any_frames_get_an_answer_and_counters_never_decrease(frames: list[Frame]) -> None:
    bench = fiscal_bench()
    state = bench.drive.state
    last = (state.last_fd, state.shift_number, state.receipts_in_shift if state.shift_open else 0)
    for frame in frames:
        raw = bench.endpoint.handle(frame, bench.now)
        consumed, item = Framer().feed(raw)
        assert consumed == len(raw)
        assert isinstance(item, Frame)
        assert item.result in {int(c) for c in ResultCode}
        s = bench.drive.state
        assert bench.drive.last_crash is None
        if frame.code == Command.RESET and item.result == ResultCode.OK:
            # The debug reset (60h, 16h) of a test drive wipes it: its counters start again.
            last = (0, 0, 0)
        assert s.last_fd >= last[0]
        assert s.shift_number >= last[1]
        last = (s.last_fd, s.shift_number, 0)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(noise: bytes) -> None:
    bench = fiscal_bench()
    for raw in bench.endpoint.receive(noise, bench.now):
        assert decode_frame(raw).result in {int(c) for c in ResultCode}
