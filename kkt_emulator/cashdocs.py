"""Cash documents: the documents a till makes itself, as the till uploads them and the cloud keeps them.

One definition for both sides of the upload queue (``orders-and-backoffice.md`` §3.3, B7): the
document types (the vendor's v1 ``docType`` values and the project's shift documents, B10), and the
shift totals of B5, which the till's ``shift.closed`` event and the cloud's shift object compute
from the same documents with the same function (B11), so the two can never disagree.

A cash document is a JSON object (the v1 cash document of ``orders-and-backoffice.md`` §3.2): ``id`` (UUID), ``docNum``,
``docType``, ``status``, ``beginDateTime``, ``endDateTime``, ``shift {id, shiftNum}``,
``inventPositions``, ``moneyPositions``, ``baseSum``, ``actualSum``, ``change``, ``linkedDocId``,
``fiscalInfo``, ``cashier``, and on the shift documents ``kkmInfo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

__all__ = [
    "CORRECTION_TYPES",
    "DOC_TYPES",
    "MONEY_TYPES",
    "RECEIPT_TYPES",
    "SHIFT_CLOSE",
    "SHIFT_DOC_TYPES",
    "SHIFT_OPEN",
    "money",
    "shift_totals",
    "vat_of",
]

SALE: Final = "SALE"
RETURN: Final = "RETURN"
SALE_CORRECTION: Final = "SALE_CORRECTION"
SALE_RETURN_CORRECTION: Final = "SALE_RETURN_CORRECTION"
CASH_IN: Final = "CASH_IN"
CASH_OUT: Final = "CASH_OUT"
SHIFT_OPEN: Final = "SHIFT_OPEN"
"""Project type (B10): the cashier shift was opened (carries ``kkmInfo``)."""
SHIFT_CLOSE: Final = "SHIFT_CLOSE"
"""Project type (B10): the cashier shift was closed; its arrival completes the shift (B4)."""

RECEIPT_TYPES: Final = frozenset({SALE, RETURN})
CORRECTION_TYPES: Final = frozenset({SALE_CORRECTION, SALE_RETURN_CORRECTION})
MONEY_TYPES: Final = frozenset({CASH_IN, CASH_OUT})
SHIFT_DOC_TYPES: Final = frozenset({SHIFT_OPEN, SHIFT_CLOSE})
DOC_TYPES: Final = RECEIPT_TYPES | CORRECTION_TYPES | MONEY_TYPES | SHIFT_DOC_TYPES

_CENT: Final = Decimal("0.01")
# The VAT share of a price that includes it, by vatTag (store-api.md §6.4); 1104/1105: none.
_VAT_SHARE: Final = {
    1102: Decimal(20) / 120,
    1103: Decimal(10) / 110,
    1106: Decimal(20) / 120,
    1107: Decimal(10) / 110,
}


def _dec(value: Any) -> Decimal:
    """A JSON money value (number or numeric string; ``None`` is 0) as a Decimal."""
    if value is None or value == "":
        return Decimal(0)
    return Decimal(str(value))


def money(value: Decimal) -> float:
    """Two decimals, half up, as the JSON number the APIs show (``48250.0``)."""
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def vat_of(pos_sum: Any, vat_tag: Any) -> Decimal:
    """The VAT included in one position's sum, rounded half up to kopecks (B5)."""
    share = _VAT_SHARE.get(int(vat_tag)) if vat_tag not in (None, "") else None
    if share is None:
        return Decimal(0)
    return (_dec(pos_sum) * share).quantize(_CENT, rounding=ROUND_HALF_UP)


def _payments(document: Mapping[str, Any]) -> tuple[Decimal, Decimal, Decimal]:
    """Cash (net of change), card and other (PREPAID, CREDIT) of one receipt."""
    cash = card = other = Decimal(0)
    for payment in document.get("moneyPositions") or ():
        amount = _dec(payment.get("sum"))
        kind = str(payment.get("paymentType") or "CASH")
        if kind == "CASH":
            cash += amount
        elif kind == "CARD":
            card += amount
        else:
            other += amount
    return cash - _dec(document.get("change")), card, other


def shift_totals(documents: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``shiftTotals`` of B5 from the cash documents of one shift (B11).

    ``sales``/``returns``: Σ ``actualSum`` of ``SALE``/``RETURN``; ``…ByCash``: Σ CASH money
    positions minus ``change``; ``…ByCard``: Σ CARD; ``…ByOther``: PREPAID and CREDIT;
    ``cashIns``/``cashOuts``: Σ ``actualSum`` of ``CASH_IN``/``CASH_OUT``; ``corrIns``/``corrOuts``:
    ``SALE_CORRECTION``/``SALE_RETURN_CORRECTION``; ``vatTotals`` per ``vatTag`` of the sale and
    return positions (corrections are not in them, B11), VAT rounded per position then summed.
    Only the documents given count: the caller passes cash documents only, never internet-shop
    documents.
    """
    sums = {
        key: Decimal(0)
        for key in (
            "sales",
            "salesByCash",
            "salesByCard",
            "salesByOther",
            "returns",
            "returnsByCash",
            "returnsByCard",
            "returnsByOther",
            "cashIns",
            "cashOuts",
            "corrIns",
            "corrOuts",
        )
    }
    counts = {"salesCount": 0, "returnsCount": 0, "corrCount": 0}
    vat: dict[int, dict[str, Decimal]] = {}
    for document in documents:
        kind = document.get("docType")
        total = _dec(document.get("actualSum"))
        if kind in RECEIPT_TYPES:
            prefix = "sales" if kind == SALE else "returns"
            counts["salesCount" if kind == SALE else "returnsCount"] += 1
            cash, card, other = _payments(document)
            sums[prefix] += total
            sums[f"{prefix}ByCash"] += cash
            sums[f"{prefix}ByCard"] += card
            sums[f"{prefix}ByOther"] += other
            for position in document.get("inventPositions") or ():
                tag = position.get("vatTag")
                if tag in (None, ""):
                    continue
                row = vat.setdefault(
                    int(tag),
                    dict.fromkeys(("sales", "returns", "vatSales", "vatReturns"), _CENT * 0),
                )
                amount = _dec(position.get("posSum"))
                row[prefix] += amount
                row["vatSales" if kind == SALE else "vatReturns"] += vat_of(amount, tag)
        elif kind in CORRECTION_TYPES:
            counts["corrCount"] += 1
            sums["corrIns" if kind == SALE_CORRECTION else "corrOuts"] += total
        elif kind == CASH_IN:
            sums["cashIns"] += total
        elif kind == CASH_OUT:
            sums["cashOuts"] += total
    totals: dict[str, Any] = {key: money(value) for key, value in sums.items()}
    totals.update(counts)
    totals["vatTotals"] = [
        {"vatTag": tag, **{key: money(value) for key, value in row.items()}}
        for tag, row in sorted(vat.items())
    ]
    return totals
