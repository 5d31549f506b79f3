"""Turning a shop's store document into drive TLVs, with the till firmware's own checks first.

The till refuses what a real МодульКасса refuses before the drive is involved (``support-cases.md``
§5 rows 6 and 7): a negative price, quantity or sum («Negative»), and an electronic receipt without
a valid buyer phone or e-mail. Everything else is the drive's business: the tax system, agent data,
excise goods reach the drive, and the drive's result code becomes the firmware profile's text.

The place of settlement (1187) and its address (1009) always come from the registration, never from
the shop's document (``support-cases.md`` §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.tlv import (
    encode_tlv,
    tlv_byte,
    tlv_fixed_string,
    tlv_fvln,
    tlv_stlv,
    tlv_string,
    tlv_unixtime,
    tlv_vln,
)
from kkt_emulator.profiles import Address, FirmwareProfile
from kkt_emulator.taxes import TaxSystem

__all__ = [
    "DOC_TYPES",
    "TAX_MODES",
    "VAT_TAGS",
    "ReceiptPlan",
    "TillCheckError",
    "build_receipt",
    "correction_receipt_tlv",
    "kopecks",
]

DOC_TYPES = {"SALE": 1, "RETURN": 2, "BUY": 3, "BUY_RETURN": 4}
CHECK_TYPES = {1: "SALE", 2: "RETURN", 3: "PURCHASE", 4: "RETURN_PURCHASE"}
# store-api.md taxMode → its bit in tag 1055 (one list for every layer: kkt_emulator.taxes).
TAX_MODES = {str(system): system.bit for system in TaxSystem}
# store-api.md §6.4 vatTag → tag 1199 rate code (fn-protocol.md §10.6) and the receipt VAT-sum tag.
VAT_TAGS = {1102: 1, 1103: 2, 1104: 5, 1105: 6, 1106: 3, 1107: 4}
_VAT_SHARE = {
    1102: Decimal(20) / 120,
    1103: Decimal(10) / 110,
    1106: Decimal(20) / 120,
    1107: Decimal(10) / 110,
}
PAYMENT_TAGS = {"CASH": 1031, "CARD": 1081, "PREPAID": 1215, "POSTPAY": 1216, "OTHER": 1217}
PAYMENT_OBJECTS = {
    "commodity": 1,
    "excise": 2,
    "job": 3,
    "service": 4,
    "gambling_bet": 5,
    "gambling_prize": 6,
    "lottery": 7,
    "lottery_prize": 8,
    "intellectual_activity": 9,
    "payment": 10,
    "agent_commission": 11,
    "composite": 12,
    "another": 13,
    "property_right": 14,
    "non-operating_gain": 15,
    "insurance_premium": 16,
    "sales_tax": 17,
    "resort_fee": 18,
}
PAYMENT_METHODS = {
    "full_prepayment": 1,
    "prepayment": 2,
    "advance": 3,
    "full_payment": 4,
    "partial_payment": 5,
    "credit": 6,
    "credit_payment": 7,
}
AGENT_TYPES = {
    "bank_paying_agent": 0x01,
    "bank_paying_subagent": 0x02,
    "paying_agent": 0x04,
    "paying_subagent": 0x08,
    "attorney": 0x10,
    "commission_agent": 0x20,
    "another": 0x40,
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+7\d{10}$")

NEGATIVE = "Negative"
NO_CONTACT = "Телефон или эл. адрес покупателя"


class TillCheckError(ValidationError):
    """The till firmware refused the document before the drive saw it (NON_FN_FAILURE).

    A :class:`~kkt_emulator.errors.ValidationError` whose ``field`` is the offending field of the
    document when the detail names one; its message is the firmware's text alone, as before.

    Attributes:
        text: the firmware's text (without the «Сообщение ФН об ошибке: » prefix).
        detail: what exactly was wrong, for the cabinet and the event stream.
    """

    def __init__(self, text: str, detail: dict[str, Any]) -> None:
        super().__init__("", text)
        self.field = str(detail.get("field", ""))
        self.text = text
        self.detail = detail


def kopecks(value: Any) -> int:
    """A JSON money value in roubles → integer kopecks (half up)."""
    amount = Decimal(str(value))
    return int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:  # pragma: no cover - the cloud validated the JSON types
        raise TillCheckError(NEGATIVE, {"reason": f"not a number: {value!r}"}) from exc


@dataclass(slots=True)
class ReceiptPlan:
    """Everything the drive needs for one receipt, plus what the till reports back."""

    operation: int
    total: int
    receipt_tlv: bytes
    items: list[bytes]
    tax_system: int
    check_type: str
    positions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def all_tlv(self) -> bytes:
        """Receipt-level TLVs followed by every item STLV."""
        return self.receipt_tlv + b"".join(self.items)


def _contact(document: dict[str, Any]) -> str | None:
    raw = document.get("email")
    contact = raw.strip() if isinstance(raw, str) else ""
    if _EMAIL.match(contact) or _PHONE.match(contact):
        return contact
    if document.get("printReceipt") is True:
        return None
    raise TillCheckError(NO_CONTACT, {"field": "email", "value": raw})


def _quantity(value: Any) -> Decimal:
    quantity = _decimal(value)
    # FFD: 1023 is FVLN; keep at least 3 decimals as real tills print them, at most 6.
    exponent = quantity.as_tuple().exponent
    places = max(3, min(6, -exponent if isinstance(exponent, int) else 3))
    return quantity.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def build_receipt(
    document: dict[str, Any],
    profile: FirmwareProfile,
    address: Address | None = None,
    cashier: str | None = None,
) -> ReceiptPlan:
    """Check a store document as the till firmware does and build its TLVs.

    Raises:
        TillCheckError: a negative amount («Negative») or no valid buyer contact on an electronic
            receipt («Телефон или эл. адрес покупателя»).
    """
    ffd12 = profile.ffd_version == "1.2"
    reg = profile.registration
    place = address or reg.addresses[0]
    positions = document.get("inventPositions") or []
    payments = document.get("moneyPositions") or []

    # Firmware check 1 (support-cases §5 row 6): negative price, quantity or sum. A discount
    # larger than its position's amount leaves the position a negative sum (D84).
    for index, position in enumerate(positions):
        for key in ("price", "quantity", "discSum"):
            if key in position and position[key] is not None and _decimal(position[key]) < 0:
                raise TillCheckError(
                    NEGATIVE, {"position": index, "field": key, "value": position[key]}
                )
        discount = position.get("discSum")
        if discount is not None and _decimal(position["price"]) * _decimal(
            position["quantity"]
        ) < _decimal(discount):
            raise TillCheckError(
                NEGATIVE, {"position": index, "field": "discSum", "value": discount}
            )
    for index, payment in enumerate(payments):
        if _decimal(payment.get("sum", 0)) < 0:
            raise TillCheckError(
                NEGATIVE, {"moneyPosition": index, "field": "sum", "value": payment["sum"]}
            )

    # Firmware check 2 (row 7): an electronic receipt needs the buyer's phone or e-mail.
    contact = _contact(document)

    operation = DOC_TYPES[str(document.get("docType") or document.get("documentType"))]
    tax_mode = document.get("taxMode")
    tax_system = TAX_MODES.get(str(tax_mode), 0) if tax_mode else 0
    if not tax_system:
        # A till registered with one tax system uses it when the document names none.
        tax_system = reg.tax_mask if reg.tax_mask & (reg.tax_mask - 1) == 0 else 0

    sums: dict[int, int] = dict.fromkeys(PAYMENT_TAGS.values(), 0)
    for payment in payments:
        sums[PAYMENT_TAGS[str(payment["paymentType"])]] += kopecks(payment["sum"])
    total = sum(sums.values())

    vat_sums: dict[int, Decimal] = {}
    items: list[bytes] = []
    described: list[dict[str, Any]] = []
    for index, position in enumerate(positions):
        price = kopecks(position["price"])
        quantity = _quantity(position["quantity"])
        discount = kopecks(position.get("discSum") or 0)
        cost = int((price * quantity - discount).to_integral_value(rounding=ROUND_HALF_UP))
        vat_tag = int(position["vatTag"])
        subject = PAYMENT_OBJECTS[str(position.get("paymentObject") or "commodity")]
        method = PAYMENT_METHODS[str(position.get("paymentMethod") or "full_payment")]
        share = _VAT_SHARE.get(vat_tag)
        vat_sums[vat_tag] = vat_sums.get(vat_tag, Decimal(0)) + (
            cost * share if share else Decimal(cost)
        )
        # An item's price is the unit price after discount (FFD 1079), so 1079 × 1023 ≈ 1043.
        unit = (
            price
            if not discount
            else int((Decimal(cost) / quantity).to_integral_value(ROUND_HALF_UP))
        )
        children = [
            tlv_string(1030, str(position["name"])[:128]),
            tlv_vln(1079, unit),
            tlv_fvln(1023, quantity),
            tlv_vln(1043, cost),
            tlv_byte(1199, VAT_TAGS[vat_tag]),
            tlv_byte(1212, subject),
            tlv_byte(1214, method),
        ]
        if position.get("vatSum") is not None:
            children.append(tlv_vln(1200, kopecks(position["vatSum"])))
        if ffd12:
            children.append(tlv_byte(2108, 0))
        agent = position.get("agentInfo")
        if isinstance(agent, dict) and agent.get("types"):
            children.append(tlv_byte(1222, _agent_flags(agent)))
        supplier = position.get("supplierInfo")
        if isinstance(supplier, dict):
            if supplier.get("name"):
                children.append(tlv_stlv(1224, [tlv_string(1225, str(supplier["name"])[:256])]))
            if supplier.get("inn"):
                children.append(tlv_fixed_string(1226, str(supplier["inn"]), 12))
        items.append(tlv_stlv(1059, children))
        described.append(
            {
                "position": index,
                "name": position["name"],
                "cost": cost,
                "agent": bool(agent),
                "supplier": bool(supplier),
                "excise": subject == 2,
            }
        )

    receipt = [
        tlv_string(1009, place.address),
        tlv_string(1187, place.place),
        tlv_string(1021, (cashier or document.get("cashierName") or reg.cashier)[:64]),
    ]
    if document.get("cashierInn"):
        receipt.append(tlv_fixed_string(1203, str(document["cashierInn"]), 12))
    if tax_system:
        receipt.append(tlv_byte(1055, tax_system))
    if contact is not None:
        receipt.append(tlv_string(1008, contact))
        receipt.append(tlv_string(1117, reg.sender_email))
    agent = document.get("agentInfo")
    if isinstance(agent, dict) and agent.get("types"):
        receipt.append(tlv_byte(1057, _agent_flags(agent)))
    receipt += [tlv_vln(tag, sums[tag]) for tag in (1031, 1081, 1215, 1216, 1217)]
    for vat_tag in sorted(vat_sums):
        value = int(vat_sums[vat_tag].to_integral_value(rounding=ROUND_HALF_UP))
        receipt.append(tlv_vln(vat_tag, value))
    return ReceiptPlan(
        operation=operation,
        total=total,
        receipt_tlv=b"".join(receipt),
        items=items,
        tax_system=tax_system,
        check_type=CHECK_TYPES[operation],
        positions=described,
    )


def _agent_flags(agent: dict[str, Any]) -> int:
    flags = 0
    for name in agent.get("types") or []:
        flags |= AGENT_TYPES.get(str(name), 0)
    return flags


def counter_receipt_tlv(
    profile: FirmwareProfile, total: int, cashier: str, address: Address | None = None
) -> bytes:
    """TLVs of a counter sale entered at the till (cash, one free-price item)."""
    reg = profile.registration
    place = address or reg.addresses[0]
    parts = [
        tlv_string(1009, place.address),
        tlv_string(1187, place.place),
        tlv_string(1021, cashier),
    ]
    if reg.tax_mask & (reg.tax_mask - 1):
        parts.append(tlv_byte(1055, reg.tax_mask & -reg.tax_mask))
    parts += [tlv_vln(1031, total)] + [tlv_vln(tag, 0) for tag in (1081, 1215, 1216, 1217)]
    parts.append(tlv_vln(1105, total))
    item = [
        tlv_string(1030, "Товар по свободной цене"),
        tlv_vln(1079, total),
        tlv_fvln(1023, Decimal("1.000")),
        tlv_vln(1043, total),
        tlv_byte(1199, 6),
        tlv_byte(1212, 1),
        tlv_byte(1214, 4),
    ]
    if profile.ffd_version == "1.2":
        item.append(tlv_byte(2108, 0))
    return b"".join(parts) + encode_tlv(1059, b"".join(item))


def correction_receipt_tlv(
    profile: FirmwareProfile,
    total: int,
    cashier: str,
    corrected_on: datetime,
    *,
    reason: str = "Чек интернет-магазина не зарегистрирован",
    order_number: str = "б/н",
    address: Address | None = None,
) -> bytes:
    """TLVs of a correction receipt (кассовый чек коррекции, 17h) made by the till's own decision.

    Tag 1173 = 0 (самостоятельно) and the basis 1174: the date of the settlement being corrected
    (1178) and the number of the order (1179, «б/н» without one); FFD 1.05 also carries the
    description 1177, which FFD 1.2 dropped. The rest is a counter sale's data.
    """
    basis = [tlv_unixtime(1178, corrected_on), tlv_string(1179, order_number[:32])]
    if profile.ffd_version != "1.2":
        basis.insert(0, tlv_string(1177, reason[:256]))
    return (
        tlv_byte(1173, 0)
        + tlv_stlv(1174, basis)
        + counter_receipt_tlv(profile, total, cashier, address)
    )
