"""Firmware profiles: the shipped ones, lookups, validation errors and the search path."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import (
    BUILTIN_DIR,
    DEFAULT_PROFILE,
    list_profiles,
    load_profile,
    profile_dirs,
)
from kkt_emulator.taxes import PROFILE_KEYS, TaxSystem

if TYPE_CHECKING:
    from pathlib import Path

SHIPPED = ["modulkassa-ffd105", "modulkassa-ffd12"]


@pytest.fixture(autouse=True)
def no_profile_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KKT_PROFILES_DIR", raising=False)


def shipped_text(name: str = "modulkassa-ffd105") -> str:
    return (BUILTIN_DIR / f"{name}.toml").read_text(encoding="utf-8")


def write_profile(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def edit(text: str, pattern: str, replacement: str) -> str:
    """Replace one line matching ``pattern`` (a regex anchored at line start)."""
    edited, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert count == 1, pattern
    return edited


# -- the shipped profiles ---------------------------------------------------------------------------


def test_shipped_profiles_are_listed() -> None:
    assert set(SHIPPED) <= set(list_profiles())


def test_ffd105_profile() -> None:
    profile = load_profile("modulkassa-ffd105")
    assert profile.name == "modulkassa-ffd105"
    assert profile.ffd_version == "1.05"
    assert profile.ffd_code == 2
    assert profile.drive.protocol == "fn-2016"
    assert profile.drive.validity_months == 15
    assert profile.drive.lifetime_days == 470
    assert profile.drive.max_frame_data == 1024
    assert profile.drive.ofd_block_code == 0x15
    assert profile.drive.memory_warning_percent == 90
    assert profile.drive.document_capacity == 250_000
    assert profile.drive.ofd_storage_kb == 1024
    assert profile.drive.tlv_limits["registration"] == 2048
    assert profile.drive.tlv_limits["receipt"] == 30720


def test_ffd12_profile() -> None:
    profile = load_profile("modulkassa-ffd12")
    assert profile.ffd_version == "1.2"
    assert profile.ffd_code == 4
    assert profile.drive.protocol == "fn-1.2"
    assert profile.drive.validity_months == 36
    assert profile.drive.lifetime_days == 1110
    assert profile.drive.max_frame_data == 1536
    assert profile.drive.ofd_block_code == 0x14
    assert profile.drive.memory_warning_percent == 99
    assert profile.drive.tlv_limits["registration"] == 6144


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_registration(name: str) -> None:
    profile = load_profile(name)
    registration = profile.registration
    assert registration.inn == "7702203276"
    assert registration.ofd_inn == "7704358518"
    assert registration.tax_systems == ("osn", "usn_income")
    assert registration.tax_mask == 0x03
    assert not registration.internet  # shop + counter tills are not «только в Интернет»
    assert not registration.agent
    assert len(registration.addresses) == 1
    assert profile.model == "МодульКасса"
    assert profile.kkt_serial_prefix == "0001"
    assert profile.drive.serial_prefix.startswith("9999")  # a test drive (FN spec §13.10)
    assert profile.source == BUILTIN_DIR / f"{name}.toml"


@pytest.mark.parametrize("name", SHIPPED)
def test_command_timing(name: str) -> None:
    profile = load_profile(name)
    assert profile.command_delay(0x16) == 0.12
    assert profile.command_delay(0x03) == 0.2
    assert profile.command_delay(0x30) == 0.01  # the default


@pytest.mark.parametrize("name", SHIPPED)
def test_error_text_lookups(name: str) -> None:
    profile = load_profile(name)
    assert profile.error_text(0x12) == "Исчерпан ресурс КС"
    assert profile.error_text(0x14) == "Исчерпан ресурс хранения ФН"
    assert profile.error_text(0x15) == "Исчерпан ресурс хранения ФН"
    assert profile.error_text(0x19, tag=1055) == "СНО товара не была указана при регистрации ККТ"
    assert profile.error_text(0x19, tag=1054) == "Неправильный аргумент"  # falls back to the code
    assert profile.error_text(0x19) == "Неправильный аргумент"
    assert profile.error_text(0x3C) == "Неправильный аргумент"
    assert profile.error_text(0x7F) is None
    assert profile.error_text(0x7F, tag=1055) is None


@pytest.mark.parametrize("name", SHIPPED)
def test_named_error_texts_keep_their_key(name: str) -> None:
    assert load_profile(name).error_texts["disconnected"] == "Сетевой поток не инициализирован"


def test_error_codes_in_lower_case_hex(tmp_path: Path) -> None:
    text = shipped_text() + '"3d" = "нижний регистр"\n"1a/1212" = "с тегом"\n'
    profile = load_profile(str(write_profile(tmp_path, "custom", text)))
    assert profile.error_text(0x3D) == "нижний регистр"
    assert profile.error_text(0x1A, tag=1212) == "с тегом"


def test_defaults_follow_the_ffd_version(tmp_path: Path) -> None:
    # Without explicit drive quirks, the FN spec §14.2 defaults apply per FFD version.
    text = shipped_text("modulkassa-ffd12")
    for key in ("protocol", "max_frame_data", "ofd_block_code", "memory_warning_percent", "name"):
        text = edit(text, rf"^{key} = .*\n", "")
    profile = load_profile(str(write_profile(tmp_path, "minimal", text)))
    assert profile.name == "minimal"  # from the file name
    assert profile.drive.protocol == "fn-1.2"
    assert profile.drive.max_frame_data == 1536
    assert profile.drive.ofd_block_code == 0x14
    assert profile.drive.memory_warning_percent == 99


# -- invalid profiles -----------------------------------------------------------------------------

BROKEN = {
    "missing model": (r"^model = .*\n", "", "model: required"),
    "missing validity": (r"^validity_months = .*\n", "", "drive.validity_months: required"),
    "missing inn": (r"^inn = .*\n", "", "registration.inn: required"),
    "validity as string": (
        r"^validity_months = .*$",
        'validity_months = "15"',
        "drive.validity_months",
    ),
    "lifetime out of range": (r"^lifetime_days = .*$", "lifetime_days = 0", "drive.lifetime_days"),
    "agent as string": (r"^agent = .*$", 'agent = "no"', "registration.agent"),
    "poll interval negative": (
        r"^poll_interval_s = .*$",
        "poll_interval_s = -1",
        "poll_interval_s",
    ),
    "drive not a table": (r"^\[drive\]$", "drive = 1\n[drive_]", "drive"),
    "bad ffd version": (r"^ffd_version = .*$", 'ffd_version = "1.1"', "ffd_version"),
    "bad protocol": (r"^protocol = .*$", 'protocol = "fn-3000"', "drive.protocol"),
    "bad tax system": (
        r"^tax_systems = .*$",
        'tax_systems = ["osn", "barter"]',
        "registration.tax_systems",
    ),
    "empty tax systems": (r"^tax_systems = .*$", "tax_systems = []", "registration.tax_systems"),
    "bad ofd_block_code": (
        r"^ofd_block_code = .*$",
        "ofd_block_code = 0x16",
        "drive.ofd_block_code",
    ),
    "frame data too big": (
        r"^max_frame_data = .*$",
        "max_frame_data = 4096",
        "drive.max_frame_data",
    ),
    "no addresses": (
        r"^\[\[registration\.addresses\]\]\naddress = .*\nplace = .*\n",
        "",
        "registration.addresses",
    ),
    "address without place": (r"^place = .*\n", "", "registration.addresses[0].place"),
    "inn with a letter": (r"^inn = .*$", 'inn = "77022O3276"', "registration.inn"),
    "inn too short": (r"^inn = .*$", 'inn = "770220327"', "registration.inn"),
    "serial prefix not digits": (
        r"^serial_prefix = .*$",
        'serial_prefix = "99AB"',
        "drive.serial_prefix",
    ),
    "bad timing key": (r"^default = 0.01$", "default = 0.01\nslow = 1.0", "timing.slow"),
    "error text not a string": (r'^"12" = .*$', '"12" = 12', "errors.12"),
    "unknown tlv limit": (
        r"^max_items = .*$",
        "max_items = 100\ntlv_limits = { bogus = 1 }",
        "tlv_limits.bogus",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_profile_names_the_field(tmp_path: Path, case: str) -> None:
    pattern, replacement, field = BROKEN[case]
    path = write_profile(tmp_path, "broken", edit(shipped_text(), pattern, replacement))
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert field in message
    assert "broken.toml" in message


def test_not_toml(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "garbage", "this is = = not [toml\n")
    with pytest.raises(ConfigError, match=r"garbage\.toml: cannot read profile"):
        load_profile(str(path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(shipped_text().encode("utf-8").replace(b"\xd0\x9e", b"\xff", 1))
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile(str(path))


def test_broken_profile_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(tmp_path, "broken", edit(shipped_text(), r"^model = .*\n", ""))
    monkeypatch.setenv("KKT_PROFILES_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"broken\.toml\.model: required"):
        load_profile("broken")


# -- the search path ------------------------------------------------------------------------------


def test_kkt_profiles_dir_adds_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    text = edit(shipped_text(), r"^name = .*$", 'name = "custom"')
    write_profile(second, "custom", text)
    monkeypatch.setenv("KKT_PROFILES_DIR", f"{first}{os.pathsep}{second}")
    assert profile_dirs() == [first, second, BUILTIN_DIR]
    assert "custom" in list_profiles()
    assert set(SHIPPED) <= set(list_profiles())
    profile = load_profile("custom")
    assert profile.name == "custom"
    assert profile.source == second / "custom.toml"


def test_kkt_profiles_dir_overrides_builtins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = edit(shipped_text(), r"^description = .*$", 'description = "site-specific"')
    write_profile(tmp_path, "modulkassa-ffd105", text)
    monkeypatch.setenv("KKT_PROFILES_DIR", str(tmp_path))
    assert load_profile("modulkassa-ffd105").description == "site-specific"
    assert list_profiles().count("modulkassa-ffd105") == 1


def test_extra_dirs_come_before_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir, extra_dir = tmp_path / "env", tmp_path / "extra"
    env_dir.mkdir()
    extra_dir.mkdir()
    for directory in (env_dir, extra_dir):
        text = edit(shipped_text(), r"^description = .*$", f'description = "{directory.name}"')
        write_profile(directory, "site", text)
    monkeypatch.setenv("KKT_PROFILES_DIR", str(env_dir))
    assert load_profile("site", extra_dirs=[extra_dir]).description == "extra"
    assert load_profile("site").description == "env"


def test_missing_directories_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KKT_PROFILES_DIR", str(tmp_path / "nowhere"))
    assert set(SHIPPED) <= set(list_profiles())
    assert load_profile("modulkassa-ffd12").ffd_version == "1.2"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_profile("atol-30f")
    message = str(info.value)
    assert "atol-30f" in message
    for name in SHIPPED:
        assert name in message


def test_load_by_path(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "by-path", shipped_text("modulkassa-ffd12"))
    profile = load_profile(str(path))
    assert profile.source == path
    assert profile.ffd_version == "1.2"


def test_the_default_profile_is_shipped() -> None:
    assert DEFAULT_PROFILE in SHIPPED
    assert DEFAULT_PROFILE in list_profiles()
    assert load_profile(DEFAULT_PROFILE).name == DEFAULT_PROFILE


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_tax_systems_are_known_to_the_shared_list(name: str) -> None:
    keys = {system.profile_key for system in TaxSystem}
    assert set(load_profile(name).registration.tax_systems) <= keys
    assert keys <= set(PROFILE_KEYS)
