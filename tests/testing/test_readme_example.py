"""The README's pytest example, copied into an empty folder, passes in every asyncio set-up.

The blocks are read from README.md itself ("In your own pytest suite"), so the test fails when the
README drifts from what the plugin does. Each set-up is one ``python -m pytest`` in a fresh folder
(one shared installation per run); the runs go two at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION_START = "**In your own pytest suite.**"
SECTION_END = "**Against a running installation in CI.**"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_TEST = re.compile(r"^(async )?def (test_\w+)\(", re.MULTILINE)


@dataclass(frozen=True)
class SetUp:
    """How the user's folder is configured, and pytest's extra arguments."""

    ini: str | None
    args: tuple[str, ...] = ()


SETUPS = {
    "no-config": SetUp(None),
    "strict": SetUp("[pytest]\nasyncio_mode = strict\n"),
    "auto": SetUp("[pytest]\nasyncio_mode = auto\n"),
    "no-asyncio-plugin": SetUp(None, ("-p", "no:asyncio")),
}


def readme_examples(text: str) -> list[str]:
    """The python blocks with tests in the README's pytest-plugin section, in order."""
    start = text.index(SECTION_START)
    section = text[start : text.index(SECTION_END, start)]
    return [block for block in _BLOCK.findall(section) if _TEST.search(block)]


def _run(folder: Path, setup: SetUp) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KKT_"))}
    return subprocess.run(  # noqa: S603 - sys.executable and constant arguments
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *setup.args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def examples() -> list[str]:
    return readme_examples(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(
    examples: list[str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every set-up's run of the README's examples, each in an empty folder of its own."""
    folders: dict[str, Path] = {}
    for name, setup in SETUPS.items():
        folder = tmp_path_factory.mktemp(f"shop-{name}")
        for n, block in enumerate(examples, 1):
            (folder / f"test_example_{n}.py").write_text(block, encoding="utf-8")
        if setup.ini is not None:
            (folder / "pytest.ini").write_text(setup.ini, encoding="utf-8")
        folders[name] = folder
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, folders[name], SETUPS[name]) for name in SETUPS}
        return {name: future.result() for name, future in futures.items()}


def test_the_readme_has_an_async_and_a_sync_example(examples: list[str]) -> None:
    kinds = {bool(match[0]) for block in examples for match in _TEST.findall(block)}
    assert kinds == {True, False}, "the README's pytest section needs async and sync tests"
    assert any("kkt_stack_sync" in block for block in examples)


def test_the_extraction_takes_only_test_blocks() -> None:
    text = (
        f"{SECTION_START}\n```python\nasync def test_a(kkt_stack):\n    pass\n```\n"
        "```python\nreceipt = 1\n```\n```sh\ndef test_b(): ...\n```\n"
        f"{SECTION_END}\n```python\ndef test_c():\n    pass\n```\n"
    )
    assert readme_examples(text) == ["async def test_a(kkt_stack):\n    pass\n"]


@pytest.mark.parametrize("name", list(SETUPS))
def test_the_readme_example_passes(
    name: str, examples: list[str], runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = runs[name]
    output = result.stdout + result.stderr
    tests = [match[1] for block in examples for match in _TEST.findall(block)]
    assert result.returncode == 0, output
    assert f"{len(tests)} passed" in result.stdout, output
    for test in tests:
        assert re.search(rf"^PASSED test_example_\d+\.py::{test}$", result.stdout, re.MULTILINE), (
            output
        )
    assert "not natively supported" not in output
