"""The OFD exchange (fn-protocol.md §6.6, §11): 20h–26h.

The drive keeps unsent documents in its 30-day storage; the till sets the transport state (21h),
reads the head document's container (22h/23h/25h) and hands back the OFD's acknowledgement
(26h), which the drive checks (document code, drive number, document number, ИНН ОФД, CRC) before
it removes the document from the queue and archives the acknowledgement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kkt_emulator.errors import DriveError, FramingError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, DocCode, OfdRejectReason, Phase
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.container import Container, build_container
from kkt_emulator.fn.core import DriveCore
from kkt_emulator.fn.state import (
    OfdAck,
)
from kkt_emulator.fn.tags import Tag
from kkt_emulator.fn.tlv import (
    TlvError,
    encode_tlv,
    parse_tlvs,
)

__all__ = ["OfdCommands"]


class OfdCommands(DriveCore):
    """The OFD exchange: transport state, reading the message, the acknowledgement."""

    # ------------------------------------------------------------------ OFD exchange

    def _ofd_status(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        status = 0
        if s.transport:
            status |= 0x01
        if s.unsent:
            status |= 0x02
        if s.waiting_ack:
            status |= 0x04
        first = s.unsent[0] if s.unsent else None
        return cmd.build_answer(
            Command.OFD_STATUS,
            status=status,
            reading=int(s.reading),
            unsent=min(len(s.unsent), 0xFFFF),
            first_fd=first.fd if first else 0,
            first_time=cmd.encode_datetime(first.when) if first else bytes(5),
        )

    def _ofd_transport(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        if req.connected not in (0, 1):
            raise DriveError(
                R.BAD_PARAMETERS, detail=f"transport state {req.connected} is not 0 or 1"
            )
        self.state.transport = bool(req.connected)
        if not self.state.transport:
            self.state.reading = False
            self._message = None
        self._changed()
        return b""

    def _ofd_message(self) -> bytes:
        s = self.state
        head = s.unsent[0]
        if self._message is None:
            document = self.store.get_document(head.fd)
            if document is None:
                raise DriveError(
                    R.FN_FAILURE, detail=f"document {head.fd} is missing from the archive"
                )
            stlv = encode_tlv(document.doc_code, document.tlv)
            self._message = build_container(
                document.doc_code, self.config.serial, head.fd, stlv, self.secret
            )
        return self._message

    def _ofd_start_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if not s.transport:
            raise DriveError(R.NO_TRANSPORT, detail="send 21h(1) first")
        if not s.unsent:
            raise DriveError(R.NO_DATA, detail="nothing to send to the OFD")
        self._message = None
        message = self._ofd_message()
        s.reading = True
        self._changed()
        return cmd.build_answer(Command.OFD_START_READ, length=len(message))

    def _ofd_read_block(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no time rule
        s = self.state
        if not s.reading or not s.unsent:
            raise DriveError(R.WRONG_STATE, detail="no OFD message is being read (22h first)")
        message = self._ofd_message()
        if req.offset > len(message):
            raise DriveError(
                R.UNKNOWN_COMMAND,
                detail=f"offset {req.offset} is past the message length {len(message)}",
            )
        length = min(req.length, self.config.max_data)
        return message[req.offset : req.offset + length]

    def _ofd_cancel_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        if self.state.reading:
            self.state.reading = False
            self._changed()
        return b""

    def _ofd_finish_read(self, local: datetime, req: Any) -> bytes:  # noqa: ARG002 - no fields
        s = self.state
        if not s.reading:
            raise DriveError(R.WRONG_STATE, detail="no OFD message is being read")
        s.reading = False
        s.waiting_ack = True
        self._changed()
        return b""

    def _ofd_receipt(self, local: datetime, req: Any) -> bytes:
        s = self.state
        if not s.unsent:
            raise DriveError(R.WRONG_STATE, detail="no document waits for an acknowledgement")
        message: bytes = req.message
        try:
            container = Container.parse(message, check_crc=False)
        except FramingError as exc:
            raise DriveError(
                R.OFD_MESSAGE_REJECTED,
                bytes((OfdRejectReason.BAD_FORMAT,)),
                detail=f"not a container: {exc}",
            ) from exc
        try:
            Container.parse(message, check_crc=True)
        except FramingError as exc:
            raise DriveError(
                R.OFD_MESSAGE_REJECTED, bytes((OfdRejectReason.BAD_CRC,)), detail=str(exc)
            ) from exc
        reject = self._check_ack(container)
        if reject is not None:
            reason, detail = reject
            raise DriveError(R.OFD_MESSAGE_REJECTED, bytes((reason,)), detail=detail)
        body = {t.tag: t.value for t in parse_tlvs(container.body[4:])}
        fd = s.unsent[0].fd
        ofd_code = 0
        message_stlv = b""
        if Tag.OFD_MESSAGE in body:
            try:
                inner = {t.tag: t.value for t in parse_tlvs(body[Tag.OFD_MESSAGE])}
            except TlvError as exc:
                raise DriveError(
                    R.OFD_MESSAGE_REJECTED,
                    bytes((OfdRejectReason.BAD_FORMAT,)),
                    detail=f"operator message (1068): {exc}",
                ) from exc
            ofd_code = inner.get(Tag.OFD_CODE, b"\x00")[0] if inner.get(Tag.OFD_CODE) else 0
        if body.get(Tag.OPERATOR_FLAGS):
            flags = body[Tag.OPERATOR_FLAGS][0]
            # FFD 1.2 operator message flags → warning bits 4..6 (fn-protocol.md §5).
            s.ofd_flags = (
                ((flags >> 1) & 1) << 4 | ((flags >> 2) & 1) << 5 | ((flags >> 3) & 1) << 6
            )
        # 41h keeps the operator's time, which 1012 carries in UTC (fn-protocol.md §11.4); without
        # it the drive's own time, converted to UTC, so the archive holds one time base.
        ack_time = self.business_time(local).replace(tzinfo=None)
        if Tag.DATETIME in body and len(body[Tag.DATETIME]) == 4:
            ack_time = datetime.fromtimestamp(
                int.from_bytes(body[Tag.DATETIME], "little"), UTC
            ).replace(tzinfo=None)
        sign = body.get(Tag.OPERATOR_SIGN, b"")[:18].ljust(18, b"\x00")
        self._pending.acks.append(
            OfdAck(fd=fd, when=ack_time, operator_sign=sign, ofd_code=ofd_code)
        )
        s.pop_unsent()
        s.waiting_ack = False
        s.reading = False
        self._message = None
        if s.phase == Phase.POST_FISCAL and not s.unsent:
            s.phase = Phase.ARCHIVE
        self._changed()
        return bytes((ofd_code,)) + message_stlv

    def _check_ack(self, container: Container) -> tuple[int, str] | None:
        s = self.state
        if container.doc_code != DocCode.OPERATOR_ACK:
            return OfdRejectReason.BAD_FORMAT, f"document code {container.doc_code} is not 7"
        if container.fn_serial.strip() != self.config.serial:
            return (
                OfdRejectReason.BAD_FN_NUMBER,
                f"drive {container.fn_serial!r} is not {self.config.serial}",
            )
        try:
            body = {t.tag: t.value for t in parse_tlvs(container.body[4:])}
        except TlvError as exc:
            return OfdRejectReason.BAD_FORMAT, f"acknowledgement body: {exc}"
        fd = (
            int.from_bytes(body[Tag.FD], "little")
            if len(body.get(Tag.FD, b"")) == 4
            else container.fd_number
        )
        if fd != s.unsent[0].fd:
            return (
                OfdRejectReason.BAD_FD_NUMBER,
                f"acknowledges document {fd}, the queue starts at {s.unsent[0].fd}",
            )
        reg = s.registration
        if Tag.OFD_INN in body and reg is not None and reg.ofd_inn:
            inn = body[Tag.OFD_INN].decode("cp866").strip()
            if inn != reg.ofd_inn.strip():
                return (
                    OfdRejectReason.BAD_OFD_INN,
                    f"ИНН ОФД {inn} is not the registered {reg.ofd_inn}",
                )
        return None
