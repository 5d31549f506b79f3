"""``kkt-emulator wait``: ready once the ready-file exists and the cloud answers; exit 2 on timeout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kkt_emulator.app.stack import write_json_atomic
from kkt_emulator.cli.main import main
from kkt_emulator.cli.wait_cmd import wait_ready
from kkt_emulator.errors import ConfigError
from kkt_emulator.testing.stack import StackHarness


def test_a_missing_ready_file_times_out_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["wait", "--ready-file", str(tmp_path / "ready.json"), "--timeout", "0.3"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: not ready after 0.3 s:")
    assert "does not exist yet" in err


async def test_a_ready_file_whose_cloud_is_gone_is_not_ready(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    write_json_atomic(ready, {"store_api": "http://127.0.0.1:9/api/fn", "login": "a"})
    with pytest.raises(ConfigError, match="does not answer"):
        await wait_ready(ready, 0.3)


@pytest.mark.slow
async def test_waits_for_the_file_and_the_cloud(tmp_path: Path) -> None:
    ready = tmp_path / "later.json"
    waiting = asyncio.create_task(wait_ready(ready, 30.0))
    async with StackHarness.running(tmp_path / "state", tills=0) as kkt:
        await asyncio.sleep(0.3)
        assert not waiting.done()
        write_json_atomic(ready, kkt.info)
        info = await waiting
    assert info["store_api"] == kkt.store_url
