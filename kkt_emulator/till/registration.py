"""Registering a drive the way the till's firmware does: the registration TLVs and parameters.

The INN comes from the profile, the RNM is the 16-digit registration number with valid check
digits for this till's serial (FFD §16), the mode byte carries the internet and automatic flags,
and the TLVs include the places of settlement the profile registers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from kkt_emulator.fn.codes import Command
from kkt_emulator.fn.signing import make_rnm
from kkt_emulator.fn.tlv import tlv_byte, tlv_string
from kkt_emulator.profiles import FirmwareProfile, Registration

__all__ = ["RegistrationPlan", "registration_plan"]

MODE_AUTOMATIC = 0x04
MODE_INTERNET = 0x20
EXT_EXCISE = 0x01


@dataclass(frozen=True, slots=True)
class RegistrationPlan:
    """The commands of one registration: start command and fields, TLVs, finish command and fields."""

    start: int
    start_fields: dict[str, Any]
    tlv: bytes
    finish: int
    finish_fields: dict[str, Any]
    rnm: str


def registration_plan(
    profile: FirmwareProfile,
    kkt_serial: str,
    *,
    sequence: int = 1,
    report_type: int = 0,
    reason: int | None = None,
    tax_systems: int | None = None,
    agent: bool | None = None,
    excise: bool | None = None,
    internet: bool | None = None,
) -> RegistrationPlan:
    """Build the registration for ``profile`` on a till with factory number ``kkt_serial``.

    Keyword arguments override the profile's registration (tests register variants).
    ``finish_fields`` lacks ``when``: the caller adds the drive's local time at the last moment.
    """
    reg = profile.registration
    ffd12 = profile.ffd_version == "1.2"
    agent = reg.agent if agent is None else agent
    excise = reg.excise if excise is None else excise
    internet = reg.internet if internet is None else internet
    mask = reg.tax_mask if tax_systems is None else tax_systems
    mode = (MODE_INTERNET if internet else 0) | (MODE_AUTOMATIC if reg.automatic else 0)
    rnm = make_rnm(sequence, reg.inn, kkt_serial)
    before, after = _profile_tlvs(
        reg, profile.app_version, profile.ffd_code, agent=agent, excise=excise, ffd12=ffd12
    )
    tlv = before + tlv_string(1013, kkt_serial) + after
    if ffd12:
        fields: dict[str, Any] = {
            "inn": reg.inn,
            "rnm": rnm,
            "tax_systems": mask,
            "mode": mode,
            "ext_flags": EXT_EXCISE if excise else 0,
            "ofd_inn": reg.ofd_inn,
            "reason": reason if report_type else None,
        }
        return RegistrationPlan(
            Command.START_REGISTRATION_12,
            {"report_type": report_type, "ffd": 4},
            tlv,
            Command.FINISH_REGISTRATION_12,
            fields,
            rnm,
        )
    fields = {
        "inn": reg.inn,
        "rnm": rnm,
        "tax_systems": mask,
        "mode": mode,
        "reason": reason if report_type else None,
    }
    return RegistrationPlan(
        Command.START_REGISTRATION,
        {"report_type": report_type},
        tlv,
        Command.FINISH_REGISTRATION,
        fields,
        rnm,
    )


@functools.lru_cache(maxsize=64)
def _profile_tlvs(
    reg: Registration, app_version: str, ffd_code: int, *, agent: bool, excise: bool, ffd12: bool
) -> tuple[bytes, bytes]:
    """The registration's TLVs before and after the till's serial (1013).

    They are the same for every till of a profile, so a fleet starting encodes them once, not a
    thousand times.
    """
    place = reg.addresses[0]
    before = [
        tlv_string(1048, reg.user_name),
        tlv_string(1009, place.address),
        tlv_string(1187, place.place),
    ]
    after = [
        tlv_string(1046, reg.ofd_name),
        tlv_string(1060, reg.fns_site),
        tlv_string(1117, reg.sender_email),
        tlv_string(1021, "Администратор"),
        tlv_string(1188, app_version[:8]),
        tlv_byte(1189, ffd_code),
    ]
    if agent:
        after.append(tlv_byte(1057, 0x40))
    if not ffd12:
        after += [tlv_byte(1209, 2), tlv_string(1017, reg.ofd_inn.ljust(12))]
        if excise:
            after.append(tlv_byte(1207, 1))
    return b"".join(before), b"".join(after)
