"""`kkt-emulator order list|pay` over MQTT against a running installation, and its ready-file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cli_helpers import cli, cli_json, control_installation

from kkt_emulator.app.stack import Stack
from kkt_emulator.clock import RealClock

pytestmark = pytest.mark.slow


@pytest.fixture
async def installation(tmp_path: Path) -> AsyncIterator[tuple[Stack, Path]]:
    async with control_installation(tmp_path, long_poll=2.0) as running:
        yield running


async def test_order_list_and_pay_over_the_control_plane(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    info = json.loads(ready.read_text(encoding="utf-8"))
    pair = (info["orders_login"], info["orders_password"])
    assert info["orders_api"].endswith(f"/retail-point/{info['retail_point_id']}/order")
    assert "orders creds" in stack.banner()
    assert info["orders_login"] in stack.banner()
    body = {
        "documentNumber": "77",
        "documentType": "SALE",
        "documentDateTime": "2026-04-01T12:00:00+03:00",
        "inventPositions": [
            {"name": "Нитки", "measure": "pcs", "quantity": 2, "price": 150},
            {"name": "Доставка", "measure": "other", "quantity": 1, "price": 300},
        ],
    }
    async with httpx.AsyncClient() as http:
        created = await http.post(info["orders_api"], json=body, auth=pair)
    assert created.status_code == 200, created.text
    order_id = created.json()["id"]
    clock = RealClock()
    for _ in range(300):
        if all(any(o["id"] == order_id for o in t.orders.listing()) for t in stack.tills):
            break
        await clock.pace(0.05)

    listed = await cli_json(capsys, "order", "list", "--ready-file", str(ready))
    assert len(listed["tills"]) == 2
    for entry in listed["tills"]:
        assert [o["id"] for o in entry["result"]["orders"]] == [order_id]
    code, out, _ = await cli(capsys, "order", "list", "--ready-file", str(ready))
    assert code == 0
    assert "Нитки" in out

    code, _, err = await cli(capsys, "order", "pay", order_id, "--ready-file", str(ready))
    assert code == 2
    assert "name the courier's with --device" in err
    device = stack.tills[0].device_id
    code, _, err = await cli(
        capsys, "order", "pay", order_id, "--cash", "100", "-d", device, "--ready-file", str(ready)
    )
    assert code == 2
    assert "not enough" in err
    code, _, err = await cli(
        capsys, "order", "pay", order_id, "--drop", "0", "-d", device, "--ready-file", str(ready)
    )
    assert code == 2
    code, _, err = await cli(
        capsys, "order", "pay", order_id, "--qty", "1=0", "-d", device, "--ready-file", str(ready)
    )
    assert code == 2
    assert "not POSITION=QUANTITY" in err
    code, _, err = await cli(
        capsys, "order", "pay", order_id, "--qty", "1=3", "-d", device, "--ready-file", str(ready)
    )
    assert code == 2  # the till: a quantity can only be lowered (B22)
    assert "can only be lowered" in err
    paid = await cli_json(
        capsys,
        "order",
        "pay",
        order_id,
        "--cash",
        "1000",
        "--drop",
        "2",
        "--qty",
        "1=1",
        "-d",
        device,
        "--ready-file",
        str(ready),
    )
    result = paid["tills"][0]["result"]
    assert result["total"] == 150.0  # one of the two Нитки, the delivery refused
    assert result["change"] == 850.0
    assert result["droppedPositions"] == [2]
    assert result["loweredQuantities"] == {"1": 1.0}
    other = stack.tills[1].device_id
    code, _, err = await cli(
        capsys, "order", "pay", order_id, "-d", other, "--ready-file", str(ready)
    )
    assert code == 2  # the first till holds it: 409 at the second
    assert "409" in err
