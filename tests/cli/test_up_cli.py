"""`kkt-emulator up --long-poll`: tills that take a document the moment it is queued."""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator import eventloop
from kkt_emulator.app.stack import StackOptions
from kkt_emulator.cli.main import main


def _options(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> StackOptions:
    started: list[StackOptions] = []

    def run(serving: Coroutine[Any, Any, None]) -> None:
        assert inspect.iscoroutine(serving)
        assert serving.cr_frame is not None
        started.append(serving.cr_frame.f_locals["options"])
        serving.close()

    monkeypatch.setattr(eventloop, "run", run)
    assert main(["up", "--mqtt", "none", *argv]) == 0
    [options] = started
    return options


def test_long_poll_reaches_every_till(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options(monkeypatch, ["--state-dir", str(tmp_path), "--long-poll", "5"])
    assert options.long_poll == 5.0
    assert options.settings_of_tills() == {"orders": True, "long_poll": 5.0, "poll_interval": 5.0}


def test_the_real_poll_stays_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options(monkeypatch, ["--state-dir", str(tmp_path)])
    # 0 turns a long poll a till kept from an earlier run off again.
    assert options.settings_of_tills() == {"orders": True, "long_poll": 0.0, "poll_interval": 5.0}


def test_a_long_poll_above_the_cloud_limit_is_refused(tmp_path: Path) -> None:
    assert main(["up", "--state-dir", str(tmp_path), "--long-poll", "31"]) == 2
