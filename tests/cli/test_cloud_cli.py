"""`kkt-emulator cloud serve` as a real process: prints its URL, answers, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

from kkt_emulator.cli.main import main

if TYPE_CHECKING:
    from pathlib import Path


def test_serve_answers_status_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "cloud.db"
    command = [sys.executable, "-m", "kkt_emulator", "cloud", "serve", "--port", "0"]
    command += ["--db", str(db), "--clock", "manual", "--json"]
    process = subprocess.Popen(  # noqa: S603 - sys.executable and constant arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        url = started["url"]
        assert started["clock"] == "manual"
        with httpx.Client(base_url=url, timeout=10) as http:
            point = http.post("/api/cabinet/v1/retail-points", json={"name": "Shop"}).json()
            creds = http.post(f"/api/cabinet/v1/retail-points/{point['id']}/credentials").json()
            assoc = http.post(
                f"/api/fn/v1/associate/{point['id']}", auth=(creds["login"], creds["password"])
            ).json()
            status = http.get("/api/fn/v1/status", auth=(assoc["userName"], assoc["password"]))
            assert status.status_code == 200
            assert status.json()["status"] == "ASSOCIATED"
            assert http.get("/api/fn/v1/status").status_code == 401
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"stopped": "SIGTERM"}
    assert db.exists()


def test_bad_clock_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cloud", "serve", "--clock", "sundial", "--db", str(tmp_path / "c.db")])
    assert code == 2
    assert "bad clock spec" in capsys.readouterr().err


def test_port_in_use_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["cloud", "serve", "--port", str(port), "--db", str(tmp_path / "c.db")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot listen on 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1
