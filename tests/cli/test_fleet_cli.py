"""`till fleet` and `up --workers`: how tills are shared, points read, clocks copied, input refused.

The processes themselves run in tests/cli/test_fleet_processes.py (slow).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kkt_emulator.app import fleet as fleet_module
from kkt_emulator.app.fleet import (
    FleetOptions,
    clock_options,
    fleet_clock,
    read_points,
    start_tills,
)
from kkt_emulator.app.stack import PointAccess, till_config
from kkt_emulator.app.workers import Worker, WorkerError, WorkerExit, WorkerPlan, plan_workers
from kkt_emulator.cli.main import main
from kkt_emulator.cli.till_cmd import given_points
from kkt_emulator.clock import ManualClock, RealClock, ScaledClock
from kkt_emulator.errors import CloudError, ConfigError, TransportError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.till import TillConfig

START = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def _point(n: int) -> PointAccess:
    return {
        "retail_point_id": f"point-{n}",
        "service_login": f"svc-{n}",
        "service_password": f"secret-{n}",
        "login": f"shop-{n}",
        "password": f"pw-{n}",
    }


# ------------------------------------------------------------------ sharing tills among workers


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_workers_share_the_tills_as_one_process_would(data: st.DataObject) -> None:
    tills = data.draw(st.integers(1, 60), label="tills")
    workers = data.draw(st.integers(1, tills), label="workers")
    count = data.draw(st.integers(1, tills), label="points")
    points = [_point(n) for n in range(count)]
    plans = plan_workers(tills, workers, points, Path("/state/workers"))
    assert [p.number for p in plans] == list(range(1, workers + 1))
    assert sum(p.count for p in plans) == tills
    assert max(p.count for p in plans) - min(p.count for p in plans) <= 1
    assert len({p.state_dir for p in plans}) == workers
    first = 0
    for plan in plans:
        assert plan.first == first
        assert plan.state_dir == Path(f"/state/workers/worker-{plan.number}")
        assert 1 <= len(plan.points) <= plan.count  # a fleet never has a point without a till
        for i in range(plan.count):
            # till n of the installation is on point n mod points, whichever worker runs it
            assert plan.points[i % len(plan.points)] == points[(first + i) % count]
        first += plan.count


@pytest.mark.parametrize(
    ("tills", "workers", "message"),
    [(2, 3, "--workers 3 exceeds --tills 2"), (5, 0, "--workers must be at least 1")],
)
def test_a_plan_without_a_till_for_every_worker_is_refused(
    tills: int, workers: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_workers(tills, workers, [_point(0)], Path("/s"))


def test_a_dead_worker_says_how_it_ended() -> None:
    assert str(WorkerExit(2, 41, -9, ())) == "worker 2 (pid 41) was killed by signal 9"
    assert (
        str(WorkerExit(1, 40, 2, ("x", "error: no cloud")))
        == "worker 1 (pid 40) exited with code 2: error: no cloud"
    )


# ------------------------------------------------------------------ bad options, one line each


def _one_error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0", "--tills", "4"], "greater than or equal to 1"),
        (["--workers", "3", "--tills", "2"], "--workers 3 exceeds --tills 2"),
        (["--workers", "2", "--tills", "4", "--points", "5"], "--points cannot exceed --tills"),
        (["--tills", "1001"], "at most 1000 tills in one process; shard them with --workers"),
        (["--workers", "1", "--tills", "5001"], "at most 5000 tills per worker"),
    ],
)
def test_up_refuses_workers_it_cannot_shard(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    line = _one_error(capsys, ["up", "--mqtt", "none", "--state-dir", str(tmp_path), *extra])
    assert message in line
    assert not any(tmp_path.iterdir())  # refused before anything started


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the retail points one way"),
        (["--points", "1", "--point", "p"], "give the retail points one way"),
        (["--points", "3", "--count", "2"], "3 retail points but --count 2"),
        (["--point", "a", "--point", "b", "--login", "x"], "once per retail point"),
        (["--points", "1", "--server", "ftp://x"], "is not an http:// or https:// URL"),
        (["--points", "1", "--ofd", "nohost"], "--ofd 'nohost' is not HOST:PORT"),
        (["--points", "1", "--timing", "slow"], "--timing must be fast or realistic"),
        (["--points", "1", "--clock-start", "2026-04-01T09:00:00+00:00"], "not real"),
        (["--points", "1", "--count", "0"], "greater than or equal to 1"),
        (["--points", "1", "--mqtt", "tcp://x"], "mqtt"),
        (["--from-ready", "/nonexistent/ready.json"], "not found"),
        (["--points", "1", "--count", "5001"], "--count must be 1 to 5000"),
    ],
)
def test_till_fleet_refuses_bad_options_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    base = ["till", "fleet", "--server", "http://127.0.0.1:9", "--count", "2"]
    line = _one_error(capsys, [*base, "--state-dir", str(tmp_path / "fleet"), *extra])
    assert message in line
    assert not (tmp_path / "fleet").exists()


def test_an_unreachable_cloud_is_one_line_and_leaves_no_state(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["till", "fleet", "--server", "http://127.0.0.1:9", "--count", "1", "--points", "1"]
    line = _one_error(capsys, [*argv, "--state-dir", str(tmp_path / "fleet")])
    assert line.startswith("error: the cloud at http://127.0.0.1:9 does not answer")
    assert not (tmp_path / "fleet").exists()


# ------------------------------------------------------------------ where the points come from


def test_points_come_from_an_up_ready_file_or_a_points_list(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"base_url": "http://x", "points": [_point(1), _point(2)]}))
    assert read_points(ready) == [_point(1), _point(2)]
    listed = tmp_path / "points.json"
    entry = {k: v for k, v in _point(3).items() if k not in ("login", "password")}
    listed.write_text(json.dumps([entry]))
    assert read_points(listed) == [{**_point(3), "login": "", "password": ""}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read"),
        ('{"points": []}', "has no list of retail points"),
        ('{"tills": []}', "has no list of retail points"),
        ('[{"retail_point_id": "p", "service_login": "s"}]', "point 1 in"),
        ('["p"]', "lacks one of retail_point_id, service_login, service_password"),
    ],
)
def test_a_file_without_usable_points_is_refused(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "ready.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_points(path)


def test_points_on_the_command_line_pair_up_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    points = given_points(["a", "b"], ["la", "lb"], ["pa", "pb"], None)
    assert [(p["retail_point_id"], p["service_login"], p["service_password"]) for p in points] == [
        ("a", "la", "pa"),
        ("b", "lb", "pb"),
    ]
    from_env = "from-env"
    monkeypatch.setenv("KKT_TILL_PASSWORD", from_env)
    [one] = given_points(["a"], ["la"], [], None)
    assert one["service_password"] == from_env
    with pytest.raises(ConfigError, match="--password-file goes with one --point"):
        given_points(["a", "b"], ["la", "lb"], ["pa", "pb"], Path("secret"))


def test_the_options_need_exactly_one_source_of_points() -> None:
    profile = load_profile(DEFAULT_PROFILE)
    base: dict[str, Any] = {
        "server": "http://127.0.0.1:1",
        "profile": profile,
        "state_dir": Path("s"),
        "count": 2,
    }
    FleetOptions(**base, points=[_point(1)]).check()
    FleetOptions(**base, create_points=2).check()
    with pytest.raises(ConfigError, match="one way"):
        FleetOptions(**base, points=[_point(1)], create_points=1).check()


# ------------------------------------------------------------------ one business time


def test_a_manual_clock_is_copied_at_its_present_time() -> None:
    clock = ManualClock(START)
    argv = clock_options(clock)
    assert argv == ["--clock", "manual", "--clock-start", "2026-04-01T09:00:00+00:00"]
    copied = fleet_clock(argv[1], datetime.fromisoformat(argv[3]))
    assert isinstance(copied, ManualClock)
    assert copied.now() == START


async def test_a_scaled_clock_is_copied_with_its_offset() -> None:
    clock = ScaledClock(2.0, START)
    await clock.advance(timedelta(days=3))
    argv = clock_options(clock)
    assert argv[:2] == ["--clock", "scaled:2.0"]
    copied = fleet_clock(argv[1], datetime.fromisoformat(argv[3]))
    assert isinstance(copied, ScaledClock)
    assert copied.factor == 2.0
    # Both run twice as fast from here; a few real seconds of slack for a loaded machine.
    assert abs((copied.now() - clock.now()).total_seconds()) < 10


def test_a_real_clock_is_real_everywhere() -> None:
    assert clock_options(RealClock()) == ["--clock", "real"]
    assert isinstance(fleet_clock("real"), RealClock)
    with pytest.raises(ConfigError, match="not real"):
        fleet_clock("real", START)
    with pytest.raises(ConfigError, match="needs a timezone"):
        fleet_clock("manual", datetime(2026, 4, 1))  # noqa: DTZ001 - the naive time under test


# ------------------------------------------------------------------ a worker process as up sees it


def _plan(tmp_path: Path) -> WorkerPlan:
    return WorkerPlan(1, 0, 1, (_point(0),), tmp_path / "worker-1")


async def test_a_worker_announcing_thousands_of_tills_is_read_whole(tmp_path: Path) -> None:
    till = dict.fromkeys(("device_id", "fn_serial", "kkt_serial", "rnm", "profile"), "x" * 40)
    script = (
        "import json, sys\n"
        f"print(json.dumps({{'tills': [dict({till!r}, state_dir='/s/%d' % n) for n in range(3000)]}}))\n"
        "sys.stdin.read()\n"  # runs until up closes the pipe, as a fleet does
    )
    worker = Worker(_plan(tmp_path), [sys.executable, "-c", script])
    await worker.start()
    try:
        tills = await worker.wait_ready(60.0)
    finally:
        await worker.stop(grace=5.0)
    assert len(tills) == 3000
    assert tills[-1].state_dir == Path("/s/2999")


async def test_a_worker_that_fails_to_start_says_why_in_one_line(tmp_path: Path) -> None:
    script = "import sys; print('error: the cloud does not answer', file=sys.stderr); sys.exit(2)"
    worker = Worker(_plan(tmp_path), [sys.executable, "-c", script])
    await worker.start()
    with pytest.raises(WorkerError) as failed:
        await worker.wait_ready(60.0)
    await worker.stop(grace=5.0)
    assert str(failed.value) == (
        f"worker 1 (pid {worker.pid}) exited with code 2: error: the cloud does not answer, "
        "before it was ready"
    )


# ------------------------------------------------------------------ a busy cloud at start-up


class _FlakyTill:
    """A till whose start meets a cloud that does not answer the first ``failures`` times."""

    starts: list[str]
    failures = 0
    error: Exception = TransportError("cloud unreachable: no answer within 10 s")

    def __init__(self, config: TillConfig, clock: object) -> None:
        del clock
        self.config = config
        self.device_id = self.fn_serial = ""
        self.closed = False

    async def start(self) -> None:
        self.starts.append(str(self.config.state_dir))
        if len(self.starts) <= self.failures:
            raise self.error

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> type[_FlakyTill]:
    class Flaky(_FlakyTill):
        starts: list[str] = []  # noqa: RUF012 - one list per test, through the fixture

    monkeypatch.setattr(fleet_module, "Till", Flaky)
    return Flaky


def _configs(tmp_path: Path, count: int) -> list[TillConfig]:
    profile = load_profile(DEFAULT_PROFILE)
    return [
        till_config(profile, tmp_path / f"till-{n}", "http://x", _point(0), ofd_address=None)
        for n in range(count)
    ]


async def test_a_till_the_busy_cloud_did_not_answer_starts_again(
    tmp_path: Path, flaky: type[_FlakyTill]
) -> None:
    flaky.failures = 2
    [till] = await start_tills(_configs(tmp_path, 1), ManualClock(START), patience=60.0)
    assert flaky.starts == [str(tmp_path / "till-0")] * 3
    assert isinstance(till, flaky)


async def test_patience_ends_and_other_errors_are_not_retried(
    tmp_path: Path, flaky: type[_FlakyTill]
) -> None:
    flaky.failures = 1
    with pytest.raises(TransportError, match="no answer"):
        await start_tills(_configs(tmp_path, 1), ManualClock(START), patience=0.1)
    flaky.starts.clear()
    flaky.error = CloudError(500, "boom")
    with pytest.raises(CloudError, match="boom"):
        await start_tills(_configs(tmp_path, 1), ManualClock(START), patience=60.0)
    assert len(flaky.starts) == 1
    flaky.starts.clear()
    flaky.error = CloudError(401, "Unauthorized")
    with pytest.raises(ConfigError, match="refused the service login 'svc-0' of retail point"):
        await start_tills(_configs(tmp_path, 1), ManualClock(START), patience=60.0)
