"""Byte pipes between the till and its fiscal drive: in-memory pair, pty/serial, TCP.

Every transport implements :class:`~kkt_emulator.transport.base.BytePipe` and accepts a
manipulator (delay, split, drop, corrupt) and trace hooks. Each kind registers itself in
:mod:`~kkt_emulator.transport.registry` (how to pair two ends, how to open one from a URL), so
code above this package asks the registry instead of listing kinds. This package knows nothing
above it.
"""

from __future__ import annotations

from kkt_emulator.transport.base import (
    RX,
    TX,
    ByteManipulator,
    BytePipe,
    Deliver,
    Manipulator,
    PipeBase,
    StreamPipe,
    TraceHook,
    is_idle,
)
from kkt_emulator.transport.memory import MemoryPipe, memory_pipe_pair
from kkt_emulator.transport.pty import PtyServer, open_serial
from kkt_emulator.transport.registry import (
    PipeAddress,
    PipeKind,
    PipePair,
    open_pipe,
    pipe_kind,
    pipe_kinds,
    register_pipe_kind,
)
from kkt_emulator.transport.tcp import tcp_connect, tcp_serve

__all__ = [
    "RX",
    "TX",
    "ByteManipulator",
    "BytePipe",
    "Deliver",
    "Manipulator",
    "MemoryPipe",
    "PipeAddress",
    "PipeBase",
    "PipeKind",
    "PipePair",
    "PtyServer",
    "StreamPipe",
    "TraceHook",
    "is_idle",
    "memory_pipe_pair",
    "open_pipe",
    "open_serial",
    "pipe_kind",
    "pipe_kinds",
    "register_pipe_kind",
    "tcp_connect",
    "tcp_serve",
]
