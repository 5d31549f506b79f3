"""The build lists packages by hand (the profiles folder is mapped into the package): keep it true."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_a_built_wheel_carries_the_profiles_and_lists_them(tmp_path: Path) -> None:
    """Build the wheel, unpack it as pip would install it, and run ``profiles list`` from it."""
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    build = subprocess.run(  # noqa: S603 - sys.executable and constant arguments
        [*command, "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("kkt_emulator-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    shipped = sorted(p.name for p in (ROOT / "firmware_profiles").glob("*.toml"))
    assert (
        sorted(
            n.rsplit("/", 1)[1] for n in names if n.startswith("kkt_emulator/firmware_profiles/")
        )
        == shipped
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("KKT_PROFILES_DIR", None)
    script = "import sys; from kkt_emulator.cli.main import main; sys.exit(main(sys.argv[1:]))"
    listed = subprocess.run(  # noqa: S603 - sys.executable and constant arguments
        [sys.executable, "-c", script, "profiles", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "kkt_emulator/__init__.py" in names
    for font in ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "LICENSE"):  # the slip's (D102)
        assert f"kkt_emulator/slip/fonts/{font}" in names
    from_wheel = subprocess.run(
        [sys.executable, "-c", "import kkt_emulator.profiles as p; print(p.BUILTIN_DIR)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert from_wheel.stdout.strip() == str(site / "kkt_emulator" / "firmware_profiles")
    for name in shipped:
        assert name.removesuffix(".toml") in listed.stdout
