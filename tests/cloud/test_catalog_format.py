"""The ``catalog-changes`` text format and the entry checks, on their own (B8, B15)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.cloud.catalog import BATCH_BEGIN, BATCH_END, check_entity, parse_changes
from kkt_emulator.errors import ValidationError

codes = st.text(alphabet="0123456789ABCDEF-", min_size=1, max_size=12)
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda s: s.strip())
prices = st.decimals(min_value=0, max_value=100000, places=2, allow_nan=False, allow_infinity=False)


def _add(code: str, name: str, price: Any) -> dict[str, Any]:
    return {"command": "add", "entity": {"inventCode": code, "name": name, "price": float(price)}}


def _text(commands: list[dict[str, Any]], newline: str = "\n") -> str:
    parts = [BATCH_BEGIN]
    for i, command in enumerate(commands):
        if i:
            parts.append("---")
        parts.append(json.dumps(command, ensure_ascii=False))
    parts.append(BATCH_END)
    return newline.join(parts)


@given(st.lists(st.tuples(codes, names, prices), max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_a_batch_reads_back_in_order(entries: list[tuple[str, str, Any]], newline: str) -> None:
    commands = [_add(*e) for e in entries]
    parsed = parse_changes(_text(commands, newline))
    assert [(c.verb, c.entity and c.entity["inventCode"]) for c in parsed] == [
        ("add", code.strip()) for code, _, _ in entries
    ]
    for command, (_, name, _) in zip(parsed, entries, strict=True):
        assert command.entity is not None
        assert command.entity["catalogType"] == "INVENTORY"
        assert command.entity["name"] == name


@given(st.lists(st.tuples(codes, names, prices), min_size=1, max_size=6), st.data())
def test_a_bad_command_is_named_by_its_line(
    entries: list[tuple[str, str, Any]], data: st.DataObject
) -> None:
    commands = [_add(*e) for e in entries]
    bad = data.draw(st.integers(min_value=0, max_value=len(commands) - 1))
    commands[bad]["entity"]["price"] = -1
    with pytest.raises(ValidationError) as caught:
        parse_changes(_text(commands))
    assert caught.value.field == f"line {2 + 2 * bad}: entity.price"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "line 1"),
        ('{"command":"clear","catalogs":["INVENTORY"]}', "line 1"),
        (f"{BATCH_BEGIN}\n" + '{"command":"clear","catalogs":["INVENTORY"]}', "line 2"),
        (f"{BATCH_BEGIN}\n---\n{BATCH_END}", "line 2"),
        (f'{BATCH_BEGIN}\n{{"command":"drop"}}\n{BATCH_END}', "line 2"),
        (f'{BATCH_BEGIN}\n{{"command":"clear","catalogs":["GOODS"]}}\n{BATCH_END}', "line 2"),
        (f"{BATCH_BEGIN}\n{BATCH_END}\nmore", "line 3"),
        (f"{BATCH_BEGIN}\n[1, 2]\n{BATCH_END}", "line 2"),
        (
            f'{BATCH_BEGIN}\n{{"command":"add","entity":{{"price":NaN,"inventCode":"1","name":"x"}}}}\n{BATCH_END}',
            "line 2",
        ),
    ],
)
def test_malformed_batches(text: str, line: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_changes(text)
    assert caught.value.field.startswith(line)


def test_an_empty_batch_and_a_delete() -> None:
    assert parse_changes(f"{BATCH_BEGIN}\n{BATCH_END}\n") == []
    (delete,) = parse_changes(
        f'{BATCH_BEGIN}\n{{"command":"delete","inventCode":"7"}}\n{BATCH_END}'
    )
    assert (delete.verb, delete.catalog_type, delete.code) == ("delete", "INVENTORY", "7")


@pytest.mark.parametrize(
    ("entity", "field"),
    [
        ({"name": "x", "price": 1}, "entity.inventCode"),
        ({"inventCode": "1", "price": 1}, "entity.name"),
        ({"inventCode": "1", "name": "x"}, "entity.price"),
        ({"inventCode": "1", "name": "x", "price": True}, "entity.price"),
        ({"inventCode": "1", "name": "x", "price": 1, "vatTag": 1109}, "entity.vatTag"),
        ({"inventCode": "1", "name": "x", "price": 1, "measure": "box"}, "entity.measure"),
        ({"catalogType": "CONTRACTOR", "name": "x"}, "entity.code"),
        ({"catalogType": "GOODS", "code": "1"}, "entity.catalogType"),
    ],
)
def test_entry_checks(entity: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_entity(entity)
    assert caught.value.field == field
