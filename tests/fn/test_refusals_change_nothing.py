"""A refused command leaves the drive exactly as it was (the drive's first rule, ``fn/drive.py``).

The property: bring a drive into a random point of its life (registration, shifts, receipts, an
open document, an OFD read in progress, after closing, in the archive phase; FFD 1.2 and 1.05),
then send random command frames through :class:`~kkt_emulator.fn.endpoint.DriveEndpoint` — genuine
requests recorded from a whole drive life, the same requests mutated (cut short, a bit flipped,
bytes appended), and random codes with random data — letting business time jump now and then. For
every answer with a non-zero result code the drive's whole state (the state dataclass with its
open document and counters) and the archive contents (state row, documents, acknowledgements,
number of commits) are the same before and after. The one thing a refusal changes on purpose is
the 3Fh error log (``last_errors``), which must gain exactly the refused code. No command may
crash the drive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.frame import Frame
from kkt_emulator.fn.state import MemoryStore
from kkt_emulator.testing.drive import DriveBench

PROFILES = ("modulkassa-ffd12", "modulkassa-ffd105")


def _receipt_open(bench: DriveBench) -> None:
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(100))


def _close_fn(bench: DriveBench) -> None:
    bench.call(Command.START_CLOSE_FN)
    rnm = bench.drive.state.registrations[-1].rnm
    bench.call(Command.CLOSE_FN, when=bench.local, rnm=rnm)


def _settlement(bench: DriveBench) -> None:
    bench.call(Command.START_SETTLEMENT_REPORT, when=bench.local)
    bench.call(Command.FINISH_SETTLEMENT_REPORT)


def _reads(bench: DriveBench) -> None:
    bench.call(Command.FIND_DOCUMENT, fd=1)
    bench.call(Command.REGISTRATION_RESULTS)
    bench.call(Command.READ_DOCUMENT_TLV, fd=1)
    bench.raw(Command.READ_DOCUMENT_TLV_NEXT)
    bench.call(Command.REGISTRATION_PARAMETER, tag=0xFFFF)
    bench.raw(Command.READ_REGISTRATION_TLV_NEXT)
    bench.raw(Command.OFD_ACK_BY_NUMBER, (1).to_bytes(4, "little"))


def _read_pending(bench: DriveBench) -> None:
    bench.call(Command.OFD_TRANSPORT, connected=1)
    bench.call(Command.OFD_START_READ)
    bench.call(Command.OFD_READ_BLOCK, offset=0, length=64)


def _ack_first(bench: DriveBench) -> None:
    first = bench.call(Command.OFD_STATUS).first_fd
    bench.read_message()
    bench.acknowledge(first)


# One drive life, step by step; a test starts from the state after a random number of steps.
LIFE: tuple[Callable[[DriveBench], Any], ...] = (
    lambda bench: bench.register(),
    lambda bench: bench.open_shift(),
    lambda bench: bench.sale(),
    _receipt_open,
    lambda bench: bench.call(Command.CANCEL_DOCUMENT),
    _read_pending,
    lambda bench: bench.call(Command.OFD_CANCEL_READ),
    _ack_first,
    lambda bench: bench.sale(operation=2),
    lambda bench: bench.close_shift(),
    _settlement,
    _reads,
    lambda bench: bench.drain_ofd(),
    _close_fn,
    lambda bench: bench.drain_ofd(),
)


def _corpus(profile: str) -> list[Frame]:
    """Every request frame of one whole life of a drive, with the archive reads."""
    frames: list[Frame] = []
    bench = DriveBench(profile)
    bench.endpoint.trace = lambda request, _answer, _now: frames.append(request)
    bench.call(Command.STATUS)
    for step in LIFE:
        step(bench)
    bench.raw(Command.RESET, b"\x16")
    return frames


CORPUS = {profile: _corpus(profile) for profile in PROFILES}

# Reads that walk a cursor: sent many times in a row they run past the end of their data.
REPEATED = (
    Command.READ_DOCUMENT_TLV_NEXT,
    Command.READ_REGISTRATION_TLV_NEXT,
    Command.OFD_READ_BLOCK,
    Command.REGISTRATION_PARAMETER,
    Command.READ_DOCUMENT_TLV,
)

Mutation = tuple[str, int, int, bytes]
mutations = st.one_of(
    st.just(("none", 0, 0, b"")),
    st.tuples(st.just("cut"), st.integers(0, 64), st.just(0), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(0, 4096), st.integers(0, 7), st.just(b"")),
    st.tuples(st.just("append"), st.just(0), st.just(0), st.binary(min_size=1, max_size=8)),
)
Action = tuple[str, Any]
actions: st.SearchStrategy[Action] = st.one_of(
    st.tuples(st.just("genuine"), st.tuples(st.integers(0, 10_000), mutations)),
    st.tuples(st.just("genuine"), st.tuples(st.integers(0, 10_000), mutations)),
    st.tuples(
        st.just("random"),
        st.builds(
            Frame,
            code=st.one_of(st.sampled_from([int(c) for c in Command]), st.integers(0, 255)),
            data=st.binary(max_size=48),
        ),
    ),
    st.tuples(st.just("repeat"), st.tuples(st.sampled_from(REPEATED), st.integers(2, 60))),
    st.tuples(st.just("repeat"), st.tuples(st.sampled_from(REPEATED), st.integers(20, 60))),
    st.tuples(st.just("advance"), st.sampled_from([{"minutes": 7}, {"hours": 25}, {"days": 31}])),
)


def _mutate(frame: Frame, mutation: Mutation) -> Frame:
    kind, a, b, extra = mutation
    data = frame.data
    if kind == "cut":
        data = data[: a % (len(data) + 1)]
    elif kind == "flip" and data:
        index = a % len(data)
        data = data[:index] + bytes((data[index] ^ (1 << b),)) + data[index + 1 :]
    elif kind == "append":
        data += extra
    return Frame(frame.code, data)


def _snapshot(bench: DriveBench) -> dict[str, Any]:
    store = bench.drive.store
    assert isinstance(store, MemoryStore)
    state = bench.drive.state.to_json()
    state.pop("last_errors")
    return {
        "state": state,
        "stored_state": store.state,
        "documents": dict(store.documents),
        "acks": dict(store.acks),
        "commits": store.commits,
    }


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    profile=st.sampled_from(PROFILES),
    steps=st.integers(0, len(LIFE)),
    script=st.lists(actions, min_size=1, max_size=30),
)
# Found by this test: 46h/47h past the end of their data used to clear the cursor in memory.
@example("modulkassa-ffd12", 13, [("repeat", (Command.READ_REGISTRATION_TLV_NEXT, 40))])
@example("modulkassa-ffd105", 13, [("repeat", (Command.READ_DOCUMENT_TLV_NEXT, 40))])
def test_a_refused_command_changes_nothing(profile: str, steps: int, script: list[Action]) -> None:
    bench = DriveBench(profile)
    for step in LIFE[:steps]:
        step(bench)
    corpus = CORPUS[profile]
    frames: list[Frame] = []
    for kind, value in script:
        if kind == "advance":
            bench.advance(**value)
            continue
        if kind == "genuine":
            index, mutation = value
            frames = [_mutate(corpus[index % len(corpus)], mutation)]
        elif kind == "repeat":
            code, count = value
            frames = [next(f for f in corpus if f.code == code)] * count
        else:
            frames = [value]
        for frame in frames:
            _check_one(bench, frame)


def _check_one(bench: DriveBench, frame: Frame) -> None:
    """Send one frame; if the drive refuses it, nothing but the error log may have changed."""
    before = _snapshot(bench)
    errors_before = list(bench.drive.state.last_errors)
    answer = bench.endpoint.request(frame.code, frame.data, bench.now)
    assert bench.endpoint.crash_count == 0, bench.endpoint.last_crash
    if answer.result == 0:
        return
    assert _snapshot(bench) == before, f"{frame.code:02X}h refused {answer.result:02X}h"
    assert bench.drive.state.last_errors == [*errors_before, answer.result][-16:]


def test_the_corpus_covers_the_command_table() -> None:
    for profile, frames in CORPUS.items():
        codes = {frame.code for frame in frames}
        assert len(codes) >= 30, (profile, sorted(codes))
