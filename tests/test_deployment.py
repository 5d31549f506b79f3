"""docs/compose.yaml: every kkt-emulator command in the deployment recipe is a real command line.

Compose cannot run here, so each ``command`` of the recipe is given to the real command line with
the services' event loops replaced: options are parsed and checked exactly as in a container, and
nothing listens or connects.
"""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator import eventloop
from kkt_emulator.cli import cloud_cmd, status_cmd
from kkt_emulator.cli.main import main

COMPOSE = Path(__file__).resolve().parent.parent / "docs" / "compose.yaml"
NOT_OURS = {"mosquitto"}


def _commands() -> list[list[str]]:
    commands = []
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("command: ["):
            argv = json.loads(text.removeprefix("command: "))
            if argv[0] not in NOT_OURS:
                commands.append(argv)
    return commands


def test_the_recipe_runs_every_part_of_the_deployment() -> None:
    firsts = [" ".join(argv[:2]) for argv in _commands()]
    assert firsts.count("cloud serve") == 2
    assert firsts.count("till fleet") == 2
    assert "ofd serve" in firsts
    clouds = [argv for argv in _commands() if argv[:2] == ["cloud", "serve"]]
    dbs = {argv[argv.index("--db") + 1] for argv in clouds}
    assert len(dbs) == 1  # two processes, one database: one cloud
    assert dbs.pop().startswith("postgresql://")


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv[:2]))
def test_each_command_of_the_recipe_is_accepted(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[str] = []

    def run(serving: Coroutine[Any, Any, Any]) -> list[Any]:
        assert inspect.iscoroutine(serving)
        started.append(serving.__qualname__)
        serving.close()
        return []

    def no_listener(host: str, port: int) -> socket.socket:
        assert host == "0.0.0.0"  # noqa: S104 - a container's service listens on all interfaces
        assert 0 < port < 65536
        return socket.socket()

    monkeypatch.setenv("KKT_CABINET_TOKEN", "a-token-for-the-check")
    monkeypatch.setattr(eventloop, "run", run)
    monkeypatch.setattr(status_cmd, "run", run)
    monkeypatch.setattr(cloud_cmd, "listen_socket", no_listener)
    assert main(argv) == 0, capsys.readouterr().err
    assert len(started) == 1
