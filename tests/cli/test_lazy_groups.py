"""A command run alone builds only its own group (``cli/groups.py``), and nothing changes for it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from kkt_emulator.cli import groups
from kkt_emulator.cli.main import build_app, command_name

_ENV = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}


def _commands(app: typer.Typer) -> dict[str, Any]:
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}  # type: ignore[attr-defined]


def _helps(app: typer.Typer, path: list[str], command: Any) -> dict[tuple[str, ...], str]:
    """``--help`` of ``command`` and of everything under it, by path."""
    out = {tuple(path): CliRunner().invoke(app, [*path, "--help"], env=_ENV).output}
    if hasattr(command, "list_commands"):
        ctx = typer.Context(command)
        for name in command.list_commands(ctx):
            out |= _helps(app, [*path, name], command.get_command(ctx, name))
    return out


def test_the_groups_name_exactly_the_commands_of_the_whole_tree() -> None:
    listed = [name for group in groups.GROUPS for name in group.names]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(_commands(build_app()))
    for group in groups.GROUPS:  # and each step adds exactly the names it claims
        assert sorted(_commands(build_app(group.names[0]))) == sorted(group.names)


@pytest.mark.parametrize("group", groups.GROUPS, ids=lambda group: group.names[0])
def test_a_command_built_alone_has_the_help_it_has_in_the_whole_tree(group: groups.Group) -> None:
    full = build_app()
    alone = build_app(group.names[0])
    whole = _commands(full)
    for name in group.names:
        assert _helps(alone, [name], _commands(alone)[name]) == _helps(full, [name], whole[name])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["up", "--tills", "2"], "up"),
        (["--log-level", "debug", "up"], "up"),
        (["--log-format=json", "doc", "status", "x"], "doc"),
        (["--log-format", "json", "--log-level=info", "status"], "status"),
        (["--help"], None),
        (["--version"], None),
        (["--log-level"], None),
        ([], None),
        (["--bogus", "up"], None),
    ],
)
def test_the_command_is_the_first_word_after_the_root_options(
    argv: list[str], expected: str | None
) -> None:
    assert command_name(argv) == expected


def test_an_unknown_command_still_gets_the_whole_tree_and_clicks_answer() -> None:
    result = CliRunner().invoke(build_app(command_name(["upp"])), ["upp"], env=_ENV)
    assert result.exit_code == 2
    assert "No such command 'upp'" in result.output


def test_up_does_not_import_the_benchmarks_or_the_scenarios() -> None:
    code = (
        "import sys; from kkt_emulator.cli.main import main; "
        "main(['up', '--help']); "
        "print(sorted(m for m in sys.modules if m.startswith(('kkt_emulator.app.bench', "
        "'kkt_emulator.app.scenarios', 'kkt_emulator.app.chaos'))))"
    )
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603 - our own code
    assert out.strip().splitlines()[-1] == "[]"
