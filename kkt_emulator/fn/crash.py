"""A bug inside the drive, recorded where it can be seen.

A real drive that fails internally answers 03h «Отказ ФН» and goes on answering; the emulator does
the same (:class:`~kkt_emulator.fn.endpoint.DriveEndpoint`), but keeps what happened in a
:class:`DriveCrash` so that the pump can log it with its traceback and the till can show it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["DriveCrash"]


@dataclass(frozen=True, slots=True)
class DriveCrash:
    """One unexpected exception raised while the drive ran a command.

    Attributes:
        when: business time of the command.
        command: the command code.
        exc_type: the exception's class name.
        message: ``str()`` of the exception.
        traceback: the formatted traceback.
    """

    when: datetime
    command: int
    exc_type: str
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, exc: BaseException, command: int, when: datetime) -> DriveCrash:
        """Record ``exc``, raised while the drive ran ``command`` at business time ``when``."""
        return cls(
            when=when,
            command=command,
            exc_type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (the till's state shows the last crash)."""
        return {
            "when": self.when.isoformat(),
            "command": f"{self.command:02X}h",
            "exc_type": self.exc_type,
            "message": self.message,
            "traceback": self.traceback,
        }
