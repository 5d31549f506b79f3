"""How the web cabinet shows values: money, times, quantities, VAT, OFD delivery, drive resources.

Pure functions of the JSON views the cabinet API answers (:mod:`kkt_emulator.cloud.views`), so a
page shows exactly what the API would: nothing here reads the database or decides a rule. The
Russian words follow the vendor's cabinet as the support deck shows it (``support-cases.md``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.texts import status_text

__all__ = [
    "CASHDOC_TYPE_TEXTS",
    "OFD_TEXTS",
    "ORDER_STATE_TEXTS",
    "PICKUP_TEXTS",
    "STATUS_CHOICES",
    "VAT_TEXTS",
    "document_title",
    "drive_resources",
    "money",
    "position_rows",
    "quantity",
    "short_time",
]

# The status filter of the document list: every status the API has, in the lifecycle's order.
STATUS_CHOICES: Final = tuple((s.value, status_text(s.value)) for s in Status)

# support-cases.md §2: «Выполнен» is not «в ОФД»; the cabinet shows OFD delivery as its own fact.
OFD_TEXTS: Final = {
    "not_sent": "Не отправлен в ОФД",
    "sent": "Отправлен в ОФД, ждёт квитанции",
    "acknowledged": "Принят ОФД (квитанция получена)",
}

# support-cases.md §6: the two receipt-data modes of a retail point.
PICKUP_TEXTS: Final = {"3days": "За 3 дня", "5min": "За 5 минут"}

# FFD tag 1199 values as the cabinet's «НДС» column names them (the deck: «не облагается», «18%»).
VAT_TEXTS: Final = {
    1102: "20%",
    1103: "10%",
    1104: "0%",
    1105: "не облагается",
    1106: "20/120",
    1107: "10/110",
}

_DOC_TITLES: Final = {"RETURN": "Документ возврата", "BUY": "Документ расхода"}


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money(value: Any) -> str:
    """Roubles as the cabinet writes them: ``19 900,00 ₽``; anything else as it is."""
    amount = _decimal(value)
    if amount is None:
        return "" if value is None else str(value)
    text = f"{amount:,.2f}".replace(",", " ").replace(".", ",")
    return f"{text} ₽"


def quantity(value: Any) -> str:
    """A quantity with its decimal places, comma as the separator (``1``, ``0,5``)."""
    amount = _decimal(value)
    if amount is None:
        return "" if value is None else str(value)
    text = format(amount.normalize(), "f")
    return text.replace(".", ",")


def short_time(value: str | None) -> str:
    """``dd.mm.yyyy HH:MM`` of an ISO time (UTC, as the API gives it), ``—`` for none."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%d.%m.%Y %H:%M")


def document_title(document: dict[str, Any] | None, fallback: str) -> str:
    """«Документ №…» (or «Документ возврата №…») with the shop's ``docNum``."""
    doc = document or {}
    kind = _DOC_TITLES.get(str(doc.get("docType", "")), "Документ")
    number = doc.get("docNum") or fallback
    return f"{kind} №{number}"


def position_rows(document: dict[str, Any] | None) -> list[dict[str, str]]:
    """The positions of a store document: name, price, quantity, sum (less discount), VAT."""
    rows: list[dict[str, str]] = []
    for position in (document or {}).get("inventPositions") or ():
        if not isinstance(position, dict):
            continue
        price = _decimal(position.get("price"))
        qty = _decimal(position.get("quantity"))
        discount = _decimal(position.get("discSum")) or Decimal(0)
        total = None if price is None or qty is None else price * qty - discount
        vat = position.get("vatTag")
        rows.append(
            {
                "name": str(position.get("name", "")),
                "price": money(price),
                "quantity": quantity(qty),
                "sum": money(total),
                "vat": VAT_TEXTS.get(vat, str(vat)) if isinstance(vat, int) else "",
            }
        )
    return rows


def drive_resources(heartbeat: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The drive's resources a till's last heartbeat reported, as the till page shows them.

    ``daysLeft`` counts whole days from ``now`` (business time) to the drive's expiry date;
    ``oldestAgeDays`` the days the oldest unsent OFD document has waited (the 30-day rule,
    ``support-cases.md`` §5 row 1); ``memoryUsed`` the share of the drive's document capacity
    its last fiscal document number has used.
    """
    fn = (heartbeat or {}).get("fn") or {}
    expiry = fn.get("expiry")
    days_left: int | None = None
    if isinstance(expiry, str):
        try:
            days_left = (date.fromisoformat(expiry[:10]) - now.astimezone(UTC).date()).days
        except ValueError:
            days_left = None
    oldest = fn.get("oldestUnsent")
    oldest_days: float | None = None
    if isinstance(oldest, str):
        try:
            moment = datetime.fromisoformat(oldest)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:  # the drive's wall time carries no offset
                moment = moment.replace(tzinfo=UTC)
            oldest_days = max(0.0, (now - moment).total_seconds() / 86400)
    last_fd = fn.get("lastFd")
    left = fn.get("documentsLeft")
    used: float | None = None
    if isinstance(last_fd, int) and isinstance(left, int) and last_fd + left > 0:
        used = 100.0 * last_fd / (last_fd + left)
    return {
        "ok": bool(fn.get("ok")),
        "serial": fn.get("serial"),
        "expiry": expiry,
        "daysLeft": days_left,
        "unsent": fn.get("unsent"),
        "oldestUnsent": oldest,
        "oldestAgeDays": oldest_days,
        "lastFd": last_fd,
        "documentsLeft": left,
        "memoryUsed": used,
        "error": fn.get("error"),
    }


# D101: the order states of «Документы → Заказы» (orders-and-backoffice.md O5) in Russian.
ORDER_STATE_TEXTS: Final = {
    "NEW": "Новый",
    "ON_TILL": "Передан на кассу",
    "IN_PAYMENT": "В оплате",
    "FISCALIZED": "Фискализирован",
}

# D101: the counter's cash documents (orders-and-backoffice.md B7) by type.
CASHDOC_TYPE_TEXTS: Final = {
    "SALE": "Продажа",
    "RETURN": "Возврат",
    "SALE_CORRECTION": "Коррекция прихода",
    "SALE_RETURN_CORRECTION": "Коррекция возврата прихода",
    "CASH_IN": "Внесение",
    "CASH_OUT": "Изъятие",
    "SHIFT_OPEN": "Открытие смены",
    "SHIFT_CLOSE": "Закрытие смены",
}
