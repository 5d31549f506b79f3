"""structlog setup: a readable console for people at a TTY, JSON lines for machines.

Each module takes its logger by name; bind ``device_id`` and ``fn_serial`` once per till and
``doc_id`` per document::

    log = get_logger(__name__).bind(device_id=device_id, fn_serial=serial)
    log.info("receipt_fiscalized", doc_id=doc_id, fd=42)
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO, cast

import structlog

from kkt_emulator.errors import ConfigError

__all__ = ["LogFormat", "configure_logging", "get_logger"]

LogFormat = Literal["auto", "console", "json"]

_HANDLER_NAME = "kkt_emulator"


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's root logger.

    Args:
        fmt: ``console`` (coloured, for people), ``json`` (one object per line) or ``auto``
            (console on a TTY, JSON otherwise).
        level: minimum level name (``debug``, ``info``, ``warning``, ``error``).
        stream: where to write; standard error by default.

    Raises:
        ConfigError: unknown format or level.
    """
    out: TextIO = stream if stream is not None else cast("TextIO", _CurrentStderr())
    if fmt not in ("auto", "console", "json"):
        raise ConfigError(f"unknown log format {fmt!r}: use auto, console or json")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"unknown log level {level!r}")
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (uvicorn, httpx, aiomqtt, asyncio) log through the standard library: render their
    # records with the same renderer, so a JSON stream holds nothing but JSON lines. Our handler
    # replaces the one a previous call installed, so reconfiguring switches streams.
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # uvicorn configures its loggers with handlers of its own and no propagation when it runs with
    # its default log config; hand them back to the root handler so every line has one format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing.

    A logger configured with the stream object itself keeps writing to it after it was replaced
    (and perhaps closed), which breaks every later log line in a process that swaps stderr.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def get_logger(
    name: str | None = None, /, **initial: object
) -> structlog.typing.FilteringBoundLogger:
    """Return a logger with ``initial`` context.

    Args:
        name: the module asking (``get_logger(__name__)``), bound as ``module`` so every line says
            where it came from (``logger`` cannot be an initial value of structlog's lazy proxy:
            it is the name of ``wrap_logger``'s first parameter).
        initial: context bound once (``device_id=…``, ``fn_serial=…``, ``component=…``).

    A named logger stays lazy until it is bound: hot paths bind it once at run time
    (``log.bind(device_id=…)``) and log through the result.
    """
    if name is not None:
        # A module's logger is made at import, before configure_logging runs: structlog's lazy
        # proxy assembles it from the configuration of each call's moment. Unnamed loggers are
        # made at run time, so they are bound now, which makes a filtered-out call ~30× cheaper.
        lazy: structlog.typing.FilteringBoundLogger = structlog.get_logger(module=name, **initial)
        return lazy
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind(**initial)
    return logger
