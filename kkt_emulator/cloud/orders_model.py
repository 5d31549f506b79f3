"""The orders API's ``Order``: parsing and validation of a client's body, and the answered form.

``orders-and-backoffice.md`` §2.4–§2.6, O3, O4. :func:`parse_order` takes the raw request body and
returns the :class:`ParsedOrder` (the Order as the server answers it, every key present and
``null`` when empty, plus the internal ``prepaid`` flag), or raises a
:class:`~kkt_emulator.errors.ServiceApiError` 400 listing every failed field as Spring's validator
does (``defaultMessage, rejectedValue, code, objectName: "orderDto", field``). Numbers are exact
decimals (D9); the server computes ``posSum = round(price × quantity, 2)`` and ``totalSum``.
:func:`parse_external_cashdoc` reads the v1 cash document of the ``:external`` façade (O10) into
the same form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

from kkt_emulator.cloud.validation import decimal_to_json, parse_json_object
from kkt_emulator.errors import ServiceApiError, ValidationError

__all__ = [
    "DOCUMENT_TYPES",
    "INVENTORY_TYPES",
    "MEASURES",
    "ORDER_TAX_MODES",
    "ParsedOrder",
    "parse_external_cashdoc",
    "parse_order",
]

DOCUMENT_TYPES: Final = ("SALE", "RETURN")
INVENTORY_TYPES: Final = (
    "INVENTORY",
    "TOBACCO",
    "OPERATION",
    "SERVICE",
    "PREPAID",
    "OTHER_EXCISABLE",
    "ALCOHOL",
    "LIGHT_ALCOHOL",
    "FREE_SALE",
    "PREPAID_CORRECTION",
)
MEASURES: Final = ("pcs", "ltr", "kg", "m", "m2", "m3", "h", "other")
ORDER_TAX_MODES: Final = (
    "COMMON",
    "SIMPLIFIED",
    "SIMPLIFIED_WITH_EXPENSE",
    "ENVD",
    "COMMON_AGRICULTURAL",
    "PATENT",
)
AGENT_TAGS: Final = (
    "BANK_PAY_AGENT",
    "BANK_PAY_SUBAGENT",
    "PAY_AGENT",
    "PAY_SUBAGENT",
    "ATTORNEY",
    "COMMISSION_AGENT",
    "AGENT",
)
VAT_TAGS: Final = range(1102, 1108)  # D22

_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTACT_PHONE: Final = re.compile(r"^\+7\d{10}$")
_AGENT_PHONE: Final = re.compile(r"^((\+7|7|8)+([0-9]){10})$")
_COUNTRY: Final = re.compile(r"^\d{1,3}$")
# ISO 8601 with seconds and an offset: ±HH:MM, ±HHMM or Z (O4).
_DATE_TIME: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$"
)
_CENT: Final = Decimal("0.01")

ORDER_KEYS: Final = (
    "id",
    "remoteId",
    "documentNumber",
    "documentType",
    "documentDateTime",
    "customerContact",
    "responseURL",
    "description",
    "checkComment",
    "checkCommentChanged",
    "agentInformation",
    "clientInformation",
    "totalSum",
    "inventPositions",
)
POSITION_KEYS: Final = (
    "inventCode",
    "barcode",
    "name",
    "description",
    "inventoryType",
    "measure",
    "price",
    "quantity",
    "minPrice",
    "originCountryCode",
    "customsDeclarationNumber",
    "taxMode",
    "vatTag",
    "agentInformation",
    "posSum",
)
_ORDER_AGENT_PHONES: Final = (
    "commissionAgentPhone",
    "contractorPhone",
    "paymentAgentPhone",
    "transferOperatorPhone",
)
_ORDER_AGENT_TEXTS: Final = (
    "operation",
    "transferOperatorName",
    "transferOperatorInn",
    "transferOperatorAddress",
)
_POSITION_AGENT_PHONES: Final = ("phone", "transferOperatorPhone")
_POSITION_AGENT_TEXTS: Final = (*_ORDER_AGENT_TEXTS, "contractorName", "contractorInn")

# Spring's validator codes for what fails (O4, O13).
_REQUIRED: Final = ("NotNull", "не должно равняться null")
_EMPTY: Final = ("NotEmpty", "не должно быть пустым")
_FORMAT: Final = ("Contact", "Переданное значение не соответствует допустимому формату")
_PATTERN: Final = ("Pattern", "должно соответствовать шаблону")
_ENUM: Final = ("InvalidFormat", "Недопустимое значение")
_MIN_ZERO: Final = ("DecimalMin", "должно быть больше или равно 0")
_POSITIVE: Final = ("Positive", "должно быть больше 0")
_TYPE: Final = ("typeMismatch", "Неверный тип значения")
_DATE: Final = ("typeMismatch", "Неверный формат даты")


@dataclass(frozen=True)
class ParsedOrder:
    """An Order as the server answers it (``body``, without ``id``) and what it keeps beside it."""

    body: dict[str, Any]
    prepaid: bool

    @property
    def document_number(self) -> str:
        """The order's number, unique among the live orders of its retail point (O6)."""
        number: str = self.body["documentNumber"]
        return number


class _Errors:
    """Field errors collected over one body, in the order they were found."""

    def __init__(self) -> None:
        self.items: list[dict[str, object]] = []

    def add(self, field: str, kind: tuple[str, str], rejected: object) -> None:
        code, message = kind
        self.items.append(
            {
                "defaultMessage": message,
                "rejectedValue": _json_value(rejected),
                "code": code,
                "objectName": "orderDto",
                "field": field,
            }
        )

    def raise_if_any(self) -> None:
        if self.items:
            raise ServiceApiError(
                400,
                f"Validation failed for object='orderDto'. Error count: {len(self.items)}",
                self.items,
            )


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return decimal_to_json(value)
    if isinstance(value, dict | list):
        return None
    return value


def _money(value: Decimal) -> float:
    """Roubles as a JSON number with at most two decimals."""
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _text(raw: dict[str, Any], key: str, path: str, errors: _Errors) -> str | None:
    """A string field: strings kept, numbers coerced to their text (LM's numeric ``remoteId``)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        errors.add(path, _TYPE, value)
        return None
    if isinstance(value, int | Decimal):
        return format(value, "f") if isinstance(value, Decimal) else str(value)
    text = str(value)
    return text or None


def _number(value: object) -> Decimal | None:
    """A JSON number or a numeric string as a decimal; ``None`` if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _date_time(value: object, path: str, errors: _Errors) -> str | None:
    """An ISO 8601 date-time with an offset, answered with ``±HH:MM`` (O4)."""
    if value is None:
        errors.add(path, _REQUIRED, None)
        return None
    match = _DATE_TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        errors.add(path, _DATE, value)
        return None
    date, clock, fraction, zone = match.groups()
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    text = f"{date}T{clock}{fraction or ''}{zone}"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        errors.add(path, _DATE, value)
        return None
    return text


def _enum(
    raw: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], errors: _Errors
) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value not in allowed:
        errors.add(path, _ENUM, value)
        return None
    return value


def _agent(raw: object, path: str, errors: _Errors, *, position: bool) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.add(path, _TYPE, raw)
        return None
    phones = _POSITION_AGENT_PHONES if position else _ORDER_AGENT_PHONES
    texts = _POSITION_AGENT_TEXTS if position else _ORDER_AGENT_TEXTS
    out: dict[str, Any] = {}
    tags = raw.get("tags")
    if tags is None:
        out["tags"] = None
    elif not isinstance(tags, list):
        errors.add(f"{path}.tags", _TYPE, tags)
        out["tags"] = None
    else:
        out["tags"] = []
        for index, tag in enumerate(tags):
            if not isinstance(tag, str) or tag not in AGENT_TAGS:
                errors.add(f"{path}.tags[{index}]", _ENUM, tag)
            else:
                out["tags"].append(tag)
    for key in phones:
        phone = _text(raw, key, f"{path}.{key}", errors)
        if phone is not None and not _AGENT_PHONE.fullmatch(phone):
            errors.add(f"{path}.{key}", _PATTERN, phone)
        out[key] = phone
    for key in texts:
        out[key] = _text(raw, key, f"{path}.{key}", errors)
    return out


def _position(raw: object, path: str, errors: _Errors) -> tuple[dict[str, Any], Decimal]:
    out: dict[str, Any] = dict.fromkeys(POSITION_KEYS)
    if not isinstance(raw, dict):
        errors.add(path, _TYPE, raw)
        return out, Decimal(0)
    for key in ("inventCode", "barcode", "name", "description", "customsDeclarationNumber"):
        out[key] = _text(raw, key, f"{path}.{key}", errors)
    if out["name"] is None:  # O4: the drive needs tag 1030
        errors.add(f"{path}.name", _REQUIRED, raw.get("name"))
    out["inventoryType"] = _enum(
        raw, "inventoryType", f"{path}.inventoryType", INVENTORY_TYPES, errors
    )
    if raw.get("measure") is None:
        errors.add(f"{path}.measure", _REQUIRED, None)
    out["measure"] = _enum(raw, "measure", f"{path}.measure", MEASURES, errors)
    out["taxMode"] = _enum(raw, "taxMode", f"{path}.taxMode", ORDER_TAX_MODES, errors)
    amounts: dict[str, Decimal | None] = {}
    for key, rule in (("price", _MIN_ZERO), ("quantity", _POSITIVE), ("minPrice", _MIN_ZERO)):
        value = raw.get(key)
        if value is None:
            if key != "minPrice":
                errors.add(f"{path}.{key}", _REQUIRED, None)
            amounts[key] = None
            continue
        number = _number(value)
        if number is None:
            errors.add(f"{path}.{key}", _TYPE, value)
        elif (number <= 0) if rule is _POSITIVE else (number < 0):
            errors.add(f"{path}.{key}", rule, number)
            number = None
        amounts[key] = number
    price, quantity = amounts["price"], amounts["quantity"]
    out["price"] = None if price is None else _money(price)
    out["quantity"] = None if quantity is None else decimal_to_json(quantity)
    out["minPrice"] = None if amounts["minPrice"] is None else _money(amounts["minPrice"])
    country = _text(raw, "originCountryCode", f"{path}.originCountryCode", errors)
    if country is not None and not _COUNTRY.fullmatch(country):
        errors.add(f"{path}.originCountryCode", _PATTERN, country)
    out["originCountryCode"] = country
    vat = raw.get("vatTag")
    if vat is not None:
        number = _number(vat)
        if number is None or number != number.to_integral_value() or int(number) not in VAT_TAGS:
            errors.add(f"{path}.vatTag", _ENUM, vat)
        else:
            out["vatTag"] = int(number)
    out["agentInformation"] = _agent(
        raw.get("agentInformation"), f"{path}.agentInformation", errors, position=True
    )
    cost = Decimal(0)
    if price is not None and quantity is not None:
        cost = (price * quantity).quantize(_CENT, rounding=ROUND_HALF_UP)
    out["posSum"] = _money(cost)
    return out, cost


def _order(raw: dict[str, Any]) -> ParsedOrder:
    errors = _Errors()
    body: dict[str, Any] = dict.fromkeys(ORDER_KEYS)
    for key in ("remoteId", "documentNumber", "description", "checkComment"):
        body[key] = _text(raw, key, key, errors)
    if body["documentNumber"] is None:
        errors.add("documentNumber", _REQUIRED, raw.get("documentNumber"))
    if raw.get("documentType") is None:
        errors.add("documentType", _REQUIRED, None)
    body["documentType"] = _enum(raw, "documentType", "documentType", DOCUMENT_TYPES, errors)
    body["documentDateTime"] = _date_time(raw.get("documentDateTime"), "documentDateTime", errors)
    contact = _text(raw, "customerContact", "customerContact", errors)
    if contact is not None and not (_EMAIL.fullmatch(contact) or _CONTACT_PHONE.fullmatch(contact)):
        errors.add("customerContact", _FORMAT, contact)
    body["customerContact"] = contact
    # LM sends the key misspelt; the vendor's Jackson would drop it, the shop would wait for
    # nothing: the emulator takes it (O13).
    url_key = "responseURL" if raw.get("responseURL") is not None else "responsURL"
    body["responseURL"] = _text(raw, url_key, "responseURL", errors)
    body["checkCommentChanged"] = False
    body["agentInformation"] = _agent(
        raw.get("agentInformation"), "agentInformation", errors, position=False
    )
    client = raw.get("clientInformation")
    if client is not None:
        if not isinstance(client, dict):
            errors.add("clientInformation", _TYPE, client)
        else:
            body["clientInformation"] = {
                key: _text(client, key, f"clientInformation.{key}", errors)
                for key in ("name", "inn", "documentNumber")
            }
    positions = raw.get("inventPositions")
    total = Decimal(0)
    if positions is None:
        errors.add("inventPositions", _REQUIRED, None)
    elif not isinstance(positions, list):
        errors.add("inventPositions", _TYPE, positions)
    elif not positions:
        errors.add("inventPositions", _EMPTY, [])
    else:
        body["inventPositions"] = []
        for index, position in enumerate(positions):
            parsed, cost = _position(position, f"inventPositions[{index}]", errors)
            body["inventPositions"].append(parsed)
            total += cost
    body["totalSum"] = _money(total)
    prepaid = raw.get("prepaid")
    if prepaid is not None and not isinstance(prepaid, bool):
        errors.add("prepaid", _TYPE, prepaid)
    errors.raise_if_any()
    return ParsedOrder(body, prepaid is True)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        return parse_json_object(body)
    except ValidationError as exc:
        raise ServiceApiError(400, f"JSON parse error: {exc.reason}") from exc


def parse_order(body: bytes) -> tuple[ParsedOrder, str | None]:
    """Validate a ``POST``/``PUT …/order`` body (O4); the order and the ``id`` the body names.

    The ``id`` matters only to PUT (O6); ``posSum``, ``totalSum`` and ``checkCommentChanged``
    from the client are ignored.

    Raises:
        ServiceApiError: 400 with the field errors, or for a body that is not a JSON object.
    """
    raw = _parse(body)
    order_id = raw.get("id")
    return _order(raw), (str(order_id) if order_id not in (None, "") else None)


def parse_external_cashdoc(body: bytes) -> ParsedOrder:
    """A v1 cash document posted to ``…/shift/:external/cashdoc``, read as an order (O10).

    ``docNum`` → ``documentNumber``, ``beginDateTime`` → ``documentDateTime``, ``docType``
    → ``documentType``; positions keep ``inventCode, name, quantity, price, measure, vatTag``
    (``vatTag: 0`` → absent); sums are recomputed; ``moneyPositions`` are ignored.

    Raises:
        ServiceApiError: 400 as :func:`parse_order` (fields named as in the Order).
    """
    raw = _parse(body)
    positions = raw.get("inventPositions")
    if isinstance(positions, list):
        positions = [
            {
                **p,
                "vatTag": None if p.get("vatTag") in (0, "0") else p.get("vatTag"),
                "measure": p.get("measure") or "pcs",
            }
            if isinstance(p, dict)
            else p
            for p in positions
        ]
    order = {
        "documentNumber": raw.get("docNum"),
        "documentType": raw.get("docType") or "SALE",
        "documentDateTime": raw.get("beginDateTime"),
        "description": raw.get("description"),
        "customerContact": raw.get("customerContact") or raw.get("email"),
        "responseURL": raw.get("responseURL"),
        "inventPositions": positions,
    }
    return _order(order)
