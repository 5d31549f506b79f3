"""The drive core (``kkt_emulator/fn/``) does no I/O and depends on nothing outside its allowed set.

Two checks:

* an AST walk over every module of the package: no import of an I/O module (``asyncio``,
  ``sqlite3``, ``socket``, ``serial``, ``threading``, ``httpx``, and the project's I/O packages),
  and project imports only from ``kkt_emulator.clock``, ``kkt_emulator.errors``,
  ``kkt_emulator.taxes`` and ``kkt_emulator.fn`` itself;
* a fresh interpreter that imports every ``kkt_emulator.fn`` module and then finds ``asyncio``,
  ``sqlite3``, ``socket`` and ``threading`` absent from ``sys.modules``.

What the allowed dependencies pull in was checked when this test was written: neither
``kkt_emulator.errors`` nor ``construct`` nor ``crcmod`` imports any of the four, so the subprocess
check covers all of them. ``kkt_emulator.clock`` does import ``asyncio`` (its pacing is async), so
if the core ever imports the clock module the subprocess check will fail and must then leave out
``asyncio`` (and what it brings: ``socket``, ``threading``) — a reason to pass time into the core
as an argument, as it does today, rather than importing the clock.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kkt_emulator.fn

PACKAGE = Path(kkt_emulator.fn.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))

BANNED = frozenset({"asyncio", "sqlite3", "socket", "serial", "threading", "httpx"})
ALLOWED_PROJECT = frozenset(
    {"kkt_emulator.clock", "kkt_emulator.errors", "kkt_emulator.taxes", "kkt_emulator.fn"}
)
NOT_LOADED = ("asyncio", "sqlite3", "socket", "threading")


def _imports(path: Path) -> list[str]:
    """Every module name ``path`` imports (``from x import y`` counts as ``x`` and ``x.y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import; the project uses absolute ones"
            assert node.module is not None
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _allowed_project(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in ALLOWED_PROJECT)


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 10
    assert PACKAGE / "drive.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_no_io_and_only_allowed_project_modules(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in BANNED, f"{path.name} imports {name}"
        if top == "kkt_emulator":
            assert _allowed_project(name), (
                f"{path.name} imports {name}, outside {sorted(ALLOWED_PROJECT)}"
            )


def test_importing_the_core_loads_no_io_module() -> None:
    names = [f"kkt_emulator.fn.{p.stem}" for p in MODULES if p.stem != "__init__"]
    script = "\n".join(
        [
            "import importlib, sys",
            f"for name in {names!r}:",
            "    importlib.import_module(name)",
            f"print(','.join(m for m in {NOT_LOADED!r} if m in sys.modules))",
        ]
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and a script written above
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "", f"importing the drive core loaded {result.stdout.strip()}"
