"""Firmware profiles: everything that differs between till models, drive models and FFD versions.

A profile is data (``firmware_profiles/*.toml`` at the top of the project, shipped inside the
package); no profile name appears in code. The loader validates every field and raises :class:`~kkt_emulator.errors.ConfigError` with the file and
the field on bad input. Extra directories can be searched with ``KKT_PROFILES_DIR`` (``os.pathsep``
separated) or the ``extra_dirs`` argument.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.config import (
    TLV_LIMITS,  # the TLV-volume table lives with the drive (FN spec §9)
)
from kkt_emulator.fn.signing import DEFAULT_SIGNING_SEED
from kkt_emulator.taxes import PROFILE_KEYS

__all__ = [
    "DEFAULT_PROFILE",
    "TAX_SYSTEM_BITS",
    "TLV_LIMITS",
    "Address",
    "DriveModel",
    "FirmwareProfile",
    "Quirks",
    "Registration",
    "list_profiles",
    "load_profile",
    "profile_dirs",
]

FfdVersion = Literal["1.05", "1.2"]

DEFAULT_PROFILE = "modulkassa-ffd12"
"""The profile a till, a drive or an installation gets when none is named (FFD 1.2 with ФН-1.2)."""

# Tax-system bit mask of 03h/A3h and tags 1062/1055 (docs/fn-protocol.md §6.3), by profile key.
TAX_SYSTEM_BITS: dict[str, int] = {key: system.bit for key, system in PROFILE_KEYS.items()}


def _builtin_dir() -> Path:
    """The shipped profiles: inside an installed package, or the checkout's top-level folder."""
    here = Path(__file__).resolve().parent
    installed = here / "firmware_profiles"
    return installed if installed.is_dir() else here.parent / "firmware_profiles"


BUILTIN_DIR = _builtin_dir()

# [errors] keys: a hex result code, optionally refined by a tag ("3C", "19/1055"), matched without
# regard to case; any other key ("disconnected") names a firmware text and is kept as written.
_ERROR_CODE_KEY = re.compile(r"[0-9a-fA-F]{2}(/[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Address:
    """One registered place of settlement: address (1009) and place (1187)."""

    address: str
    place: str


@dataclass(frozen=True, slots=True)
class DriveModel:
    """The fiscal drive (ФН) model a profile ships with."""

    name: str
    protocol: Literal["fn-2016", "fn-1.2"]
    serial_prefix: str
    validity_months: int
    lifetime_days: int
    document_capacity: int
    ofd_storage_kb: int
    max_frame_data: int
    ofd_block_code: int
    memory_warning_percent: int
    firmware_version: str
    debug_firmware: bool
    max_items: int
    tlv_limits: dict[str, int]
    seed: str


@dataclass(frozen=True, slots=True)
class Registration:
    """What a till of this profile is registered with (the registration report's data)."""

    inn: str
    user_name: str
    tax_systems: tuple[str, ...]
    agent: bool
    excise: bool
    internet: bool
    automatic: bool
    addresses: tuple[Address, ...]
    ofd_inn: str
    ofd_name: str
    fns_site: str
    sender_email: str
    cashier: str
    cashier_inn: str

    @property
    def tax_mask(self) -> int:
        """The tax-system bit mask for 03h/A3h and tag 1062."""
        mask = 0
        for name in self.tax_systems:
            mask |= TAX_SYSTEM_BITS[name]
        return mask


@dataclass(frozen=True, slots=True)
class Quirks:
    """Behaviour knobs that differ between firmware generations."""

    ofd_backlog_threshold: int
    ofd_backlog_slowdown_s: float


@dataclass(frozen=True, slots=True)
class FirmwareProfile:
    """A till model with its firmware, drive model, registration and wording of errors."""

    name: str
    description: str
    model: str
    kkt_serial_prefix: str
    app_version: str
    ffd_version: FfdVersion
    poll_interval_s: float
    drive: DriveModel
    registration: Registration
    quirks: Quirks
    timing: dict[int, float] = field(default_factory=dict)
    error_texts: dict[str, str] = field(default_factory=dict)
    source: Path | None = None

    @property
    def ffd_code(self) -> int:
        """Tag 1209 / 3Ah coding of the FFD version: 2 = 1.05, 4 = 1.2."""
        return 2 if self.ffd_version == "1.05" else 4

    def command_delay(self, command: int) -> float:
        """Seconds a real drive takes for ``command`` in ``realistic`` timing mode."""
        return self.timing.get(command, self.timing.get(-1, 0.0))

    def error_text(self, code: int, tag: int | None = None) -> str | None:
        """The firmware's text for drive result ``code`` (optionally refined by the answer's tag)."""
        if tag is not None:
            text = self.error_texts.get(f"{code:02X}/{tag}")
            if text is not None:
                return text
        return self.error_texts.get(f"{code:02X}")


def profile_dirs(extra_dirs: list[Path] | None = None) -> list[Path]:
    """Directories searched for profiles, first match wins."""
    dirs = list(extra_dirs or [])
    env = os.environ.get("KKT_PROFILES_DIR", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(BUILTIN_DIR)
    return dirs


def list_profiles(extra_dirs: list[Path] | None = None) -> list[str]:
    """Names of every profile found, sorted."""
    names: set[str] = set()
    for directory in profile_dirs(extra_dirs):
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str, extra_dirs: list[Path] | None = None) -> FirmwareProfile:
    """Load a profile by name (searched in :func:`profile_dirs`) or by path to a TOML file.

    Raises:
        ConfigError: no such profile, or the file is invalid (the message names file and field).
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" and candidate.is_file():
        path = candidate
    else:
        for directory in profile_dirs(extra_dirs):
            path = directory / f"{name_or_path}.toml"
            if path.is_file():
                break
        else:
            known = ", ".join(list_profiles(extra_dirs)) or "none"
            raise ConfigError(f"unknown firmware profile {name_or_path!r} (known: {known})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read profile: {exc}") from exc
    return _parse(data, path)


class _Reader:
    """Typed access to one TOML table with precise error messages."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _get(self, key: str, default: object) -> object:
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise ConfigError(f"{self.where}.{key}: required")
        return default

    def str_(self, key: str, default: object = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.where}.{key}: expected a string")
        return value

    def int_(self, key: str, default: object = None, lo: int = 0, hi: int = 2**31) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ConfigError(f"{self.where}.{key}: expected an integer in {lo}..{hi}")
        return value

    def float_(self, key: str, default: object = None) -> float:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{self.where}.{key}: expected a non-negative number")
        return float(value)

    def bool_(self, key: str, default: object = None) -> bool:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key}: expected true or false")
        return value

    def table(self, key: str) -> _Reader:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where}.{key}: expected a table")
        return _Reader(value, f"{self.where}.{key}")


_REQUIRED = object()


def _cp866(value: str, where: str) -> str:
    """Texts that end up in drive TLVs must be encodable in CP866 (FN spec §10.2)."""
    try:
        value.encode("cp866")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise ConfigError(
            f"{where}: character {bad!r} has no CP866 code (use plain quotes)"
        ) from exc
    return value


def _digits(value: str, where: str, lengths: tuple[int, ...]) -> str:
    if not value.isdigit() or len(value) not in lengths:
        raise ConfigError(f"{where}: expected {' or '.join(map(str, lengths))} digits")
    return value


def _parse(data: dict[str, Any], path: Path) -> FirmwareProfile:
    where = path.name
    top = _Reader(data, where)
    ffd = top.str_("ffd_version")
    if ffd not in ("1.05", "1.2"):
        raise ConfigError(f"{where}.ffd_version: expected '1.05' or '1.2'")

    d = top.table("drive")
    protocol = d.str_("protocol", "fn-1.2" if ffd == "1.2" else "fn-2016")
    if protocol not in TLV_LIMITS:
        raise ConfigError(f"{d.where}.protocol: expected 'fn-2016' or 'fn-1.2'")
    max_data = d.int_("max_frame_data", 1536 if protocol == "fn-1.2" else 1024, 256, 1536)
    block = d.int_("ofd_block_code", 0x14 if ffd == "1.2" else 0x15, 0, 255)
    if block not in (0x14, 0x15):
        raise ConfigError(f"{d.where}.ofd_block_code: expected 0x14 or 0x15")
    serial_prefix = d.str_("serial_prefix")
    if not serial_prefix.isdigit() or len(serial_prefix) > 12:
        raise ConfigError(f"{d.where}.serial_prefix: expected up to 12 digits")
    limits = dict(TLV_LIMITS[protocol])
    for key, value in d.table("tlv_limits").data.items():
        if key not in limits or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{d.where}.tlv_limits.{key}: unknown kind or bad size")
        limits[key] = value
    drive = DriveModel(
        name=d.str_("name"),
        protocol=protocol,  # type: ignore[arg-type]  # checked against TLV_LIMITS above
        serial_prefix=serial_prefix,
        validity_months=d.int_("validity_months", None, 1, 120),
        lifetime_days=d.int_("lifetime_days", None, 1, 5000),
        document_capacity=d.int_("document_capacity", 250_000, 10, 10_000_000),
        ofd_storage_kb=d.int_("ofd_storage_kb", 1024, 1, 1 << 20),
        max_frame_data=max_data,
        ofd_block_code=block,
        memory_warning_percent=d.int_("memory_warning_percent", 99 if ffd == "1.2" else 90, 1, 100),
        firmware_version=d.str_("firmware_version", "fn-emu 1.0"),
        debug_firmware=d.bool_("debug_firmware", default=True),
        max_items=d.int_("max_items", 100, 1, 10_000),
        tlv_limits=limits,
        seed=d.str_("seed", DEFAULT_SIGNING_SEED),
    )

    r = top.table("registration")
    taxes = r.data.get("tax_systems", ["osn"])
    if not isinstance(taxes, list) or not taxes or any(t not in TAX_SYSTEM_BITS for t in taxes):
        raise ConfigError(
            f"{r.where}.tax_systems: expected a non-empty list of {', '.join(TAX_SYSTEM_BITS)}"
        )
    raw_addresses = r.data.get("addresses", [])
    if not isinstance(raw_addresses, list) or not raw_addresses:
        raise ConfigError(f"{r.where}.addresses: expected at least one [[registration.addresses]]")
    addresses: list[Address] = []
    for i, item in enumerate(raw_addresses):
        if not isinstance(item, dict):
            raise ConfigError(f"{r.where}.addresses[{i}]: expected a table")
        a = _Reader(item, f"{r.where}.addresses[{i}]")
        addresses.append(
            Address(
                address=_cp866(a.str_("address"), f"{a.where}.address"),
                place=_cp866(a.str_("place"), f"{a.where}.place"),
            )
        )
    registration = Registration(
        inn=_digits(r.str_("inn"), f"{r.where}.inn", (10, 12)),
        user_name=_cp866(r.str_("user_name"), f"{r.where}.user_name"),
        tax_systems=tuple(taxes),
        agent=r.bool_("agent", default=False),
        excise=r.bool_("excise", default=False),
        internet=r.bool_("internet", default=True),
        automatic=r.bool_("automatic", default=False),
        addresses=tuple(addresses),
        ofd_inn=_digits(r.str_("ofd_inn"), f"{r.where}.ofd_inn", (10, 12)),
        ofd_name=_cp866(r.str_("ofd_name"), f"{r.where}.ofd_name"),
        fns_site=r.str_("fns_site", "www.nalog.gov.ru"),
        sender_email=r.str_("sender_email", "noreply@example.com"),
        cashier=_cp866(r.str_("cashier", "Интернет-магазин"), f"{r.where}.cashier"),
        cashier_inn=r.str_("cashier_inn", ""),
    )

    q = top.table("quirks")
    quirks = Quirks(
        ofd_backlog_threshold=q.int_("ofd_backlog_threshold", 700, 1, 10_000_000),
        ofd_backlog_slowdown_s=q.float_("ofd_backlog_slowdown_s", 2.0),
    )

    timing: dict[int, float] = {}
    for key, value in top.table("timing").data.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where}.timing.{key}: expected seconds")
        try:
            command = -1 if key == "default" else int(key, 16)
        except ValueError as exc:
            raise ConfigError(f"{where}.timing.{key}: expected 'default' or a hex code") from exc
        timing[command] = float(value)

    texts: dict[str, str] = {}
    for key, value in top.table("errors").data.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}.errors.{key}: expected a string")
        texts[key.upper() if _ERROR_CODE_KEY.fullmatch(key) else key] = value

    return FirmwareProfile(
        name=top.str_("name", path.stem),
        description=top.str_("description", ""),
        model=top.str_("model"),
        kkt_serial_prefix=_digits(
            top.str_("kkt_serial_prefix"), f"{where}.kkt_serial_prefix", tuple(range(1, 13))
        ),
        app_version=top.str_("app_version", "2.0"),
        ffd_version=ffd,  # type: ignore[arg-type]  # checked above
        poll_interval_s=top.float_("poll_interval_s", 5.0),
        drive=drive,
        registration=registration,
        quirks=quirks,
        timing=timing,
        error_texts=texts,
        source=path,
    )
