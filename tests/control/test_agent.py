"""The till agent against a real mosquitto, with a stand-in till (the real one: test_commands.py)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from control_helpers import FakeTill, retained, retained_json, wait_for

from kkt_emulator.clock import RealClock
from kkt_emulator.control.agent import TillAgent, agent_link
from kkt_emulator.control.broker import MosquittoBroker
from kkt_emulator.control.client import ControlClient
from kkt_emulator.control.link import MqttLink
from kkt_emulator.control.topics import CommandError


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker() as running:
        yield running


@pytest.fixture
async def fake(broker: MosquittoBroker) -> AsyncIterator[tuple[FakeTill, TillAgent]]:
    till = FakeTill("dev-1")
    async with agent_link(broker.url, till.device_id) as link:
        await link.connect()
        async with TillAgent(till, link, state_interval=0.2) as agent:
            yield till, agent


@pytest.fixture
async def control(broker: MosquittoBroker) -> AsyncIterator[ControlClient]:
    async with ControlClient(broker.url, timeout=5) as client:
        yield client


@pytest.mark.usefixtures("fake")
async def test_status_online_and_state_retained(broker: MosquittoBroker) -> None:
    status = await retained(broker.url, "kkt/dev-1/status")
    assert status is not None
    assert (status.text, status.retain) == ("online", True)
    state = await retained_json(broker.url, "kkt/dev-1/state")
    assert state["deviceId"] == "dev-1"
    assert state["fnSerial"] == "9999000000000001"
    assert state["profile"] == "fake-profile"
    assert state["settings"] == {"power_saving": False, "online": True}


async def test_state_is_current_for_a_late_subscriber(
    broker: MosquittoBroker, fake: tuple[FakeTill, TillAgent]
) -> None:
    till, _ = fake
    for _ in range(5):
        till.bump()  # every change is an event; the last one must win

    async def latest_is_five() -> bool:
        state = await retained_json(broker.url, "kkt/dev-1/state")
        return state is not None and state["version"] == 5

    await wait_for(latest_is_five, what="the retained state to show version 5")


async def test_state_is_republished_without_changes(fake: tuple[FakeTill, TillAgent]) -> None:
    _, agent = fake
    before = agent.published_states
    await wait_for(lambda: agent.published_states >= before + 2, what="periodic state")


@pytest.mark.usefixtures("fake")
async def test_a_command_answer_never_outruns_the_state(
    broker: MosquittoBroker, control: ControlClient
) -> None:
    result = await control.command("dev-1", "set", {"power_saving": True})
    assert result == {"settings": {"power_saving": True, "online": True}}
    state = await retained_json(broker.url, "kkt/dev-1/state")
    assert state["settings"]["power_saving"] is True


async def test_every_event_is_published_in_order(
    broker: MosquittoBroker, fake: tuple[FakeTill, TillAgent], control: ControlClient
) -> None:
    till, _ = fake
    async with MqttLink(broker.url) as watcher:
        await watcher.connect()
        async with watcher.messages("kkt/dev-1/events") as events:
            await watcher.sync()
            await control.command("dev-1", "fault.inject", {"name": "fn.slow"})
            till.emit("document.fiscalized", {"docId": "d1", "fnDocNumber": 5})
            await control.command("dev-1", "fault.clear", {})
            received = [json.loads((await events.get(5)).payload) for _ in range(3)]
    assert [e["event"] for e in received] == [
        "fault.applied",
        "document.fiscalized",
        "fault.cleared",
    ]
    assert received[1]["data"] == {"docId": "d1", "fnDocNumber": 5}
    assert received[1]["deviceId"] == "dev-1"
    assert received[1]["at"] == till.clock.now().isoformat()


@pytest.mark.usefixtures("fake")
async def test_twenty_concurrent_commands_get_their_own_answers(control: ControlClient) -> None:
    results = await asyncio.gather(
        *(control.command("dev-1", "sell", {"total_kopecks": 100 + n}) for n in range(20))
    )
    assert [r["total"] for r in results] == [100 + n for n in range(20)]
    assert control.link.pending_requests == 0


@pytest.mark.parametrize(
    ("payload", "code", "text"),
    [
        (b"{not json", "bad_request", "payload is not JSON"),
        (b'{"command": "status", "args": 3}', "bad_request", "'args' must be a JSON object"),
        (b'{"command": "fly"}', "unknown_command", "unknown command 'fly'"),
        (b'{"command": "status", "args": {"x": 1}}', "bad_args", "status: unknown argument(s) x"),
        (
            b'{"command": "set", "args": {"power_saving": "yes"}}',
            "bad_args",
            "must be true or false",
        ),
        (b'{"command": "set", "args": {}}', "bad_args", "name at least one"),
        (b'{"command": "fault.inject", "args": {}}', "bad_args", "name is required"),
        (b'{"command": "fault.inject", "args": {"name": "x.y"}}', "bad_args", "unknown fault"),
        (
            b'{"command": "fault.inject", "args": {"name": "fn.slow", "probability": 2}}',
            "bad_args",
            "probability must be 0..1",
        ),
        (
            b'{"command": "fault.inject", "args": {"name": "fn.slow", "count": 0}}',
            "bad_args",
            "count",
        ),
        (b'{"command": "clock.advance", "args": {}}', "bad_args", "either delta or to"),
        (b'{"command": "clock.advance", "args": {"delta": "soon"}}', "bad_args", "not a duration"),
        (b'{"command": "clock.advance", "args": {"to": "lunch"}}', "bad_args", "to must be one of"),
        (b'{"command": "sell", "args": {"total_kopecks": -5}}', "bad_args", "must be positive"),
        (b'{"command": "sell", "args": {"total_kopecks": "5"}}', "bad_args", "must be an integer"),
        (
            b'{"command": "sell", "args": {"total_kopecks": 13}}',
            "drive_error",
            "drive answered 14h",
        ),
        (b'{"command": "sell", "args": {"total_kopecks": 666}}', "internal", "a bug in the till"),
        (b'{"command": "snapshot", "args": {}}', "bad_args", "path is required"),
    ],
)
@pytest.mark.usefixtures("fake")
async def test_bad_requests_get_structured_errors(
    control: ControlClient,
    payload: bytes,
    code: str,
    text: str,
) -> None:
    answer = await control.link.request("kkt/dev-1/cmd", payload, timeout=5)
    data = json.loads(answer.payload)
    assert data["ok"] is False
    assert data["error"]["code"] == code
    assert text in data["error"]["message"]
    # The agent still serves.
    assert (await control.command("dev-1", "fault.list"))["faults"] == []


async def test_every_command_of_the_spec(
    fake: tuple[FakeTill, TillAgent], control: ControlClient, tmp_path: Path
) -> None:
    till, _ = fake
    assert (await control.command("dev-1", "status"))["deviceId"] == "dev-1"
    fault = await control.command(
        "dev-1",
        "fault.inject",
        {"name": "fn.slow", "count": 2, "probability": 0.5, "seed": 7, "params": {"delay_ms": 9}},
    )
    assert fault == {
        "name": "fn.slow",
        "count": 2,
        "probability": 0.5,
        "seed": 7,
        "params": {"delay_ms": 9},
    }
    assert (await control.command("dev-1", "fault.list"))["faults"] == [fault]
    assert (await control.command("dev-1", "fault.clear", {"name": "fn.slow"})) == {
        "cleared": ["fn.slow"]
    }
    shown = await control.command("dev-1", "clock.show")
    assert shown["mode"] == "manual"
    assert shown["deadlines"]["shift.expires"] == "2026-03-02T09:00:00+00:00"
    moved = await control.command("dev-1", "clock.advance", {"to": "shift.expires"})
    assert moved["now"] == "2026-03-02T09:01:00+00:00"
    assert moved["advanced"] == 24 * 3600 + 60
    again = await control.command("dev-1", "clock.advance", {"to": "shift.expires"})
    assert again["advanced"] == 0  # already past it: nothing moves
    assert (await control.command("dev-1", "clock.advance", {"delta": "1h"}))["advanced"] == 3600
    assert await control.command("dev-1", "shift.close") == {
        "closed": True,
        "shiftNumber": 1,
        "fnDocNumber": 7,
    }
    assert await control.command("dev-1", "shift.close") == {"closed": False}
    with pytest.raises(CommandError) as caught:
        await control.command("dev-1", "clock.advance", {"to": "shift.expires"})
    assert caught.value.code == "no_deadline"
    sold = await control.command("dev-1", "sell", {"total_kopecks": 4550, "cashier": "Иванова"})
    assert sold == {"total": 4550, "cashier": "Иванова"}
    assert (await control.command("dev-1", "fn.replace"))["fnSerial"] == "9999000000000002"
    saved = await control.command("dev-1", "snapshot", {"path": str(tmp_path / "snap")})
    assert saved == {"path": str(tmp_path / "snap")}
    assert till.snapshots == [tmp_path / "snap"]
    assert (await control.command("dev-1", "restore", {"path": str(tmp_path / "snap")}))[
        "path"
    ] == str(tmp_path / "snap")


async def test_clock_advance_needs_the_manual_clock(broker: MosquittoBroker) -> None:
    till = FakeTill("dev-real", clock=RealClock())
    async with agent_link(broker.url, till.device_id) as link:
        await link.connect()
        async with TillAgent(till, link), ControlClient(broker.url) as control:
            with pytest.raises(CommandError) as caught:
                await control.command("dev-real", "clock.advance", {"delta": "1h"})
    assert caught.value.code == "clock_not_manual"
    assert "start it with --clock manual" in caught.value.message


async def test_a_clean_stop_says_offline(broker: MosquittoBroker) -> None:
    till = FakeTill("dev-2")
    async with agent_link(broker.url, till.device_id) as link:
        await link.connect()
        async with TillAgent(till, link):
            pass
        status = await retained(broker.url, "kkt/dev-2/status")
    assert status is not None
    assert status.text == "offline"
    assert till.listeners == []


async def test_last_will_says_offline_when_the_till_dies(broker: MosquittoBroker) -> None:
    helper = Path(__file__).with_name("control_helpers.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(helper),
        broker.url,
        "dev-dies",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            assert (await process.stdout.readline()).strip() == b"ready"
        async with MqttLink(broker.url) as watcher:
            await watcher.connect()
            async with watcher.messages("kkt/dev-dies/status") as statuses:
                first = await statuses.get()
                assert first.text == "online"
                process.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
                last = await statuses.get()
        assert last.text == "offline"
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    status = await retained(broker.url, "kkt/dev-dies/status")
    assert status is not None
    assert status.text == "offline"


async def test_agent_survives_a_broker_restart(
    broker: MosquittoBroker, fake: tuple[FakeTill, TillAgent]
) -> None:
    till, agent = fake
    await broker.restart()  # persistence is off: the new broker knows nothing retained
    await wait_for(lambda: agent.link.connections == 2, what="the agent to reconnect")

    async def republished() -> bool:
        status = await retained(broker.url, "kkt/dev-1/status")
        state = await retained_json(broker.url, "kkt/dev-1/state")
        return status is not None and status.text == "online" and state is not None

    await wait_for(republished, what="status and state on the restarted broker")
    till.bump()
    async with ControlClient(broker.url) as control:
        result: dict[str, Any] = await control.command("dev-1", "status")
    assert result["version"] == 1


async def test_a_till_that_cannot_give_its_state_still_answers(broker: MosquittoBroker) -> None:
    till = FakeTill("dev-stuck")
    async with agent_link(broker.url, till.device_id) as link:
        await link.connect()
        async with (
            TillAgent(till, link, answer_budget=0.2) as agent,
            ControlClient(broker.url, timeout=5) as control,
        ):
            await wait_for(lambda: agent.last_state is not None, what="a first state")
            till.snapshot_gate = asyncio.Event()  # from now on every snapshot hangs
            fault = await control.command("dev-stuck", "fault.inject", {"name": "fn.disconnected"})
            assert fault["name"] == "fn.disconnected"
            status = await control.command("dev-stuck", "status")
            assert status["stale"] is True
            assert status["faults"] == []  # the last state taken, before the fault
            till.snapshot_gate.set()  # the drive answers again
            fresh = await control.command("dev-stuck", "status")
            assert "stale" not in fresh
            assert [f["name"] for f in fresh["faults"]] == ["fn.disconnected"]


@pytest.mark.usefixtures("fake")
async def test_sell_items_takes_its_arguments_typed(control: ControlClient) -> None:
    """``sell.items`` (D97): a list of ``CODE*QTY`` strings and the card and cash parts."""
    sold = await control.command(
        "dev-1", "sell.items", {"items": ["001*2", "002"], "card_kopecks": 10000}
    )
    assert sold == {"items": ["001*2", "002"], "card": 10000, "cash": None, "cashier": "Кассир"}
    refused: list[dict[str, Any]] = [
        {"items": "001"},
        {"items": []},
        {"items": ["001"], "card_kopecks": -1},
        {},
    ]
    for args in refused:
        with pytest.raises(CommandError) as caught:
            await control.command("dev-1", "sell.items", args)
        assert caught.value.code == "bad_args"
