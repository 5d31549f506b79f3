"""Parsing and validation of a store-API ``Document`` (``store-api.md`` §6, D9, D14, D19–D27).

:func:`parse_document` takes the raw request body and either returns a :class:`ParsedDocument` or
raises :class:`~kkt_emulator.errors.ValidationError` whose ``field`` is the JSON path of the offending
value (``inventPositions[0].vatTag``). Numbers are exact decimals from the moment they enter; the
coercions are those of a default Jackson backend (D9). Conditions that the vendor lets through to the
till (D27: negative amounts, a missing e-mail, an unregistered tax system, agent data) pass here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from kkt_emulator.errors import ValidationError
from kkt_emulator.taxes import TAX_SYSTEMS

__all__ = [
    "DOC_TYPES",
    "PAYMENT_METHODS",
    "PAYMENT_OBJECTS",
    "PAYMENT_TYPES",
    "TAX_MODES",
    "ParsedDocument",
    "decimal_to_json",
    "parse_document",
    "parse_json_object",
]

DOC_TYPES: Final = ("SALE", "RETURN", "BUY", "BUY_RETURN")  # D20
TAX_MODES: Final = TAX_SYSTEMS  # the store API's taxMode names (kkt_emulator.taxes)
PAYMENT_TYPES: Final = ("CARD", "CASH", "PREPAID", "POSTPAY", "OTHER")
PAYMENT_OBJECTS: Final = (
    "commodity",
    "excise",
    "job",
    "service",
    "gambling_bet",
    "gambling_prize",
    "lottery",
    "lottery_prize",
    "intellectual_activity",
    "payment",
    "agent_commission",
    "composite",
    "another",
    "property_right",
    "non-operating_gain",
    "insurance_premium",
    "sales_tax",
    "resort_fee",
)
PAYMENT_METHODS: Final = (
    "full_prepayment",
    "prepayment",
    "advance",
    "full_payment",
    "partial_payment",
    "credit",
    "credit_payment",
)
AGENT_TYPES: Final = (
    "bank_paying_agent",
    "bank_paying_subagent",
    "paying_agent",
    "paying_subagent",
    "attorney",
    "commission_agent",
    "another",
)
VAT_TAGS: Final = range(1102, 1108)  # D22

# D14: fields that /v1/doc drops before validation.
_V2_DOC_FIELDS: Final = ("agentInfo", "clientName", "clientInn")
_V2_POSITION_FIELDS: Final = ("agentInfo", "supplierInfo", "nomenclatureCode")

_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
# D10: seconds required, optional fraction, an offset Z, ±HH:MM or ±HHMM.
_DATE_TIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})"
)
_INN: Final = re.compile(r"\d{10}|\d{12}")  # D25: no checksum
_COUNTRY: Final = re.compile(r"\d{1,3}")
_NOMENCLATURE: Final = re.compile(r"[0-9A-Fa-f]{2}(?: [0-9A-Fa-f]{2}){0,31}")
_PHONE: Final = re.compile(r"\+?[0-9]+")
# D55: lengths the store API accepts; each is what the drive's tag can hold or a generous cap.
MAX_ID: Final = 128
MAX_DOC_NUM: Final = 64
MAX_NAME: Final = 128  # tag 1030, a position's name
MAX_CONTACT: Final = 64  # tag 1008, the buyer's phone or e-mail
MAX_PARTY_NAME: Final = 256  # tags 1227, 1225, 1026: buyer, supplier, transfer operator
MAX_URL: Final = 2048
# Amounts beyond any receipt; keeps decimal arithmetic away from overflow on hostile input.
_MAX_MAGNITUDE: Final = Decimal(10) ** 15
_CENT: Final = Decimal("0.01")


@dataclass(frozen=True)
class ParsedDocument:
    """A validated document.

    Attributes:
        doc_id: the client's ``id`` (the idempotency key, D32).
        doc_num: ``docNum``.
        document: the normalised document handed to the till: known fields only, canonical names
            (``docType``), coerced types, numbers as JSON numbers.
        content_key: canonical JSON of the receipt content compared for duplicates (D32).
        total: Σ ``moneyPositions.sum``, as text with two decimals.
        response_url: ``responseURL`` if given.
    """

    doc_id: str
    doc_num: str
    document: dict[str, Any]
    content_key: str
    total: str
    response_url: str | None


def decimal_to_json(value: Decimal) -> int | float:
    """A JSON number for an exact decimal: an integer when integral, else the float of the same text.

    Amounts and quantities have few decimal places, so the float prints back as the same text.
    """
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(body: bytes, what: str = "body") -> dict[str, Any]:
    """Parse ``body`` as UTF-8 JSON that must be an object; numbers become ``Decimal`` (D9).

    Raises:
        ValidationError: not UTF-8, not JSON, or not an object.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(what, "is not UTF-8") from exc
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(what, f"is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ValidationError(what, "must be a JSON object")
    if _ESCAPED_BAD.search(text) is not None:  # D55; else no string can be bad
        _check_strings(value)
    return value


_ESCAPED_BAD: Final = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
r"""Where a NUL or a UTF-16 surrogate may be: only a ``\u`` escape makes one (D55).

``json.loads`` refuses a raw control character in a string (``strict``), and the UTF-8 decoder
refuses an encoded surrogate, so text without such an escape holds neither and the walk of
:func:`_check_strings` is skipped. An escaped backslash before ``u`` matches too; that only costs
the walk.
"""


def _check_strings(root: dict[str, Any]) -> None:
    r"""D55: reject strings no store can keep: a lone UTF-16 surrogate, or a NUL character.

    ``json.loads`` accepts ``"\ud800"``; such a string cannot be encoded as UTF-8, so SQLite,
    the till's CP866 conversion and every HTTP answer would fail on it later. Walks the value
    iteratively (a deep document cannot overflow the stack) and names the first bad field.
    """
    stack: list[tuple[str, object]] = [("", root)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _check_string(path or "body", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_key(path, key)
                stack.append((f"{path}.{key}" if path else key, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _check_key(path: str, key: str) -> None:
    try:
        _check_string(path or "body", key)
    except ValidationError as exc:
        # The key itself cannot be named in the answer: it is the bad text.
        raise ValidationError(path or "body", f"has a key that {exc.reason}") from exc


def _check_string(path: str, text: str) -> None:
    if text.isascii():
        if "\x00" in text:
            raise ValidationError(path, "must not contain a NUL character")
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(path, "contains a lone UTF-16 surrogate") from exc
    if "\x00" in text:
        raise ValidationError(path, "must not contain a NUL character")


class _Reader:
    """Reads typed fields from one JSON object at ``path``."""

    def __init__(self, obj: dict[str, Any], path: str) -> None:
        self.obj = obj
        self.path = path

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, *, required: bool) -> Any:
        value = self.obj.get(key)
        if value is None and required:
            raise ValidationError(self.field(key), "required field is missing")
        return value

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        max_len: int | None = None,
        pattern: re.Pattern[str] | None = None,
        pattern_text: str = "",
    ) -> str | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, (bool, dict, list)):
            raise ValidationError(self.field(key), "must be a string")
        # D9: a number where a string is expected becomes its JSON text.
        text = str(value) if isinstance(value, (int, Decimal)) else value
        assert isinstance(text, str)
        if text == "":
            if required:
                raise ValidationError(self.field(key), "must not be empty")
            return None  # D9: "" means absent for optional strings
        if max_len is not None and len(text) > max_len:
            raise ValidationError(self.field(key), f"longer than {max_len} characters")
        if pattern is not None and not pattern.fullmatch(text):
            raise ValidationError(self.field(key), f"must match {pattern_text or pattern.pattern}")
        return text

    def number(self, key: str, *, required: bool = False) -> Decimal | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValidationError(self.field(key), "must be a number")
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, Decimal):
            number = value
        elif isinstance(value, str) and _JSON_NUMBER.fullmatch(value.strip()):
            number = Decimal(value.strip())  # D9: a numeric string is accepted
        else:
            raise ValidationError(self.field(key), "must be a number")
        if not number.is_finite() or abs(number) >= _MAX_MAGNITUDE:
            raise ValidationError(self.field(key), "is out of range")
        return number

    def money(self, key: str, *, required: bool = False) -> Decimal | None:
        number = self.number(key, required=required)
        if number is not None and number != number.quantize(_CENT):
            raise ValidationError(self.field(key), "has more than 2 decimal places")  # D23.8
        return number

    def non_negative(self, key: str) -> Decimal | None:
        number = self.number(key)
        if number is not None and number < 0:
            raise ValidationError(self.field(key), "must not be negative")  # D23.9
        return number

    def integer(self, key: str, *, required: bool = False) -> int | None:
        number = self.number(key, required=required)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise ValidationError(self.field(key), "must be an integer")
        return int(number)

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key, required=False)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise ValidationError(self.field(key), "must be true or false")  # D9
        return value

    def enum(self, key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        if value is not None and value not in allowed:
            raise ValidationError(self.field(key), f"unsupported value {value}")
        return value

    def inn(self, key: str) -> str | None:
        return self.string(key, pattern=_INN, pattern_text="10 or 12 digits")

    def obj_field(self, key: str) -> _Reader | None:
        value = self.raw(key, required=False)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValidationError(self.field(key), "must be an object")
        return _Reader(value, self.field(key))

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        value = self.raw(key, required=required)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValidationError(self.field(key), "must be an array")
        return value

    def objects(self, key: str) -> list[_Reader]:
        items = self.array(key, required=True)
        assert items is not None
        if not items:
            raise ValidationError(self.field(key), "must not be empty")
        readers = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValidationError(f"{self.field(key)}[{index}]", "must be an object")
            readers.append(_Reader(item, f"{self.field(key)}[{index}]"))
        return readers

    def phones(self, key: str) -> list[str] | None:
        items = self.array(key)
        if items is None:
            return None
        phones = []
        for index, item in enumerate(items):
            path = f"{self.field(key)}[{index}]"
            if isinstance(item, bool) or not isinstance(item, (str, int, Decimal)):
                raise ValidationError(path, "must be a string")
            phone = str(item)
            if not _PHONE.fullmatch(phone):
                raise ValidationError(path, "must be digits with an optional leading +")
            if phone.startswith("+") and len(phone) > 19:
                raise ValidationError(path, "longer than 19 characters")
            phones.append(phone)
        return phones


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def _agent_info(reader: _Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    types = reader.array("types")
    if types is not None:
        checked = []
        for index, item in enumerate(types):
            if not isinstance(item, str) or item not in AGENT_TYPES:
                raise ValidationError(
                    f"{reader.field('types')}[{index}]", f"unsupported value {item}"
                )
            checked.append(item)
        out["types"] = checked
    paying = reader.obj_field("payingAgent")
    if paying is not None:
        part: dict[str, Any] = {}
        _put(part, "operation", paying.string("operation", max_len=24))
        _put(part, "phones", paying.phones("phones"))
        out["payingAgent"] = part
    receive = reader.obj_field("receivePaymentsOperator")
    if receive is not None:
        part = {}
        _put(part, "phones", receive.phones("phones"))
        out["receivePaymentsOperator"] = part
    transfer = reader.obj_field("moneyTransferOperator")
    if transfer is not None:
        part = {}
        _put(part, "phones", transfer.phones("phones"))
        _put(part, "name", transfer.string("name", max_len=MAX_PARTY_NAME))
        _put(part, "address", transfer.string("address"))
        _put(part, "inn", transfer.inn("inn"))
        out["moneyTransferOperator"] = part
    return out


def _supplier_info(reader: _Reader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put(out, "phones", reader.phones("phones"))
    _put(out, "name", reader.string("name", max_len=MAX_PARTY_NAME))
    _put(out, "inn", reader.inn("inn"))
    return out


def _response_url(reader: _Reader) -> str | None:
    """D56: ``responseURL`` is an absolute http(s) URL with a host; nothing else is called back."""
    url = reader.string("responseURL", max_len=MAX_URL)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValidationError("responseURL", f"is not a URL ({exc})") from exc
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ValidationError("responseURL", "must be an http:// or https:// URL with a host")
    return url


def _position(reader: _Reader) -> tuple[dict[str, Any], Decimal]:
    out: dict[str, Any] = {}
    _put(out, "inventCode", reader.string("inventCode"))
    _put(out, "barcode", reader.string("barcode"))
    out["name"] = reader.string("name", required=True, max_len=MAX_NAME)  # D55
    price = reader.money("price", required=True)
    quantity = reader.number("quantity", required=True)
    assert price is not None
    assert quantity is not None
    if quantity == 0:
        raise ValidationError(reader.field("quantity"), "must not be 0")  # D23.9
    out["price"] = price
    out["quantity"] = quantity
    disc = reader.non_negative("discSum")
    _put(out, "discSum", disc)
    _put(out, "description", reader.string("description"))
    _put(
        out,
        "originCountryCode",
        reader.string("originCountryCode", pattern=_COUNTRY, pattern_text="1 to 3 digits"),
    )
    _put(out, "customsDeclarationNumber", reader.string("customsDeclarationNumber"))
    vat = reader.integer("vatTag", required=True)
    if vat not in VAT_TAGS:
        raise ValidationError(reader.field("vatTag"), f"unsupported value {vat}")  # D22
    out["vatTag"] = vat
    _put(out, "vatSum", reader.non_negative("vatSum"))
    out["paymentObject"] = reader.enum("paymentObject", PAYMENT_OBJECTS) or "commodity"
    out["paymentMethod"] = reader.enum("paymentMethod", PAYMENT_METHODS) or "full_payment"
    _put(
        out,
        "nomenclatureCode",
        reader.string(
            "nomenclatureCode", pattern=_NOMENCLATURE, pattern_text="hex bytes separated by spaces"
        ),
    )
    _put(out, "productMark", reader.string("productMark", max_len=255))
    agent = reader.obj_field("agentInfo")
    if agent is not None:
        out["agentInfo"] = _agent_info(agent)
    supplier = reader.obj_field("supplierInfo")
    if supplier is not None:
        out["supplierInfo"] = _supplier_info(supplier)
    # D24: each position's cost is rounded half-up to kopecks on its own.
    cost = (price * quantity - (disc or Decimal(0))).quantize(_CENT, rounding=ROUND_HALF_UP)
    return out, cost


def _doc_type(reader: _Reader) -> str:
    doc_type = reader.enum("docType", DOC_TYPES)
    alias = reader.enum("documentType", DOC_TYPES)
    if doc_type is not None and alias is not None and doc_type != alias:
        raise ValidationError("docType", "docType and documentType differ")  # D19
    chosen = doc_type or alias
    if chosen is None:
        raise ValidationError("docType", "required field is missing")
    return chosen


def _check_date_time(reader: _Reader, key: str) -> str:
    text = reader.string(key, required=True)
    assert text is not None
    if not _DATE_TIME.fullmatch(text):
        raise ValidationError(
            reader.field(key), "must be an ISO 8601 date-time with seconds and an offset"
        )
    try:
        datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(reader.field(key), f"is not a valid date-time ({exc})") from exc
    return text


def _canonical(value: object) -> str:
    def encode(item: object) -> str:
        if isinstance(item, Decimal):
            return format(item.normalize(), "f")
        raise TypeError(type(item).__name__)

    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=encode)


def _to_json_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_to_json(value)
    if isinstance(value, dict):
        return {k: _to_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json_numbers(v) for v in value]
    return value


def parse_document(body: bytes, *, route: Literal["v1", "v2"]) -> ParsedDocument:
    """Validate a ``POST /v1/doc`` or ``POST /v2/doc`` body (D23).

    Raises:
        ValidationError: the first failing condition, naming its field.
    """
    raw = parse_json_object(body)
    try:
        return _parse(raw, route)
    except (InvalidOperation, RecursionError) as exc:
        raise ValidationError("body", f"cannot be processed ({type(exc).__name__})") from exc


def _parse(raw: dict[str, Any], route: Literal["v1", "v2"]) -> ParsedDocument:
    if route == "v1":
        raw = {k: v for k, v in raw.items() if k not in _V2_DOC_FIELDS}
        positions = raw.get("inventPositions")
        if isinstance(positions, list):
            raw["inventPositions"] = [
                {k: v for k, v in p.items() if k not in _V2_POSITION_FIELDS}
                if isinstance(p, dict)
                else p
                for p in positions
            ]
    reader = _Reader(raw, "")
    doc: dict[str, Any] = {}
    doc_id = reader.string("id", required=True, max_len=MAX_ID)  # D55
    doc_num = reader.string("docNum", required=True, max_len=MAX_DOC_NUM)
    assert doc_id is not None
    assert doc_num is not None
    doc["id"] = doc_id
    doc["docNum"] = doc_num
    doc["docType"] = _doc_type(reader)
    doc["checkoutDateTime"] = _check_date_time(reader, "checkoutDateTime")
    _put(doc, "email", reader.string("email", max_len=MAX_CONTACT))  # D55
    doc["printReceipt"] = reader.boolean("printReceipt") or False
    _put(doc, "textToPrint", reader.string("textToPrint", max_len=3000))
    _put(doc, "cashierName", reader.string("cashierName", max_len=64))
    _put(doc, "cashierInn", reader.inn("cashierInn"))
    _put(doc, "cashierPosition", reader.string("cashierPosition", max_len=64))  # D26
    response_url = _response_url(reader)
    _put(doc, "responseURL", response_url)
    _put(doc, "taxMode", reader.enum("taxMode", TAX_MODES))
    _put(doc, "clientName", reader.string("clientName", max_len=MAX_PARTY_NAME))
    _put(doc, "clientInn", reader.inn("clientInn"))
    positions_out = []
    total_cost = Decimal(0)
    for position in reader.objects("inventPositions"):
        item, cost = _position(position)
        positions_out.append(item)
        total_cost += cost
    doc["inventPositions"] = positions_out
    money_out = []
    total_paid = Decimal(0)
    for money in reader.objects("moneyPositions"):
        payment_type = money.enum("paymentType", PAYMENT_TYPES, required=True)
        amount = money.money("sum", required=True)
        assert amount is not None
        money_out.append({"paymentType": payment_type, "sum": amount})
        total_paid += amount
    doc["moneyPositions"] = money_out
    agent = reader.obj_field("agentInfo")
    if agent is not None:
        doc["agentInfo"] = _agent_info(agent)
    if abs(total_cost - total_paid) > _CENT:  # D24
        raise ValidationError(
            "moneyPositions",
            f"sum of positions {total_cost.quantize(_CENT)} does not match"
            f" sum of payments {total_paid.quantize(_CENT)}",
        )
    content = {
        "docType": doc["docType"],
        "inventPositions": positions_out,
        "moneyPositions": money_out,
        "taxMode": doc.get("taxMode"),
        "email": doc.get("email"),
    }
    return ParsedDocument(
        doc_id=doc_id,
        doc_num=doc_num,
        document=_to_json_numbers(doc),
        content_key=_canonical(content),
        total=str(total_paid.quantize(_CENT)),
        response_url=response_url,
    )
