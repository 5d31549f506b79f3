"""structlog setup: JSON lines for machines, a console for people, errors for bad settings."""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING

import pytest
import structlog

from kkt_emulator.errors import ConfigError
from kkt_emulator.logging import configure_logging, get_logger

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures logging globally; put structlog and the root logger back after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # Start from an unconfigured root, as a fresh process would (pytest adds its own handlers).
    root.handlers.clear()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = stream.getvalue().splitlines()
    assert lines
    return [json.loads(line) for line in lines]


def test_json_emits_one_object_per_line_with_bound_context() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    log = get_logger(device_id="till-1", fn_serial="9999078900012345")
    log.info("receipt_fiscalized", doc_id="doc-7", fd=42)
    log.bind(doc_id="doc-8").warning(
        "receipt_failed", code=0x14, text="Исчерпан ресурс хранения ФН"
    )
    first, second = json_lines(stream)
    assert first["event"] == "receipt_fiscalized"
    assert first["level"] == "info"
    assert first["device_id"] == "till-1"
    assert first["fn_serial"] == "9999078900012345"
    assert first["doc_id"] == "doc-7"
    assert first["fd"] == 42
    assert isinstance(first["timestamp"], str)
    assert first["timestamp"].endswith("Z")
    assert second["doc_id"] == "doc-8"
    assert second["level"] == "warning"
    assert second["text"] == "Исчерпан ресурс хранения ФН"  # readable, not \u-escaped
    assert "Исчерпан" in stream.getvalue()


def test_json_keeps_context_variables() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    structlog.contextvars.bind_contextvars(doc_id="doc-9")
    get_logger(device_id="till-2").info("lease_taken")
    (line,) = json_lines(stream)
    assert line["doc_id"] == "doc-9"
    assert line["device_id"] == "till-2"


def test_json_renders_exceptions_on_one_line() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        raise ValueError("boom")  # noqa: TRY301 - an exception to log
    except ValueError:
        get_logger().exception("drive_crashed")
    (line,) = json_lines(stream)
    assert line["event"] == "drive_crashed"
    assert "ValueError: boom" in str(line["exception"])


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("json", level="warning", stream=stream)
    log = get_logger()
    log.debug("noise")
    log.info("chatter")
    log.warning("kept")
    log.error("also_kept")
    assert [line["event"] for line in json_lines(stream)] == ["kept", "also_kept"]


def test_debug_level_lets_everything_through() -> None:
    stream = io.StringIO()
    configure_logging("json", level="DEBUG", stream=stream)
    get_logger().debug("frame_sent", hex="04010030ffcd")
    assert json_lines(stream)[0]["event"] == "frame_sent"


def test_standard_library_loggers_are_json_too() -> None:
    # uvicorn, httpx, aiomqtt and asyncio log through the standard library: in JSON mode their
    # lines must be JSON as well, or a log shipper chokes on them.
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
    logging.getLogger("httpx").debug("filtered by level")
    (line,) = json_lines(stream)
    assert line["event"] == "Started server process [42]"
    assert line["level"] == "warning"
    assert line["logger"] == "uvicorn.error"


def test_reconfiguring_switches_the_stream() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", stream=first)
    configure_logging("json", stream=second)
    get_logger().info("structlog_line")
    logging.getLogger("lib").warning("stdlib_line")
    assert first.getvalue() == ""
    assert [line["event"] for line in json_lines(second)] == ["structlog_line", "stdlib_line"]


def test_console_format_is_for_people() -> None:
    stream = io.StringIO()
    configure_logging("console", stream=stream)
    get_logger(device_id="till-1").info("shift_opened", shift=3)
    output = stream.getvalue()
    assert "shift_opened" in output
    assert "device_id=till-1" in output
    assert "shift=3" in output
    assert "\x1b[" not in output  # no colours when the stream is not a terminal
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_auto_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("auto", stream=stream)
    get_logger().info("started")
    assert json_lines(stream)[0]["event"] == "started"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_console_on_a_terminal() -> None:
    stream = Terminal()
    configure_logging("auto", stream=stream)
    get_logger().info("started")
    assert "started" in stream.getvalue()
    with pytest.raises(json.JSONDecodeError):
        json.loads(stream.getvalue().splitlines()[0])


@pytest.mark.parametrize("fmt", ["xml", "JSON", ""])
def test_bad_format_is_a_config_error(fmt: str) -> None:
    with pytest.raises(ConfigError, match="log format"):
        configure_logging(fmt, stream=io.StringIO())


@pytest.mark.parametrize("level", ["loud", "", "5"])
def test_bad_level_is_a_config_error(level: str) -> None:
    with pytest.raises(ConfigError, match="log level"):
        configure_logging("json", level=level, stream=io.StringIO())


def test_a_named_logger_says_which_module_wrote_the_line() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    get_logger(__name__, device_id="till-1").info("till_started")
    get_logger().info("unnamed")
    first, second = json_lines(stream)
    assert first["module"] == __name__
    assert first["device_id"] == "till-1"
    assert "module" not in second


def test_a_logger_made_before_configuration_follows_it() -> None:
    early = get_logger("made.at.import", component="ofd")
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    early.info("first_line")
    early.bind(fn_serial="9999078900012345").info("second_line")
    first, second = json_lines(stream)
    assert first["event"] == "first_line"
    assert first["module"] == "made.at.import"
    assert first["component"] == "ofd"
    assert second["fn_serial"] == "9999078900012345"
