"""The pipe kinds the emulator knows, in one registry: how to pair two ends, how to open one.

Each transport module registers its :class:`PipeKind` when it is imported (the package's
``__init__`` imports them all), so nothing else keeps a list of kinds:

* the pipe contract suite (``tests/transport/test_pipe_contract.py``) runs against every
  registered kind's :attr:`PipeKind.pair`, so a new kind is tested by registering it;
* :func:`open_pipe` opens the dialing end (the till's side of the drive link) from a URL::

      pipe = await open_pipe("tcp://127.0.0.1:7000")
      pipe = await open_pipe("serial:/dev/ttyUSB0?baudrate=9600")
      pipe = await open_pipe("/tmp/kkt/ttyFN0")  # a bare path is a serial port

A kind without an opener (the in-memory pair) exists only as a pair inside one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, urlsplit

from kkt_emulator.errors import ConfigError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from kkt_emulator.transport.base import Manipulator, PipeBase, TraceHook

__all__ = [
    "Opener",
    "PairFactory",
    "PipeAddress",
    "PipeKind",
    "PipePair",
    "open_pipe",
    "pipe_kind",
    "pipe_kinds",
    "register_pipe_kind",
    "unregister_pipe_kind",
]


@dataclass(frozen=True, slots=True)
class PipePair:
    """Two connected ends of one kind.

    Attributes:
        kind: the :attr:`PipeKind.name` that made them.
        serving: the end that waits for a peer (the drive's side: a pty master, an accepted
            connection, one end of a memory pair).
        dialing: the end that reaches out (the till's side: pyserial, a TCP client).
    """

    kind: str
    serving: PipeBase
    dialing: PipeBase


@dataclass(frozen=True, slots=True)
class PipeAddress:
    """Where to open a pipe, parsed from a URL: ``scheme:target?option=value``.

    Attributes:
        scheme: the URL scheme, lower-case (``tcp``, ``serial`` …); ``serial`` for a bare path.
        target: what follows the scheme: ``host:port`` for TCP, a device path for a serial port.
        options: query parameters (``baudrate=9600``).
        url: the URL as given.
    """

    scheme: str
    target: str
    options: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    @classmethod
    def parse(cls, url: str | os.PathLike[str]) -> PipeAddress:
        """Parse ``url``; a bare path (no scheme) means a serial port.

        Raises:
            ConfigError: the URL has no target.
        """
        text = os.fspath(url)
        if text.startswith(("/", ".")) or ":" not in text:
            return cls("serial", text, {}, text)
        parts = urlsplit(text)
        target = parts.netloc or parts.path
        if not target:
            raise ConfigError(f"pipe URL {text!r} names no port, host or device")
        return cls(parts.scheme.lower(), target, dict(parse_qsl(parts.query)), text)

    def option(self, name: str, default: int) -> int:
        """An integer option (``baudrate``).

        Raises:
            ConfigError: the option is not an integer.
        """
        value = self.options.get(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{self.url}: {name} must be an integer, got {value!r}") from None


class PairFactory(Protocol):
    """Makes two connected ends for tests; leaving the context closes both and what they used."""

    def __call__(self) -> AbstractAsyncContextManager[PipePair]:
        """Open the pair."""
        ...


class Opener(Protocol):
    """Opens the dialing end at an address."""

    async def __call__(
        self,
        address: PipeAddress,
        *,
        manipulator: Manipulator | None = None,
        trace: TraceHook | None = None,
        name: str = "",
    ) -> PipeBase:
        """Open it; raises ``TransportError`` when it cannot be reached."""
        ...


@dataclass(frozen=True, slots=True)
class PipeKind:
    """One kind of byte pipe and what the rest of the emulator needs to know about it.

    Attributes:
        name: the kind's name (``memory``, ``pty``, ``tcp``).
        summary: one line for help texts.
        pair: makes a connected pair (the contract suite runs against it).
        schemes: URL schemes :func:`open_pipe` hands to :attr:`open`.
        open: opens the dialing end from a URL, or ``None`` for a kind that exists only as a pair.
        hang_up_reaches_server: whether the serving end sees the dialing end close (a serial line
            has no hang-up: the drive never learns that the till closed the port).
        close_keeps_unread: whether bytes written just before a close still reach the peer
            (closing a pty discards what the till has not read, as a cut cable does).
    """

    name: str
    summary: str
    pair: PairFactory
    schemes: tuple[str, ...] = ()
    open: Opener | None = None
    hang_up_reaches_server: bool = True
    close_keeps_unread: bool = True


_KINDS: dict[str, PipeKind] = {}


def register_pipe_kind(kind: PipeKind, *, replace: bool = False) -> PipeKind:
    """Add ``kind`` to the registry; returns it.

    Raises:
        ConfigError: the name or one of its schemes is taken (unless ``replace``), or a kind with
            schemes has no opener.
    """
    if kind.schemes and kind.open is None:
        raise ConfigError(f"pipe kind {kind.name!r} names URL schemes but cannot open them")
    if not replace:
        if kind.name in _KINDS:
            raise ConfigError(f"pipe kind {kind.name!r} is already registered")
        for other in _KINDS.values():
            taken = set(kind.schemes) & set(other.schemes)
            if taken:
                raise ConfigError(
                    f"pipe kind {kind.name!r}: scheme {', '.join(sorted(taken))} "
                    f"belongs to {other.name!r}"
                )
    _KINDS[kind.name] = kind
    return kind


def unregister_pipe_kind(name: str) -> None:
    """Remove a kind (no error if it is not registered)."""
    _KINDS.pop(name, None)


def pipe_kinds() -> tuple[PipeKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def pipe_kind(name: str) -> PipeKind:
    """The kind called ``name``.

    Raises:
        ConfigError: no such kind.
    """
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(_KINDS)
        raise ConfigError(f"unknown pipe kind {name!r}: use {known}") from None


async def open_pipe(
    url: str | os.PathLike[str],
    *,
    manipulator: Manipulator | None = None,
    trace: TraceHook | None = None,
    name: str = "",
) -> PipeBase:
    """Open the dialing end named by ``url`` with the kind that registered its scheme.

    Raises:
        ConfigError: no kind opens that scheme, or the URL is malformed.
        TransportError: the pipe cannot be opened.
    """
    address = PipeAddress.parse(url)
    for kind in _KINDS.values():
        if address.scheme in kind.schemes and kind.open is not None:
            return await kind.open(address, manipulator=manipulator, trace=trace, name=name)
    schemes = sorted(s for k in _KINDS.values() for s in k.schemes)
    raise ConfigError(
        f"no pipe kind opens {address.scheme!r} URLs ({address.url}): use {', '.join(schemes)}"
    )
