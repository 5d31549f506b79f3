"""`kkt-emulator status|set|fault|clock …` against a running installation and its own mosquitto."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cli_helpers import cli, cli_json, control_installation

from kkt_emulator.app.stack import Stack, write_json_atomic
from kkt_emulator.cli.status_cmd import upload_text


@pytest.fixture
async def installation(tmp_path: Path) -> AsyncIterator[tuple[Stack, Path]]:
    async with control_installation(tmp_path) as running:
        yield running


async def test_status_json(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    data = await cli_json(capsys, "status", "--ready-file", str(ready))
    ids = sorted(t.device_id for t in stack.tills)
    assert [t["deviceId"] for t in data["tills"]] == ids
    for entry in data["tills"]:
        assert entry["ok"] is True
        assert entry["status"] == "online"
        assert stack.control is not None
        assert entry["process"] == stack.control.process_id
        assert entry["result"]["deviceId"] == entry["deviceId"]
        assert entry["result"]["clock"]["mode"] == "manual"
    code, out, err = await cli(capsys, "status", "--ready-file", str(ready))
    assert code == 0, err
    assert ids[0][:8] in out
    assert out.count("online") == 2
    assert "business time 2026-04-01T09:00:00+00:00 (manual)" in out


async def test_fault_inject_list_clear(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    till = stack.tills[0]
    prefix = till.device_id[:8]
    code, out, err = await cli(
        capsys,
        "fault",
        "inject",
        "fn.memory_warning",
        "--count",
        "2",
        "--seed",
        "3",
        "--device",
        prefix,
        "--ready-file",
        str(ready),
    )
    assert code == 0, err
    assert f"till {till.device_id}: fault fn.memory_warning armed (count 2, seed 3)" in out
    assert "fn.memory_warning" in till.faults
    assert "fn.memory_warning" not in stack.tills[1].faults
    listed = await cli_json(capsys, "fault", "list", "--ready-file", str(ready))
    faults = {t["deviceId"]: [f["name"] for f in t["result"]["faults"]] for t in listed["tills"]}
    assert faults == {till.device_id: ["fn.memory_warning"], stack.tills[1].device_id: []}
    code, out, err = await cli(capsys, "fault", "clear", "--ready-file", str(ready))
    assert code == 0, err
    assert f"till {till.device_id}: cleared fn.memory_warning" in out
    assert not till.faults


async def test_refused_fault_is_an_error(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    device = stack.tills[0].device_id
    code, _, err = await cli(
        capsys, "fault", "inject", "fn.bogus", "--device", device, "--ready-file", str(ready)
    )
    assert code == 2
    assert err.startswith(f"error: till {device}: fault.inject: unknown fault 'fn.bogus'")
    assert len(err.strip().splitlines()) == 1


async def test_set_power_saving(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    code, out, err = await cli(capsys, "set", "power-saving", "on", "--ready-file", str(ready))
    assert code == 0, err
    assert all(t.settings.power_saving for t in stack.tills)
    assert out.count("power-saving on") == 2
    code, _, err = await cli(capsys, "set", "power-saving", "maybe", "--ready-file", str(ready))
    assert code == 2
    assert "power-saving takes on or off" in err


async def test_clock_advance_moves_the_shared_clock_once(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ready = installation
    before = stack.clock.now()
    data = await cli_json(capsys, "clock", "advance", "1h", "--ready-file", str(ready))
    # Two tills and the cloud share one clock in one `up` process: it moves 1 h, not 3 h.
    assert stack.clock.now() == before + timedelta(hours=1)
    assert sorted(t["deviceId"] for t in data["tills"]) == sorted(t.device_id for t in stack.tills)
    assert all(t["ok"] for t in data["tills"])
    assert data["cloud"]["shared"] is True
    assert data["cloud"]["advanced"] == 0
    code, out, err = await cli(capsys, "clock", "advance", "30m", "--ready-file", str(ready))
    assert code == 0, err
    assert "clock moved 30m" in out
    assert "cloud: shares the tills' clock" in out
    assert stack.clock.now() == before + timedelta(hours=1, minutes=30)


async def test_clock_advance_to_a_missing_deadline(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, ready = installation
    code, _, err = await cli(
        capsys, "clock", "advance", "--to", "shift.expires", "--ready-file", str(ready)
    )
    assert code == 2
    assert "has no shift.expires deadline now" in err


async def test_no_broker_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        code, out, err = await cli(capsys, "status", "--mqtt", f"mqtt://127.0.0.1:{port}")
    assert code == 2
    assert out == ""
    assert err.startswith(f"error: cannot reach the MQTT broker at mqtt://127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


async def test_installation_without_control_plane(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = tmp_path / "ready.json"
    write_json_atomic(ready, {"mqtt": None, "base_url": "http://127.0.0.1:1"})
    code, _, err = await cli(capsys, "fault", "list", "--ready-file", str(ready))
    assert code == 2
    assert err.startswith("error: the running installation has no MQTT control plane")
    code, _, err = await cli(capsys, "status", "--ready-file", str(tmp_path / "missing.json"))
    assert code == 2
    assert "no running installation" in err


async def test_status_shows_the_upload_queue(
    installation: tuple[Stack, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """«Нет ли очереди чеков на сервер»: the queue's size, its oldest document's age, the reason."""
    stack, ready = installation
    till = stack.tills[0]
    till.inject_fault("upload.block")
    await till.control.sell(10000)
    await stack.clock.advance(timedelta(minutes=12))
    data = await cli_json(
        capsys, "status", "--device", till.device_id[:8], "--ready-file", str(ready)
    )
    (entry,) = data["tills"]
    queue = entry["result"]["uploadQueue"]
    assert queue["size"] == 2  # the shift's open and the sale
    assert queue["lastError"] == "upload blocked (fault upload.block)"
    assert upload_text(entry["result"]) == "2, oldest 12 min (upload blocked (fault upload.block))"
    code, out, err = await cli(capsys, "status", "--ready-file", str(ready))
    assert code == 0, err
    assert "upload" in out
    assert "oldest" in out  # the cell of upload_text (narrow output wraps it)
    assert "empty" in out  # the other till has nothing waiting
    till.clear_faults("upload.block")


def test_upload_text_words() -> None:
    now = "2026-04-01T10:00:00+00:00"
    assert upload_text({}) == "—"
    assert upload_text({"uploadQueue": {"size": None}}) == "unknown"
    assert upload_text({"uploadQueue": {"size": 0, "oldestAt": None}}) == "empty"
    state = {
        "clock": {"now": now},
        "uploadQueue": {"size": 3, "oldestAt": "2026-04-01T07:59:00+00:00"},
    }
    assert upload_text(state) == "3, oldest 2 h"
    state["uploadQueue"] = {"size": 1, "oldestAt": "2026-04-01T09:59:30+00:00", "lastError": "400"}
    assert upload_text(state) == "1, oldest 30 s (400)"
