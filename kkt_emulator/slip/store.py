"""A :class:`~kkt_emulator.slip.model.Receipt` from what the cloud stores of a fiscalised document.

The cloud keeps the shop's ``Document`` (``store-api.md`` §6.1: positions, payments, ``taxMode``,
the buyer's contact, the cashier) and the till's ``fiscalInfo`` (§7.3, D50: shift, receipt and
fiscal numbers, the fiscal sign, the QR string). The registration the till printed under (the
user's name and INN, the place of settlement, the OFD) is passed in as :class:`Registration`.
Amounts are computed exactly as the till's firmware computes them for the drive (unit price after
discount, cost rounded half up, VAT of each rate from the costs), so the slip adds up to the
fiscal data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from kkt_emulator.errors import ValidationError
from kkt_emulator.slip.model import Payment, Position, Receipt, Seller, VatSum
from kkt_emulator.taxes import TaxSystem

__all__ = [
    "CHECK_TYPES",
    "PAYMENT_LABELS",
    "TAX_SYSTEM_LABELS",
    "VAT_LABELS",
    "Registration",
    "receipt_from_store",
    "time_from_qr",
]

VAT_LABELS: Final = {
    1102: "НДС 20%",
    1103: "НДС 10%",
    1104: "НДС 0%",
    1105: "БЕЗ НДС",
    1106: "НДС 20/120",
    1107: "НДС 10/110",
}
"""``vatTag`` (tags 1102–1107) → the rate as an item's line prints it."""

_VAT_SUM_LABELS: Final = {
    1102: "СУММА НДС 20%",
    1103: "СУММА НДС 10%",
    1104: "СУММА С НДС 0%",
    1105: "СУММА БЕЗ НДС",
    1106: "СУММА НДС 20/120",
    1107: "СУММА НДС 10/110",
}
_VAT_SHARE: Final = {
    1102: Decimal(20) / 120,
    1103: Decimal(10) / 110,
    1106: Decimal(20) / 120,
    1107: Decimal(10) / 110,
}

PAYMENT_LABELS: Final = {
    "CASH": "НАЛИЧНЫМИ",
    "CARD": "БЕЗНАЛИЧНЫМИ",
    "PREPAID": "ПРЕДВАРИТЕЛЬНАЯ ОПЛАТА (АВАНС)",
    "POSTPAY": "ПОСЛЕДУЮЩАЯ ОПЛАТА (КРЕДИТ)",
    "OTHER": "ИНАЯ ФОРМА ОПЛАТЫ",
}
"""``paymentType`` → the payment form as printed (tags 1031, 1081, 1215, 1216, 1217)."""

TAX_SYSTEM_LABELS: Final = {
    TaxSystem.COMMON: "ОСН",
    TaxSystem.SIMPLIFIED: "УСН доход",
    TaxSystem.SIMPLIFIED_WITH_EXPENSE: "УСН доход - расход",
    TaxSystem.ENVD: "ЕНВД",
    TaxSystem.COMMON_AGRICULTURAL: "ЕСХН",
    TaxSystem.PATENT: "ПСН",
}
"""Tag 1055 as the print form abbreviates it."""

CHECK_TYPES: Final = {
    "SALE": (1, False),
    "RETURN": (2, False),
    "PURCHASE": (3, False),
    "RETURN_PURCHASE": (4, False),
    "SALE_CORRECTION": (1, True),
    "RETURN_CORRECTION": (2, True),
    "PURCHASE_CORRECTION": (3, True),
    "RETURN_PURCHASE_CORRECTION": (4, True),
}
"""``fiscalInfo.checkType`` → (tag 1054, whether it is a correction receipt)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What the till was registered with, as far as the slip prints it.

    Attributes:
        seller: the user's name, INN, address and place of settlement.
        ofd_name: the OFD's name (1046).
        ofd_inn: the OFD's INN (1017).
        fns_site: the tax service's site (1060).
        sender_email: the sender's e-mail (1117), printed with the buyer's contact.
        cashier: the cashier (1021) when the document names none.
    """

    seller: Seller
    ofd_name: str = ""
    ofd_inn: str = ""
    fns_site: str = "www.nalog.gov.ru"
    sender_email: str | None = None
    cashier: str = ""


def _decimal(value: object, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError(where, f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValidationError(where, f"not a number: {value!r}")
    return result


def _kopecks(value: object, where: str) -> int:
    return int((_decimal(value, where) * 100).to_integral_value(rounding=ROUND_HALF_UP))


def time_from_qr(qr: str) -> datetime | None:
    """The receipt's local date and time from the QR string's ``t=`` (``YYYYMMDDTHHMM[SS]``)."""
    for part in qr.split("&"):
        name, _, value = part.partition("=")
        if name == "t":
            # strptime alone would read a 4-digit time «1414» as 14:01:04: the length picks the pattern.
            pattern = {13: "%Y%m%dT%H%M", 15: "%Y%m%dT%H%M%S"}.get(len(value))
            if pattern is None:
                return None
            try:
                return datetime.strptime(value, pattern)  # noqa: DTZ007 - the receipt's local wall time, as printed
            except ValueError:
                return None
    return None


def _positions(document: Mapping[str, Any]) -> tuple[list[Position], dict[int, Decimal]]:
    positions: list[Position] = []
    vat_totals: dict[int, Decimal] = {}
    raw = document.get("inventPositions") or []
    if not isinstance(raw, list):
        raise ValidationError("inventPositions", "expected a list")
    for index, item in enumerate(raw):
        where = f"inventPositions[{index}]"
        if not isinstance(item, Mapping):
            raise ValidationError(where, "expected an object")
        price = _kopecks(item.get("price", 0), f"{where}.price")
        quantity = _decimal(item.get("quantity", 1), f"{where}.quantity")
        discount = _kopecks(item.get("discSum") or 0, f"{where}.discSum")
        cost = int((price * quantity - discount).to_integral_value(rounding=ROUND_HALF_UP))
        unit = (
            price
            if not discount or not quantity
            else int((Decimal(cost) / quantity).to_integral_value(ROUND_HALF_UP))
        )
        try:
            vat_tag = int(item.get("vatTag", 1105))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{where}.vatTag", "not a VAT tag") from exc
        if vat_tag not in VAT_LABELS:
            raise ValidationError(f"{where}.vatTag", f"unsupported value {vat_tag}")
        share = _VAT_SHARE.get(vat_tag)
        vat_totals[vat_tag] = vat_totals.get(vat_tag, Decimal(0)) + (
            cost * share if share else Decimal(cost)
        )
        if item.get("vatSum") is not None:
            vat_sum: int | None = _kopecks(item["vatSum"], f"{where}.vatSum")
        elif share:
            vat_sum = int((cost * share).to_integral_value(rounding=ROUND_HALF_UP))
        else:
            vat_sum = None
        positions.append(
            Position(
                name=str(item.get("name", "")),
                quantity=quantity,
                price=unit,
                total=cost,
                vat=VAT_LABELS[vat_tag],
                vat_sum=vat_sum,
            )
        )
    return positions, vat_totals


def _payments(document: Mapping[str, Any]) -> list[Payment]:
    sums: dict[str, int] = {}
    raw = document.get("moneyPositions") or []
    if not isinstance(raw, list):
        raise ValidationError("moneyPositions", "expected a list")
    for index, payment in enumerate(raw):
        where = f"moneyPositions[{index}]"
        if not isinstance(payment, Mapping):
            raise ValidationError(where, "expected an object")
        kind = str(payment.get("paymentType", ""))
        if kind not in PAYMENT_LABELS:
            raise ValidationError(f"{where}.paymentType", f"unsupported value {kind!r}")
        sums[kind] = sums.get(kind, 0) + _kopecks(payment.get("sum", 0), f"{where}.sum")
    # The print form shows cash and card always, the other forms when used.
    shown = [k for k in PAYMENT_LABELS if k in ("CASH", "CARD") or sums.get(k)]
    return [Payment(PAYMENT_LABELS[k], sums.get(k, 0)) for k in shown]


def receipt_from_store(
    document: Mapping[str, Any],
    fiscal_info: Mapping[str, Any],
    registration: Registration,
    default_tax_mode: str | None = None,
) -> Receipt:
    """The printed receipt of a document the cloud stores with its ``fiscalInfo``.

    ``default_tax_mode`` is the retail point's tax system (D21), used when the document names
    none.

    Raises:
        ValidationError: the document or its fiscal data lack what a receipt needs.
    """
    try:
        check_type = str(fiscal_info["checkType"])
        qr = str(fiscal_info["qr"])
        shift = int(fiscal_info["shiftNumber"])
        number = int(fiscal_info["checkNumber"])
        fd = int(fiscal_info["fnDocNumber"])
        fp = int(fiscal_info["fnDocMark"])
        fn_serial = str(fiscal_info["fnNumber"])
        kkt_serial = str(fiscal_info["kktNumber"])
    except KeyError as exc:
        raise ValidationError(f"fiscalInfo.{exc.args[0]}", "required field is missing") from exc
    except (TypeError, ValueError) as exc:
        raise ValidationError("fiscalInfo", f"malformed fiscal data: {exc}") from exc
    if check_type not in CHECK_TYPES:
        raise ValidationError("fiscalInfo.checkType", f"unsupported value {check_type!r}")
    operation, correction = CHECK_TYPES[check_type]
    when = time_from_qr(qr)
    if when is None:
        try:
            when = datetime.fromisoformat(str(fiscal_info["date"]))
        except (KeyError, ValueError) as exc:
            raise ValidationError("fiscalInfo.date", "no receipt time in date or qr") from exc
    positions, vat_totals = _positions(document)
    payments = _payments(document)
    total = (
        _kopecks(fiscal_info["sum"], "fiscalInfo.sum")
        if fiscal_info.get("sum") is not None
        else sum(p.amount for p in payments)
    )
    tax_mode = str(document.get("taxMode") or default_tax_mode or "")
    try:
        tax_system = TAX_SYSTEM_LABELS[TaxSystem(tax_mode)]
    except ValueError:
        tax_system = tax_mode
    contact = document.get("email") or document.get("phone")
    cashier = str(document.get("cashierName") or registration.cashier)
    return Receipt(
        title="КАССОВЫЙ ЧЕК КОРРЕКЦИИ" if correction else "КАССОВЫЙ ЧЕК",
        seller=registration.seller,
        operation=operation,
        shift=shift,
        number=number,
        when=when.replace(tzinfo=None),
        cashier=cashier,
        positions=tuple(positions),
        total=total,
        payments=tuple(payments),
        vat_sums=tuple(
            VatSum(
                _VAT_SUM_LABELS[tag],
                int(vat_totals[tag].to_integral_value(rounding=ROUND_HALF_UP)),
            )
            for tag in sorted(vat_totals)
        ),
        tax_system=tax_system,
        customer_contact=str(contact) if contact else None,
        sender_email=registration.sender_email if contact else None,
        fns_site=registration.fns_site,
        ofd_name=registration.ofd_name,
        ofd_inn=registration.ofd_inn,
        rnm=str(fiscal_info.get("ecrRegistrationNumber") or ""),
        kkt_serial=kkt_serial,
        fn_serial=fn_serial,
        fd=fd,
        fp=fp,
        qr=qr,
    )
