"""The drive's side of the wire: request frames in, answer frames out. Pure, never raises on input.

:class:`DriveEndpoint` wraps a :class:`~kkt_emulator.fn.drive.FiscalDrive`. ``handle(item, now)``
answers one framer item; ``receive(data, now)`` takes raw bytes from a link (any split, any
garbage) and returns the answer frames to write back. ENQ (05h) repeats the last answer; a frame
with a bad CRC is answered with 01h. The answer byte carries the warning bit (80h) whenever a
warning flag is set (FN spec §2.2).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.fn.drive import FiscalDrive
from kkt_emulator.fn.frame import WARNING_BIT, BadFrame, Enq, Frame, Framer, encode_frame

__all__ = ["DriveEndpoint", "FrameTrace"]

FrameTrace = Callable[[Frame, Frame, datetime], None]
"""Called with (request, answer, business time) for every command answered."""


class DriveEndpoint:
    """Answers request frames for one drive.

    Args:
        drive: the state machine.
        trace: optional hook called with each (request, answer) pair — ``fn serve --trace`` uses it.
    """

    def __init__(self, drive: FiscalDrive, trace: FrameTrace | None = None) -> None:
        self.drive = drive
        self.trace = trace
        self.framer = Framer(max_data=drive.config.max_data, accept_enq=True)
        self._buffer = bytearray()
        self._last_answer = encode_frame(ResultCode.WRONG_STATE)
        self.commands = 0
        self.enq_count = 0

    def handle(self, item: Frame | Enq | BadFrame, now: datetime) -> bytes:
        """Answer one framer item; returns the answer frame's bytes."""
        if isinstance(item, Enq):
            self.enq_count += 1
            return self._last_answer
        if isinstance(item, BadFrame):
            answer = self._answer(ResultCode.UNKNOWN_COMMAND, b"", now)
            self._last_answer = answer.encode()
            return self._last_answer
        self.commands += 1
        try:
            data = self.drive.execute(now, item.code, item.data)
            answer = self._answer(ResultCode.OK, data, now)
        except DriveError as exc:
            answer = self._answer(exc.code, exc.data, now)
        except Exception as exc:  # noqa: BLE001 - a drive never crashes: a bug becomes 03h «Отказ ФН»
            self.drive.last_crash = exc
            answer = self._answer(ResultCode.FN_FAILURE, b"", now)
        if self.trace is not None:
            self.trace(item, answer, now)
        self._last_answer = answer.encode()
        return self._last_answer

    def _answer(self, code: int, data: bytes, now: datetime) -> Frame:
        warning = self.drive.warnings(now) != 0
        return Frame(code=(code | WARNING_BIT) if warning else code, data=data)

    def split(self, data: bytes) -> list[Frame | Enq | BadFrame]:
        """Feed raw link bytes; returns the complete items in them (the rest stays buffered)."""
        self._buffer += data
        items: list[Frame | Enq | BadFrame] = []
        while self._buffer:
            consumed, item = self.framer.feed(self._buffer)
            del self._buffer[:consumed]
            if item is None:
                if consumed == 0:
                    break
                continue
            items.append(item)
        return items

    def receive(self, data: bytes, now: datetime) -> list[bytes]:
        """Feed raw link bytes; returns the answer frames for every complete request in them."""
        return [self.handle(item, now) for item in self.split(data)]

    def reset_link(self) -> None:
        """Forget a half-received frame (a client disconnected mid-frame)."""
        self._buffer.clear()

    def request(self, code: int, data: bytes, now: datetime) -> Frame:
        """Convenience for in-process use: run one command and return the decoded answer frame."""
        raw = self.handle(Frame(code, data), now)
        return Frame(code=raw[3], data=raw[4:-2])
