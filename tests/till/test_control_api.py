"""The till's control API: state snapshot, settings, counter sales, shift close, fn.replace, snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from kkt_emulator.errors import ConfigError
from kkt_emulator.fn.codes import Phase
from kkt_emulator.fn.signing import validate_rnm
from kkt_emulator.testing.stack import StackHarness


async def test_state_snapshot_settings_and_validation(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        state = await kkt.till.snapshot_state()
        assert state["drive"]["phase"] == Phase.FISCAL
        assert state["drive"]["serial"] == kkt.till.fn_serial
        assert state["clock"]["mode"] == "manual"
        assert set(state["deadlines"]) == {"shift.expires", "ofd.block", "fn.expires", "fn.warning"}
        await kkt.till.set_settings(power_saving=True, poll_interval=1)
        assert (await kkt.till.snapshot_state())["polling"] is False
        for bad in (
            {"power_saving": "yes"},
            {"poll_interval": -1},
            {"shift_mode": "weird"},
            {"nope": 1},
        ):
            with pytest.raises(ConfigError):
                await kkt.till.set_settings(**bad)


async def test_counter_sale_and_shift_close(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        sale = await kkt.till.sell(12345)
        assert sale["checkNumber"] == 1
        closed = await kkt.till.close_shift()
        assert closed is not None
        assert closed["shiftNumber"] == sale["shiftNumber"]
        assert await kkt.till.close_shift() is None
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert status["fiscalInfo"]["shiftNumber"] == sale["shiftNumber"] + 1


async def test_fn_replace_needs_the_ofd_then_registers_a_new_drive(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        kkt.till.inject_fault("ofd.down")
        await kkt.till.sell(100)
        with pytest.raises(ConfigError, match="for the OFD"):
            await kkt.till.replace_drive(ofd_wait=0.2)
        kkt.till.clear_faults()
        old = kkt.till.fn_serial
        result = await kkt.till.replace_drive()
        assert result["oldFnSerial"] == old
        assert kkt.till.fn_serial != old
        assert (tmp_path / "tills" / "till-1" / "drives" / f"{old}.sqlite3").is_file()
        assert validate_rnm(kkt.till.rnm, kkt.till.profile.registration.inn, kkt.till.kkt_serial)
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"], "COMPLETED")
        assert status["fiscalInfo"]["fnNumber"] == kkt.till.fn_serial


async def test_snapshot_and_restore(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path / "stack") as kkt:
        first = await kkt.till.sell(100)
        saved = await kkt.till.save_snapshot(tmp_path / "snap")
        assert saved["fnSerial"] == kkt.till.fn_serial
        await kkt.till.sell(200)
        restored = await kkt.till.load_snapshot(tmp_path / "snap")
        assert restored["fnSerial"] == kkt.till.fn_serial
        state = await kkt.till.drive_state()
        assert state["lastFd"] == first["fnDocNumber"]
        with pytest.raises(ConfigError, match="not a till snapshot"):
            await kkt.till.load_snapshot(tmp_path / "nothing-here")
