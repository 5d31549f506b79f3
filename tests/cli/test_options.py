"""The shared control options, the argument parsers of the control commands, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from kkt_emulator.cli import profiles_cmd
from kkt_emulator.cli.fault_cmd import parse_params
from kkt_emulator.cli.main import main
from kkt_emulator.cli.options import DEFAULT_TIMEOUT, ControlOptions, control_command
from kkt_emulator.cli.sale_cmd import parse_roubles
from kkt_emulator.cli.settings_cmd import parse_settings
from kkt_emulator.errors import ConfigError

CONTROL_COMMANDS = [
    ["status"],
    ["set"],
    ["fault", "inject"],
    ["fault", "clear"],
    ["fault", "list"],
    ["clock", "show"],
    ["clock", "advance"],
    ["shift", "close"],
    ["sell"],
    ["correction"],
    ["fn", "replace"],
    ["snapshot"],
    ["restore"],
]


def _parse(args: list[str], timeout: float = DEFAULT_TIMEOUT) -> ControlOptions:
    """Run a throw-away command with the shared options; the options it received."""
    seen: list[ControlOptions] = []
    app = typer.Typer()

    @app.command()
    @control_command(timeout=timeout, timeout_help="Seconds.")
    def probe(name: str = typer.Argument("x"), *, opts: ControlOptions) -> None:
        assert name == "x"
        seen.append(opts)

    typer.main.get_command(app).main(args=args, standalone_mode=False)
    return seen[0]


def test_the_defaults() -> None:
    assert _parse([]) == ControlOptions()
    assert ControlOptions().timeout == DEFAULT_TIMEOUT


def test_every_option_and_its_short_form(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    args = ["x", "-d", "abc", "--mqtt", "mqtt://h:1", "--ready-file", str(ready), "--timeout", "3"]
    opts = _parse([*args, "--json"])
    assert opts == ControlOptions("abc", "mqtt://h:1", ready, 3.0, as_json=True)


def test_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KKT_MQTT_URL", "mqtt://env:1")
    monkeypatch.setenv("KKT_READY_FILE", str(tmp_path / "r.json"))
    opts = _parse([])
    assert opts.mqtt == "mqtt://env:1"
    assert opts.ready_file == tmp_path / "r.json"


def test_a_command_may_wait_longer() -> None:
    assert _parse([], timeout=60.0).timeout == 60.0


def test_a_command_without_opts_is_refused() -> None:
    def bare() -> None:
        """Nothing."""

    with pytest.raises(TypeError, match="opts: ControlOptions"):
        control_command()(bare)


@pytest.mark.parametrize("command", CONTROL_COMMANDS, ids=" ".join)
def test_every_control_command_takes_the_shared_options(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--device", "-d", "--mqtt", "KKT_MQTT_URL", "--ready-file", "KKT_READY_FILE"):
        assert flag in out
    assert "--timeout" in out
    assert "--json" in out


def test_target_from_the_ready_file(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"mqtt": "mqtt://127.0.0.1:5", "base_url": "http://c"}))
    target = ControlOptions(ready_file=ready).target()
    assert target.url == "mqtt://127.0.0.1:5"
    assert target.ready is not None
    assert target.ready["base_url"] == "http://c"
    assert ControlOptions(mqtt="mqtt://other:1").target().ready is None
    ready.write_text(json.dumps({"mqtt": None}))
    with pytest.raises(ConfigError, match="no MQTT control plane"):
        ControlOptions(ready_file=ready).target()


def test_parse_settings() -> None:
    assert parse_settings(["power-saving", "on", "poll-interval", "2", "shift-mode", "Shared"]) == {
        "power_saving": True,
        "poll_interval": 2.0,
        "shift_mode": "shared",
    }
    for bad in ([], ["online"], ["online", "maybe"], ["volume", "11"], ["long-poll", "soon"]):
        with pytest.raises(typer.BadParameter):
            parse_settings(bad)


def test_parse_params() -> None:
    assert parse_params(["delay_ms=500", "p=0.5", "point=after_commit"]) == {
        "delay_ms": 500,
        "p": 0.5,
        "point": "after_commit",
    }
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_params(["delay_ms"])


def test_parse_roubles() -> None:
    assert parse_roubles("45.50") == 4550
    assert parse_roubles("45,5") == 4550
    for bad in ("abc", "0", "-1", "1.234", "nan"):
        with pytest.raises(typer.BadParameter):
            parse_roubles(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sell", "1.234"], "error: Invalid value: a sum in roubles with at most 2 decimals"),
        (["set", "volume", "11"], "error: Invalid value: unknown setting 'volume'"),
        (["fault", "inject", "x", "--param", "bad"], "error: Invalid value: --param takes"),
        (["clock", "advance"], "error: Invalid value: give a DURATION or --to NAME"),
        (["clock", "advance", "5q"], "error: not a duration: '5q'"),
        (["cloud", "serve", "--port", "-5"], "error: Invalid value for '--port': -5 is not a TCP"),
    ],
)
def test_bad_input_is_one_error_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message)
    assert len(captured.err.strip().splitlines()) == 1


def test_a_bug_is_logged_and_ends_with_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(profiles_cmd, "list_profiles", broken)
    assert main(["--log-format", "json", "profiles", "list"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "error: internal error: RuntimeError: boom"
    record = json.loads(lines[0])
    assert record["event"] == "command_crashed"
    assert "RuntimeError: boom" in record["exception"]
