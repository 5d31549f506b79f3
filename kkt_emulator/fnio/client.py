"""``FnClient``: the till's typed async API to a fiscal drive over a byte pipe.

Strict request/response (fn-protocol.md §2.5): one command at a time, the next only after the previous
answer was read. An answer with a bad CRC is asked for again with ENQ (05h) up to ``retries``
times; no answer within ``timeout`` seconds (pacing time) raises
:class:`~kkt_emulator.errors.TransportError`, and the caller reconciles through 30h/40h, because a
request that may have reached the drive must never be blindly repeated (it could sign twice).

Two kinds of «no»: :class:`~kkt_emulator.errors.DriveError` carries a result code the drive
answered; :class:`LocalRefusalError` is the client's own decision, taken before anything was sent (a TLV
that can never fit one frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kkt_emulator.errors import DriveError, TransportError, ValidationError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.frame import (
    ENQ,
    WARNING_BIT,
    BadFrame,
    Enq,
    Frame,
    Framer,
    encode_frame,
    whole_frame,
)
from kkt_emulator.fn.tlv import iter_tlvs
from kkt_emulator.transport.base import BytePipe, PipeBase

__all__ = [
    "Answer",
    "DriveStatus",
    "FnClient",
    "LocalRefusalError",
    "ReceiptAnswer",
    "ShiftAnswer",
    "result_text",
]


class LocalRefusalError(ValidationError):
    """The client refused a request itself, before sending it (not an answer of the drive).

    Attributes:
        code: the result code the drive would answer for the same request, so a caller can report
            it as the drive would (``fn-protocol.md`` result codes).
    """

    def __init__(self, field: str, reason: str, code: int) -> None:
        super().__init__(field, reason)
        self.code = int(code)

    def as_drive_error(self) -> DriveError:
        """The same refusal in the drive's terms (its result code and this explanation)."""
        return DriveError(self.code, detail=f"refused by the till: {self}")


class Answer(Mapping[str, Any]):
    """The parsed data of a successful answer: fields by attribute (``answer.fd``) or by key.

    The fields are those of the command's answer schema in ``kkt_emulator.fn.commands``
    (``fn-protocol.md``); a field that is not there raises ``AttributeError``.
    """

    __slots__ = ("_fields", "command")

    def __init__(self, command: int, fields: Mapping[str, Any]) -> None:
        self.command = command
        self._fields = {k: v for k, v in fields.items() if not k.startswith("_")}

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"answer to {self.command:02X}h has no field {name!r}") from None

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Answer({self.command:02X}h, {self._fields!r})"


@dataclass(frozen=True, slots=True)
class ReceiptAnswer:
    """The 16h answer: the receipt's number in the shift and its fiscal document number and sign."""

    receipt_number: int
    fd: int
    fpd: int


@dataclass(frozen=True, slots=True)
class ShiftAnswer:
    """The 12h/14h answer: the shift's number, the report's fiscal document number and sign."""

    shift_number: int
    fd: int
    fpd: int
    warnings: int | None = None

    @classmethod
    def of(cls, answer: Answer) -> ShiftAnswer:
        """From the parsed 12h/14h answer."""
        return cls(answer.shift_number, answer.fd, answer.fpd, answer.get("warnings"))


def result_text(code: int, protocol: str = "fn-1.2") -> str:
    """The official text of a drive result code, or a generic one for unknown codes."""
    try:
        return ResultCode(code).text(protocol)
    except ValueError:
        return f"неизвестный код ответа {code:02X}h"


@dataclass(frozen=True, slots=True)
class DriveStatus:
    """The decoded 30h answer."""

    phase: int
    current_document: int
    document_data: bool
    shift_open: bool
    warnings: int
    last_document_time: datetime
    serial: str
    last_fd: int


class FnClient:
    """Typed access to a drive behind a :class:`~kkt_emulator.transport.base.BytePipe`.

    Args:
        pipe: the link to the drive.
        timeout: seconds to wait for an answer (pacing time).
        retries: ENQ attempts after an answer with a bad CRC.
        max_data: the drive's maximum frame data (07h chunks are cut to fit).
        inter_byte_timeout: once an answer has started, how long a quiet line means it was cut.
    """

    def __init__(
        self,
        pipe: BytePipe,
        timeout: float = 5.0,
        retries: int = 3,
        max_data: int = 1536,
        inter_byte_timeout: float = 0.1,
    ) -> None:
        self.pipe = pipe
        self.timeout = timeout
        self.inter_byte_timeout = inter_byte_timeout
        self.retries = retries
        self.max_data = max_data
        self.framer = Framer(max_data=max(max_data, 1536))
        self._buffer = bytearray()
        self._lock = asyncio.Lock()
        self.exclusive = asyncio.Lock()
        """Hold this around a multi-command sequence (a receipt, an OFD read) so that no other
        task's commands interleave with it; single calls do not need it."""
        self.last_warning = False
        self.enq_sent = 0
        # An answer already waiting in the pipe (the in-memory direct path puts it there during
        # ``write``) is taken without arming a timeout or suspending.
        self._read_nowait = pipe.read_nowait if isinstance(pipe, PipeBase) else None

    async def _read_item(self) -> Frame | BadFrame:
        """Read one answer.

        Bytes that arrived but never formed a frame (a corrupted start or length byte) count as a
        bad frame once the line stays quiet for ``inter_byte_timeout``.
        """
        received = False
        if not self._buffer and self._read_nowait is not None:
            # The answer that is already there in one piece (the in-memory direct path) is taken
            # without the framer, which would find the same frame and count nothing (D139).
            chunk = self._read_nowait(4096)
            if chunk:
                frame = whole_frame(chunk, self.framer.max_data)
                if frame is not None:
                    return frame
                received = True
                self._buffer += chunk
        while True:
            if self._buffer:
                consumed, item = self.framer.feed(self._buffer)
                del self._buffer[:consumed]
                if isinstance(item, Frame | BadFrame):
                    return item
                if isinstance(item, Enq):  # pragma: no cover - the answer framer never reports ENQ
                    continue
                if item is None and consumed:
                    continue
            if self._read_nowait is not None:
                chunk = self._read_nowait(4096)
                if chunk:
                    received = True
                    self._buffer += chunk
                    continue
            wait = min(self.timeout, self.inter_byte_timeout) if received else self.timeout
            try:
                async with asyncio.timeout(wait):
                    chunk = await self.pipe.read(4096)
            except TimeoutError as exc:
                if received:
                    self._buffer.clear()
                    return BadFrame(b"", 0, 0)
                raise TransportError(f"the drive did not answer within {self.timeout:g} s") from exc
            received = True
            self._buffer += chunk

    async def request(self, code: int, data: bytes = b"") -> Frame:
        """Send one request frame and return the answer frame (any result code)."""
        async with self._lock:
            self._buffer.clear()
            await self.pipe.write(encode_frame(code, data))
            # One turn of the event loop per frame, as the drive's pump gave before the direct
            # path: a multi-frame document does not hold the loop from the cloud, the other tills
            # and the OFD link from its first frame to its last.
            await asyncio.sleep(0)
            item = await self._read_item()
            attempts = 0
            while isinstance(item, BadFrame):
                if attempts >= self.retries:
                    raise TransportError(
                        f"answer to {code:02X}h still corrupted after {attempts} ENQ retries"
                    )
                attempts += 1
                self.enq_sent += 1
                self._buffer.clear()
                await self.pipe.write(bytes((ENQ,)))
                item = await self._read_item()
            return item

    async def call(self, code: int, /, data: bytes | None = None, **fields: Any) -> Answer:
        """Run a command; returns the parsed answer.

        Raises:
            DriveError: the drive answered a non-zero result code.
            TransportError: no (uncorrupted) answer.
        """
        return Answer(code, await self._fields(code, data, fields))

    async def _fields(self, code: int, data: bytes | None, fields: dict[str, Any]) -> Any:
        """:meth:`call` up to the parsed answer (the construct or fast-path container)."""
        payload = data if data is not None else cmd.build_request(code, **fields)
        answer = await self.request(code, payload)
        raw = answer.code
        self.last_warning = bool(raw & WARNING_BIT)
        if raw & 0x7F:  # not 00h (ResultCode.OK)
            result = raw & 0x7F
            raise DriveError(result, answer.data, detail=result_text(result))
        return cmd.parse_answer(code, answer.data)

    # ------------------------------------------------------------------ typed helpers

    async def status(self) -> DriveStatus:
        """30h: phase, open document, shift, warnings, last document."""
        # Straight from the parsed fields: a till reads its status several times a heartbeat.
        a = await self._fields(Command.STATUS, None, {})
        return DriveStatus(
            phase=a["phase"],
            current_document=a["current_document"],
            document_data=bool(a["document_data"]),
            shift_open=bool(a["shift_open"]),
            warnings=a["warnings"],
            last_document_time=a["last_document_time"],
            serial=a["serial"],
            last_fd=a["last_fd"],
        )

    async def serial(self) -> str:
        """31h: the drive serial number."""
        a = await self.call(Command.SERIAL)
        return str(a.serial)

    async def send_tlv(self, data: bytes) -> None:
        """07h: send document TLVs, cut at whole top-level objects to fit the frame size.

        Raises:
            LocalRefusalError: one top-level TLV is larger than a frame (nothing of it was sent).
        """
        chunk = b""
        for tlv in iter_tlvs(data):
            encoded = tlv.encode()
            if len(encoded) > self.max_data:
                raise LocalRefusalError(
                    f"tag {tlv.tag}",
                    f"{len(encoded)} bytes do not fit one frame of {self.max_data}",
                    ResultCode.TLV_TOO_LARGE,
                )
            if len(chunk) + len(encoded) > self.max_data:
                await self.call(Command.SEND_DOCUMENT_DATA, data=chunk)
                chunk = b""
            chunk += encoded
        if chunk:
            await self.call(Command.SEND_DOCUMENT_DATA, data=chunk)

    async def cancel_document(self) -> None:
        """06h: drop the open document."""
        await self.call(Command.CANCEL_DOCUMENT)

    async def open_shift(self, when: datetime, tlv: bytes = b"") -> ShiftAnswer:
        """11h, 07h…, 12h: open a shift; returns shift_number, fd, fpd (+ warnings)."""
        await self.call(Command.START_OPEN_SHIFT, when=when)
        if tlv:
            await self.send_tlv(tlv)
        return ShiftAnswer.of(await self.call(Command.OPEN_SHIFT))

    async def close_shift(self, when: datetime, tlv: bytes = b"") -> ShiftAnswer:
        """13h, 07h…, 14h: close the shift; returns shift_number, fd, fpd (+ warnings)."""
        await self.call(Command.START_CLOSE_SHIFT, when=when)
        if tlv:
            await self.send_tlv(tlv)
        return ShiftAnswer.of(await self.call(Command.CLOSE_SHIFT))

    async def receipt(
        self, when: datetime, operation: int, total: int, tlv: bytes, correction: bool = False
    ) -> ReceiptAnswer:
        """15h (or 17h), 07h…, 16h: a whole receipt; returns receipt_number, fd, fpd.

        Raises:
            DriveError: the drive refused a step (the open document is cancelled, except after
                03h on 16h).
            LocalRefusalError: a TLV can never fit a frame (the open document is cancelled).
        """
        start = Command.START_CORRECTION if correction else Command.START_RECEIPT
        await self.call(start, when=when)
        try:
            await self.send_tlv(tlv)
        except (DriveError, LocalRefusalError):
            await self.cancel_document()
            raise
        try:
            done = await self.call(
                Command.FINISH_RECEIPT, when=when, operation=operation, total=total
            )
        except DriveError as exc:
            # fn-protocol.md §7: after 03h on 16h the document must be neither repeated nor cancelled.
            if exc.code != ResultCode.FN_FAILURE:
                await self.cancel_document()
            raise
        return ReceiptAnswer(done.receipt_number, done.fd, done.fpd)
