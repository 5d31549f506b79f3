"""The cabinet stays open on loopback, and refuses to start elsewhere without a token."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.exposure import check_cabinet_exposure, is_loopback
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

TOKEN = secrets.token_hex(8)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)
    check_cabinet_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.0.2.7", "no-such-host.invalid"])  # noqa: S104 - the point of the test
def test_other_addresses_need_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="without a cabinet token"):
        check_cabinet_exposure(host, None)
    with pytest.raises(ConfigError):
        check_cabinet_exposure(host, "")
    check_cabinet_exposure(host, "s3cret")


@pytest.mark.parametrize("command", [["cloud", "serve"], ["up", "--tills", "0", "--mqtt", "none"]])
def test_the_command_line_refuses_a_wildcard_address_without_a_token(
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KKT_CABINET_TOKEN", raising=False)
    args = [*command, "--host", "0.0.0.0", "--port", "0"]  # noqa: S104 - refused before binding
    args += ["--db", str(tmp_path / "c.db")] if command[0] == "cloud" else []
    args += ["--state-dir", str(tmp_path / "stack")] if command[0] == "up" else []
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: refusing to serve the cabinet on 0.0.0.0")
    assert not (tmp_path / "c.db").exists()


async def test_up_with_a_token_protects_its_cabinet_and_still_sets_itself_up(
    tmp_path: Path,
) -> None:
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        tills=0,
        cabinet_token=TOKEN,
    )
    async with Stack(options, ManualClock()) as stack, httpx.AsyncClient() as http:
        assert stack.points
        url = f"{stack.base_url}/api/cabinet/v1/retail-points"
        assert (await http.get(url)).status_code == 401
        ok = await http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
