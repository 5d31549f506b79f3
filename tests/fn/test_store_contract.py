"""The drive's storage port: the in-memory store and the SQLite archive behave the same.

Every test runs against both kinds of :class:`~kkt_emulator.fn.state.DriveStore` (the ``store``
fixture): the same operations give the same observable results. ``reopen`` gives the store as a
restarted process sees it — the same object for memory, a fresh connection to the same file for
SQLite — so what a commit promises is checked after a restart too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.state import (
    ArchivedDocument,
    DriveState,
    DriveStore,
    MemoryStore,
    OfdAck,
    OpenDocument,
)
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.testing.drive import DriveBench

SERIAL = "9999078900000001"
WHEN = datetime(2026, 1, 12, 9, 0)  # noqa: DTZ001 - the drive's wall-clock time is naive


@dataclass
class Kind:
    """One kind of store under test, with a way to reopen it."""

    name: str
    store: DriveStore
    reopen: Callable[[], DriveStore]


@pytest.fixture(params=["memory", "sqlite"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kind]:
    if request.param == "memory":
        memory = MemoryStore()
        yield Kind("memory", memory, lambda: memory)
        return
    path = tmp_path / "drive.sqlite3"
    opened: list[SqliteStore] = [SqliteStore(path, serial=SERIAL, profile="modulkassa-ffd12")]

    def reopen() -> DriveStore:
        opened[-1].close()
        opened.append(SqliteStore(path, serial=SERIAL))
        return opened[-1]

    yield Kind("sqlite", opened[0], reopen)
    opened[-1].close()


def _both(kind: Kind) -> Iterator[DriveStore]:
    """The store as written, then as a restarted process opens it."""
    yield kind.store
    yield kind.reopen()


def _document(fd: int, doc_code: int = 3) -> ArchivedDocument:
    return ArchivedDocument(
        fd=fd,
        doc_code=doc_code,
        when=WHEN,
        fpd=1_000_000 + fd,
        tlv=bytes((fd,)) * 8,
        details={"operation": 1, "total": 100 * fd, "receipt_number": fd},
    )


def _state(last_fd: int) -> DriveState:
    state = DriveState(phase=0x03, last_fd=last_fd, last_doc_time=WHEN, shift_open=True)
    state.open_doc = OpenDocument(kind=0x04, started=WHEN, tlv=b"\x01\x02", tags={1021})
    return state


def _ack(fd: int) -> OfdAck:
    return OfdAck(fd=fd, when=WHEN, operator_sign=bytes(range(18)), ofd_code=0)


def test_a_new_store_is_empty(kind: Kind) -> None:
    for store in _both(kind):
        assert store.load_state() is None
        assert store.document_count() == 0
        assert store.get_document(1) is None
        assert store.get_ack(1) is None


def test_commit_keeps_state_documents_and_acks(kind: Kind) -> None:
    kind.store.commit(_state(2), (_document(1), _document(2)), (_ack(1),))
    for store in _both(kind):
        loaded = store.load_state()
        assert loaded is not None
        assert loaded.to_json() == _state(2).to_json()
        assert store.document_count() == 2
        assert store.get_document(1) == _document(1)
        assert store.get_document(2) == _document(2)
        assert store.get_document(3) is None
        assert store.get_ack(1) == _ack(1)
        assert store.get_ack(2) is None


def test_later_mutations_of_the_state_do_not_leak_in(kind: Kind) -> None:
    state = _state(1)
    kind.store.commit(state, (_document(1),))
    state.last_fd = 99
    state.unsent.clear()
    loaded = kind.store.load_state()
    assert loaded is not None
    assert loaded.last_fd == 1


def test_state_only_commits_and_acks_of_older_documents(kind: Kind) -> None:
    kind.store.commit(_state(1), (_document(1),))
    kind.store.commit(_state(1))
    kind.store.commit(_state(2), (_document(2),), (_ack(1),))
    kind.store.commit(_state(2), (), (_ack(2),))
    store = kind.reopen()
    assert store.document_count() == 2
    assert store.get_ack(1) == _ack(1)
    assert store.get_ack(2) == _ack(2)


@pytest.mark.parametrize(
    ("documents", "acks"),
    [
        pytest.param((_document(1),), (), id="document-number-again"),
        pytest.param((), (_ack(7),), id="ack-of-unknown-document"),
    ],
)
def test_a_refused_commit_saves_nothing(
    kind: Kind, documents: tuple[ArchivedDocument, ...], acks: tuple[OfdAck, ...]
) -> None:
    kind.store.commit(_state(1), (_document(1),))
    with pytest.raises(DriveError) as info:
        kind.store.commit(_state(5), documents, acks)
    assert info.value.code == ResultCode.FN_FAILURE
    for store in _both(kind):
        loaded = store.load_state()
        assert loaded is not None
        assert loaded.last_fd == 1
        assert store.document_count() == 1
        assert store.get_ack(7) is None


def test_wipe_erases_everything(kind: Kind) -> None:
    kind.store.commit(_state(1), (_document(1),), (_ack(1),))
    kind.store.wipe()
    for store in _both(kind):
        assert store.load_state() is None
        assert store.document_count() == 0
        assert store.get_document(1) is None
        assert store.get_ack(1) is None


def _life(bench: DriveBench) -> None:
    bench.register()
    bench.open_shift()
    bench.sale()
    bench.drain_ofd()
    bench.sale(operation=2)
    bench.close_shift()


def test_a_drive_life_reads_the_same_from_either_store(kind: Kind) -> None:
    reference = DriveBench("modulkassa-ffd12", serial=SERIAL)
    _life(reference)
    bench = DriveBench("modulkassa-ffd12", store=kind.store, serial=SERIAL)
    _life(bench)
    _same_drive(bench, reference)
    reopened = DriveBench("modulkassa-ffd12", store=kind.reopen(), serial=SERIAL, start=bench.now)
    _same_drive(reopened, reference)


def _same_drive(bench: DriveBench, reference: DriveBench) -> None:
    drive = bench.drive
    assert drive.state.to_json() == reference.drive.state.to_json()
    last = reference.drive.state.last_fd
    assert drive.store.document_count() == last
    for fd in range(1, last + 1):
        assert drive.store.get_document(fd) == reference.drive.store.get_document(fd)
        assert drive.store.get_ack(fd) == reference.drive.store.get_ack(fd)
    for code, data in [(Command.STATUS, b""), (Command.FIND_DOCUMENT, (2).to_bytes(4, "little"))]:
        assert bench.raw(code, data) == reference.raw(code, data)
