"""The drive's side of the wire: request frames in, answer frames out. Pure, never raises on input.

:class:`DriveEndpoint` wraps a :class:`~kkt_emulator.fn.drive.FiscalDrive`. ``handle(item, now)``
answers one framer item; ``receive(data, now)`` takes raw bytes from a link (any split, any
garbage) and returns the answer frames to write back. ENQ (05h) repeats the last answer; a frame
with a bad CRC is answered with 01h. The answer byte carries the warning bit (80h) whenever a
warning flag is set (fn-protocol.md §2.2).

A bug inside the drive (any exception other than :class:`~kkt_emulator.errors.DriveError`) is
answered 03h «Отказ ФН», as a real drive that fails internally answers, and recorded where it can
be seen: :attr:`DriveEndpoint.crash_count`, :attr:`DriveEndpoint.last_crash` (a
:class:`~kkt_emulator.fn.crash.DriveCrash` with the traceback, also kept on the drive) and the
optional ``on_crash`` hook, through which the I/O pumps (``fnio/server.py``, ``fnio/serve.py``) log
it with its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.fn.crash import DriveCrash
from kkt_emulator.fn.drive import FiscalDrive
from kkt_emulator.fn.frame import (
    WARNING_BIT,
    BadFrame,
    Enq,
    Frame,
    Framer,
    encode_frame,
    whole_frame,
)

__all__ = ["CrashHook", "DriveCrash", "DriveEndpoint", "FrameTrace"]

FrameTrace = Callable[[Frame, Frame, datetime], None]
"""Called with (request, answer, business time) for every command answered."""

CrashHook = Callable[[DriveCrash, BaseException], None]
"""Called with the recorded crash and the exception itself (for a logger's ``exc_info``)."""


class DriveEndpoint:
    """Answers request frames for one drive.

    Args:
        drive: the state machine.
        trace: optional hook called with each (request, answer) pair — ``fn serve --trace`` uses it.
        on_crash: optional hook called for every bug inside the drive (answered 03h).

    Attributes:
        crash_count: how many commands crashed inside the drive since the endpoint was made.
        last_crash: the latest of them, or ``None``.
    """

    def __init__(
        self,
        drive: FiscalDrive,
        trace: FrameTrace | None = None,
        on_crash: CrashHook | None = None,
    ) -> None:
        self.drive = drive
        self.trace = trace
        self.on_crash = on_crash
        self.crash_count = 0
        self.last_crash: DriveCrash | None = None
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
        code: int
        try:
            data = self.drive.execute(now, item.code, item.data)
            code = ResultCode.OK
        except DriveError as exc:
            code, data = exc.code, exc.data
        except Exception as exc:  # noqa: BLE001 - a drive never crashes: a bug becomes 03h «Отказ ФН», recorded below
            self._crashed(exc, item.code, now)
            code, data = ResultCode.FN_FAILURE, b""
        if self.drive.warnings(now):
            code |= WARNING_BIT
        if self.trace is not None:
            self.trace(item, Frame(code=code, data=data), now)
        self._last_answer = encode_frame(code, data)
        return self._last_answer

    def _crashed(self, exc: Exception, code: int, now: datetime) -> None:
        crash = DriveCrash.from_exception(exc, code, now)
        self.crash_count += 1
        self.last_crash = crash
        self.drive.last_crash = crash
        if self.on_crash is not None:
            self.on_crash(crash, exc)

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
        frame = self._whole_frame(data)
        if frame is not None:
            return [self.handle(frame, now)]
        return [self.handle(item, now) for item in self.split(data)]

    def _whole_frame(self, data: bytes) -> Frame | None:
        """``data`` as one well-formed frame when nothing is buffered, else ``None`` (D113).

        The common case of a link that delivers a till's request in one piece: the framer would
        find exactly this frame (same length bounds, same CRC) and change none of its counters,
        so anything else — a split, garbage, ENQ, a bad CRC, more than one frame — takes the
        framer's path (tests/fn/test_endpoint.py proves both paths answer alike).
        """
        if self._buffer:
            return None
        return whole_frame(data, self.framer.max_data)

    def answer_now(self, data: bytes, now: Callable[[], datetime]) -> bytes:
        """The answer bytes to ``data``, all of them joined (``b""``: no complete request yet).

        :meth:`receive` for a caller that writes the answers back in one piece (the direct path
        of the in-memory link, ``fnio/server.py``); ``now`` gives the business time of each
        request as it is answered.
        """
        frame = self._whole_frame(data)
        if frame is not None:
            return self.handle(frame, now())
        items = self.split(data)
        if len(items) == 1:
            return self.handle(items[0], now())
        return b"".join([self.handle(item, now()) for item in items])

    def reset_link(self) -> None:
        """Forget a half-received frame (a client disconnected mid-frame)."""
        self._buffer.clear()

    def request(self, code: int, data: bytes, now: datetime) -> Frame:
        """Convenience for in-process use: run one command and return the decoded answer frame."""
        raw = self.handle(Frame(code, data), now)
        return Frame(code=raw[3], data=raw[4:-2])
