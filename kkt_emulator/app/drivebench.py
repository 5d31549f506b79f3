"""A drive on a test bench: a :class:`FiscalDrive` behind its endpoint, with its own manual time.

For driver developers and for the project's tests: it speaks frames exactly as a till would
(through :class:`~kkt_emulator.fn.endpoint.DriveEndpoint`), and builds the TLVs of a registration,
a receipt and an operator acknowledgement so a test reads like the case it checks::

    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    bench.open_shift()
    bench.sale(total=4550)
    bench.advance(days=31)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, Phase, ResultCode
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.endpoint import DriveEndpoint
from kkt_emulator.fn.frame import Frame
from kkt_emulator.fn.state import DriveStore
from kkt_emulator.fn.tlv import tlv_byte, tlv_fvln, tlv_stlv, tlv_string, tlv_vln
from kkt_emulator.ofd.ack import build_ack
from kkt_emulator.profiles import DEFAULT_PROFILE, FirmwareProfile, load_profile
from kkt_emulator.taxes import TaxSystem
from kkt_emulator.till.registration import registration_plan

__all__ = ["DEFAULT_START", "DriveBench", "Item", "item_tlv"]

DEFAULT_START = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
KKT_SERIAL = "000100000001"
CASHIER = "Интернет-магазин"
"""The cashier (1021) of every bench document: an internet shop's till has no person at it."""


@dataclass(frozen=True, slots=True)
class Item:
    """One position of a receipt: name, price and quantity, VAT rate (1199), subject (1212)."""

    name: str = "Хлеб"
    price: int = 4550
    quantity: Decimal = Decimal("1.000")
    vat: int = 1
    subject: int = 1
    method: int = 4

    @property
    def total(self) -> int:
        """Price × quantity in kopecks, rounded half up."""
        return int((self.price * self.quantity).to_integral_value(rounding="ROUND_HALF_UP"))


def item_tlv(item: Item, extra: list[bytes] | None = None) -> bytes:
    """The 1059 STLV of one item (FFD 1.05 tag set, valid for 1.2 too)."""
    return tlv_stlv(
        1059,
        [
            tlv_string(1030, item.name),
            tlv_vln(1079, item.price),
            tlv_fvln(1023, item.quantity),
            tlv_vln(1043, item.total),
            tlv_byte(1199, item.vat),
            tlv_byte(1212, item.subject),
            tlv_byte(1214, item.method),
            *(extra or []),
        ],
    )


class DriveBench:
    """A drive with its own business time, driven through frames.

    Args:
        profile: a firmware profile name or object.
        store: where the drive keeps its archive (a fresh in-memory store by default).
        start: the initial business time.
        serial: the drive serial (the profile's prefix + zeros + 1 by default).
        overrides: :class:`DriveConfig` fields to change (e.g. ``capacity=50``).
    """

    def __init__(
        self,
        profile: str | FirmwareProfile = DEFAULT_PROFILE,
        store: DriveStore | None = None,
        start: datetime = DEFAULT_START,
        serial: str | None = None,
        **overrides: Any,
    ) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        prefix = self.profile.drive.serial_prefix
        self.serial = serial or prefix + "1".rjust(16 - len(prefix), "0")
        self.config = DriveConfig.from_profile(self.profile, self.serial, **overrides)
        self.drive = FiscalDrive(self.config, store)
        self.endpoint = DriveEndpoint(self.drive)
        self.now = start
        self.ffd12 = self.profile.ffd_version == "1.2"

    # ------------------------------------------------------------------ time and raw access

    def advance(self, **delta: float) -> datetime:
        """Move business time forward (``days=31``, ``hours=25``, ``minutes=1`` …)."""
        self.now += timedelta(**delta)
        return self.now

    @property
    def local(self) -> datetime:
        """The drive's wall-clock time, as a till sends it in DATE_TIME fields."""
        return self.drive.local_time(self.now)

    def raw(self, command: int, data: bytes = b"", /) -> Frame:
        """Send one request frame; return the answer frame (any result)."""
        return self.endpoint.request(command, data, self.now)

    def call(self, command: int, /, data: bytes | None = None, **fields: Any) -> Any:
        """Run a command and parse its answer; raises DriveError for a non-zero result."""
        payload = data if data is not None else cmd.build_request(command, **fields)
        answer = self.raw(command, payload)
        if answer.result != ResultCode.OK:
            raise DriveError(answer.result, answer.data)
        return cmd.parse_answer(command, answer.data)

    def status(self) -> Any:
        """30h."""
        return self.call(Command.STATUS)

    # ------------------------------------------------------------------ documents

    def register(
        self,
        *,
        internet: bool = True,
        agent: bool = False,
        excise: bool = False,
        tax_systems: int | None = None,
        report_type: int = 0,
        reason: int | None = None,
    ) -> Any:
        """Registration (or re-registration) as the till firmware does it (02h/03h or A2h/A3h)."""
        plan = registration_plan(
            self.profile,
            KKT_SERIAL,
            report_type=report_type,
            reason=reason,
            tax_systems=tax_systems,
            agent=agent,
            excise=excise,
            internet=internet,
        )
        self.call(plan.start, **plan.start_fields)
        self.call(Command.SEND_DOCUMENT_DATA, data=plan.tlv)
        return self.call(plan.finish, when=self.local, **plan.finish_fields)

    def open_shift(self) -> Any:
        """11h, 07h (cashier), 12h."""
        return self._shift_document(Command.START_OPEN_SHIFT, Command.OPEN_SHIFT)

    def close_shift(self) -> Any:
        """13h, 07h (cashier), 14h."""
        return self._shift_document(Command.START_CLOSE_SHIFT, Command.CLOSE_SHIFT)

    def _shift_document(self, start: Command, finish: Command) -> Any:
        self.call(start, when=self.local)
        self.call(Command.SEND_DOCUMENT_DATA, data=tlv_string(1021, CASHIER))
        return self.call(finish)

    def receipt_tlv(
        self,
        total: int,
        contact: str | None = "buyer@example.com",
        tax_system: int | None = TaxSystem.COMMON.bit,
        extra: bytes = b"",
    ) -> bytes:
        """The receipt-level TLVs a till sends before the items (all paid electronically)."""
        parts = [tlv_string(1021, CASHIER)]
        if tax_system is not None:
            parts.append(tlv_byte(1055, tax_system))
        if contact is not None:
            parts.append(tlv_string(1008, contact))
        parts += [
            tlv_vln(1031, 0),
            tlv_vln(1081, total),
            tlv_vln(1215, 0),
            tlv_vln(1216, 0),
            tlv_vln(1217, 0),
        ]
        return b"".join(parts) + extra

    def sale(
        self,
        items: list[Item] | None = None,
        *,
        operation: int = 1,
        contact: str | None = "buyer@example.com",
        tax_system: int | None = TaxSystem.COMMON.bit,
        extra: bytes = b"",
        item_extra: list[bytes] | None = None,
        correction: bool = False,
    ) -> Any:
        """A whole receipt: 15h (or 17h), 07h with the receipt TLVs, 07h per item, 16h."""
        items = items or [Item()]
        total = sum(i.total for i in items)
        start = Command.START_CORRECTION if correction else Command.START_RECEIPT
        self.call(start, when=self.local)
        try:
            self.call(
                Command.SEND_DOCUMENT_DATA,
                data=self.receipt_tlv(total, contact, tax_system, extra),
            )
            for item in items:
                self.call(Command.SEND_DOCUMENT_DATA, data=item_tlv(item, item_extra))
            return self.call(
                Command.FINISH_RECEIPT, when=self.local, operation=operation, total=total
            )
        except DriveError:
            self.call(Command.CANCEL_DOCUMENT)
            raise

    # ------------------------------------------------------------------ OFD

    def read_message(self) -> bytes:
        """21h(1), 22h, 23h… 25h: read the next message for the OFD."""
        self.call(Command.OFD_TRANSPORT, connected=1)
        length = self.call(Command.OFD_START_READ).length
        message = b""
        while len(message) < length:
            block = self.call(Command.OFD_READ_BLOCK, offset=len(message), length=1024).block
            message += block
        self.call(Command.OFD_FINISH_READ)
        return message

    def acknowledge(self, fd: int, code: int = 0) -> Any:
        """26h with an operator acknowledgement for document ``fd``."""
        ack = build_ack(
            self.serial,
            fd,
            self.profile.registration.ofd_inn,
            self.now,
            ffd="1.2" if self.ffd12 else "1.05",
            code=code,
        )
        return self.call(Command.OFD_RECEIPT, data=ack)

    def drain_ofd(self) -> list[int]:
        """Send every unsent document to the OFD and pass its acknowledgement; returns the FDs."""
        acked = []
        while True:
            status = self.call(Command.OFD_STATUS)
            if status.unsent == 0:
                break
            self.read_message()
            self.acknowledge(status.first_fd)
            acked.append(status.first_fd)
        if self.status().phase != Phase.ARCHIVE:
            self.call(Command.OFD_TRANSPORT, connected=0)
        return acked
