"""Layering rules checked on the source: the test kit is for tests, and keeps its public names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import kkt_emulator

PACKAGE = Path(kkt_emulator.__file__).parent
TEST_KIT = "kkt_emulator.testing"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, *, is_package: bool) -> set[str]:
    """Every module ``tree`` imports, absolute names, relative imports resolved."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def _production_modules() -> list[Path]:
    kit = PACKAGE / "testing"
    return sorted(p for p in PACKAGE.rglob("*.py") if kit not in p.parents)


def test_there_is_production_code_to_check() -> None:
    assert len(_production_modules()) > 20


def test_production_code_does_not_import_the_test_kit() -> None:
    leaks: list[str] = []
    for path in _production_modules():
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imported = _imported(tree, module, is_package=path.name == "__init__.py")
        leaks += [
            f"{module} imports {name}"
            for name in sorted(imported)
            if name == TEST_KIT or name.startswith(f"{TEST_KIT}.")
        ]
    assert not leaks, "kkt_emulator.testing is for tests only:\n" + "\n".join(leaks)


def test_the_check_sees_relative_imports() -> None:
    tree = ast.parse("from ..testing import stack\nfrom . import drive\n")
    names = _imported(tree, "kkt_emulator.app.bench", is_package=False)
    assert "kkt_emulator.testing.stack" in names
    assert "kkt_emulator.app.drive" in names


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("kkt_emulator.testing.drive", ["DEFAULT_START", "DriveBench", "Item", "item_tlv"]),
        ("kkt_emulator.testing.stack", ["StackHarness", "sale_document"]),
        ("kkt_emulator.testing.plugin", ["Documents", "KktStack", "MqttBroker"]),
    ],
)
def test_the_test_kit_keeps_its_public_names(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    assert set(names) <= set(loaded.__all__)
    for name in names:
        assert getattr(loaded, name) is not None


# The layers of docs/architecture.md §2: which project layers each may import (the base modules
# ``clock``, ``errors``, ``logging``, ``net``, ``profiles``, ``sqlite``, ``taxes`` are open to all
# but the drive core, which has its own, stricter test in tests/fn/test_core_is_pure.py).
BASE = {"cashdocs", "clock", "errors", "eventloop", "logging", "net", "profiles", "sqlite", "taxes"}
LAYERS: dict[str, set[str]] = {
    "fnio": {"fn", "transport"},
    "transport": set(),
    "cloud": {"slip"},
    "slip": set(),
    "ofd": {"fn", "transport"},
    "till": {"fn", "fnio", "transport"},
    "control": {"till", "fn"},
    "app": {"fn", "fnio", "transport", "cloud", "ofd", "till", "control", "slip"},
    "cli": {"fn", "fnio", "transport", "cloud", "ofd", "till", "control", "app", "slip"},
}


def test_each_layer_imports_only_the_layers_below_it() -> None:
    breaches: list[str] = []
    for path in _production_modules():
        module = _module_name(path)
        parts = module.split(".")
        layer = parts[1] if len(parts) > 1 else ""
        if layer not in LAYERS:
            continue
        allowed = LAYERS[layer] | BASE | {layer, ""}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in sorted(_imported(tree, module, is_package=path.name == "__init__.py")):
            if not name.startswith("kkt_emulator."):
                continue
            target = name.split(".")[1]
            if target not in allowed and not target.startswith("_"):  # __version__
                breaches.append(f"{module} imports {name}")
    assert not breaches, "layering broken (docs/architecture.md §2):\n" + "\n".join(breaches)
