"""The ``q`` filter and sort parameters of the back office's listings (B3): pure parsing.

``q`` joins terms with ``;``:

* ``field==value`` for ``id``, ``docNum``, ``docType``, ``status``, ``linkedDocId``, ``shift.id``
  (the value with or without double quotes: ``shift.id==":external"``);
* ``beginDateTime=ge=TIME`` and ``beginDateTime=lt=TIME`` (RSQL) for a period, ``[ge, lt)``;
  a ``+`` of the offset sent unencoded arrives as a space and is read as ``+`` (B20);
* ``:quickSearch="text"`` (or ``:quickSearch==text``): a case-insensitive substring of
  ``docNum``, ``description`` and the position names.

:func:`parse_q` returns the keyword arguments of
:class:`~kkt_emulator.cloud.tables_cashdocs.CashDocQuery`; a term it cannot read is a
:class:`~kkt_emulator.errors.ValidationError` naming ``q`` and the term (400, nothing listed).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from kkt_emulator.errors import ValidationError

__all__ = ["SORT_FIELDS", "parse_q", "parse_sort"]

_EQUALS: Final = {
    "id": "doc_id",
    "docNum": "doc_num",
    "docType": "doc_types",
    "status": "status",
    "linkedDocId": "linked_doc_id",
    "shift.id": "shift_id",
}
_PERIOD: Final = {"ge": "begin_from", "lt": "begin_to"}
SORT_FIELDS: Final = ("beginDateTime", "docNum", "id")
"""What ``sortField`` may name for cash documents (``beginDateTime`` by default)."""
_SPACED_OFFSET: Final = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


def _unquote(value: str) -> str:
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _time(term: str, value: str) -> datetime:
    text = _SPACED_OFFSET.sub(r"\1+\2", _unquote(value))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError("q", f"{term}: not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValidationError("q", f"{term}: the date-time needs a UTC offset")
    return moment


def parse_q(q: str | None) -> dict[str, Any]:
    """The :class:`CashDocQuery` fields a ``q`` names (see the module docstring)."""
    found: dict[str, Any] = {}
    if not q or not q.strip():
        return found
    for raw in q.split(";"):
        term = raw.strip()
        if not term:
            continue
        if term.startswith(":quickSearch"):
            rest = term[len(":quickSearch") :]
            value = (
                rest[2:] if rest.startswith("==") else rest[1:] if rest.startswith("=") else None
            )
            if value is None or not _unquote(value):
                raise ValidationError("q", f"{term}: :quickSearch needs a text")
            found["quick_search"] = _unquote(value)
            continue
        period = re.fullmatch(r"beginDateTime=(ge|lt)=(.+)", term)
        if period is not None:
            found[_PERIOD[period.group(1)]] = _time(term, period.group(2))
            continue
        field, sep, value = term.partition("==")
        if not sep or field.strip() not in _EQUALS:
            raise ValidationError(
                "q",
                f"{term}: unsupported term (use {', '.join(f'{k}==' for k in _EQUALS)},"
                " beginDateTime=ge=/=lt= or :quickSearch=)",
            )
        key = _EQUALS[field.strip()]
        text = _unquote(value)
        found[key] = (text,) if key == "doc_types" else text
    if "begin_from" in found and "begin_to" in found and found["begin_to"] <= found["begin_from"]:
        raise ValidationError("q", "beginDateTime: the period's =lt= must be after its =ge=")
    return found


def parse_sort(sort_field: str | None, sort_direction: str | None) -> tuple[str, bool]:
    """``sortField`` and ``sortDirection`` (``asc``/``desc``) → (field, descending)."""
    field = sort_field or "beginDateTime"
    if field not in SORT_FIELDS:
        raise ValidationError("sortField", f"unsupported value {field!r}: {', '.join(SORT_FIELDS)}")
    direction = (sort_direction or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ValidationError("sortDirection", "asc or desc")
    return field, direction == "desc"
