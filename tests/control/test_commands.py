"""Commands over MQTT to real tills of a running installation on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from control_helpers import retained, retained_json, wait_for

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.clock import ManualClock
from kkt_emulator.control.broker import MosquittoBroker
from kkt_emulator.control.client import ControlClient
from kkt_emulator.control.link import MqttLink
from kkt_emulator.control.topics import CommandError
from kkt_emulator.errors import TransportError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.testing.stack import StackHarness


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker() as running:
        yield running


@pytest.fixture
async def kkt(tmp_path: Path, broker: MosquittoBroker) -> AsyncIterator[StackHarness]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        till_settings={"poll_interval": 0.05},
        mqtt=broker.url,
    )
    async with Stack(options, clock) as stack:
        harness = StackHarness(stack, clock)
        try:
            yield harness
        finally:
            await harness.http.aclose()


@pytest.fixture
async def control(kkt: StackHarness, broker: MosquittoBroker) -> AsyncIterator[ControlClient]:
    assert kkt.info["mqtt"] == broker.url
    async with ControlClient(broker.url, timeout=15) as client:
        yield client


async def open_shift(kkt: StackHarness) -> None:
    """A shop sale fiscalised by the till opens its shift."""
    doc = kkt.sale()
    await kkt.post_document(doc)
    assert (await kkt.wait_for_status(doc["id"]))["status"] == "COMPLETED"


async def test_status_of_a_real_till(
    kkt: StackHarness, broker: MosquittoBroker, control: ControlClient
) -> None:
    till = kkt.till
    [info] = await control.tills()
    assert (info.device_id, info.online) == (till.device_id, True)
    state = await control.command(till.device_id, "status")
    assert state["deviceId"] == till.device_id
    assert state["fnSerial"] == till.fn_serial
    assert state["drive"]["serial"] == till.fn_serial
    assert state["clock"] == {"now": kkt.clock.now().isoformat(), "mode": "manual"}
    retained_state = await retained_json(broker.url, f"kkt/{till.device_id}/state")
    assert retained_state["kktSerial"] == till.kkt_serial


async def test_set_power_saving(
    kkt: StackHarness, broker: MosquittoBroker, control: ControlClient
) -> None:
    device = kkt.till.device_id
    result = await control.command(device, "set", {"power_saving": True})
    assert result["settings"]["power_saving"] is True
    assert kkt.till.settings.power_saving is True
    assert kkt.till.polling_allowed() is False
    state = await retained_json(broker.url, f"kkt/{device}/state")
    assert state["settings"]["power_saving"] is True
    await control.command(device, "set", {"power_saving": False, "poll_interval": 0.05})
    assert kkt.till.polling_allowed() is True
    with pytest.raises(CommandError) as caught:
        await control.command(device, "set", {"poll_interval": -1})
    assert caught.value.code == "bad_args"
    assert "poll_interval must be seconds" in caught.value.message
    with pytest.raises(CommandError, match="unknown setting 'volume'"):
        await control.command(device, "set", {"volume": 11})


async def test_fault_inject_list_clear(
    kkt: StackHarness, broker: MosquittoBroker, control: ControlClient
) -> None:
    device = kkt.till.device_id
    injected = await control.command(
        device,
        "fault.inject",
        {"name": "fn.memory_warning", "count": 5, "probability": 0.5, "seed": 42},
    )
    assert injected["name"] == "fn.memory_warning"
    await control.command(device, "fault.inject", {"name": "ofd.down"})
    listed = (await control.command(device, "fault.list"))["faults"]
    assert {f["name"] for f in listed} == {"fn.memory_warning", "ofd.down"}
    state = await retained_json(broker.url, f"kkt/{device}/state")
    assert {f["name"] for f in state["faults"]} == {"fn.memory_warning", "ofd.down"}
    assert await control.command(device, "fault.clear", {"name": "ofd.down"}) == {
        "cleared": ["ofd.down"]
    }
    assert await control.command(device, "fault.clear") == {"cleared": ["fn.memory_warning"]}
    assert (await control.command(device, "fault.list"))["faults"] == []
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "fn.nonsense"}, "unknown fault"),
        ({"name": "fn.slow", "params": {"colour": 1}}, "colour"),
        ({"name": "ofd.reject", "count": 2}, "no count or probability"),
    ]
    for args, text in cases:
        with pytest.raises(CommandError) as caught:
            await control.command(device, "fault.inject", args)
        assert caught.value.code == "bad_args"
        assert text in caught.value.message


async def test_clock_advance_to_the_shift_expiry(kkt: StackHarness, control: ControlClient) -> None:
    device = kkt.till.device_id
    with pytest.raises(CommandError) as caught:
        await control.command(device, "clock.advance", {"to": "shift.expires"})
    assert caught.value.code == "no_deadline"
    await open_shift(kkt)
    shown = await control.command(device, "clock.show")
    expires = datetime.fromisoformat(shown["deadlines"]["shift.expires"])
    assert expires > kkt.clock.now()
    moved = await control.command(device, "clock.advance", {"to": "shift.expires"})
    assert kkt.clock.now() == expires + timedelta(minutes=1)
    assert datetime.fromisoformat(moved["now"]) == kkt.clock.now()
    assert moved["to"] == "shift.expires"
    delta = await control.command(device, "clock.advance", {"delta": "1h30m"})
    assert delta["advanced"] == 5400
    assert kkt.clock.now() == expires + timedelta(minutes=91)


async def test_shift_close(kkt: StackHarness, control: ControlClient) -> None:
    device = kkt.till.device_id
    assert await control.command(device, "shift.close") == {"closed": False}
    await open_shift(kkt)
    closed = await control.command(device, "shift.close")
    assert closed["closed"] is True
    assert closed["shiftNumber"] == 1
    assert closed["fnDocNumber"] > 1
    assert await control.command(device, "shift.close") == {"closed": False}


async def test_sell_at_the_counter(kkt: StackHarness, control: ControlClient) -> None:
    sold = await control.command(kkt.till.device_id, "sell", {"total_kopecks": 4550})
    assert sold["shiftNumber"] == 1
    assert sold["fnDocNumber"] > 1


async def test_correction_receipt_at_the_till(kkt: StackHarness, control: ControlClient) -> None:
    corrected = await control.command(kkt.till.device_id, "correction", {"total_kopecks": 4550})
    assert kkt.till.drive is not None
    archived = kkt.till.drive.store.get_document(corrected["fnDocNumber"])
    assert archived is not None
    assert archived.doc_code == 31  # кассовый чек коррекции
    with pytest.raises(CommandError, match="operation"):
        await control.command(
            kkt.till.device_id, "correction", {"total_kopecks": 100, "operation": 9}
        )


async def test_unknown_command_and_bad_args(kkt: StackHarness, control: ControlClient) -> None:
    device = kkt.till.device_id
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("reboot", {}, "unknown_command"),
        ("sell", {}, "bad_args"),
        ("sell", {"total_kopecks": 1.5}, "bad_args"),
        ("clock.advance", {"delta": "1h", "to": "fn.expires"}, "bad_args"),
        ("fault.clear", {"name": "no.such"}, "bad_args"),
        ("restore", {"path": "/nonexistent/snapshot"}, "bad_args"),
    ]
    for command, args, code in cases:
        with pytest.raises(CommandError) as caught:
            await control.command(device, command, args)
        assert caught.value.code == code, (command, caught.value)
    assert (await control.command(device, "status"))["deviceId"] == device


async def test_stack_spawns_and_stops_its_broker(tmp_path: Path) -> None:
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        tills=2,
        till_settings={"poll_interval": 0.05},
        mqtt="spawn",
    )
    async with Stack(options, ManualClock()) as stack:
        url = stack.ready_info()["mqtt"]
        assert url.startswith("mqtt://127.0.0.1:")
        assert f"MQTT broker      {url}" in stack.banner()
        assert stack.control is not None
        process = stack.control.process_id
        for till in stack.tills:
            status = await retained(url, f"kkt/{till.device_id}/status")
            assert status is not None
            assert status.text == f"online {process}"  # the till names the process serving it
        process_status = await retained(url, f"kkt/proc/{process}/status")
        assert process_status is not None
        assert (process_status.text, process_status.retain) == ("online", True)
    link = MqttLink(url)
    with pytest.raises(TransportError, match="cannot reach the MQTT broker"):
        await link.connect(0.3)
    await link.close()


async def test_stack_says_offline_when_it_stops(tmp_path: Path, broker: MosquittoBroker) -> None:
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        till_settings={"poll_interval": 0.05},
        mqtt=broker.url,
    )
    async with Stack(options, ManualClock()) as stack:
        device = stack.tills[0].device_id

        async def online() -> bool:
            status = await retained(broker.url, f"kkt/{device}/status")
            return status is not None and status.text.startswith("online ")

        await wait_for(online, what="online")
        assert stack.control is not None
        process = stack.control.process_id
    status = await retained(broker.url, f"kkt/{device}/status")
    assert status is not None
    assert status.text == "offline"
    process_status = await retained(broker.url, f"kkt/proc/{process}/status")
    assert process_status is not None
    assert process_status.text == "offline"
