"""The exception tree of kkt_emulator.

Every error the project raises on purpose derives from :class:`EmulatorError`; foreign exceptions
(sqlite3, construct, httpx, OSError …) are translated once, at the boundary where they occur, with
``raise … from``::

    EmulatorError
    ├── TransportError        a byte pipe failed (closed, timed out, device gone)
    ├── FramingError          bytes are not a valid drive frame (bad start, length, CRC)
    ├── DriveError(code)      the fiscal drive (ФН) refused a command with a result code
    ├── ValidationError(field, reason)
    │                         a document, TLV or argument is malformed
    ├── CloudError(status)    the cloud answered with an HTTP error
    └── ConfigError           bad configuration: profile, settings, command-line flags
"""

from __future__ import annotations


class EmulatorError(Exception):
    """Base of every error raised by kkt_emulator."""


class TransportError(EmulatorError):
    """A byte pipe failed: closed, timed out, or the device disappeared."""


class FramingError(EmulatorError):
    """Bytes that do not form a valid drive frame (start byte, length, CRC)."""


class DriveError(EmulatorError):
    """The fiscal drive refused a command.

    Attributes:
        code: the drive result code (an ``int`` value of ``fn.codes.ResultCode``).
        data: the answer data that goes with the code (for example the Uint16 tag of 0Bh/0Ch/3Ch,
            or the reject reason of 20h).
        detail: a human-readable explanation for logs; never sent on the wire.
    """

    def __init__(self, code: int, data: bytes = b"", detail: str = "") -> None:
        self.code = int(code)
        self.data = bytes(data)
        self.detail = detail
        message = f"drive answered {self.code:02X}h"
        if detail:
            message += f": {detail}"
        super().__init__(message)


class ValidationError(EmulatorError):
    """A document, TLV or argument is malformed.

    Attributes:
        field: the offending field (a JSON path, a tag number, an argument name).
        reason: why it is wrong, in one sentence.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class CloudError(EmulatorError):
    """The cloud answered with an HTTP error.

    Attributes:
        status: the HTTP status code.
        message: the server's message, if any.
    """

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")


class ConfigError(EmulatorError):
    """Bad configuration: an unknown profile, an invalid setting or command-line flag."""
