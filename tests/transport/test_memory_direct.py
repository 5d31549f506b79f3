"""The memory pair's direct path: a responder answers a plain line in the writer's own step."""

from __future__ import annotations

import pytest

from kkt_emulator.errors import TransportError
from kkt_emulator.transport import (
    ByteManipulator,
    Deliver,
    MemoryPipe,
    is_idle,
    memory_pipe_pair,
)


class Echo:
    """Answers every write with ``ok:`` + the bytes; ``None`` while ``busy``."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.busy = False

    def __call__(self, data: bytes) -> bytes | None:
        if self.busy:
            return None
        self.seen.append(data)
        return b"ok:" + data


def answered_pair(
    till: ByteManipulator | None = None, drive: ByteManipulator | None = None
) -> tuple[MemoryPipe, MemoryPipe, Echo]:
    till_end, drive_end = memory_pipe_pair(manipulators=(till, drive))
    echo = Echo()
    drive_end.answer_with(echo)
    return till_end, drive_end, echo


async def test_a_plain_line_answers_before_write_returns() -> None:
    till_end, drive_end, echo = answered_pair(ByteManipulator(), ByteManipulator())
    await till_end.write(b"ping")
    # Nothing was left for the drive's end to read: the answer is already the till's.
    assert echo.seen == [b"ping"]
    assert drive_end.read_nowait() == b""
    assert till_end.read_nowait() == b"ok:ping"
    assert till_end.read_nowait() == b""


async def test_an_empty_answer_keeps_the_bytes_with_the_responder() -> None:
    till_end, drive_end = memory_pipe_pair()
    drive_end.answer_with(lambda _data: b"")
    await till_end.write(b"half a frame")
    assert drive_end.read_nowait() == b""
    assert till_end.read_nowait() == b""


@pytest.mark.parametrize(
    "knobs",
    [{"drop_probability": 1.0}, {"corrupt_probability": 0.5}, {"split": 2}, {"delay_s": 0.001}],
)
@pytest.mark.parametrize("side", ["till", "drive"])
async def test_any_fault_on_either_side_takes_the_byte_path(
    knobs: dict[str, float], side: str
) -> None:
    faulty = ByteManipulator(seed=1, **knobs)  # type: ignore[arg-type]
    assert not faulty.idle
    till, drive = (faulty, None) if side == "till" else (None, faulty)
    till_end, drive_end, echo = answered_pair(till, drive)
    await till_end.write(b"ping")
    assert echo.seen == []
    if side == "drive":
        # The drive's manipulator acts on what the drive sends, so the request itself arrives.
        assert await drive_end.read() == b"ping"


async def test_a_fault_switched_off_brings_the_direct_path_back() -> None:
    faulty = ByteManipulator(drop_probability=1.0)
    till_end, _drive_end, echo = answered_pair(None, faulty)
    await till_end.write(b"one")
    faulty.drop_probability = 0.0
    # "one" still waits in the drive's buffer: the next write must queue behind it.
    await till_end.write(b"two")
    assert echo.seen == []


async def test_bytes_still_unread_by_the_drive_keep_their_order() -> None:
    till_end, drive_end, echo = answered_pair()
    echo.busy = True
    await till_end.write(b"one")
    echo.busy = False
    await till_end.write(b"two")
    assert echo.seen == []
    assert await drive_end.read() == b"onetwo"
    await till_end.write(b"three")
    assert echo.seen == [b"three"]


async def test_a_busy_responder_lets_the_bytes_through() -> None:
    till_end, drive_end, echo = answered_pair()
    echo.busy = True
    await till_end.write(b"ping")
    assert await drive_end.read() == b"ping"


@pytest.mark.parametrize("side", ["till", "drive"])
async def test_a_trace_on_either_end_takes_the_byte_path(side: str) -> None:
    till_end, drive_end, echo = answered_pair()
    seen: list[tuple[str, bytes]] = []
    (till_end if side == "till" else drive_end).add_trace(lambda d, b: seen.append((d, b)))
    await till_end.write(b"ping")
    assert echo.seen == []
    assert await drive_end.read() == b"ping"
    assert seen


async def test_no_responder_after_it_is_removed() -> None:
    till_end, drive_end, echo = answered_pair()
    drive_end.answer_with(None)
    await till_end.write(b"ping")
    assert echo.seen == []
    assert await drive_end.read() == b"ping"


async def test_a_closed_peer_still_refuses_the_write() -> None:
    till_end, drive_end, echo = answered_pair()
    await drive_end.close()
    with pytest.raises(TransportError):
        await till_end.write(b"ping")
    assert echo.seen == []


async def test_a_closed_end_still_refuses_the_write() -> None:
    till_end, _drive_end, echo = answered_pair()
    await till_end.close()
    with pytest.raises(TransportError):
        await till_end.write(b"ping")
    assert till_end.read_nowait() == b""
    assert echo.seen == []


def test_idle_means_every_knob_off_and_unknown_manipulators_are_never_idle() -> None:
    assert is_idle(None)
    assert is_idle(ByteManipulator())

    class Opaque:
        async def apply(self, data: bytes, deliver: Deliver) -> None:
            await deliver(data)

    assert not is_idle(Opaque())


async def test_read_nowait_traces_what_it_returns() -> None:
    a, b = memory_pipe_pair(manipulators=(None, None))
    seen: list[tuple[str, bytes]] = []
    a.add_trace(lambda d, data: seen.append((d, data)))
    await b.write(b"abc")
    assert a.read_nowait(2) == b"ab"
    assert a.read_nowait() == b"c"
    assert seen == [("rx", b"ab"), ("rx", b"c")]
