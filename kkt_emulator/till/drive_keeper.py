"""Registering the drive, replacing it, and saving or restoring the till's whole state.

A new drive is registered (report type 0) the first time the till starts; ``fn.replace`` closes
the old drive's fiscal mode and registers a new one with report type 1 (re-registration with
drive replacement); a snapshot is the till's and the drive's databases, copied with SQLite's
backup API while the drive is held.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.codes import Command, Phase
from kkt_emulator.till.context import TillContext
from kkt_emulator.till.drive_slot import DriveSlot
from kkt_emulator.till.fiscal import Fiscaliser
from kkt_emulator.till.registration import registration_plan
from kkt_emulator.till.results import DriveReplaced, SnapshotInfo
from kkt_emulator.till.shifts import Shifts
from kkt_emulator.till.store import ofd_mark_key

__all__ = ["DriveKeeper", "random_digits"]


def random_digits(n: int) -> str:
    """``n`` random decimal digits (serial numbers)."""
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


class DriveKeeper:
    """Registers, replaces and snapshots one till's drive.

    Args:
        ctx: the till's shared state.
        slot: brings the drive up and down.
        shifts: closes the shift before the drive is closed.
        fiscaliser: reconciles after a restored snapshot.
    """

    def __init__(
        self, ctx: TillContext, slot: DriveSlot, shifts: Shifts, fiscaliser: Fiscaliser
    ) -> None:
        self.ctx = ctx
        self.slot = slot
        self.shifts = shifts
        self.fiscaliser = fiscaliser

    async def ensure_registered(self) -> bool:
        """Register a drive that is still in its READY phase (a new till, a new drive).

        Returns whether it registered the drive now. Then the drive has acknowledged nothing, and
        the acknowledgement mark (``till-protocol.md`` §2) is stored with the RNM, in the same
        commit (D118): no start-up check of the drive's OFD state is needed.
        """
        ctx = self.ctx
        status = await ctx.fn.status()
        ctx.rnm = ctx.state.get("rnm") or ""
        if status.phase != Phase.READY:
            return False
        async with ctx.fn.exclusive:
            if status.current_document:
                await ctx.fn.cancel_document()
            fd = await self._register(first=True)
        ctx.log.info("drive_registered", fd=fd, rnm=ctx.rnm)
        return True

    async def _register(
        self, report_type: int = 0, reason: int | None = None, *, first: bool = False
    ) -> int:
        """Run a registration report; the caller holds ``fn.exclusive``. Returns its FD.

        ``first``: the drive's first registration; the mark of acknowledged documents starts
        below the report.
        """
        ctx = self.ctx
        extra: dict[str, Any] = (
            {} if reason is None else {"report_type": report_type, "reason": reason}
        )
        plan = registration_plan(
            ctx.profile, ctx.kkt_serial, sequence=int(ctx.kkt_serial[-6:]) or 1, **extra
        )
        await ctx.fn.call(plan.start, **plan.start_fields)
        await ctx.fn.send_tlv(plan.tlv)
        answer = await ctx.fn.call(plan.finish, when=ctx.local_now(), **plan.finish_fields)
        ctx.rnm = plan.rnm
        fd: int = answer.fd
        values: dict[str, Any] = {"rnm": plan.rnm}
        if first:
            values[ofd_mark_key(ctx.fn_serial)] = fd - 1
        await ctx.state.put_synced(**values)  # D118
        return fd

    # ------------------------------------------------------------------ replacement

    async def replace(self, ofd_wait: float = 30.0) -> DriveReplaced:
        """Close the drive's fiscal mode, put in a new drive and re-register (``fn.replace``).

        As on a real till: close the shift, let the OFD take every document, close the drive
        (04h/05h), let the OFD take the closing report, then register the new drive with
        report type 1 (re-registration with drive replacement).

        Raises:
            ConfigError: the OFD did not take the old drive's documents within ``ofd_wait``
                seconds (pacing time).
        """
        ctx = self.ctx
        async with ctx.fn.exclusive:
            status = await ctx.fn.status()
            if status.phase == Phase.FISCAL:
                if status.current_document:
                    await ctx.fn.cancel_document()
                if (await ctx.fn.call(Command.SHIFT_PARAMS)).shift_open:
                    await self.shifts.close_drive_shift(ctx.local_now())
        if status.phase == Phase.FISCAL:
            await self._wait_ofd_empty(ofd_wait)
            async with ctx.fn.exclusive:
                await ctx.fn.call(Command.START_CLOSE_FN)
                closed = await ctx.fn.call(Command.CLOSE_FN, when=ctx.local_now(), rnm=ctx.rnm)
            ctx.log.info("drive_closed", fd=closed.fd)
        if (await ctx.fn.status()).phase == Phase.POST_FISCAL:
            await self._wait_ofd_empty(ofd_wait)
        old_serial = ctx.fn_serial
        await self.slot.stop()
        archive_dir = ctx.state_dir / "drives"
        archive_dir.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(ctx.drive_path) + suffix)
            if part.exists():  # noqa: ASYNC240 - a few local state files, not worth a thread
                part.replace(archive_dir / f"{old_serial}.sqlite3{suffix}")  # noqa: ASYNC240 - a few local state files, not worth a thread
        prefix = ctx.profile.drive.serial_prefix
        ctx.fn_serial = prefix + random_digits(16 - len(prefix))
        ctx.state.put(fn_serial=ctx.fn_serial, shift_opened_at=None)
        ctx.log = ctx.log.bind(fn_serial=ctx.fn_serial)
        await self.slot.start()
        async with ctx.fn.exclusive:
            fd = await self._register(report_type=1, reason=1)
        ctx.emit("state.changed", {"reason": "fn.replace"})
        return DriveReplaced(old_serial, ctx.fn_serial, fd)

    async def _wait_ofd_empty(self, seconds: float) -> None:
        ctx = self.ctx
        deadline = ctx.clock.monotonic() + seconds
        ctx.ofd_wake.set()
        while (unsent := (await ctx.fn.call(Command.OFD_STATUS)).unsent) > 0:
            if ctx.clock.monotonic() >= deadline or not ctx.config.ofd_address:
                raise ConfigError(
                    f"the drive still holds {unsent} documents for the OFD: send them first"
                )
            await ctx.clock.pace(0.05)

    # ------------------------------------------------------------------ snapshots

    async def save_snapshot(self, path: Path) -> SnapshotInfo:
        """Save the till's whole state (till and drive databases) into directory ``path``."""
        ctx = self.ctx
        path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a few local state files, not worth a thread
        async with ctx.fn.exclusive:
            for source in (ctx.db_path, ctx.drive_path):
                with (
                    contextlib.closing(sqlite3.connect(source)) as src,
                    contextlib.closing(sqlite3.connect(path / source.name)) as dst,
                ):
                    src.backup(dst)
        manifest = {
            "kktSerial": ctx.kkt_serial,
            "fnSerial": ctx.fn_serial,
            "profile": ctx.profile.name,
            "savedAt": ctx.clock.now().isoformat(),
        }
        (path / "snapshot.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        return SnapshotInfo(str(path), manifest)

    async def load_snapshot(self, path: Path) -> SnapshotInfo:
        """Replace the till's state with a snapshot taken by :meth:`save_snapshot` and restart.

        Raises:
            ConfigError: ``path`` is not a snapshot of a till of this profile.
        """
        ctx = self.ctx
        try:
            manifest = json.loads((path / "snapshot.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a till snapshot: {exc}") from exc
        if manifest.get("profile") != ctx.profile.name:
            raise ConfigError(
                f"the snapshot is of profile {manifest.get('profile')!r}, not {ctx.profile.name!r}"
            )
        await self.slot.stop()
        if ctx.store is not None:
            ctx.store.close()
        for target in (ctx.db_path, ctx.drive_path):
            with (
                contextlib.closing(sqlite3.connect(path / target.name)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                src.backup(dst)
        await self.slot.reopen_store()
        ctx.kkt_serial = ctx.state.get("kkt_serial") or ctx.kkt_serial
        ctx.fn_serial = ctx.state.get("fn_serial") or ctx.fn_serial
        ctx.rnm = ctx.state.get("rnm") or ctx.rnm
        await self.slot.start()
        await self.fiscaliser.reconcile()
        ctx.emit("state.changed", {"reason": "restore"})
        return SnapshotInfo(str(path), manifest)
