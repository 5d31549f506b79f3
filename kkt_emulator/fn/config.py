"""What a drive is: its serial number, model limits and firmware quirks, and the TLV-volume table.

The drive core never imports the firmware-profile loader: :class:`DriveConfig.from_profile`
accepts anything shaped like a profile (:class:`DriveProfile`, a structural ``Protocol``), which
:class:`kkt_emulator.profiles.FirmwareProfile` satisfies without either side naming the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.fn.signing import DEFAULT_SIGNING_SEED

__all__ = ["TLV_LIMITS", "DriveConfig", "DriveModelLike", "DriveProfile"]

# TLV volume per document kind sent through 07h (fn-protocol.md §9), by drive protocol generation.
TLV_LIMITS: dict[str, dict[str, int]] = {
    "fn-2016": {
        "registration": 2048,
        "close_fn": 2048,
        "open_shift": 1024,
        "close_shift": 1024,
        "receipt": 30720,
        "correction": 30720,
        "report": 2048,
    },
    "fn-1.2": {
        "registration": 6144,
        "close_fn": 4096,
        "open_shift": 4096,
        "close_shift": 1024,
        "receipt": 30720,
        "correction": 30720,
        "report": 2048,
    },
}


class DriveModelLike(Protocol):
    """The drive-model fields of a firmware profile that the drive reads."""

    @property
    def protocol(self) -> str:
        """The drive generation: ``fn-1.2`` or ``fn-2016``."""

    @property
    def max_frame_data(self) -> int:
        """Largest data field of a frame, bytes."""

    @property
    def lifetime_days(self) -> int:
        """Days from registration to expiry."""

    @property
    def document_capacity(self) -> int:
        """Documents the archive holds."""

    @property
    def ofd_storage_kb(self) -> int:
        """Size of the 30-day OFD storage, KiB."""

    @property
    def ofd_block_code(self) -> int:
        """The result code of the 30-day OFD block (14h or 15h)."""

    @property
    def memory_warning_percent(self) -> int:
        """Archive fill level that raises the memory warning."""

    @property
    def max_items(self) -> int:
        """Items a receipt may hold."""

    @property
    def tlv_limits(self) -> Mapping[str, int]:
        """TLV volume per document kind."""

    @property
    def firmware_version(self) -> str:
        """The 33h version string."""

    @property
    def debug_firmware(self) -> bool:
        """Debug (МГМ) firmware, which admits 60h."""

    @property
    def seed(self) -> str:
        """Seed of the drive's signing secret."""


class DriveProfile(Protocol):
    """Anything with a :class:`DriveModelLike` ``drive``: a firmware profile, seen by the drive."""

    @property
    def drive(self) -> DriveModelLike:
        """The drive model."""


def _default_limits() -> dict[str, int]:
    return dict(TLV_LIMITS["fn-1.2"])


@dataclass(frozen=True, slots=True)
class DriveConfig:
    """What a drive is: serial number, model limits and firmware quirks (from a profile)."""

    serial: str
    protocol: str = "fn-1.2"
    max_data: int = 1536
    lifetime_days: int = 1110
    capacity: int = 250_000
    ofd_storage_bytes: int = 1024 * 1024
    ofd_block_code: int = ResultCode.STORAGE_EXHAUSTED
    memory_warning_percent: int = 99
    max_items: int = 100
    tlv_limits: dict[str, int] = field(default_factory=_default_limits)
    firmware_version: str = "fn-emu 1.2.0"
    debug_firmware: bool = True
    seed: str = DEFAULT_SIGNING_SEED
    utc_offset: timedelta = timedelta(hours=3)
    check_timer: bool = True

    def __post_init__(self) -> None:
        """Check the serial number.

        Raises:
            ValidationError: the serial is not 16 digits.
        """
        if len(self.serial) != 16 or not self.serial.isdigit():
            raise ValidationError("serial", f"a drive serial is 16 digits, got {self.serial!r}")

    @property
    def ffd_max(self) -> int:
        """The highest FFD the drive supports (3Ah): 4 for ФН-1.2, 1 for ФН-2016 drives."""
        return 4 if self.protocol == "fn-1.2" else 1

    @classmethod
    def from_profile(cls, profile: DriveProfile, serial: str, **overrides: Any) -> DriveConfig:
        """A drive of the profile's model with the given serial number."""
        d = profile.drive
        values: dict[str, Any] = {
            "serial": serial,
            "protocol": d.protocol,
            "max_data": d.max_frame_data,
            "lifetime_days": d.lifetime_days,
            "capacity": d.document_capacity,
            "ofd_storage_bytes": d.ofd_storage_kb * 1024,
            "ofd_block_code": d.ofd_block_code,
            "memory_warning_percent": d.memory_warning_percent,
            "max_items": d.max_items,
            "tlv_limits": dict(d.tlv_limits),
            "firmware_version": d.firmware_version,
            "debug_firmware": d.debug_firmware,
            "seed": d.seed,
        }
        values.update(overrides)
        return cls(**values)
