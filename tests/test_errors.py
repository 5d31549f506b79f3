"""The exception tree drawn in ``errors.py``'s docstring, and the structured fields."""

from __future__ import annotations

import enum

import pytest

from kkt_emulator import errors
from kkt_emulator.errors import (
    CloudError,
    ConfigError,
    DriveError,
    EmulatorError,
    FramingError,
    TransportError,
    ValidationError,
)

BRANCHES = [TransportError, FramingError, DriveError, ValidationError, CloudError, ConfigError]


def test_emulator_error_is_an_exception() -> None:
    assert issubclass(EmulatorError, Exception)
    assert EmulatorError.__bases__ == (Exception,)


@pytest.mark.parametrize("cls", BRANCHES)
def test_every_branch_hangs_directly_off_emulator_error(cls: type[EmulatorError]) -> None:
    assert cls.__bases__ == (EmulatorError,)


def test_branches_are_unrelated() -> None:
    for cls in BRANCHES:
        for other in BRANCHES:
            if cls is not other:
                assert not issubclass(cls, other)


def test_the_docstring_draws_the_tree() -> None:
    doc = errors.__doc__ or ""
    for cls in [EmulatorError, *BRANCHES]:
        assert cls.__name__ in doc


def test_every_error_has_a_docstring() -> None:
    for cls in [EmulatorError, *BRANCHES]:
        assert cls.__doc__


def test_drive_error_fields_and_message() -> None:
    error = DriveError(0x14, b"\x0b\x04", "30-day OFD rule")
    assert error.code == 0x14
    assert error.data == b"\x0b\x04"
    assert error.detail == "30-day OFD rule"
    assert str(error) == "drive answered 14h: 30-day OFD rule"
    assert isinstance(error, EmulatorError)


class Code(enum.IntEnum):
    WRONG_STATE = 0x02


def test_drive_error_defaults_and_normalisation() -> None:
    error = DriveError(Code.WRONG_STATE)  # wire codes are IntEnum members
    assert error.code == 2
    assert type(error.code) is int  # stored plainly, so it compares and prints as a number
    assert error.data == b""
    assert error.detail == ""
    assert str(error) == "drive answered 02h"


def test_validation_error_fields_and_message() -> None:
    error = ValidationError("items[0].price", "must not be negative")
    assert error.field == "items[0].price"
    assert error.reason == "must not be negative"
    assert str(error) == "items[0].price: must not be negative"
    assert str(ValidationError("", "empty document")) == "empty document"


def test_cloud_error_fields_and_message() -> None:
    error = CloudError(409, "document already exists")
    assert error.status == 409
    assert error.message == "document already exists"
    assert str(error) == "HTTP 409: document already exists"
    bare = CloudError(503)
    assert bare.message == ""
    assert str(bare) == "HTTP 503"


def test_plain_errors_carry_a_message() -> None:
    assert str(TransportError("pipe closed")) == "pipe closed"
    assert str(FramingError("bad CRC")) == "bad CRC"
    assert str(ConfigError("unknown profile")) == "unknown profile"


@pytest.mark.parametrize(
    "error",
    [
        TransportError("closed"),
        FramingError("crc"),
        DriveError(0x02),
        ValidationError("f", "r"),
        CloudError(500),
        ConfigError("bad"),
    ],
)
def test_one_except_clause_catches_everything(error: EmulatorError) -> None:
    with pytest.raises(EmulatorError):
        raise error


def test_translation_keeps_the_cause() -> None:
    # Foreign errors are translated once, at the boundary, with ``raise … from``.
    def boundary() -> None:
        try:
            raise ConnectionResetError("peer reset")
        except OSError as exc:
            raise TransportError("the drive went away") from exc

    with pytest.raises(TransportError) as info:
        boundary()
    assert isinstance(info.value.__cause__, ConnectionResetError)
