"""Faults in force on one till: arming, clearing, and where each takes effect.

:class:`FaultControl` keeps the catalogue's faults (``till-protocol.md`` §4, :mod:`.faults`) that
are in force and plugs them in at their own layer: the drive answers a code
(``FiscalDrive.forced_result``), the drive link drops or corrupts bytes (:class:`FaultyLink`), the
cloud link waits, the firmware dies at a crash point, the OFD stand-in refuses (through the
:class:`~kkt_emulator.till.ports.OfdFaults` port).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from kkt_emulator.errors import ConfigError, DriveError
from kkt_emulator.fn.codes import Command, ResultCode, WarningFlag
from kkt_emulator.logging import get_logger
from kkt_emulator.till.context import SimulatedCrash, TillContext
from kkt_emulator.till.faults import (
    FAULTS,
    ActiveFault,
    CrashPoint,
    FaultName,
    FaultyLink,
    make_fault,
)

if TYPE_CHECKING:
    from kkt_emulator.till.ports import OfdFaults

__all__ = ["CRASH_ENV", "FaultControl"]

CRASH_ENV = "KKT_TILL_CRASH_AT"
"""``KKT_TILL_CRASH_AT=<point>`` kills the till's process with SIGKILL at that crash point."""

_log = get_logger(__name__)

_DOCUMENT_STARTS = frozenset(
    {
        Command.START_REGISTRATION,
        Command.START_REGISTRATION_12,
        Command.START_OPEN_SHIFT,
        Command.START_CLOSE_SHIFT,
        Command.START_RECEIPT,
        Command.START_CORRECTION,
        Command.START_SETTLEMENT_REPORT,
    }
)


class FaultControl:
    """The faults in force on one till and the hooks that apply them.

    Args:
        ctx: the till's shared state (its ``faults`` map is the one this object manages).
        ofd: the OFD stand-in of this process, or ``None`` (then ``ofd.*`` faults are refused).
    """

    def __init__(self, ctx: TillContext, ofd: OfdFaults | None) -> None:
        self.ctx = ctx
        self.ofd = ofd
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ control

    def inject(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> ActiveFault:
        """Arm a fault of the catalogue.

        Raises:
            ConfigError: an unknown fault or a bad parameter; an OFD fault without the OFD
                stand-in in this process.
        """
        fault = make_fault(name, count=count, probability=probability, seed=seed, params=params)
        if fault.name.at_ofd:
            if self.ofd is None:
                raise ConfigError(
                    f"{name} acts on the OFD stand-in, which does not run in this process"
                )
            if count is not None or probability != 1.0:
                raise ConfigError(
                    f"{name} applies to every connection until cleared (no count or probability)"
                )
            self._ofd_set(fault)
        self.ctx.faults[fault.name] = fault
        self.apply_warning_faults()
        self.ctx.wake.set()
        self.ctx.log.info(
            "fault_injected", fault=name, count=count, probability=probability, seed=seed
        )
        self.ctx.emit("state.changed", {"reason": "fault.injected", "name": name})
        return fault

    def clear(self, name: str | None = None) -> list[str]:
        """Clear one fault (or every fault); returns the names cleared.

        Raises:
            ConfigError: ``name`` is not a fault of the catalogue.
        """
        if name is not None and name not in FAULTS:
            raise ConfigError(f"unknown fault {name!r}")
        names = [FAULTS[name].name] if name is not None else list(self.ctx.faults)
        cleared = [n for n in names if n in self.ctx.faults]
        for n in cleared:
            self._drop(n)
        return [str(n) for n in cleared]

    def active(self) -> list[ActiveFault]:
        """The faults in force, in the order they were armed."""
        return list(self.ctx.faults.values())

    # ------------------------------------------------------------------ hooks at each layer

    def crash_point(self, point: CrashPoint) -> None:
        """Drop the process state here if a crash is armed for ``point``.

        ``KKT_TILL_CRASH_AT=point`` kills the process with SIGKILL (real crash tests); the
        ``till.crash`` fault raises :class:`SimulatedCrash` in-process.
        """
        if os.environ.get(CRASH_ENV) == point:
            os.kill(os.getpid(), signal.SIGKILL)
        fault = self.ctx.faults.get(FaultName.TILL_CRASH)
        if fault is not None and fault.params.get("point") == point and fault.roll():
            self.struck(FaultName.TILL_CRASH)
            raise SimulatedCrash(f"crash at {point}")

    async def cloud_latency(self) -> None:
        """``cloud.latency``: called before every cloud request."""
        latency = self.ctx.faults.get(FaultName.CLOUD_LATENCY)
        if latency is not None and latency.roll():
            self.struck(FaultName.CLOUD_LATENCY)
            await self.ctx.clock.pace(float(latency.params.get("delay_ms", 1000.0)) / 1000)

    def faulty_link(self) -> FaultyLink:
        """The drive-side byte manipulator for the drive-link faults."""
        return FaultyLink(self.ctx.faults, self.ctx.clock, self.struck)

    def drive_fault(self, command: int) -> DriveError | None:
        """The drive-layer faults: the drive itself answers the code (FiscalDrive.forced_result)."""
        # Each fault decides once per fiscal document (at its first command), so a seed gives
        # the same failures whatever the heartbeats do in between.
        if command not in _DOCUMENT_STARTS:
            return None
        faults = self.ctx.faults
        failure = faults.get(FaultName.FN_FAILURE)
        if failure is not None and failure.roll():
            self.struck(FaultName.FN_FAILURE)
            return DriveError(ResultCode.FN_FAILURE, detail="fault fn.failure")
        storage = faults.get(FaultName.FN_STORAGE_EXHAUSTED)
        if storage is not None and storage.roll():
            self.struck(FaultName.FN_STORAGE_EXHAUSTED)
            return DriveError(
                self.ctx.profile.drive.ofd_block_code, detail="fault fn.storage_exhausted"
            )
        expired = faults.get(FaultName.FN_EXPIRED)
        if expired is not None and expired.roll():
            self.struck(FaultName.FN_EXPIRED)
            return DriveError(ResultCode.RESOURCE_EXHAUSTED, detail="fault fn.expired")
        return None

    def apply_warning_faults(self) -> None:
        """``fn.memory_warning``: the drive's warning flags follow the faults in force."""
        drive = self.ctx.drive
        if drive is not None:
            memory = FaultName.FN_MEMORY_WARNING in self.ctx.faults
            drive.forced_warnings = WarningFlag.MEMORY_OVERFLOW if memory else 0

    def struck(self, name: FaultName) -> None:
        """A fault just took effect: tell listeners; clear it once its count is used up."""
        fault = self.ctx.faults.get(name)
        self.ctx.emit(
            "fault.applied", {"name": str(name), "applied": fault.applied if fault else None}
        )
        if fault is not None and fault.exhausted:
            self._drop(name)

    # ------------------------------------------------------------------ internals

    def _drop(self, name: FaultName) -> None:
        if self.ctx.faults.pop(name, None) is None:
            return
        if name.at_ofd:
            self._ofd_reset()
        self.apply_warning_faults()
        self.ctx.wake_all()
        self.ctx.emit("fault.cleared", {"name": str(name)})
        self.ctx.emit("state.changed", {"reason": "fault.cleared"})

    def _ofd_set(self, fault: ActiveFault) -> None:
        ofd = self.ofd
        if ofd is not None:
            self._in_background(ofd.set_fault(fault.name, **fault.params), fault.name)

    def _ofd_reset(self) -> None:
        ofd = self.ofd
        if ofd is None:
            return
        remaining = [f for f in self.ctx.faults.values() if f.name.at_ofd]

        async def reset() -> None:
            await ofd.clear_faults()
            for other in remaining:
                await ofd.set_fault(other.name, **other.params)

        self._in_background(reset(), "clear")

    def _in_background(self, work: Coroutine[Any, Any, None], action: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._background.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._background.discard(finished)
            if not finished.cancelled() and (exc := finished.exception()) is not None:
                _log.error(
                    "ofd_fault_switch_failed",
                    action=action,
                    device_id=self.ctx.device_id,
                    fn_serial=self.ctx.fn_serial,
                    exc_info=exc,
                )

        task.add_done_callback(done)
