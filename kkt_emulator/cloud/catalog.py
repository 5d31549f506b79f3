"""Catalogues of a retail point: entry types, their keys and checks, and the ``catalog-changes`` text.

Pure functions (no storage, no I/O), used by the back-office operations
(:mod:`kkt_emulator.cloud.backoffice_ops`) and tested on their own.

Catalogue types (``orders-and-backoffice.md`` §3.2, B8): ``INVENTORY`` (goods, keyed by
``inventCode``), ``CONTRACTOR`` (cashiers and counterparties, keyed by ``code``),
``SIMPLE_DISCOUNT`` and ``MODIFIER_GROUP`` (keyed by ``code``) (B15). An entry is stored as the
JSON object it was sent as, with ``catalogType`` set; only the fields a till uses are checked.

The batch of ``POST …/catalog-changes`` (orders-and-backoffice.md §3.2, as LM sends it)::

    ### data begin ###
    {"command":"clear","catalogs":["INVENTORY"]}
    ---
    {"command":"add","entity":{"catalogType":"INVENTORY","inventCode":"001","name":"…","price":120.5}}
    ### data end ###

:func:`parse_changes` reads it whole before anything is applied: a malformed batch raises a
:class:`~kkt_emulator.errors.ValidationError` whose field names the line (``line 4``), so the
operation that applies it changes nothing (B8, B16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from kkt_emulator.errors import ValidationError

__all__ = [
    "BATCH_BEGIN",
    "BATCH_END",
    "CATALOG_TYPES",
    "SEPARATOR",
    "CatalogCommand",
    "check_entity",
    "entry_key",
    "parse_changes",
]

CATALOG_TYPES: Final = ("INVENTORY", "CONTRACTOR", "SIMPLE_DISCOUNT", "MODIFIER_GROUP")
"""The catalogue types a retail point keeps (B15)."""
_KEY_FIELD: Final = {
    "INVENTORY": "inventCode",
    "CONTRACTOR": "code",
    "SIMPLE_DISCOUNT": "code",
    "MODIFIER_GROUP": "code",
}
BATCH_BEGIN: Final = "### data begin ###"
BATCH_END: Final = "### data end ###"
SEPARATOR: Final = "---"
_VAT_TAGS: Final = frozenset({1102, 1103, 1104, 1105, 1106, 1107})
_MEASURES: Final = frozenset({"pcs", "ltr", "kg", "m", "m2", "m3", "h", "other"})
_MAX_CODE: Final = 128
_MAX_NAME: Final = 256

Verb = Literal["clear", "add", "update", "delete"]


@dataclass(frozen=True)
class CatalogCommand:
    """One command of a batch, checked.

    ``clear``: ``catalogs`` names the types emptied. ``add``/``update``: ``entity`` is upserted
    by its key. ``delete``: ``catalog_type`` and ``code`` name the entry removed.
    """

    verb: Verb
    line: int
    catalogs: tuple[str, ...] = ()
    entity: dict[str, Any] | None = None
    catalog_type: str = ""
    code: str = ""


def _type(value: Any, field: str) -> str:
    if value not in CATALOG_TYPES:
        raise ValidationError(
            field, f"unsupported catalogue type {value!r}: {', '.join(CATALOG_TYPES)}"
        )
    return str(value)


def entry_key(catalog_type: str) -> str:
    """The field that keys an entry of ``catalog_type`` (B15)."""
    return _KEY_FIELD[catalog_type]


def _code(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(field, "required: a non-empty string")
    text = str(value).strip()
    if not text or len(text) > _MAX_CODE:
        raise ValidationError(field, f"must be 1–{_MAX_CODE} characters")
    return text


def _number(entity: dict[str, Any], key: str, field: str, *, required: bool) -> None:
    value = entity.get(key)
    if value is None:
        if required:
            raise ValidationError(f"{field}.{key}", "required field is missing")
        return
    if isinstance(value, bool):
        raise ValidationError(f"{field}.{key}", "must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValidationError(f"{field}.{key}", "must be a number") from exc
    if not number.is_finite() or number < 0:
        raise ValidationError(f"{field}.{key}", "must be a number ≥ 0")


def check_entity(
    entity: Any, field: str = "entity", catalog_type: str | None = None
) -> dict[str, Any]:
    """A catalogue entry as stored: a copy with ``catalogType`` set and its key normalised.

    ``catalog_type`` is the type the caller expects (a ``PUT …/catalog`` of one type); without it
    the entry's own ``catalogType`` decides, ``INVENTORY`` when absent.

    Raises:
        ValidationError: not an object, an unknown type, a missing key, or (``INVENTORY``) a
            missing ``name``, a price that is not a number ≥ 0, a ``vatTag`` outside 1102–1107 or
            an unknown ``measure``.
    """
    if not isinstance(entity, dict):
        raise ValidationError(field, "must be a JSON object")
    kind = _type(entity.get("catalogType", catalog_type or "INVENTORY"), f"{field}.catalogType")
    if catalog_type is not None and kind != catalog_type:
        raise ValidationError(f"{field}.catalogType", f"must be {catalog_type}, not {kind}")
    checked = dict(entity)
    checked["catalogType"] = kind
    key = _KEY_FIELD[kind]
    checked[key] = _code(entity.get(key), f"{field}.{key}")
    name = entity.get("name")
    needs_name = kind in ("INVENTORY", "CONTRACTOR") or name is not None
    if needs_name and (not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME):
        raise ValidationError(f"{field}.name", f"required: 1–{_MAX_NAME} characters")
    if kind == "INVENTORY":
        _number(entity, "price", field, required=True)
        _number(entity, "minPrice", field, required=False)
        vat = entity.get("vatTag")
        if vat is not None:
            try:
                vat_tag = int(str(vat))
            except ValueError:
                vat_tag = 0
            if vat_tag not in _VAT_TAGS:
                raise ValidationError(f"{field}.vatTag", f"must be 1102–1107, not {vat!r}")
            checked["vatTag"] = vat_tag
        measure = entity.get("measure")
        if measure is not None and measure not in _MEASURES:
            raise ValidationError(f"{field}.measure", f"unsupported value {measure!r}")
    return checked


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _command(text: str, line: int) -> CatalogCommand:
    where = f"line {line}"
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValidationError(where, f"not a JSON command: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(where, "a command must be a JSON object")
    verb = data.get("command")
    if verb == "clear":
        catalogs = data.get("catalogs")
        if not isinstance(catalogs, list) or not catalogs:
            raise ValidationError(where, "clear needs a non-empty catalogs list")
        types = tuple(_type(c, f"{where}: catalogs") for c in catalogs)
        return CatalogCommand("clear", line, catalogs=types)
    if verb in ("add", "update"):
        entity = check_entity(data.get("entity"), f"{where}: entity")
        return CatalogCommand(verb, line, entity=entity, catalog_type=entity["catalogType"])
    if verb == "delete":
        given = data.get("entity")
        source: dict[str, Any] = given if isinstance(given, dict) else data
        kind = _type(source.get("catalogType", "INVENTORY"), f"{where}: catalogType")
        key = _KEY_FIELD[kind]
        code = _code(source.get(key), f"{where}: {key}")
        return CatalogCommand("delete", line, catalog_type=kind, code=code)
    raise ValidationError(where, f"unknown command {verb!r}: clear, add, update or delete")


def parse_changes(text: str) -> list[CatalogCommand]:
    """The commands of a ``catalog-changes`` batch, in order, all checked (B8, B16).

    Blank lines around the markers and commands are allowed; CR LF line ends too. A command
    may span several lines. Line numbers count from 1.

    Raises:
        ValidationError: ``field`` is ``line N`` (the first line of the offending command, or of
            the missing marker): no begin or end marker, text outside them, an empty command, or a
            command that is not valid (see :func:`check_entity`).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    numbered = [(i + 1, line.strip()) for i, line in enumerate(lines)]
    content = [(n, line) for n, line in numbered if line]
    if not content or content[0][1] != BATCH_BEGIN:
        where = content[0][0] if content else 1
        raise ValidationError(f"line {where}", f"the batch must start with {BATCH_BEGIN!r}")
    end = next((i for i, (_, line) in enumerate(content) if line == BATCH_END), None)
    if end is None:
        raise ValidationError(f"line {len(lines)}", f"the batch must end with {BATCH_END!r}")
    if end != len(content) - 1:
        raise ValidationError(f"line {content[end + 1][0]}", f"text after {BATCH_END!r}")
    commands: list[CatalogCommand] = []
    chunk: list[tuple[int, str]] = []
    body = content[1:end]
    for index, (number, line) in enumerate([*body, (content[end][0], SEPARATOR)]):
        if line == BATCH_BEGIN:
            raise ValidationError(f"line {number}", f"a second {BATCH_BEGIN!r}")
        if line != SEPARATOR:
            chunk.append((number, line))
            continue
        if not chunk:
            if index == len(body) and not body:
                break  # an empty batch: nothing to apply
            raise ValidationError(f"line {number}", "an empty command")
        commands.append(_command("\n".join(text for _, text in chunk), chunk[0][0]))
        chunk = []
    return commands
