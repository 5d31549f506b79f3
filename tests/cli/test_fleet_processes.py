"""Tills in other processes: `till fleet` against a cloud process, and `up --workers N`.

Everything is a real process on real ports with a real mosquitto; documents go through the store
API and the control commands through the broker, as a user would drive them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_helpers import cli, cli_json

from kkt_emulator.app.stack import sale_document
from kkt_emulator.clock import RealClock
from kkt_emulator.control.broker import MosquittoBroker, find_mosquitto
from kkt_emulator.logging import configure_logging

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

KKT = [sys.executable, "-m", "kkt_emulator"]
PACE = RealClock()
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


class Process:
    """A kkt-emulator command line with its output in files."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.process = process
        self.out = out
        self.err = err

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    async def ready(self, path: Path) -> dict[str, Any]:
        deadline = PACE.monotonic() + READY_TIMEOUT
        while (data := _read_json(path)) is None:
            assert self.process.returncode is None, f"exited early:\n{self.output()}"
            assert PACE.monotonic() < deadline, f"not ready:\n{self.output()}"
            await PACE.pace(0.1)
        return data

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@asynccontextmanager
async def spawned(tmp_path: Path, name: str, *args: str) -> AsyncIterator[Process]:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *KKT, *args, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr
        )
    proc = Process(process, out, err)
    try:
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def complete_one_per_point(base_url: str, points: list[dict[str, str]]) -> dict[str, str]:
    """Post a sale to every point; returns each document's final status."""
    store = f"{base_url}/api/fn"
    docs = {}
    async with httpx.AsyncClient(timeout=30.0) as http:
        for n, point in enumerate(points):
            doc = sale_document(10.0 + n)
            auth = (point["login"], point["password"])
            (await http.post(f"{store}/v2/doc", json=doc, auth=auth)).raise_for_status()
            docs[doc["id"]] = auth
        final: dict[str, str] = {}
        deadline = PACE.monotonic() + 60.0
        while len(final) < len(docs) and PACE.monotonic() < deadline:
            for doc_id, auth in docs.items():
                if doc_id not in final:
                    answer = await http.get(f"{store}/v1/doc/{doc_id}/status", auth=auth)
                    status = answer.raise_for_status().json()["status"]
                    if status in ("COMPLETED", "FAILED"):
                        final[doc_id] = status
            await PACE.pace(0.1)
    return final


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _gone(pids: list[int]) -> bool:
    deadline = PACE.monotonic() + STOP_TIMEOUT
    while any(_alive(p) for p in pids) and PACE.monotonic() < deadline:
        await PACE.pace(0.05)
    return not any(_alive(p) for p in pids)


async def test_a_fleet_serves_the_points_of_a_cloud_in_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("console", "warning")
    async with MosquittoBroker() as broker:
        cloud_ready = tmp_path / "cloud.json"
        up = ["up", "--tills", "0", "--points", "2", "--mqtt", broker.url, "--long-poll", "2"]
        up += ["--state-dir", str(tmp_path / "cloud"), "--ready-file", str(cloud_ready)]
        async with spawned(tmp_path, "cloud", *up) as cloud:
            installation = await cloud.ready(cloud_ready)
            fleet_ready = tmp_path / "fleet.json"
            args = ["till", "fleet", "--server", installation["base_url"], "--count", "4"]
            args += ["--from-ready", str(cloud_ready), "--ofd", installation["ofd"]]
            args += ["--mqtt", broker.url, "--long-poll", "2", "--state-dir", str(tmp_path / "f")]
            args += ["--ready-file", str(fleet_ready)]
            async with spawned(tmp_path, "fleet", *args) as fleet:
                info = await fleet.ready(fleet_ready)
                tills = sorted(t["device_id"] for t in info["tills"])
                assert len(tills) == 4
                points = {p["retail_point_id"] for p in installation["points"]}
                assert {t["retail_point_id"] for t in info["tills"]} == points
                assert info["mqtt"] == broker.url
                assert info["pid"] == fleet.process.pid

                statuses = await complete_one_per_point(
                    installation["base_url"], installation["points"]
                )
                assert sorted(statuses.values()) == ["COMPLETED", "COMPLETED"]
                listed = await cli_json(capsys, "status", "--mqtt", broker.url)
                online = [t["deviceId"] for t in listed["tills"] if t["status"] == "online"]
                assert sorted(online) == tills

                assert await fleet.stop() == 0, fleet.output()
                assert not fleet_ready.exists()

            # The same options again: the same tills, bound again with the same drives.
            async with spawned(tmp_path, "fleet-again", *args) as fleet:
                again = await fleet.ready(fleet_ready)
                assert sorted(t["device_id"] for t in again["tills"]) == tills
                assert [t["fn_serial"] for t in again["tills"]] == [
                    t["fn_serial"] for t in info["tills"]
                ]
                assert await fleet.stop() == 0, fleet.output()
            assert await cloud.stop() == 0, cloud.output()


async def test_up_with_workers_serves_every_point_and_reaches_every_till(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("console", "warning")
    ready = tmp_path / "ready.json"
    args = ["up", "--workers", "2", "--tills", "6", "--points", "3", "--clock", "manual"]
    args += ["--mqtt", "spawn", "--long-poll", "2", "--state-dir", str(tmp_path / "state")]
    args += ["--ready-file", str(ready)]
    async with spawned(tmp_path, "up", *args) as up:
        info = await up.ready(ready)
        assert len(info["tills"]) == 6
        workers = {w["number"]: w for w in info["workers"]}
        assert sorted(workers) == [1, 2]
        assert [len(w["tills"]) for w in workers.values()] == [3, 3]
        pids = [w["pid"] for w in workers.values()]
        assert len(set(pids)) == 2
        assert up.process.pid not in pids
        for till in info["tills"]:
            number = next(n for n, w in workers.items() if till["device_id"] in w["tills"])
            assert Path(till["state_dir"]).is_relative_to(workers[number]["state_dir"])
        # Till n of the installation is on point n mod 3, whichever worker runs it.
        point_ids = [p["retail_point_id"] for p in info["points"]]
        assert [t["retail_point_id"] for t in info["tills"]] == point_ids * 2

        listed = await cli_json(capsys, "status", "--ready-file", str(ready))
        ids = sorted(t["device_id"] for t in info["tills"])
        assert sorted(t["deviceId"] for t in listed["tills"]) == ids
        assert {t["status"] for t in listed["tills"]} == {"online"}

        statuses = await complete_one_per_point(info["base_url"], info["points"])
        assert sorted(statuses.values()) == ["COMPLETED"] * 3

        # A fault set on a till of worker 2 takes effect there.
        target = workers[2]["tills"][0]
        rf = ["--ready-file", str(ready), "--device", target]
        code, _, err = await cli(capsys, "fault", "inject", "fn.failure", *rf)
        assert code == 0, err
        code, _, err = await cli(capsys, "sell", "10", *rf)
        assert code != 0
        assert "03h" in err or "failure" in err, err
        code, _, err = await cli(capsys, "fault", "clear", *rf)
        assert code == 0, err
        code, _, err = await cli(capsys, "sell", "10", *rf)
        assert code == 0, err

        # The clock of every process moves, and the cloud's with them.
        before = datetime.fromisoformat(listed["tills"][0]["result"]["clock"]["now"])
        moved = await cli_json(capsys, "clock", "advance", "1h", "--ready-file", str(ready))
        assert moved["cloud"]["advanced"] == pytest.approx(3600, abs=1)
        assert {o["result"]["clockId"].split("/")[1] for o in moved["tills"]} == {
            str(p) for p in pids
        }  # one clock per worker process, each advanced once
        # A till whose clock moved through a sibling's command shows it by its next state.
        wanted = before + timedelta(hours=1)
        deadline = PACE.monotonic() + STOP_TIMEOUT
        while True:
            after = await cli_json(capsys, "status", "--ready-file", str(ready))
            nows = {datetime.fromisoformat(t["result"]["clock"]["now"]) for t in after["tills"]}
            if nows == {wanted} or PACE.monotonic() > deadline:
                break
            await PACE.pace(0.5)
        assert nows == {wanted}

        assert await up.stop() == 0, up.output()
        assert await _gone(pids)
        assert not ready.exists()


async def test_a_worker_that_dies_stops_up_with_an_error(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    args = ["up", "--workers", "2", "--tills", "2", "--mqtt", "none"]
    args += ["--state-dir", str(tmp_path / "state"), "--ready-file", str(ready)]
    async with spawned(tmp_path, "up", *args) as up:
        info = await up.ready(ready)
        pids = {w["number"]: w["pid"] for w in info["workers"]}
        os.kill(pids[2], signal.SIGKILL)
        assert await asyncio.wait_for(up.process.wait(), STOP_TIMEOUT) == 1
        assert await _gone(list(pids.values()))
        errors = [line for line in up.output().splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: worker 2 (pid {pids[2]}) was killed by signal 9; everything was stopped"
        ]


async def test_workers_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    args = ["up", "--workers", "2", "--tills", "2", "--mqtt", "none"]
    args += ["--state-dir", str(tmp_path / "state"), "--ready-file", str(ready)]
    async with spawned(tmp_path, "up", *args) as up:
        info = await up.ready(ready)
        pids = [w["pid"] for w in info["workers"]]
        assert await up.stop(signal.SIGKILL) == -signal.SIGKILL
        # Their pipe from up closed with it: each stops as on SIGTERM.
        assert await _gone(pids)
