"""The payloads of the integration feeds (``orders-and-backoffice.md`` B6, §4.5): pure functions.

Each takes the cash documents of a shift (or of a period) as the till uploaded them (v1 cash
documents, orders-and-backoffice.md §3.2) and returns the project-format payload of one integration:

* ``moysklad`` — every sale and return with its positions and payments;
* ``onec`` — «Отчёт о розничных продажах»: positions aggregated by (``inventCode``, ``name``,
  ``price``, ``vatTag``) for sales and for returns, and cash and card net of returns;
* ``moedelo`` — the shift's number, close time, cash and card sales and returns, no positions;
* ``elba`` — the close date and the shift's cash total (cash sales − cash returns).

What counts (B18): only ``SALE`` and ``RETURN`` documents (``SALE_BY_SOFT`` and
``RETURN_BY_SALE`` are read as those); corrections, cash in and out and the shift's own
documents reach no feed. A cash payment counts net of the document's ``change``, as the shift
totals count it (B5), so a document's payments add up to its ``actualSum``. Internet-shop
documents are not cash documents, so no feed can see them. Sums are kopeck-exact: every amount is
computed in :class:`~decimal.Decimal` and written as a number with two decimals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cashdocs import vat_of

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "FEED_BUILDERS",
    "INTEGRATIONS",
    "INTEGRATION_TITLES",
    "elba_payload",
    "moedelo_payload",
    "moysklad_payload",
    "onec_payload",
    "vat_amount",
]

INTEGRATIONS: Final = ("moysklad", "onec", "moedelo", "elba")
"""The back-office services whose switches the cabinet shows (B17), in the cabinet's order."""
INTEGRATION_TITLES: Final = {
    "moysklad": "МойСклад",
    "onec": "Обмен с 1С",
    "moedelo": "Моё Дело",
    "elba": "Контур.Эльба",
}
_SALES: Final = frozenset({"SALE", "SALE_BY_SOFT"})
_RETURNS: Final = frozenset({"RETURN", "RETURN_BY_SALE"})
_CENT: Final = Decimal("0.01")


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _money(value: Decimal) -> float:
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _vat_tag(value: Any) -> int | None:
    try:
        return None if value is None else int(str(value))
    except ValueError:
        return None


def vat_amount(vat_tag: int | None, amount: Decimal) -> Decimal:
    """The VAT inside ``amount`` at ``vat_tag``, rounded half-up to kopecks, as B5 counts it."""
    return vat_of(amount, vat_tag)


def _kind(doc: dict[str, Any]) -> str | None:
    doc_type = str(doc.get("docType") or "")
    if doc_type in _SALES:
        return "sale"
    if doc_type in _RETURNS:
        return "return"
    return None


def _counted(docs: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in docs:
        kind = _kind(doc)
        if kind is not None:
            found.append((kind, doc))
    return found


def _payments(doc: dict[str, Any]) -> dict[str, Decimal]:
    """Money by payment type, cash net of the change (B5)."""
    sums: dict[str, Decimal] = {}
    for money in doc.get("moneyPositions") or []:
        kind = str(money.get("paymentType") or "CASH")
        sums[kind] = sums.get(kind, Decimal(0)) + _dec(money.get("sum"))
    change = _dec(doc.get("change"))
    if change:
        sums["CASH"] = sums.get("CASH", Decimal(0)) - change
    return sums


def _position_sum(position: dict[str, Any]) -> Decimal:
    if position.get("posSum") is not None:
        return _dec(position["posSum"])
    return (_dec(position.get("price")) * _dec(position.get("quantity"))).quantize(
        _CENT, rounding=ROUND_HALF_UP
    ) - _dec(position.get("discSum"))


def _cash_card(docs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Decimal]]:
    totals = {
        "CASH": {"sale": Decimal(0), "return": Decimal(0)},
        "CARD": {"sale": Decimal(0), "return": Decimal(0)},
    }
    for kind, doc in docs:
        for payment, amount in _payments(doc).items():
            if payment in totals:
                totals[payment][kind] += amount
    return totals


def moysklad_payload(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Every sale and return with positions and payments (cash net of change), in upload order."""
    documents = []
    for _, doc in _counted(docs):
        documents.append(
            {
                "id": doc.get("id"),
                "docNum": doc.get("docNum"),
                "docType": doc.get("docType"),
                "endDateTime": doc.get("endDateTime") or doc.get("beginDateTime"),
                "linkedDocId": doc.get("linkedDocId"),
                "positions": [
                    {
                        "inventCode": p.get("inventCode"),
                        "name": p.get("name"),
                        "quantity": float(_dec(p.get("quantity"))),
                        "price": _money(_dec(p.get("price"))),
                        "posSum": _money(_position_sum(p)),
                        "vatTag": _vat_tag(p.get("vatTag")),
                    }
                    for p in doc.get("inventPositions") or []
                ],
                "payments": [
                    {"paymentType": kind, "sum": _money(amount)}
                    for kind, amount in _payments(doc).items()
                ],
            }
        )
    return {"documents": documents}


def _aggregate(docs: Sequence[tuple[str, dict[str, Any]]], wanted: str) -> list[dict[str, Any]]:
    groups: dict[tuple[str | None, str | None, Decimal, int | None], list[Decimal]] = {}
    for kind, doc in docs:
        if kind != wanted:
            continue
        for position in doc.get("inventPositions") or []:
            vat_tag = _vat_tag(position.get("vatTag"))
            key = (
                position.get("inventCode"),
                position.get("name"),
                _dec(position.get("price")).quantize(_CENT),
                vat_tag,
            )
            amount = _position_sum(position)
            group = groups.setdefault(key, [Decimal(0), Decimal(0), Decimal(0)])
            group[0] += _dec(position.get("quantity"))
            group[1] += amount
            group[2] += vat_amount(vat_tag, amount)
    return [
        {
            "inventCode": code,
            "name": name,
            "price": _money(price),
            "vatTag": vat_tag,
            "quantity": float(quantity),
            "sum": _money(amount),
            "vatSum": _money(vat),
        }
        for (code, name, price, vat_tag), (quantity, amount, vat) in sorted(
            groups.items(), key=lambda item: (str(item[0][0]), str(item[0][1]), item[0][2])
        )
    ]


def onec_payload(
    docs: Iterable[dict[str, Any]], period_from: str, period_to: str
) -> dict[str, Any]:
    """«Отчёт о розничных продажах» for a shift or a period: aggregated positions, net cash/card."""
    counted = _counted(docs)
    money = _cash_card(counted)
    return {
        "period": {"from": period_from, "to": period_to},
        "sales": _aggregate(counted, "sale"),
        "returns": _aggregate(counted, "return"),
        "cash": _money(money["CASH"]["sale"] - money["CASH"]["return"]),
        "card": _money(money["CARD"]["sale"] - money["CARD"]["return"]),
    }


def moedelo_payload(
    docs: Iterable[dict[str, Any]], shift_num: int | None, close_date: str
) -> dict[str, Any]:
    """The shift's number, close time, and its cash and card sales and returns; no positions."""
    money = _cash_card(_counted(docs))
    return {
        "shiftNum": shift_num,
        "closeDate": close_date,
        "cash": {
            "sales": _money(money["CASH"]["sale"]),
            "returns": _money(money["CASH"]["return"]),
        },
        "card": {
            "sales": _money(money["CARD"]["sale"]),
            "returns": _money(money["CARD"]["return"]),
        },
    }


def elba_payload(docs: Iterable[dict[str, Any]], close_date: str) -> dict[str, Any]:
    """The close date (``YYYY-MM-DD`` of the close time as written, B18) and the cash total."""
    money = _cash_card(_counted(docs))
    return {
        "date": close_date[:10],
        "cashTotal": _money(money["CASH"]["sale"] - money["CASH"]["return"]),
    }


def _moysklad(docs: Sequence[dict[str, Any]], shift: dict[str, Any]) -> dict[str, Any]:
    del shift
    return moysklad_payload(docs)


def _onec(docs: Sequence[dict[str, Any]], shift: dict[str, Any]) -> dict[str, Any]:
    return onec_payload(docs, str(shift.get("openDate") or ""), str(shift.get("closeDate") or ""))


def _moedelo(docs: Sequence[dict[str, Any]], shift: dict[str, Any]) -> dict[str, Any]:
    number = shift.get("shiftNum")
    return moedelo_payload(
        docs, None if number is None else int(number), str(shift.get("closeDate") or "")
    )


def _elba(docs: Sequence[dict[str, Any]], shift: dict[str, Any]) -> dict[str, Any]:
    return elba_payload(docs, str(shift.get("closeDate") or ""))


FEED_BUILDERS: Final = {
    "moysklad": _moysklad,
    "onec": _onec,
    "moedelo": _moedelo,
    "elba": _elba,
}
"""Per integration: (the shift's cash documents, the B4 shift object) → the shift's payload."""
