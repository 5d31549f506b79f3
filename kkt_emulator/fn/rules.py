"""The drive's rule data: which commands each life phase admits, and the constants of its rules.

:data:`PHASES` is the command table of fn-protocol.md §4.2 as data: for every command the phases
in which the drive accepts it. :func:`check_phase` is the one place it is checked (``FiscalDrive.execute``
calls it for every command after its payload has parsed). The start of a registration (02h/A2h)
is admitted in phase 1h or 3h by the table and then narrowed by its report type
(:data:`REGISTRATION_PHASES`: a registration or a change of drive in phase 1h, a re-registration in
phase 3h) through the same function, once the report type is known to be valid.

Commands that need an open document (03h, 05h, 07h, 12h, 14h, 17h, 19h) or an OFD read in progress
(23h, 25h) are listed with the phases in which such a document or read can exist, so the table says
the whole truth; their handlers still check the document itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import Command, CurrentDocument, Phase, ResultCode
from kkt_emulator.fn.tags import Tag

__all__ = [
    "AGENT_TAGS",
    "ANY_PHASE",
    "EXCISE_SUBJECT",
    "EXT_TO_1290",
    "FFD_NAMES",
    "FISCAL_PHASES",
    "ITEM_MANDATORY",
    "MAX_REGISTRATIONS",
    "MODE_TAGS_105",
    "MODE_TO_1290",
    "OFD_WAIT",
    "OPEN_SHIFT_ALLOWANCE",
    "PAYMENT_TAGS",
    "PHASES",
    "REGISTRATION_PHASES",
    "REPEATABLE_TAGS",
    "SHIFT_LENGTH",
    "TIMER_TOLERANCE",
    "TLV_KIND",
    "check_phase",
]

PAYMENT_TAGS = (Tag.CASH, Tag.CARD, Tag.PREPAID, Tag.POSTPAID, Tag.COUNTER)
AGENT_TAGS = frozenset(
    {Tag.AGENT, Tag.ITEM_AGENT, Tag.AGENT_DATA, Tag.SUPPLIER_DATA, Tag.SUPPLIER_INN}
)
REPEATABLE_TAGS = frozenset({Tag.ITEM, 1084, 1192})
ITEM_MANDATORY = (1030, 1079, 1023, 1199, 1043)
EXCISE_SUBJECT = 2

FFD_NAMES = {1: "1.05", 2: "1.05", 3: "1.1", 4: "1.2"}
MAX_REGISTRATIONS = 30
OFD_WAIT = timedelta(days=30)
SHIFT_LENGTH = timedelta(hours=24)
TIMER_TOLERANCE = timedelta(minutes=5)
OPEN_SHIFT_ALLOWANCE = timedelta(hours=1)

# Mode byte bits (fn-protocol.md §6.3) and the tags the drive forms from them in FFD 1.05.
MODE_TAGS_105 = (
    (0, Tag.ENCRYPTION),
    (1, Tag.AUTONOMOUS),
    (2, Tag.AUTOMATIC),
    (3, Tag.SERVICES),
    (4, Tag.BSO),
    (5, Tag.INTERNET),
)
# FFD 1.2: mode bits 3..7 and extended-flag bits 0..7 map to bits of tag 1290 (fn-protocol.md §6.3).
MODE_TO_1290 = {3: 9, 4: 2, 5: 5, 6: 15, 7: 16}
EXT_TO_1290 = {0: 6, 1: 10, 2: 11, 3: 1, 4: 8, 5: 12, 6: 13, 7: 14}

# Which open-document status each start command creates, and the TLV-volume kind it uses.
TLV_KIND = {
    CurrentDocument.REGISTRATION: "registration",
    CurrentDocument.REREGISTRATION: "registration",
    CurrentDocument.REREGISTRATION_FN_CHANGE: "registration",
    CurrentDocument.OPEN_SHIFT: "open_shift",
    CurrentDocument.CLOSE_SHIFT: "close_shift",
    CurrentDocument.RECEIPT: "receipt",
    CurrentDocument.CORRECTION: "correction",
    CurrentDocument.SETTLEMENT_REPORT: "report",
    CurrentDocument.CLOSE_FN: "close_fn",
}

ANY_PHASE: frozenset[int] = frozenset(Phase)
FISCAL: frozenset[int] = frozenset({Phase.FISCAL})
FISCAL_PHASES: frozenset[int] = frozenset({Phase.FISCAL, Phase.POST_FISCAL})
_REGISTERING: frozenset[int] = frozenset({Phase.READY, Phase.FISCAL})

PHASES: Mapping[int, frozenset[int]] = {
    # Registration and closing the drive (fn-protocol.md §6.3).
    Command.START_REGISTRATION: _REGISTERING,
    Command.FINISH_REGISTRATION: _REGISTERING,
    Command.START_REGISTRATION_12: _REGISTERING,
    Command.FINISH_REGISTRATION_12: _REGISTERING,
    Command.START_CLOSE_FN: FISCAL,
    Command.CLOSE_FN: FISCAL,
    # Documents in general (fn-protocol.md §6.5).
    Command.CANCEL_DOCUMENT: ANY_PHASE,
    Command.SEND_DOCUMENT_DATA: _REGISTERING,
    # Shifts, receipts, the settlement report (fn-protocol.md §6.4).
    Command.SHIFT_PARAMS: FISCAL_PHASES,
    Command.START_OPEN_SHIFT: FISCAL,
    Command.OPEN_SHIFT: FISCAL,
    Command.START_CLOSE_SHIFT: FISCAL,
    Command.CLOSE_SHIFT: FISCAL,
    Command.START_RECEIPT: FISCAL,
    Command.START_CORRECTION: FISCAL,
    Command.FINISH_RECEIPT: FISCAL,
    Command.START_SETTLEMENT_REPORT: FISCAL,
    Command.FINISH_SETTLEMENT_REPORT: FISCAL,
    # OFD exchange (fn-protocol.md §6.6).
    Command.OFD_STATUS: ANY_PHASE,
    Command.OFD_TRANSPORT: FISCAL_PHASES,
    Command.OFD_START_READ: FISCAL_PHASES,
    Command.OFD_READ_BLOCK: FISCAL_PHASES,
    Command.OFD_CANCEL_READ: ANY_PHASE,
    Command.OFD_FINISH_READ: FISCAL_PHASES,
    Command.OFD_RECEIPT: FISCAL_PHASES,
    # Status (fn-protocol.md §5) and archive reads (fn-protocol.md §6.7): always.
    Command.STATUS: ANY_PHASE,
    Command.SERIAL: ANY_PHASE,
    Command.EXPIRY: ANY_PHASE,
    Command.VERSION: ANY_PHASE,
    Command.LAST_ERRORS: ANY_PHASE,
    Command.FORMAT: ANY_PHASE,
    Command.DAYS_LEFT: ANY_PHASE,
    Command.FREE_RESOURCES: ANY_PHASE,
    Command.FIND_DOCUMENT: ANY_PHASE,
    Command.OFD_ACK_BY_NUMBER: ANY_PHASE,
    Command.UNCONFIRMED_COUNT: ANY_PHASE,
    Command.REGISTRATION_RESULTS: ANY_PHASE,
    Command.REGISTRATION_PARAMETER: ANY_PHASE,
    Command.READ_DOCUMENT_TLV: ANY_PHASE,
    Command.READ_DOCUMENT_TLV_NEXT: ANY_PHASE,
    Command.READ_REGISTRATION_TLV_NEXT: ANY_PHASE,
    # Debug firmware (МГМ) reset: in any phase, on debug drives only.
    Command.RESET: ANY_PHASE,
}
"""Command → the phases that admit it (fn-protocol.md §4.2)."""

REGISTRATION_PHASES: Mapping[int, frozenset[int]] = {
    0: frozenset({Phase.READY}),  # registration
    1: frozenset({Phase.READY}),  # re-registration with a change of drive
    2: FISCAL,  # re-registration
}
"""Report type of 02h/A2h → the phases that admit it (fn-protocol.md §6.3)."""


def check_phase(phase: int, admitted: Iterable[int]) -> None:
    """Refuse with 02h unless ``phase`` is one of ``admitted``.

    Raises:
        DriveError: 02h, naming the phases the command needs.
    """
    allowed = sorted(admitted)
    if phase not in allowed:
        names = "/".join(f"{p:X}h" for p in allowed)
        raise DriveError(
            ResultCode.WRONG_STATE, detail=f"command needs phase {names}, drive is in {phase:X}h"
        )
