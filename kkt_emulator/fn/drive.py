"""The fiscal drive (ФН) state machine: a pure transition system, time passed in.

``FiscalDrive.execute(now, command, data)`` takes the current business time (timezone-aware) and a
request payload, changes the state or refuses with :class:`~kkt_emulator.errors.DriveError`, and
returns the answer data. Every command first checks all its preconditions and only then changes
state, so a refused command leaves the drive exactly as it was. A successful command that changed
anything is committed to the :class:`~kkt_emulator.fn.state.DriveStore` before its answer exists,
as a real drive writes its flash before it answers.

The drive is put together from its command families, one module each: registration and closing
the drive (:mod:`~kkt_emulator.fn.registration`), documents, shifts and receipts
(:mod:`~kkt_emulator.fn.documents`), the OFD exchange (:mod:`~kkt_emulator.fn.ofd`), status and
archive reads (:mod:`~kkt_emulator.fn.reads`), over the shared core (:mod:`~kkt_emulator.fn.core`).
Which commands each phase admits is one table (:data:`kkt_emulator.fn.rules.PHASES`), checked here
for every command.

Rules enforced by the drive (fn-protocol.md §4–§9, §14): phases 1 → 3 → 7 → 15 and the command
table of §4.2; one open document; registration and re-registration (tax-system mask, mode byte with
the internet flag, agent and excise flags); shifts; receipts and corrections; the settlement
report; closing the drive; counters; time never backwards (07h); receipts only within 24 h of the
shift opening (16h); the drive timer (17h); the 30-day OFD rule (14h + warning bit 3, or 15h, per
profile); expiry (12h) with the 3-day/30-day warnings; archive capacity and the memory warning; the
30-day OFD storage; TLV volume (10h); item count (0Eh); tags the drive forms itself (0Bh + tag);
duplicates (0Ch + tag); malformed values (18h + tag); a tax system not registered, agent data
without the agent flag, excise goods without the excise flag (19h + tag); missing mandatory tags
such as 1008 in internet mode (3Ch + tag); the OFD queue (20h–26h) and the archive (40h–47h).
"""

from __future__ import annotations

from datetime import datetime

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.codes import ResultCode as R
from kkt_emulator.fn.config import DriveConfig
from kkt_emulator.fn.core import Handler, Pending
from kkt_emulator.fn.documents import DocumentCommands
from kkt_emulator.fn.ofd import OfdCommands
from kkt_emulator.fn.reads import ReadCommands
from kkt_emulator.fn.registration import RegistrationCommands
from kkt_emulator.fn.rules import PHASES, check_phase
from kkt_emulator.fn.state import DriveState, DriveStore

__all__ = ["DriveConfig", "FiscalDrive"]


class FiscalDrive(RegistrationCommands, DocumentCommands, OfdCommands, ReadCommands):
    """The fiscal drive (ФН) state machine.

    Args:
        config: serial number and model limits.
        store: where state and archive live; a fresh :class:`~kkt_emulator.fn.state.MemoryStore`
            if omitted. A store that already holds a state restores the drive exactly as it was.
    """

    def __init__(self, config: DriveConfig, store: DriveStore | None = None) -> None:
        super().__init__(config, store)
        self._handlers: dict[int, Handler] = {
            Command.START_REGISTRATION: self._start_registration,
            Command.FINISH_REGISTRATION: self._finish_registration,
            Command.START_REGISTRATION_12: self._start_registration_12,
            Command.FINISH_REGISTRATION_12: self._finish_registration_12,
            Command.START_CLOSE_FN: self._start_close_fn,
            Command.CLOSE_FN: self._close_fn,
            Command.CANCEL_DOCUMENT: self._cancel_document,
            Command.SEND_DOCUMENT_DATA: self._send_document_data,
            Command.SHIFT_PARAMS: self._shift_params,
            Command.START_OPEN_SHIFT: self._start_open_shift,
            Command.OPEN_SHIFT: self._open_shift,
            Command.START_CLOSE_SHIFT: self._start_close_shift,
            Command.CLOSE_SHIFT: self._close_shift,
            Command.START_RECEIPT: self._start_receipt,
            Command.START_CORRECTION: self._start_correction,
            Command.FINISH_RECEIPT: self._finish_receipt,
            Command.START_SETTLEMENT_REPORT: self._start_settlement_report,
            Command.FINISH_SETTLEMENT_REPORT: self._finish_settlement_report,
            Command.OFD_STATUS: self._ofd_status,
            Command.OFD_TRANSPORT: self._ofd_transport,
            Command.OFD_START_READ: self._ofd_start_read,
            Command.OFD_READ_BLOCK: self._ofd_read_block,
            Command.OFD_CANCEL_READ: self._ofd_cancel_read,
            Command.OFD_FINISH_READ: self._ofd_finish_read,
            Command.OFD_RECEIPT: self._ofd_receipt,
            Command.STATUS: self._status,
            Command.SERIAL: self._serial,
            Command.EXPIRY: self._expiry,
            Command.VERSION: self._version,
            Command.LAST_ERRORS: self._last_errors,
            Command.FORMAT: self._format,
            Command.DAYS_LEFT: self._days_left,
            Command.FREE_RESOURCES: self._free_resources,
            Command.FIND_DOCUMENT: self._find_document,
            Command.OFD_ACK_BY_NUMBER: self._ofd_ack_by_number,
            Command.UNCONFIRMED_COUNT: self._unconfirmed_count,
            Command.REGISTRATION_RESULTS: self._registration_results,
            Command.REGISTRATION_PARAMETER: self._registration_parameter,
            Command.READ_DOCUMENT_TLV: self._read_document_tlv,
            Command.READ_DOCUMENT_TLV_NEXT: self._read_document_tlv_next,
            Command.READ_REGISTRATION_TLV_NEXT: self._read_registration_tlv_next,
            Command.RESET: self._reset,
        }

    # ------------------------------------------------------------------ entry points
    def execute(self, now: datetime, code: int, data: bytes = b"") -> bytes:
        """Run one command at business time ``now`` and return the answer data.

        Raises:
            DriveError: the drive refused; its ``code`` is the result code of the answer and its
                ``data`` the answer data that goes with it.
        """
        if now.tzinfo is None:
            raise ValueError("the drive needs timezone-aware business time")
        handler = self._handlers.get(code)
        if handler is None:
            raise self._remember(
                DriveError(R.UNKNOWN_COMMAND, detail=f"unknown command {code:02X}h")
            )
        if self.config.protocol == "fn-2016" and code in (
            Command.START_REGISTRATION_12,
            Command.FINISH_REGISTRATION_12,
        ):
            raise self._remember(
                DriveError(R.UNKNOWN_COMMAND, detail="a ФН-2016 drive has no A2h/A3h")
            )
        if self.forced_result is not None:
            forced = self.forced_result(code)
            if forced is not None:
                raise self._remember(forced)
        self._pending = Pending()
        try:
            request = cmd.parse_request(code, data)
            check_phase(self.state.phase, PHASES[code])
            answer = handler(self._local(now), request)
        except DriveError as exc:
            raise self._remember(exc) from None
        # The next command starts with a fresh Pending; this one is done with after the commit.
        pending = self._pending
        if pending.changed or pending.documents or pending.acks:
            try:
                self.store.commit(self.state, tuple(pending.documents), tuple(pending.acks))
            except DriveError as exc:
                # The write failed (03h): the drive is what its memory holds, as before the command.
                self.state = self.store.load_state() or DriveState()
                self._message = None
                raise self._remember(exc) from None
        return answer
