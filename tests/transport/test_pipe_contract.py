"""One contract suite for every byte pipe (memory pair, pty ↔ pyserial, TCP), then the hooks."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.clock import ManualClock
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.transport import (
    RX,
    TX,
    ByteManipulator,
    BytePipe,
    PipeBase,
    PtyServer,
    memory_pipe_pair,
    open_serial,
    pipe_kind,
    pipe_kinds,
    tcp_connect,
    tcp_serve,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

# A guard against hangs only: nothing here measures how long anything takes.
GUARD_S = 20.0


@dataclass
class Pair:
    """Two connected ends: ``a`` is the serving side (the drive), ``b`` the dialing side."""

    kind: str
    a: PipeBase
    b: PipeBase
    # A serial line has no hang-up: the drive side never learns that the till closed the port.
    b_close_visible_to_a: bool = True
    # Closing a pty discards what the till has not read yet, as a cut cable does.
    close_keeps_unread: bool = True


# Every registered kind runs the contract: registering a new kind is what puts it under test.
@pytest.fixture(params=[kind.name for kind in pipe_kinds()])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    kind = pipe_kind(request.param)
    async with kind.pair() as pipes:
        yield Pair(
            kind.name,
            pipes.serving,
            pipes.dialing,
            b_close_visible_to_a=kind.hang_up_reaches_server,
            close_keeps_unread=kind.close_keeps_unread,
        )


def test_the_shipped_kinds_are_registered() -> None:
    assert {"memory", "pty", "tcp"} <= {kind.name for kind in pipe_kinds()}


async def read_exactly(pipe: BytePipe, count: int) -> bytes:
    received = bytearray()
    async with asyncio.timeout(GUARD_S):
        while len(received) < count:
            received += await pipe.read(count - len(received))
    return bytes(received)


async def read_until_error(pipe: BytePipe) -> None:
    while True:
        try:
            await pipe.read()
        except TransportError:
            return


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


# -- the contract ---------------------------------------------------------------------------------


def test_ends_are_byte_pipes(pair: Pair) -> None:
    assert isinstance(pair.a, BytePipe)
    assert isinstance(pair.b, BytePipe)
    assert not pair.a.is_closed()
    assert not pair.b.is_closed()


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
async def test_bytes_arrive_in_order_and_complete(pair: Pair, direction: str) -> None:
    sender, receiver = (pair.a, pair.b) if direction == "a->b" else (pair.b, pair.a)
    # Every byte value, including 04h/05h and the XON/XOFF and CR/LF a tty would eat or translate.
    chunks = [bytes(range(256)), b"\x04\x01\x00\x30\xff\xcd", b"\x11\x13\r\n\x00", b"x"]
    for chunk in chunks:
        await sender.write(chunk)
    assert await read_exactly(receiver, sum(map(len, chunks))) == b"".join(chunks)


async def test_read_respects_max_bytes_and_never_returns_empty(pair: Pair) -> None:
    await pair.a.write(bytes(100))
    received = 0
    async with asyncio.timeout(GUARD_S):
        while received < 100:
            data = await pair.b.read(7)
            assert 1 <= len(data) <= 7
            received += len(data)


async def test_empty_write_is_a_no_op(pair: Pair) -> None:
    await pair.a.write(b"")
    await pair.a.write(b"!")
    assert await read_exactly(pair.b, 1) == b"!"


@pytest.mark.parametrize("direction", ["a->b", "b->a"])
async def test_large_write(pair: Pair, direction: str) -> None:
    sender, receiver = (pair.a, pair.b) if direction == "a->b" else (pair.b, pair.a)
    data = payload(64 * 1024, seed=1)
    async with asyncio.TaskGroup() as group:
        group.create_task(sender.write(data))
        received = group.create_task(read_exactly(receiver, len(data)))
    assert received.result() == data


async def test_both_directions_concurrently(pair: Pair) -> None:
    to_b = payload(20_000, seed=2)
    to_a = payload(30_000, seed=3)

    async def send_in_pieces(pipe: BytePipe, data: bytes) -> None:
        for start in range(0, len(data), 1000):
            await pipe.write(data[start : start + 1000])

    async with asyncio.TaskGroup() as group:
        group.create_task(send_in_pieces(pair.a, to_b))
        group.create_task(send_in_pieces(pair.b, to_a))
        at_b = group.create_task(read_exactly(pair.b, len(to_b)))
        at_a = group.create_task(read_exactly(pair.a, len(to_a)))
    assert at_b.result() == to_b
    assert at_a.result() == to_a


async def test_request_response_round_trips(pair: Pair) -> None:
    # The drive protocol is strict request/response (FN spec §2.5).
    for n in range(20):
        request = bytes([0x04, n, 0x30])
        await pair.b.write(request)
        assert await read_exactly(pair.a, 3) == request
        await pair.a.write(request[::-1])
        assert await read_exactly(pair.b, 3) == request[::-1]


async def test_cancelled_read_loses_no_bytes(pair: Pair) -> None:
    pending = asyncio.create_task(pair.b.read())
    await asyncio.wait([pending], timeout=0)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await pair.a.write(b"after the cancel")
    assert await read_exactly(pair.b, 16) == b"after the cancel"


@pytest.mark.parametrize("closing", ["a", "b"])
async def test_close_makes_the_peers_pending_read_raise(pair: Pair, closing: str) -> None:
    if closing == "b" and not pair.b_close_visible_to_a:
        pytest.skip("a serial line has no hang-up: the drive never sees the till close the port")
    closer, peer = (pair.a, pair.b) if closing == "a" else (pair.b, pair.a)
    pending = asyncio.create_task(peer.read())
    await asyncio.wait([pending], timeout=0)
    await closer.close()
    async with asyncio.timeout(GUARD_S):
        with pytest.raises(TransportError):
            await pending
    assert closer.is_closed()
    assert not peer.is_closed()


async def test_close_makes_the_peers_later_reads_raise(pair: Pair) -> None:
    await pair.a.close()
    async with asyncio.timeout(GUARD_S):
        await read_until_error(pair.b)  # bytes in flight may still be read; then the end shows
        with pytest.raises(TransportError):
            await pair.b.read()


async def test_data_written_before_close_is_delivered(pair: Pair) -> None:
    if not pair.close_keeps_unread:
        pytest.skip("closing a pty discards what the till has not read yet, as a cut cable does")
    await pair.a.write(b"last words")
    await pair.a.close()
    assert await read_exactly(pair.b, 10) == b"last words"
    async with asyncio.timeout(GUARD_S):
        with pytest.raises(TransportError):
            await pair.b.read()


@pytest.mark.parametrize("end", ["a", "b"])
async def test_write_and_read_after_close_raise(pair: Pair, end: str) -> None:
    pipe = pair.a if end == "a" else pair.b
    await pipe.close()
    assert pipe.is_closed()
    with pytest.raises(TransportError):
        await pipe.write(b"x")
    with pytest.raises(TransportError):
        await pipe.read()
    await pipe.close()  # idempotent


@pytest.mark.parametrize("end", ["a", "b"])
async def test_close_wakes_own_pending_read(pair: Pair, end: str) -> None:
    pipe = pair.a if end == "a" else pair.b
    pending = asyncio.create_task(pipe.read())
    await asyncio.wait([pending], timeout=0)
    await pipe.close()
    async with asyncio.timeout(GUARD_S):
        with pytest.raises(TransportError):
            await pending


async def test_read_needs_a_positive_size(pair: Pair) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        await pair.a.read(0)


async def test_trace_hooks_see_both_directions(pair: Pair) -> None:
    seen_a: list[tuple[str, bytes]] = []
    seen_b: list[tuple[str, bytes]] = []

    def record_a(direction: str, data: bytes) -> None:
        seen_a.append((direction, data))

    pair.a.add_trace(record_a)
    pair.b.add_trace(lambda direction, data: seen_b.append((direction, data)))
    await pair.a.write(b"\x04\x01\x00\x30\xff\xcd")
    await read_exactly(pair.b, 6)
    await pair.b.write(b"\x04\x01\x00\x00\xac\xfb")
    await read_exactly(pair.a, 6)

    def joined(seen: list[tuple[str, bytes]], direction: str) -> bytes:
        return b"".join(data for d, data in seen if d == direction)

    assert joined(seen_a, TX) == joined(seen_b, RX) == b"\x04\x01\x00\x30\xff\xcd"
    assert joined(seen_b, TX) == joined(seen_a, RX) == b"\x04\x01\x00\x00\xac\xfb"

    pair.a.remove_trace(record_a)
    pair.a.remove_trace(record_a)  # no error twice
    await pair.a.write(b"!")
    await read_exactly(pair.b, 1)
    assert joined(seen_a, TX) == b"\x04\x01\x00\x30\xff\xcd"


async def test_manipulator_applies_to_what_an_end_sends(pair: Pair) -> None:
    pair.a.manipulator = ByteManipulator(split=2, corrupt_probability=1.0, seed=7)
    data = bytes(range(10))
    await pair.a.write(data)
    received = await read_exactly(pair.b, len(data))
    for start in range(0, 10, 2):
        diff = int.from_bytes(received[start : start + 2]) ^ int.from_bytes(data[start : start + 2])
        assert diff.bit_count() == 1
    # The other direction is untouched.
    await pair.b.write(data)
    assert await read_exactly(pair.a, len(data)) == data


# -- transport-specific behaviour ---------------------------------------------------------------


async def test_pty_symlink_lifecycle(tmp_path: Path) -> None:
    link = tmp_path / "ttyFN"
    link.symlink_to("/nonexistent/stale-from-a-crashed-run")
    async with PtyServer(link) as server:
        assert server.path == str(link)
        assert link.is_symlink()
        assert str(link.readlink()) == server.tty_name
    assert not link.exists()
    assert not link.is_symlink()


async def test_pty_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "not-a-link"
    target.write_text("keep me")
    with pytest.raises(TransportError):
        PtyServer(target)
    assert target.read_text() == "keep me"


async def test_pty_without_link_serves_the_device() -> None:
    async with PtyServer() as server:
        client = await open_serial(server.path, baudrate=9600)
        await client.write(b"\x05")
        assert await read_exactly(server, 1) == b"\x05"
        await client.close()


async def test_pty_drive_survives_the_till_reopening_the_port(tmp_path: Path) -> None:
    async with PtyServer(tmp_path / "ttyFN") as server:
        for attempt in range(3):
            client = await open_serial(server.path)
            await client.write(bytes([attempt]))
            assert await read_exactly(server, 1) == bytes([attempt])
            await server.write(b"ok")
            assert await read_exactly(client, 2) == b"ok"
            await client.close()


async def test_open_serial_missing_port(tmp_path: Path) -> None:
    with pytest.raises(TransportError):
        await open_serial(str(tmp_path / "no-such-port"))


async def test_tcp_connect_refused() -> None:
    server = await tcp_serve("127.0.0.1", 0, lambda pipe: pipe.close())
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(TransportError):
        await tcp_connect("127.0.0.1", port)


async def test_tcp_serve_on_a_busy_port() -> None:
    server = await tcp_serve("127.0.0.1", 0, lambda pipe: pipe.close())
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportError):
            await tcp_serve("127.0.0.1", port, lambda pipe: pipe.close())
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_handler_return_closes_the_connection() -> None:
    async def echo_once(pipe: BytePipe) -> None:
        await pipe.write(await pipe.read())

    server = await tcp_serve("127.0.0.1", 0, echo_once)
    port = server.sockets[0].getsockname()[1]
    client = await tcp_connect("127.0.0.1", port)
    try:
        await client.write(b"ping")
        assert await read_exactly(client, 4) == b"ping"
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(TransportError):
                await client.read()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


# -- the manipulator ------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def __call__(self, chunk: bytes) -> None:
        self.chunks.append(chunk)


async def test_split_delivers_chunks_of_n() -> None:
    recorder = Recorder()
    manipulator = ByteManipulator(split=3)
    await manipulator.apply(bytes(range(10)), recorder)
    assert recorder.chunks == [b"\x00\x01\x02", b"\x03\x04\x05", b"\x06\x07\x08", b"\x09"]
    assert manipulator.chunks == 4


async def test_no_split_keeps_writes_whole() -> None:
    recorder = Recorder()
    await ByteManipulator().apply(bytes(1000), recorder)
    assert recorder.chunks == [bytes(1000)]


async def test_corrupt_flips_exactly_one_bit_per_chunk() -> None:
    recorder = Recorder()
    manipulator = ByteManipulator(corrupt_probability=1.0, split=16, seed=1234)
    data = payload(160, seed=5)
    await manipulator.apply(data, recorder)
    assert len(recorder.chunks) == 10
    for index, chunk in enumerate(recorder.chunks):
        original = data[index * 16 : (index + 1) * 16]
        diff = int.from_bytes(chunk) ^ int.from_bytes(original)
        assert diff.bit_count() == 1
    assert manipulator.corrupted == 10


async def test_corrupt_with_a_fixed_seed_is_reproducible() -> None:
    first, second = Recorder(), Recorder()
    await ByteManipulator(corrupt_probability=1.0, seed=99).apply(bytes(32), first)
    await ByteManipulator(corrupt_probability=1.0, seed=99).apply(bytes(32), second)
    assert first.chunks == second.chunks
    assert first.chunks[0] != bytes(32)


async def test_drop_everything() -> None:
    recorder = Recorder()
    manipulator = ByteManipulator(drop_probability=1.0, split=4)
    await manipulator.apply(bytes(20), recorder)
    assert recorder.chunks == []
    assert manipulator.dropped == 5


async def test_drop_some_keeps_order_of_the_rest() -> None:
    recorder = Recorder()
    manipulator = ByteManipulator(drop_probability=0.5, split=1, seed=3)
    data = bytes(range(200))
    await manipulator.apply(data, recorder)
    delivered = b"".join(recorder.chunks)
    assert 0 < len(delivered) < len(data)
    assert manipulator.dropped == len(data) - len(delivered)
    assert list(delivered) == sorted(delivered)  # a subsequence of 0..199, in order


async def run_faulty(seed: int) -> list[bytes]:
    recorder = Recorder()
    manipulator = ByteManipulator(drop_probability=0.3, corrupt_probability=0.5, split=4, seed=seed)
    for n in range(20):
        await manipulator.apply(payload(50, seed=n), recorder)
    return recorder.chunks


async def test_same_seed_same_sequence() -> None:
    assert await run_faulty(42) == await run_faulty(42)
    assert await run_faulty(42) != await run_faulty(43)


async def test_reseed_restarts_the_sequence() -> None:
    manipulator = ByteManipulator(corrupt_probability=0.5, drop_probability=0.2, split=2, seed=8)
    first, second = Recorder(), Recorder()
    await manipulator.apply(bytes(64), first)
    manipulator.reseed(8)
    await manipulator.apply(bytes(64), second)
    assert first.chunks == second.chunks


async def test_turning_on_drop_does_not_move_the_corrupted_bits() -> None:
    corrupt_only, both = Recorder(), Recorder()
    await ByteManipulator(corrupt_probability=1.0, split=8, seed=5).apply(bytes(80), corrupt_only)
    manipulator = ByteManipulator(corrupt_probability=1.0, drop_probability=0.5, split=8, seed=5)
    await manipulator.apply(bytes(80), both)
    assert 0 < len(both.chunks) < 10
    assert set(both.chunks) <= set(corrupt_only.chunks)


class PaceRecorder(ManualClock):
    def __init__(self) -> None:
        super().__init__()
        self.paced: list[float] = []

    async def pace(self, seconds: float) -> None:
        self.paced.append(seconds)


async def test_delay_paces_every_chunk_with_the_clock() -> None:
    clock = PaceRecorder()
    recorder = Recorder()
    manipulator = ByteManipulator(delay_s=0.25, split=5, clock=clock)
    await manipulator.apply(bytes(12), recorder)
    assert clock.paced == [0.25, 0.25, 0.25]
    assert b"".join(recorder.chunks) == bytes(12)


async def test_no_delay_no_pacing() -> None:
    clock = PaceRecorder()
    await ByteManipulator(split=1, clock=clock).apply(bytes(5), Recorder())
    assert clock.paced == []


async def test_delay_uses_real_time_under_a_manual_clock() -> None:
    clock = ManualClock()
    start = clock.now()
    recorder = Recorder()
    await ByteManipulator(delay_s=0.001, clock=clock).apply(b"abc", recorder)
    assert recorder.chunks == [b"abc"]
    assert clock.now() == start


async def test_knobs_can_change_while_in_use() -> None:
    a, b = memory_pipe_pair()
    manipulator = a.manipulator
    assert isinstance(manipulator, ByteManipulator)
    await a.write(b"clean")
    assert await read_exactly(b, 5) == b"clean"
    manipulator.drop_probability = 1.0
    await a.write(b"lost")
    manipulator.drop_probability = 0.0
    await a.write(b"back")
    assert await read_exactly(b, 4) == b"back"
    assert manipulator.dropped == 1
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    "knobs",
    [
        {"delay_s": -1.0},
        {"delay_s": float("inf")},
        {"drop_probability": 1.5},
        {"drop_probability": -0.1},
        {"corrupt_probability": float("nan")},
        {"split": 0},
    ],
)
def test_bad_knobs_are_config_errors(knobs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ByteManipulator(**knobs)  # type: ignore[arg-type]  # split takes an int; the bad value is the point


def test_bad_knob_set_later_is_a_config_error() -> None:
    manipulator = ByteManipulator()
    with pytest.raises(ConfigError):
        manipulator.corrupt_probability = 2.0
    assert manipulator.corrupt_probability == 0.0


async def test_trace_sees_what_was_written_and_the_peer_what_arrived() -> None:
    sent: list[tuple[str, bytes]] = []
    arrived: list[tuple[str, bytes]] = []
    a, b = memory_pipe_pair(
        manipulators=(ByteManipulator(corrupt_probability=1.0, seed=1), None),
        traces=(lambda d, data: sent.append((d, data)), lambda d, data: arrived.append((d, data))),
    )
    await a.write(b"\x00\x00\x00\x00")
    received = await read_exactly(b, 4)
    assert sent == [(TX, b"\x00\x00\x00\x00")]
    assert arrived == [(RX, received)]
    assert int.from_bytes(received).bit_count() == 1
    await a.close()
    await b.close()


async def test_memory_pair_without_manipulators() -> None:
    a, b = memory_pipe_pair(manipulators=(None, None), names=("till", "drive"))
    assert a.manipulator is None
    assert a.name == "till"
    await a.write(b"raw")
    assert await read_exactly(b, 3) == b"raw"
    await b.close()
    with pytest.raises(TransportError, match="till"):
        await a.write(b"to nobody")
    await a.close()
