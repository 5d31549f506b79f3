"""``kkt-emulator fn serve``: a drive on a virtual serial port, driven through pyserial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import serial

from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, Phase, ResultCode
from kkt_emulator.fn.frame import Frame, encode_frame
from kkt_emulator.fn.tlv import tlv_string
from kkt_emulator.profiles import load_profile
from kkt_emulator.testing.drive import DriveBench, Item, item_tlv
from kkt_emulator.till.registration import registration_plan

pytestmark = pytest.mark.slow

PROFILE = "modulkassa-ffd12"
ENQ = b"\x05"


class Served:
    """A running `fn serve` subprocess and its collected stdout lines."""

    def __init__(self, process: subprocess.Popen[str], link: Path) -> None:
        self.process = process
        self.link = link
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def open(self) -> serial.Serial:
        return serial.Serial(str(self.link), 115200, timeout=5.0)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(10)
        self._reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def _start(tmp_path: Path, *extra: str) -> Served:
    link = tmp_path / "ttyFN0"
    process = subprocess.Popen(  # noqa: S603 - sys.executable and constant arguments
        [
            sys.executable,
            "-m",
            "kkt_emulator",
            "fn",
            "serve",
            "--serial-link",
            str(link),
            "--state-dir",
            str(tmp_path / "state"),
            "--profile",
            PROFILE,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while not link.is_symlink():
        if process.poll() is not None:
            raise AssertionError(process.stderr.read() if process.stderr else "exited")
        assert time.monotonic() < deadline, "the port did not appear"
        time.sleep(0.02)
    return Served(process, link)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = _start(tmp_path, "--trace")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def read_frame(port: serial.Serial) -> bytes:
    head = port.read(3)
    assert len(head) == 3, f"no answer (got {head!r})"
    assert head[0] == 0x04
    length = int.from_bytes(head[1:3], "little")
    rest = port.read(length + 2)
    assert len(rest) == length + 2
    return bytes(head + rest)


def exchange(port: serial.Serial, raw: bytes) -> Frame:
    port.write(raw)
    answer = read_frame(port)
    return Frame(code=answer[3], data=answer[4:-2])


def call(port: serial.Serial, command: int, data: bytes | None = None, **fields: Any) -> Any:
    payload = data if data is not None else cmd.build_request(command, **fields)
    answer = exchange(port, encode_frame(command, payload))
    assert answer.code & 0x7F == ResultCode.OK, f"{command:02X}h answered {answer.code:02X}h"
    return cmd.parse_answer(command, answer.data)


def local_now() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=3)).replace(tzinfo=None, second=0, microsecond=0)


def test_a_whole_shift_and_receipt_over_the_serial_port(served: Served) -> None:
    profile = load_profile(PROFILE)
    with served.open() as port:
        assert call(port, Command.STATUS).phase == Phase.READY

        plan = registration_plan(profile, "000100000007")
        call(port, plan.start, **plan.start_fields)
        call(port, Command.SEND_DOCUMENT_DATA, data=plan.tlv)
        registered = call(port, plan.finish, when=local_now(), **plan.finish_fields)
        assert registered.fd == 1

        call(port, Command.START_OPEN_SHIFT, when=local_now())
        call(port, Command.SEND_DOCUMENT_DATA, data=tlv_string(1021, "Интернет-магазин"))
        shift = call(port, Command.OPEN_SHIFT)
        assert shift.shift_number == 1

        bench = DriveBench(PROFILE)  # only to build the receipt TLVs
        items = [Item(), Item(name="Молоко", price=8990)]
        total = sum(i.total for i in items)
        call(port, Command.START_RECEIPT, when=local_now())
        call(port, Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(total))
        for item in items:
            call(port, Command.SEND_DOCUMENT_DATA, data=item_tlv(item))
        receipt = call(port, Command.FINISH_RECEIPT, when=local_now(), operation=1, total=total)
        assert receipt.receipt_number == 1
        assert receipt.fd == 3

        status = call(port, Command.STATUS)
        assert status.phase == Phase.FISCAL
        assert status.last_fd == 3

    assert served.stop() == 0
    assert not served.link.exists()
    assert any("15h" in line and "16h" not in line for line in served.lines)
    finish = [line for line in served.lines if "→ 16h" in line]
    assert finish, served.lines
    assert "← 00h" in finish[0]
    assert '"fd":3' in finish[0]


def test_garbage_corrupted_frames_enq_and_reconnects(served: Served) -> None:
    status = encode_frame(Command.STATUS)
    with served.open() as port:
        first = exchange(port, b"\x00\xff\x13garbage" + status)
        assert first.code & 0x7F == ResultCode.OK

        corrupted = bytearray(status)
        corrupted[-1] ^= 0xFF
        bad = exchange(port, bytes(corrupted))
        assert bad.code & 0x7F == ResultCode.UNKNOWN_COMMAND
        assert bad.data == b""

        again = exchange(port, ENQ)
        assert again == bad  # ENQ repeats the last answer

        good = exchange(port, status)
        assert exchange(port, ENQ) == good

        port.write(status[:4])  # a client that goes away in the middle of a frame
    time.sleep(0.8)  # the drive's receiver drops the half frame after silence
    with served.open() as port:
        assert exchange(port, status).code & 0x7F == ResultCode.OK
    with served.open() as port:
        assert call(port, Command.STATUS).phase == Phase.READY

    assert served.stop() == 0
    assert any("bad frame" in line and "← 01h" in line for line in served.lines), served.lines
    assert any(line.split(" → ")[1].startswith("ENQ") for line in served.lines)
    assert any("30h" in line and '"phase"' in line for line in served.lines)


def test_the_drive_survives_a_restart(tmp_path: Path) -> None:
    server = _start(tmp_path)
    profile = load_profile(PROFILE)
    with server.open() as port:
        plan = registration_plan(profile, "000100000008")
        call(port, plan.start, **plan.start_fields)
        call(port, Command.SEND_DOCUMENT_DATA, data=plan.tlv)
        serial_number = call(port, Command.STATUS).serial
        call(port, plan.finish, when=local_now(), **plan.finish_fields)
    assert server.stop() == 0
    assert server.lines == []  # no --trace, nothing on stdout

    again = _start(tmp_path)
    try:
        with again.open() as port:
            status = call(port, Command.STATUS)
            assert status.phase == Phase.FISCAL
            assert status.serial == serial_number
    finally:
        assert again.stop() == 0
