"""The registry of pipe kinds: URLs, opening the dialing end, registering a new kind."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.transport import (
    BytePipe,
    PipeAddress,
    PipeKind,
    PipePair,
    PtyServer,
    memory_pipe_pair,
    open_pipe,
    pipe_kind,
    pipe_kinds,
    register_pipe_kind,
    tcp_serve,
)
from kkt_emulator.transport.registry import unregister_pipe_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GUARD_S = 20.0


@pytest.mark.parametrize(
    ("url", "scheme", "target", "options"),
    [
        ("tcp://127.0.0.1:7000", "tcp", "127.0.0.1:7000", {}),
        ("tcp://[::1]:7000", "tcp", "[::1]:7000", {}),
        ("serial:/dev/ttyUSB0?baudrate=9600", "serial", "/dev/ttyUSB0", {"baudrate": "9600"}),
        ("pty:///run/kkt/ttyFN0", "pty", "/run/kkt/ttyFN0", {}),
        ("/run/kkt/ttyFN0", "serial", "/run/kkt/ttyFN0", {}),
        ("COM3", "serial", "COM3", {}),
    ],
)
def test_addresses_parse(url: str, scheme: str, target: str, options: dict[str, str]) -> None:
    address = PipeAddress.parse(url)
    assert (address.scheme, address.target, dict(address.options)) == (scheme, target, options)
    assert address.url == url


def test_an_address_needs_a_target() -> None:
    with pytest.raises(ConfigError):
        PipeAddress.parse("tcp://")


def test_a_bad_integer_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="baudrate"):
        PipeAddress.parse("serial:/dev/ttyS0?baudrate=fast").option("baudrate", 115200)


async def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        await open_pipe("carrier-pigeon://loft")


async def test_memory_pipes_cannot_be_opened_by_url() -> None:
    assert pipe_kind("memory").open is None
    with pytest.raises(ConfigError):
        await open_pipe("memory://anything")


def test_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="memory"):
        pipe_kind("smoke-signals")


async def test_open_tcp_by_url() -> None:
    async def echo(pipe: BytePipe) -> None:
        await pipe.write(await pipe.read())

    server = await tcp_serve("127.0.0.1", 0, echo)
    port = server.sockets[0].getsockname()[1]
    try:
        pipe = await open_pipe(f"tcp://127.0.0.1:{port}", name="till")
        try:
            await pipe.write(b"ping")
            async with asyncio.timeout(GUARD_S):
                assert await pipe.read() == b"ping"
            assert pipe.name == "till"
        finally:
            await pipe.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_url_needs_a_port() -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        await open_pipe("tcp://localhost")


async def test_open_serial_by_url_and_by_bare_path() -> None:
    async with PtyServer() as server:
        for url in (f"serial:{server.path}?baudrate=9600", server.path):
            pipe = await open_pipe(url)
            try:
                await pipe.write(b"\x05")
                async with asyncio.timeout(GUARD_S):
                    assert await server.read() == b"\x05"
            finally:
                await pipe.close()


async def test_open_a_missing_serial_port_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        await open_pipe("serial:/nonexistent/ttyFN")


@contextlib.asynccontextmanager
async def _loop_pair() -> AsyncIterator[PipePair]:
    a, b = memory_pipe_pair(names=("loop-a", "loop-b"))
    try:
        yield PipePair("loop", a, b)
    finally:
        await a.close()
        await b.close()


async def test_a_registered_kind_is_listed_paired_and_removed() -> None:
    kind = register_pipe_kind(PipeKind("loop", "a test kind", _loop_pair))
    try:
        assert kind in pipe_kinds()
        assert pipe_kind("loop") is kind
        async with kind.pair() as pipes:
            await pipes.dialing.write(b"x")
            async with asyncio.timeout(GUARD_S):
                assert await pipes.serving.read() == b"x"
        with pytest.raises(ConfigError, match="already registered"):
            register_pipe_kind(PipeKind("loop", "again", _loop_pair))
    finally:
        unregister_pipe_kind("loop")
    assert kind not in pipe_kinds()


def test_schemes_belong_to_one_kind_and_need_an_opener() -> None:
    opener = pipe_kind("tcp").open
    with pytest.raises(ConfigError, match="tcp"):
        register_pipe_kind(PipeKind("tcp2", "", _loop_pair, schemes=("tcp",), open=opener))
    with pytest.raises(ConfigError, match="cannot open"):
        register_pipe_kind(PipeKind("noopen", "", _loop_pair, schemes=("noopen",)))
    assert {k.name for k in pipe_kinds()}.isdisjoint({"tcp2", "noopen"})
