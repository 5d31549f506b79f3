"""A drive's whole life on manual time, through frames, with a restart from its SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, DocCode, Phase, ResultCode, WarningFlag
from kkt_emulator.fn.signing import verify_document
from kkt_emulator.fn.tlv import parse_tlvs
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.testing.drive import DriveBench


class Monotonic:
    """Checks that the drive's counters never go down between observations."""

    def __init__(self, bench: DriveBench) -> None:
        self.bench = bench
        self.last = (0, 0, [0, 0, 0, 0])

    def check(self) -> None:
        s = self.bench.drive.state
        current = (s.last_fd, s.shift_number, list(s.lifetime_totals.sums))
        assert current[0] >= self.last[0]
        assert current[1] >= self.last[1]
        assert all(a >= b for a, b in zip(current[2], self.last[2], strict=True))
        self.last = current


def refused(
    bench: DriveBench, expected: int, fn: object, /, *args: object, **kwargs: object
) -> DriveError:
    assert bench.serial
    with pytest.raises(DriveError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    got = info.value.code
    assert got == expected, f"expected {expected:02X}h, got {got:02X}h"
    return info.value


def test_whole_life_ffd12(tmp_path: Path) -> None:
    db = tmp_path / "drive.sqlite3"
    bench = DriveBench("modulkassa-ffd12", store=SqliteStore(db))
    counters = Monotonic(bench)

    # Phase 1: ready for registration; document-forming commands are refused.
    assert bench.status().phase == Phase.READY
    refused(bench, ResultCode.WRONG_STATE, bench.open_shift)
    registration = bench.register()
    assert registration.fd == 1
    assert bench.status().phase == Phase.FISCAL
    counters.check()

    # A shift with three receipts: numbers in shift 1..3, fiscal numbers grow.
    shift = bench.open_shift()
    assert (shift.shift_number, shift.fd) == (1, 2)
    receipts = [bench.sale() for _ in range(3)]
    assert [r.receipt_number for r in receipts] == [1, 2, 3]
    assert [r.fd for r in receipts] == [3, 4, 5]
    assert bench.call(Command.SHIFT_PARAMS).receipt_number == 3
    counters.check()

    # 24-hour rule: a receipt 25 hours after the shift opened is refused with 16h.
    bench.advance(hours=25)
    refused(bench, ResultCode.SHIFT_TOO_LONG, bench.sale)
    closed = bench.close_shift()
    assert closed.shift_number == 1
    assert bench.open_shift().shift_number == 2
    assert bench.sale().receipt_number == 1
    counters.check()

    # Restart from the SQLite file in the middle of life: the same drive comes back.
    before = bench.status()
    bench.drive.store.close()  # type: ignore[attr-defined]
    bench2 = DriveBench(
        "modulkassa-ffd12", store=SqliteStore(db, serial=bench.serial), start=bench.now
    )
    assert bench2.status() == before
    bench = bench2
    counters.bench = bench
    assert bench.sale().receipt_number == 2
    counters.check()

    # OFD exchange: every document is read, acknowledged and kept with its acknowledgement.
    acked = bench.drain_ofd()
    assert acked == list(range(1, bench.drive.state.last_fd + 1))
    assert bench.call(Command.UNCONFIRMED_COUNT).count == 0
    found = bench.call(Command.FIND_DOCUMENT, fd=3)
    assert (found.doc_type, found.acknowledged) == (DocCode.RECEIPT, 1)
    assert bench.call(Command.OFD_ACK_BY_NUMBER, fd=3).fd == 3

    # 30 days without the OFD: warning bit 3, then 14h (+ bit 3 → 94h on the wire).
    bench.sale()
    unsent_fd = bench.drive.state.last_fd
    bench.advance(days=30, minutes=1)
    assert bench.status().warnings & WarningFlag.OFD_TIMEOUT
    raw = bench.raw(
        Command.START_RECEIPT, cmd.build_request(Command.START_RECEIPT, when=bench.local)
    )
    assert raw.code == 0x94
    refused(bench, ResultCode.STORAGE_EXHAUSTED, bench.close_shift)
    # Status, archive and OFD commands keep working so the queue can be drained.
    assert bench.call(Command.OFD_STATUS).first_fd == unsent_fd
    bench.drain_ofd()
    assert not bench.status().warnings & WarningFlag.OFD_TIMEOUT
    bench.close_shift()
    bench.open_shift()
    assert bench.sale().receipt_number == 1
    bench.close_shift()
    bench.drain_ofd()
    counters.check()

    # Expiry: the 30-day and 3-day warnings, then 12h for every document-forming command.
    expiry = bench.drive.state.expiry
    assert expiry is not None
    assert bench.call(Command.EXPIRY).expiry == expiry
    bench.now = bench.drive.business_time(
        bench.drive.local_time(bench.now).replace(
            year=expiry.year, month=expiry.month, day=expiry.day
        )
    )
    bench.advance(days=-20)
    warnings = bench.status().warnings
    assert warnings & WarningFlag.RESOURCE_EXHAUSTION
    assert not warnings & WarningFlag.URGENT_REPLACEMENT
    bench.open_shift()
    bench.sale()
    bench.close_shift()
    bench.drain_ofd()
    bench.advance(days=18)
    assert bench.status().warnings & WarningFlag.URGENT_REPLACEMENT
    assert bench.call(Command.DAYS_LEFT, when=bench.local).days == 2
    bench.advance(days=2)
    refused(bench, ResultCode.RESOURCE_EXHAUSTED, bench.open_shift)
    counters.check()

    # Closing the drive still works after expiry: 04h, 05h → phase 7; the OFD ack → phase 15.
    bench.call(Command.START_CLOSE_FN)
    rnm = bench.drive.state.registrations[-1].rnm
    closed_fn = bench.call(Command.CLOSE_FN, when=bench.local, rnm=rnm)
    assert bench.status().phase == Phase.POST_FISCAL
    refused(bench, ResultCode.WRONG_STATE, bench.open_shift)
    bench.drain_ofd()
    assert bench.status().phase == Phase.ARCHIVE

    # Archive read: 45h/46h give the close-drive report tag by tag, and its sign verifies.
    head = bench.call(Command.READ_DOCUMENT_TLV, fd=closed_fn.fd)
    assert head.doc_type == DocCode.CLOSE_FN
    tlvs = []
    while True:
        answer = bench.raw(Command.READ_DOCUMENT_TLV_NEXT)
        if answer.result == ResultCode.NO_DATA:
            break
        tlvs.append(answer.data)
    document = b"".join(tlvs)
    assert len(document) == head.length
    assert [t.tag for t in parse_tlvs(document)][:6] == [1041, 1037, 1018, 1040, 1012, 1077]
    assert verify_document(bench.drive.secret, bench.serial, closed_fn.fd, document)
    counters.check()


def test_thirty_day_rule_answers_15h_on_ffd105() -> None:
    bench = DriveBench("modulkassa-ffd105")
    bench.register()
    bench.open_shift()
    bench.sale()
    bench.advance(days=31)
    err = refused(bench, ResultCode.OFD_WAIT_EXHAUSTED, bench.sale)
    assert err.code == 0x15
    raw = bench.raw(
        Command.START_RECEIPT, cmd.build_request(Command.START_RECEIPT, when=bench.local)
    )
    assert raw.code == 0x95  # warning bit 3 set as well
