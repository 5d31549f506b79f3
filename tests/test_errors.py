"""The exception tree drawn in ``errors.py``'s docstring, and the structured fields."""

from __future__ import annotations

import enum
import importlib
import pkgutil
import re
from dataclasses import dataclass

import pytest

import kkt_emulator
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


@dataclass(frozen=True)
class Drawn:
    """One class as the docstring's tree draws it."""

    name: str
    parent: str | None
    module: str
    line: str


_ROW = re.compile(
    r"^    (?P<prefix>(?:[│ ]   )*(?:[├└]── )?)(?P<name>\w+)\s+(?P<module>[\w.]+)\s+\S"
)


def drawn_tree() -> list[Drawn]:
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    rows: list[Drawn] = []
    stack: list[str] = []
    for line in block.splitlines():
        match = _ROW.match(line)
        assert match, f"not a row of the tree: {line!r}"
        depth = len(match["prefix"]) // 4
        del stack[depth:]
        rows.append(Drawn(match["name"], stack[-1] if stack else None, match["module"], line))
        stack.append(match["name"])
    return rows


def every_emulator_error() -> dict[str, type[EmulatorError]]:
    for info in pkgutil.walk_packages(kkt_emulator.__path__, prefix="kkt_emulator."):
        if not info.name.endswith(".__main__"):  # running it would start the command line
            importlib.import_module(info.name)
    found: dict[str, type[EmulatorError]] = {}
    pending: list[type[EmulatorError]] = [EmulatorError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("kkt_emulator."):
            found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def test_the_tree_names_every_subclass_in_the_package() -> None:
    drawn = {row.name for row in drawn_tree()}
    missing = sorted(
        f"{cls.__module__}.{name}"
        for name, cls in every_emulator_error().items()
        if name not in drawn
    )
    assert not missing, f"add to the tree in errors.py's docstring: {missing}"


def test_every_name_in_the_tree_is_such_a_class() -> None:
    classes = every_emulator_error()
    unknown = [row.line.strip() for row in drawn_tree() if row.name not in classes]
    assert not unknown, f"drawn in errors.py's docstring but no EmulatorError: {unknown}"


def test_the_tree_draws_each_class_under_its_parent_and_module() -> None:
    classes = every_emulator_error()
    wrong = []
    for row in drawn_tree():
        cls = classes.get(row.name)
        if cls is None:
            continue  # reported by the test above
        parents = {base.__name__ for base in cls.__bases__}
        if row.parent is not None and row.parent not in parents:
            wrong.append(f"{row.name}: drawn under {row.parent}, derives from {sorted(parents)}")
        if f"kkt_emulator.{row.module}" != cls.__module__:
            wrong.append(f"{row.name}: drawn in {row.module}, defined in {cls.__module__}")
    assert not wrong, "fix the tree in errors.py's docstring:\n" + "\n".join(wrong)


def test_the_tree_has_one_root() -> None:
    rows = drawn_tree()
    assert [row.name for row in rows if row.parent is None] == ["EmulatorError"]
    assert len({row.name for row in rows}) == len(rows)
