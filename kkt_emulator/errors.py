"""The exception tree of kkt_emulator.

Every error the project raises on purpose derives from :class:`EmulatorError`; foreign exceptions
(sqlite3, construct, httpx, OSError …) are translated once, at the boundary where they occur, with
``raise … from``. The whole tree follows, each class with the module under ``kkt_emulator`` that
defines it and one line on what it means. ``tests/test_errors.py`` imports every module of the
package and fails when a subclass is missing here, is drawn under the wrong parent or module, or
when a name here is no such class::

    EmulatorError                  errors           base of every error of kkt_emulator
    ├── TransportError             errors           a byte pipe failed: closed, timed out
    │   └── _StaleConnectionError  till.ofd_sender  a kept OFD connection died before its answer
    ├── FramingError               errors           bytes are not a valid drive frame
    ├── DriveError                 errors           the drive (ФН) refused: code, data
    ├── ValidationError            errors           a document, TLV or argument is bad
    │   ├── TlvError               fn.tlv           bytes are not a TLV list
    │   ├── LocalRefusalError      fnio.client      the client refused before the drive saw it
    │   └── TillCheckError         till.receipts    the firmware's own checks failed a document
    ├── CloudError                 errors           the cloud answered an HTTP error
    │   └── ServiceApiError        errors           an orders/back-office API refusal (O3 body)
    ├── ConfigError                errors           bad profile, setting or CLI flag
    ├── StorageError               cloud.db         the cloud database failed
    ├── IllegalTransitionError     cloud.lifecycle  the lifecycle table forbids it
    │   └── AlreadyFiscalisedError cloud.lifecycle  success for a fiscalised doc (D36)
    ├── CommandError               control.topics   a control-plane command refused
    ├── ScenarioCheckError         app.scenarios.run a scenario saw what its case does not say
    ├── ChaosStartError            app.chaos.procs  a chaos-run process would not start
    ├── BenchStartError            app.bench_suite  a benchmark process would not start
    ├── WorkerError                app.workers      a worker of ``up --workers`` would not start
    └── SimulatedCrash             till.context     a ``till.crash`` fault point hit

Structured fields: ``DriveError(code, data, detail)``, ``ValidationError(field, reason)`` and
``CloudError(status, message)`` are defined below; the others document their own attributes.
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


class ServiceApiError(CloudError):
    """A refusal of the orders or back-office API, answered with the Spring-style body (O3).

    Attributes:
        errors: the field errors of a 400 (``defaultMessage, rejectedValue, code, objectName,
            field``), empty for other statuses.
    """

    def __init__(
        self, status: int, message: str, errors: list[dict[str, object]] | None = None
    ) -> None:
        super().__init__(status, message)
        self.errors = list(errors or ())


class ConfigError(EmulatorError):
    """Bad configuration: an unknown profile, an invalid setting or command-line flag."""
