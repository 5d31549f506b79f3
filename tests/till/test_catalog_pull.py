"""The till's catalogue: pulled when a heartbeat names a new revision, or for an unknown code (B16).

Real cloud on a port, a real till: the back office changes the point's catalogue with
``catalog-changes``; the till's next heartbeat answer names the new revision and the till pulls
the change once (never while nothing changed); a code the till does not know yet makes it pull at
once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from kkt_emulator.errors import ConfigError
from kkt_emulator.testing.stack import StackHarness
from kkt_emulator.till.catalog import parse_item

if TYPE_CHECKING:
    from pathlib import Path


def batch(*lines: str) -> bytes:
    return ("### data begin ###\n" + "\n---\n".join(lines) + "\n### data end ###").encode()


async def back_office(kkt: StackHarness) -> tuple[str, str]:
    """A «Складской учет» pair for the point's account (accepted by the back office, B2)."""
    pair = await kkt.cabinet(
        "POST", f"/retail-points/{kkt.retail_point_id}/services/sklad/credentials"
    )
    return pair["login"], pair["password"]


async def wait_for(kkt: StackHarness, check: Any, seconds: float = 10.0) -> None:
    deadline = kkt.clock.monotonic() + seconds
    while not check():
        assert kkt.clock.monotonic() < deadline, "the till did not get there in time"
        await kkt.clock.pace(0.02)


async def test_a_heartbeat_naming_a_new_revision_makes_the_till_pull_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kkt_emulator.till.views.HEARTBEAT_EVERY", 0.1)
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        auth = await back_office(kkt)
        url = f"{kkt.stack.base_url}/api/v1/retail-point/{kkt.retail_point_id}/catalog-changes"
        await wait_for(kkt, lambda: till.catalog.revision == 0 and till.ctx.state.get("token"))
        assert till.catalog.pulls == 0  # revision 0 everywhere: nothing to ask

        response = await kkt.http.post(
            url,
            content=batch(
                '{"command":"add","entity":{"inventCode":"001","name":"Хлеб","price":45,"vatTag":1103}}',
                '{"command":"add","entity":{"inventCode":"002","name":"Молоко","price":89.9,"measure":"ltr"}}',
            ),
            auth=auth,
        )
        assert response.status_code == 200, response.text
        await wait_for(kkt, lambda: till.catalog.revision == 1)
        assert sorted(till.catalog.entries()) == ["001", "002"]
        assert till.catalog.pulls == 1
        # More heartbeats with the same revision: no more pulls.
        await kkt.clock.pace(0.5)
        assert till.catalog.pulls == 1

        response = await kkt.http.post(
            url,
            content=batch(
                '{"command":"delete","inventCode":"001"}',
                '{"command":"update","entity":{"inventCode":"002","name":"Молоко 3,2%","price":95}}',
            ),
            auth=auth,
        )
        assert response.status_code == 200, response.text
        await wait_for(kkt, lambda: till.catalog.revision == 2)
        assert till.catalog.pulls == 2
        assert till.catalog.entries() == {
            "002": {
                "catalogType": "INVENTORY",
                "inventCode": "002",
                "name": "Молоко 3,2%",
                "price": 95,
            }
        }


async def test_an_unknown_code_makes_the_till_pull_at_once(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        till = kkt.till
        auth = await back_office(kkt)
        await wait_for(kkt, lambda: till.ctx.state.get("token"))
        url = f"{kkt.stack.base_url}/api/v1/retail-point/{kkt.retail_point_id}/catalog"
        entry = {
            "inventCode": "777",
            "name": "Сыр",
            "price": 520.5,
            "vatTag": 1102,
            "measure": "kg",
        }
        assert (await kkt.http.post(url, json=entry, auth=auth)).status_code == 200
        positions = await till.catalog.positions([parse_item("777*0.350")])
        assert positions == [
            {
                "inventCode": "777",
                "name": "Сыр",
                "price": 520.5,
                "quantity": 0.35,
                "vatTag": 1102,
                "measure": "kg",
            }
        ]
        assert till.catalog.revision == 1
        with pytest.raises(ConfigError, match="not in the catalogue: 999"):
            await till.catalog.positions([("999", Decimal(1))])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("001", ("001", Decimal(1))),
        ("001*2", ("001", Decimal(2))),
        ("A*B*0,5", ("A*B", Decimal("0.5"))),
    ],
)
def test_item_arguments(text: str, expected: tuple[str, Decimal]) -> None:
    assert parse_item(text) == expected


@pytest.mark.parametrize("text", ["", "*2", "001*0", "001*-1", "001*x"])
def test_bad_item_arguments(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_item(text)
