"""The receipt as printed: its requisites (54-ФЗ, FFD print forms) and its lines on the paper.

:class:`Receipt` holds what a till prints on a cash receipt (кассовый чек): the seller, the sign of
calculation, the positions, the totals by payment form and VAT rate, the tax system and the fiscal
requisites (РН ККТ, ЗН ККТ, ФН, ФД, ФП) with the QR string. :func:`slip_lines` lays it out as the
lines of a paper slip :data:`WIDTH` characters wide; :func:`render_text` prints those lines. Pure:
no I/O, no clock. Money is integer kopecks, quantities keep their decimal places.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "OPERATIONS",
    "WIDTH",
    "Line",
    "LineKind",
    "Payment",
    "Position",
    "Receipt",
    "Seller",
    "VatSum",
    "money",
    "render_text",
    "slip_lines",
]

WIDTH: Final = 42
"""Characters per line: an 80 mm thermal roll in its condensed font."""

OPERATIONS: Final = {1: "ПРИХОД", 2: "ВОЗВРАТ ПРИХОДА", 3: "РАСХОД", 4: "ВОЗВРАТ РАСХОДА"}
"""Tag 1054 «признак расчета» as the print form names it."""


def money(kopecks: int) -> str:
    """Kopecks as the slip prints them: ``1234.50``."""
    sign = "-" if kopecks < 0 else ""
    rubles, rest = divmod(abs(kopecks), 100)
    return f"{sign}{rubles}.{rest:02d}"


def _quantity(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Seller:
    """The user (пользователь): name (1048), INN (1018), address (1009), place (1187)."""

    name: str
    inn: str
    address: str
    place: str = ""


@dataclass(frozen=True, slots=True)
class Position:
    """One item (1059): name (1030), quantity (1023), unit price (1079), cost (1043), VAT (1199)."""

    name: str
    quantity: Decimal
    price: int
    total: int
    vat: str
    """The VAT rate as printed: «НДС 20%», «БЕЗ НДС» …"""
    vat_sum: int | None = None
    """The item's VAT (1200), where the rate has one."""


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment form with its sum: «НАЛИЧНЫМИ» (1031), «БЕЗНАЛИЧНЫМИ» (1081) and the others."""

    label: str
    amount: int


@dataclass(frozen=True, slots=True)
class VatSum:
    """The receipt's VAT of one rate (1102–1107), as «СУММА НДС 20%»."""

    label: str
    amount: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A fiscalised cash receipt with every requisite its print form carries.

    ``when`` is the receipt's date and time as printed: the local time of the place of
    settlement, the same as the QR string's ``t=`` (a naive datetime).
    """

    seller: Seller
    operation: int
    shift: int
    number: int
    when: datetime
    positions: tuple[Position, ...]
    total: int
    payments: tuple[Payment, ...]
    vat_sums: tuple[VatSum, ...]
    tax_system: str
    rnm: str
    kkt_serial: str
    fn_serial: str
    fd: int
    fp: int
    qr: str
    cashier: str = ""
    customer_contact: str | None = None
    sender_email: str | None = None
    fns_site: str = "www.nalog.gov.ru"
    ofd_name: str = ""
    ofd_inn: str = ""
    title: str = "КАССОВЫЙ ЧЕК"
    extra: tuple[tuple[str, str], ...] = field(default=())
    """Further «name: value» lines printed before the fiscal requisites (e.g. «ТЕЛ. ПОКУПАТЕЛЯ»)."""

    @property
    def operation_name(self) -> str:
        """The sign of calculation as printed («ПРИХОД» …)."""
        return OPERATIONS.get(self.operation, str(self.operation))

    def to_json(self) -> dict[str, Any]:
        """The receipt as JSON (money in kopecks, quantities as decimal strings)."""
        return {
            "title": self.title,
            "seller": {
                "name": self.seller.name,
                "inn": self.seller.inn,
                "address": self.seller.address,
                "place": self.seller.place,
            },
            "operation": self.operation,
            "operationName": self.operation_name,
            "shift": self.shift,
            "number": self.number,
            "when": self.when.isoformat(),
            "cashier": self.cashier,
            "positions": [
                {
                    "name": p.name,
                    "quantity": str(p.quantity),
                    "price": p.price,
                    "total": p.total,
                    "vat": p.vat,
                    "vatSum": p.vat_sum,
                }
                for p in self.positions
            ],
            "total": self.total,
            "payments": [{"label": p.label, "amount": p.amount} for p in self.payments],
            "vatSums": [{"label": v.label, "amount": v.amount} for v in self.vat_sums],
            "taxSystem": self.tax_system,
            "customerContact": self.customer_contact,
            "senderEmail": self.sender_email,
            "fnsSite": self.fns_site,
            "ofdName": self.ofd_name,
            "ofdInn": self.ofd_inn,
            "rnm": self.rnm,
            "kktSerial": self.kkt_serial,
            "fnSerial": self.fn_serial,
            "fd": self.fd,
            "fp": self.fp,
            "qr": self.qr,
            "extra": [list(pair) for pair in self.extra],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        """The inverse of :meth:`to_json`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not a receipt's JSON.
        """
        seller = data["seller"]
        return cls(
            title=str(data["title"]),
            seller=Seller(
                str(seller["name"]),
                str(seller["inn"]),
                str(seller["address"]),
                str(seller.get("place") or ""),
            ),
            operation=int(data["operation"]),
            shift=int(data["shift"]),
            number=int(data["number"]),
            when=datetime.fromisoformat(str(data["when"])),
            cashier=str(data.get("cashier") or ""),
            positions=tuple(
                Position(
                    name=str(p["name"]),
                    quantity=Decimal(str(p["quantity"])),
                    price=int(p["price"]),
                    total=int(p["total"]),
                    vat=str(p["vat"]),
                    vat_sum=None if p.get("vatSum") is None else int(p["vatSum"]),
                )
                for p in data["positions"]
            ),
            total=int(data["total"]),
            payments=tuple(Payment(str(p["label"]), int(p["amount"])) for p in data["payments"]),
            vat_sums=tuple(VatSum(str(v["label"]), int(v["amount"])) for v in data["vatSums"]),
            tax_system=str(data["taxSystem"]),
            customer_contact=data.get("customerContact"),
            sender_email=data.get("senderEmail"),
            fns_site=str(data.get("fnsSite") or ""),
            ofd_name=str(data.get("ofdName") or ""),
            ofd_inn=str(data.get("ofdInn") or ""),
            rnm=str(data["rnm"]),
            kkt_serial=str(data["kktSerial"]),
            fn_serial=str(data["fnSerial"]),
            fd=int(data["fd"]),
            fp=int(data["fp"]),
            qr=str(data["qr"]),
            extra=tuple((str(k), str(v)) for k, v in data.get("extra") or ()),
        )


class LineKind(StrEnum):
    """How a line of the slip is laid out."""

    CENTER = "center"
    """Centred text (the header)."""
    TITLE = "title"
    """Centred, bold: «КАССОВЫЙ ЧЕК», the sign of calculation."""
    PAIR = "pair"
    """A name on the left, its value on the right."""
    TOTAL = "total"
    """A bold pair: «ИТОГ»."""
    TEXT = "text"
    """Left-aligned text."""
    RULE = "rule"
    """A dashed separator."""
    QR = "qr"
    """The QR code (its text in ``left``)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the slip: its kind, left (or centred) text and right-aligned value."""

    kind: LineKind
    left: str = ""
    right: str = ""

    @property
    def bold(self) -> bool:
        """Whether the line is printed bold."""
        return self.kind in (LineKind.TITLE, LineKind.TOTAL)


def _wrapped(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _pair(kind: LineKind, left: str, right: str, width: int) -> list[Line]:
    """A pair that fits, or the name wrapped with the value on the last line's right."""
    if len(left) + 1 + len(right) <= width:
        return [Line(kind, left, right)]
    lines = _wrapped(left, width)
    if len(lines[-1]) + 1 + len(right) > width:
        lines.append("")
    if len(right) > width:  # a value longer than a line (a long e-mail): on lines of its own
        return [Line(kind, part) for part in lines if part] + [
            Line(kind, "", part) for part in _wrapped(right, width)
        ]
    return [Line(kind, part) for part in lines[:-1]] + [Line(kind, lines[-1], right)]


def slip_lines(receipt: Receipt, width: int = WIDTH) -> list[Line]:
    """The lines of the paper slip, top to bottom (the QR code last)."""
    lines: list[Line] = []

    def center(text: str, kind: LineKind = LineKind.CENTER) -> None:
        lines.extend(Line(kind, part) for part in _wrapped(text, width))

    def pair(left: str, right: str, kind: LineKind = LineKind.PAIR) -> None:
        lines.extend(_pair(kind, left, right, width))

    seller = receipt.seller
    center(seller.name)
    center(seller.address)
    if seller.place and seller.place != seller.address:
        center(f"Место расчетов: {seller.place}")
    center(f"ИНН {seller.inn}")
    lines.append(Line(LineKind.RULE))
    center(receipt.title, LineKind.TITLE)
    center(receipt.operation_name, LineKind.TITLE)
    pair(f"Смена № {receipt.shift}", f"Чек № {receipt.number}")
    pair(receipt.when.strftime("%d.%m.%Y %H:%M"), "")
    if receipt.cashier:
        pair("Кассир", receipt.cashier)
    lines.append(Line(LineKind.RULE))
    for index, position in enumerate(receipt.positions, start=1):
        lines.extend(
            Line(LineKind.TEXT, part) for part in _wrapped(f"{index}. {position.name}", width)
        )
        pair(
            f"   {_quantity(position.quantity)} × {money(position.price)}",
            f"={money(position.total)}",
        )
        vat = f"={money(position.vat_sum)}" if position.vat_sum is not None else ""
        pair(f"   {position.vat}", vat)
    lines.append(Line(LineKind.RULE))
    pair("ИТОГ", f"={money(receipt.total)}", LineKind.TOTAL)
    for payment in receipt.payments:
        pair(payment.label, f"={money(payment.amount)}")
    for vat_sum in receipt.vat_sums:
        pair(vat_sum.label, f"={money(vat_sum.amount)}")
    lines.append(Line(LineKind.RULE))
    pair("СНО", receipt.tax_system)
    if receipt.customer_contact:
        label = "ТЕЛ. ПОКУПАТЕЛЯ" if "@" not in receipt.customer_contact else "ЭЛ. АДР. ПОКУПАТЕЛЯ"
        pair(label, receipt.customer_contact)
    if receipt.sender_email:
        pair("ЭЛ. АДР. ОТПРАВИТЕЛЯ", receipt.sender_email)
    for name, value in receipt.extra:
        pair(name, value)
    if receipt.fns_site:
        pair("САЙТ ФНС", receipt.fns_site)
    if receipt.ofd_name:
        pair("ОФД", receipt.ofd_name)
    if receipt.ofd_inn:
        pair("ИНН ОФД", receipt.ofd_inn)
    pair("РН ККТ", receipt.rnm)
    pair("ЗН ККТ", receipt.kkt_serial)
    pair("ФН", receipt.fn_serial)
    pair("ФД", str(receipt.fd))
    pair("ФП", str(receipt.fp))
    lines.append(Line(LineKind.QR, receipt.qr))
    return lines


def render_text(receipt: Receipt, width: int = WIDTH) -> str:
    """The slip as plain text, the QR code as its string (for a terminal)."""
    out: list[str] = []
    for line in slip_lines(receipt, width):
        if line.kind is LineKind.RULE:
            out.append("-" * width)
        elif line.kind in (LineKind.CENTER, LineKind.TITLE):
            out.append(line.left.center(width).rstrip())
        elif line.kind is LineKind.QR:
            out.append("QR: " + line.left)
        elif line.kind is LineKind.TEXT:
            out.append(line.left)
        else:
            gap = max(1, width - len(line.left) - len(line.right))
            out.append((line.left + " " * gap + line.right).rstrip())
    return "\n".join(out) + "\n"
