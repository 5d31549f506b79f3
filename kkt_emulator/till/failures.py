"""How the till reports a failed document: the failure type and the exact text support sees.

Texts after «Сообщение ФН об ошибке: » come from the firmware profile's code table, so another
profile can show another vendor's wording; the till's own checks use their fixed texts
(``support-cases.md`` §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kkt_emulator.errors import DriveError
from kkt_emulator.fn.codes import ResultCode
from kkt_emulator.profiles import FirmwareProfile

__all__ = ["FN_PREFIX", "Failure", "drive_failure", "link_failure", "till_failure"]

FN_PREFIX = "Сообщение ФН об ошибке: "
DISCONNECTED = "Сетевой поток не инициализирован"


@dataclass(frozen=True, slots=True)
class Failure:
    """A document failure as the till reports it to the cloud."""

    type: str
    message: str
    result_code: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``failureInfo`` object plus the result code and detail of the till API."""
        return {"type": self.type, "message": self.message}


def _failure_type(code: int) -> str:
    if code in (
        ResultCode.STORAGE_EXHAUSTED,
        ResultCode.OFD_WAIT_EXHAUSTED,
        ResultCode.ARCHIVE_FULL,
    ):
        return "FN_MEMORY_OVERFLOW"
    if code == ResultCode.RESOURCE_EXHAUSTED:
        return "FN_EXPIRED"
    return "FN_GENERIC_FAILURE"


def drive_failure(
    exc: DriveError, profile: FirmwareProfile, detail: dict[str, Any] | None = None
) -> Failure:
    """A drive result code turned into the profile's text."""
    tag = int.from_bytes(exc.data[:2], "little") if len(exc.data) >= 2 else None
    text = profile.error_text(exc.code, tag)
    if text is None:
        try:
            text = ResultCode(exc.code).text(profile.drive.protocol)
        except ValueError:
            text = f"код {exc.code:02X}h"
    info = {
        "resultCode": f"{exc.code:02X}h",
        **({"tag": tag} if tag is not None else {}),
        **(detail or {}),
    }
    return Failure(_failure_type(exc.code), FN_PREFIX + text, exc.code, info)


def link_failure(profile: FirmwareProfile, reason: str) -> Failure:
    """The drive stopped answering (the «nask» host case, ``fn.disconnected``)."""
    text = profile.error_texts.get("disconnected", DISCONNECTED)
    return Failure("FN_GENERIC_FAILURE", FN_PREFIX + text, None, {"link": reason})


def till_failure(text: str, detail: dict[str, Any]) -> Failure:
    """A refusal by the till firmware's own checks (NON_FN_FAILURE)."""
    return Failure("NON_FN_FAILURE", FN_PREFIX + text, None, detail)
