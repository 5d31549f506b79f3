"""`kkt-emulator up --long-poll`: tills that take a document the moment it is queued."""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator import eventloop
from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.db import DatabaseTarget
from kkt_emulator.cloud.settings import FiscalDateFormat
from kkt_emulator.ofd.server import OfdServer
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.testing.stack import StackHarness


def _options(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> StackOptions:
    started: list[StackOptions] = []

    def run(serving: Coroutine[Any, Any, None]) -> None:
        assert inspect.iscoroutine(serving)
        assert serving.cr_frame is not None
        started.append(serving.cr_frame.f_locals["options"])
        serving.close()

    monkeypatch.setattr(eventloop, "run", run)
    assert main(["up", "--mqtt", "none", *argv]) == 0
    [options] = started
    return options


def test_long_poll_reaches_every_till(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options(monkeypatch, ["--state-dir", str(tmp_path), "--long-poll", "5"])
    assert options.long_poll == 5.0
    assert options.settings_of_tills() == {"orders": True, "long_poll": 5.0, "poll_interval": 5.0}


def test_the_real_poll_stays_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    options = _options(monkeypatch, ["--state-dir", str(tmp_path)])
    # 0 turns a long poll a till kept from an earlier run off again.
    assert options.settings_of_tills() == {"orders": True, "long_poll": 0.0, "poll_interval": 5.0}


def test_up_takes_db_into_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql://kkt@db.example:5432/cloud"
    with_db = _options(monkeypatch, ["--state-dir", str(tmp_path), "--db", url])
    without = _options(monkeypatch, ["--state-dir", str(tmp_path)])
    assert [with_db.cloud_db, without.cloud_db] == [DatabaseTarget("postgresql", url), None]


def test_a_long_poll_above_the_cloud_limit_is_refused(tmp_path: Path) -> None:
    assert main(["up", "--state-dir", str(tmp_path), "--long-poll", "31"]) == 2


def test_up_takes_an_external_ofd_and_the_store_formats(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options = _options(
        monkeypatch,
        [
            "--state-dir", str(tmp_path), "--ofd", "ofd.example:7777",
            "--fiscal-sum-as-string", "--fiscal-date-format", "millis",
        ],
    )  # fmt: skip
    assert options.ofd_address == "ofd.example:7777"
    assert options.fiscal_sum_as_string is True
    assert options.fiscal_date_format is FiscalDateFormat.MILLIS
    plain = _options(monkeypatch, ["--state-dir", str(tmp_path)])
    assert (plain.ofd_address, plain.fiscal_sum_as_string) == (None, False)
    assert plain.fiscal_date_format is FiscalDateFormat.ISO


@pytest.mark.parametrize("address", ["nohost", "host:", "host:0", "host:70000", ":7777"])
def test_a_bad_ofd_address_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str
) -> None:
    assert main(["up", "--state-dir", str(tmp_path), "--mqtt", "none", "--ofd", address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: OFD address")
    assert not (tmp_path / "cloud.sqlite3").exists()


async def test_an_installation_on_an_external_ofd_with_the_store_formats(tmp_path: Path) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    profile = load_profile(DEFAULT_PROFILE)
    async with OfdServer(
        clock, ofd_inn=profile.registration.ofd_inn, signing_seed=profile.drive.seed
    ) as ofd:
        options = StackOptions(
            profile=profile,
            state_dir=tmp_path / "state",
            ofd_address=ofd.address,
            fiscal_sum_as_string=True,
            fiscal_date_format=FiscalDateFormat.MILLIS,
        )
        async with Stack(options, clock) as stack:
            kkt = StackHarness(stack, clock)
            try:
                assert stack.ofd is None  # no stand-in of its own
                assert stack.ready_info()["ofd"] == ofd.address
                assert f"OFD              {ofd.address}    (external, --ofd)" in stack.banner()
                doc = kkt.sale(45.5)
                await kkt.post_document(doc)
                status = await kkt.wait_for_status(doc["id"], "COMPLETED")
                assert status["fiscalInfo"]["sum"] == "45.50"
                assert status["fiscalInfo"]["date"].endswith(".000+0000")
                fn_serial = stack.tills[0].fn_serial
                for _ in range(500):
                    if status["fiscalInfo"]["fnDocNumber"] in ofd.acknowledged_fds(fn_serial):
                        break
                    await clock.pace(0.02)
                assert status["fiscalInfo"]["fnDocNumber"] in ofd.acknowledged_fds(fn_serial)
            finally:
                await kkt.http.aclose()
