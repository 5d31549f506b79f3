"""`kkt-emulator till run` takes its password from the environment or a file, not only argv."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.cli.main import main
from kkt_emulator.cli.till_cmd import read_password
from kkt_emulator.clock import RealClock
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile

KKT = [sys.executable, "-m", "kkt_emulator"]


def test_the_password_file_gives_its_first_line(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret  \nignored\n", encoding="utf-8")
    assert read_password(None, secret) == "s3cret"
    assert read_password("from-env", None) == "from-env"


@pytest.mark.parametrize(
    ("password", "content", "message"),
    [
        (None, None, "the service password is missing"),
        ("x", "y", "give the password once"),
        (None, "", "is empty"),
        (None, "\n", "is empty"),
    ],
)
def test_a_missing_double_or_empty_password_is_a_clear_error(
    tmp_path: Path, password: str | None, content: str | None, message: str
) -> None:
    path = None
    if content is not None:
        path = tmp_path / "password"
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_password(password, path)


def test_an_unreadable_password_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KKT_TILL_PASSWORD", raising=False)
    args = ["till", "run", "--server", "http://127.0.0.1:9", "--login", "x"]
    args += ["--state-dir", str(tmp_path / "till"), "--password-file", str(tmp_path / "none")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: cannot read the password file")
    assert not (tmp_path / "till").exists()


async def _bind_with(tmp_path: Path, how: str) -> str:
    options = StackOptions(profile=load_profile(DEFAULT_PROFILE), state_dir=tmp_path, tills=0)
    async with Stack(options, RealClock()) as stack:
        point = stack.points[0]
        env = {k: v for k, v in os.environ.items() if k != "KKT_TILL_PASSWORD"}
        args = [*KKT, "till", "run", "--server", stack.base_url, "--login"]
        args += [point["service_login"], "--state-dir", str(tmp_path / "till")]
        if how == "env":
            env["KKT_TILL_PASSWORD"] = point["service_password"]
        else:
            secret = tmp_path / "password"
            secret.write_text(point["service_password"] + "\n", encoding="utf-8")
            args += ["--password-file", str(secret)]
        process = await asyncio.create_subprocess_exec(
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)
        assert point["service_password"] not in " ".join(args)
        return line.decode()


@pytest.mark.parametrize("how", ["env", "file"])
async def test_a_real_till_binds_with_the_password_from_env_or_file(
    tmp_path: Path, how: str
) -> None:
    line = await _bind_with(tmp_path, how)
    assert " bound as " in line, line
