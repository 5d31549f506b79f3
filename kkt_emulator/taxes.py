"""The tax systems (СНО): one list for the store API, the till firmware and the firmware profiles.

The store API names them in upper case (``taxMode``), the drive stores them as a bit mask (tag 1062
of the registration, 1055 of a receipt; ``docs/fn-protocol.md`` §6.3) and a firmware profile lists
the registered ones under short keys (``osn``, ``usn_income`` …).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["PROFILE_KEYS", "TAX_SYSTEMS", "TaxSystem"]


class TaxSystem(StrEnum):
    """A tax system by its store-API name; :attr:`bit` is its bit in tags 1062 and 1055."""

    COMMON = "COMMON"  # ОСН
    SIMPLIFIED = "SIMPLIFIED"  # УСН доход
    SIMPLIFIED_WITH_EXPENSE = "SIMPLIFIED_WITH_EXPENSE"  # УСН доход − расход
    ENVD = "ENVD"  # ЕНВД
    COMMON_AGRICULTURAL = "COMMON_AGRICULTURAL"  # ЕСХН
    PATENT = "PATENT"  # ПСН

    @property
    def bit(self) -> int:
        """The bit of this system in the drive's tax-system mask."""
        return _BITS[self]

    @property
    def profile_key(self) -> str:
        """The key a firmware profile's ``[registration] tax_systems`` list uses."""
        return _PROFILE_KEY[self]


_BITS: Final = {
    TaxSystem.COMMON: 0x01,
    TaxSystem.SIMPLIFIED: 0x02,
    TaxSystem.SIMPLIFIED_WITH_EXPENSE: 0x04,
    TaxSystem.ENVD: 0x08,
    TaxSystem.COMMON_AGRICULTURAL: 0x10,
    TaxSystem.PATENT: 0x20,
}
_PROFILE_KEY: Final = {
    TaxSystem.COMMON: "osn",
    TaxSystem.SIMPLIFIED: "usn_income",
    TaxSystem.SIMPLIFIED_WITH_EXPENSE: "usn_income_outcome",
    TaxSystem.ENVD: "envd",
    TaxSystem.COMMON_AGRICULTURAL: "esn",
    TaxSystem.PATENT: "patent",
}

TAX_SYSTEMS: Final = tuple(str(t) for t in TaxSystem)
"""The store-API names, in the order of their bits."""

PROFILE_KEYS: Final = {t.profile_key: t for t in TaxSystem}
"""A firmware profile's key → the tax system."""
