"""The build lists packages by hand (the profiles folder is mapped into the package): keep it true."""

from __future__ import annotations

import tomllib
from pathlib import Path

from kkt_emulator.profiles import BUILTIN_DIR, list_profiles

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "kkt_emulator").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    mapped = config["tool"]["setuptools"]["package-dir"]
    assert mapped == {"kkt_emulator.firmware_profiles": "firmware_profiles"}
    assert sorted(p.name for p in (ROOT / "firmware_profiles").glob("*.toml"))


def test_profiles_come_from_the_top_level_folder_in_a_checkout() -> None:
    assert BUILTIN_DIR.resolve() == (ROOT / "firmware_profiles").resolve()
    assert list_profiles()
