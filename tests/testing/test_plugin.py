"""The pytest plugin, used the way a shop's own suite uses it: a project outside the package."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USER_TESTS = """
import pytest

from kkt_emulator.testing.plugin import KktStack

FN = "Сообщение ФН об ошибке: "


{mark}
async def test_a_sale_reaches_completed(kkt_stack, kkt_documents):
    doc = kkt_documents.sale(total=45.50, email="buyer@example.com", tax_mode="COMMON")
    posted = await kkt_stack.post_document(doc)
    assert posted["status"] in ("QUEUED", "PENDING", "PRINTED", "COMPLETED")
    status = await kkt_stack.wait_for_status(doc["id"], "COMPLETED")
    assert status["status"] == "COMPLETED"
    state = await kkt_stack.till_state()
    assert state["counters"]["fiscalized"] >= 1


{mark}
async def test_a_negative_price_fails(kkt_stack, kkt_documents):
    doc = kkt_documents.sale(
        total=10.0, items=[{"name": "Возврат тары", "price": -2.5}]
    )
    await kkt_stack.post_document(doc)
    status = await kkt_stack.wait_for_status(doc["id"], "FAILED")
    assert status["failureInfo"]["message"] == FN + "Negative"


{mark}
async def test_thirty_one_days_without_the_ofd(kkt_stack, kkt_documents):
    await kkt_stack.inject("ofd.down")
    first = kkt_documents.sale(total=10.0)
    await kkt_stack.post_document(first)
    await kkt_stack.wait_for_status(first["id"], "COMPLETED")
    await kkt_stack.advance("31d")
    blocked = kkt_documents.sale(total=11.0)
    await kkt_stack.post_document(blocked)
    status = await kkt_stack.wait_for_status(blocked["id"], "FAILED")
    assert status["failureInfo"]["message"] == FN + "Исчерпан ресурс хранения ФН"
    assert await kkt_stack.clear_faults() == ["ofd.down"]


{mark}
async def test_settings_points_and_faults(kkt_stack, kkt_documents, kkt_clock):
    assert isinstance(kkt_stack, KktStack)
    assert kkt_stack.store_url.endswith("/api/fn") and kkt_stack.login and kkt_stack.password
    settings = await kkt_stack.set_till(power_saving=True)
    assert settings["power_saving"] is True
    point = await kkt_stack.set_point(internet_docs=True, stop_on_errors=False)
    assert point["internetDocsEnabled"] is True
    await kkt_stack.set_till(power_saving=False, online=True)
    await kkt_stack.inject("fn.failure", count=1, seed=1)
    failed = kkt_documents.sale(total=5.0)
    await kkt_stack.post_document(failed)
    assert (await kkt_stack.wait_for_status(failed["id"]))["status"] == "FAILED"
    before = kkt_clock.now()
    await kkt_stack.advance("15m")
    assert (kkt_clock.now() - before).total_seconds() == 900
    returned = kkt_documents.return_(total=5.0)
    assert returned["docType"] == "RETURN"


@pytest.mark.kkt(tills=2, points=2, mqtt=False)
{mark}
async def test_the_marker_shapes_the_installation(kkt_stack, pytestconfig):
    wanted = pytestconfig.getoption("--kkt-profile") or "modulkassa-ffd12"
    assert {till.profile.name for till in kkt_stack.tills} == {wanted}
    assert len(kkt_stack.tills) == 2
    assert len(kkt_stack.points) == 2
    assert kkt_stack.mqtt_url is None
    assert kkt_stack.shared is not pytestconfig.getoption("--kkt-fresh")
"""

SHARING_TESTS = """
from datetime import timedelta

import pytest

seen = {}


async def test_the_first_test_spoils_the_installation(kkt_stack, kkt_documents):
    assert kkt_stack.shared
    seen["drive"] = kkt_stack.till.fn_serial
    await kkt_stack.inject("ofd.down")
    await kkt_stack.set_till(power_saving=True)
    await kkt_stack.set_point(stop_on_errors=True)
    doc = kkt_documents.sale(total=7.0)
    await kkt_stack.post_document(doc)
    seen["left"] = doc["id"]


async def test_the_next_test_gets_it_back_as_it_was(kkt_stack):
    assert kkt_stack.till.fn_serial == seen["drive"]
    state = await kkt_stack.till_state()
    assert state["faults"] == []
    assert state["settings"]["power_saving"] is False
    assert state["ofdBacklog"]["unsent"] == 0
    assert state["queue"] == {"inFlight": 0, "outbox": 0}
    assert (await kkt_stack.status(seen["left"]))["status"] == "COMPLETED"
    assert (await kkt_stack.set_point())["stopOnErrors"] is False
    sold = await kkt_stack.run(kkt_stack.till.sell(10000))
    assert sold


@pytest.mark.kkt_fresh
async def test_a_fresh_installation_is_the_tests_own(kkt_stack):
    assert not kkt_stack.shared
    assert kkt_stack.till.fn_serial != seen["drive"]
    assert await kkt_stack.run(kkt_stack.till.sell(100))


async def test_moving_business_time(kkt_stack, kkt_clock):
    assert kkt_stack.till.fn_serial == seen["drive"]
    before = kkt_clock.now()
    assert await kkt_clock.advance(timedelta(hours=1)) == before + timedelta(hours=1)


async def test_after_time_moved_a_new_installation(kkt_stack):
    assert kkt_stack.till.fn_serial != seen["drive"]
    seen["drive"] = kkt_stack.till.fn_serial


async def test_failing_on_purpose(kkt_stack):
    assert kkt_stack.till.fn_serial == seen["drive"]
    raise AssertionError("on purpose")


async def test_after_a_failure_a_new_installation(kkt_stack, pytestconfig):
    assert kkt_stack.till.fn_serial != seen["drive"]

"""

SYNC_TESTS = """
import asyncio
from datetime import timedelta

import pytest
import pytest_asyncio

from kkt_emulator.errors import CloudError, ConfigError
from kkt_emulator.testing.plugin import KktStack, SyncKktStack

seen = {}


def test_every_method_blocks_and_answers(kkt_stack_sync, kkt_documents, kkt_clock):
    kkt = kkt_stack_sync
    assert isinstance(kkt, SyncKktStack) and isinstance(kkt.aio, KktStack)
    assert kkt.shared and kkt.store_url.endswith("/api/fn") and kkt.login and kkt.password
    assert kkt.info()["store_api"] == kkt.store_url
    seen["drive"] = kkt.till.fn_serial
    assert kkt.set_till(power_saving=True)["power_saving"] is True
    assert kkt.till_state()["settings"]["power_saving"] is True
    assert kkt.set_point(stop_on_errors=True)["stopOnErrors"] is True
    kkt.set_till(power_saving=False)
    doc = kkt_documents.sale(total=12.0)
    assert kkt.post_document(doc)["status"] in ("QUEUED", "PENDING", "PRINTED", "COMPLETED")
    assert kkt.wait_for_status(doc["id"], "COMPLETED")["status"] == "COMPLETED"
    assert kkt.status(doc["id"])["status"] == "COMPLETED"
    assert kkt.document_detail(doc["id"])["id"] == doc["id"]
    assert kkt.run(kkt.till.sell(10000))
    assert [f["name"] for f in kkt.inject("fn.slow", delay_ms=1, seed=1)] == ["fn.slow"]
    assert kkt.clear_faults() == ["fn.slow"]
    assert kkt_clock is kkt.clock


def test_errors_come_through_as_they_are(kkt_stack_sync, kkt_documents):
    kkt = kkt_stack_sync
    assert kkt.till.fn_serial == seen["drive"]
    with pytest.raises(ConfigError, match="no.such"):
        kkt.inject("no.such")
    bad = kkt_documents.sale()
    del bad["inventPositions"]
    with pytest.raises(CloudError) as refused:
        kkt.post_document(bad)
    assert refused.value.status == 400
    kkt.set_till(online=False)
    offline = kkt_documents.sale()
    kkt.post_document(offline)
    with pytest.raises(TimeoutError, match=offline["id"]):
        kkt.wait_for_status(offline["id"], "COMPLETED", timeout=0.3)
    kkt.set_till(online=True)
    with pytest.raises(ConfigError, match="not a duration"):
        kkt.advance("soon")


def test_a_blocking_call_on_the_installations_loop_says_so(kkt_stack_sync):
    async def blocking_inside():
        kkt_stack_sync.status("any")

    with pytest.raises(RuntimeError, match="would never return"):
        kkt_stack_sync.run(blocking_inside())


def test_moving_time_from_a_sync_test(kkt_stack_sync):
    before = kkt_stack_sync.clock.now()
    assert kkt_stack_sync.advance("1h") == before + timedelta(hours=1)


async def test_an_unmarked_async_test_runs_on_a_loop_of_its_own(kkt_stack, kkt_stack_sync):
    assert kkt_stack.till.fn_serial != seen["drive"]
    assert asyncio.get_running_loop() is not kkt_stack.home.loop
    assert (await kkt_stack.till_state())["faults"] == []
    assert kkt_stack_sync.aio is kkt_stack


@pytest.mark.kkt_fresh
def test_a_fresh_installation_for_a_sync_test(kkt_stack_sync):
    assert not kkt_stack_sync.shared
    assert kkt_stack_sync.run(kkt_stack_sync.till.sell(100))


@pytest_asyncio.fixture
async def own_async_fixture():
    return 1


async def test_an_unmarked_test_with_an_async_fixture_of_its_own(kkt_stack, own_async_fixture):
    raise AssertionError("never run")


@pytest.mark.asyncio
async def test_a_marked_test_with_an_async_fixture_of_its_own(kkt_stack, own_async_fixture):
    assert own_async_fixture == 1
    assert (await kkt_stack.till_state())["faults"] == []
"""

CLOCK_TESTS = """
from datetime import UTC, datetime

import pytest

from kkt_emulator.clock import ManualClock
from kkt_emulator.testing.shared import HomedClock

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def kkt_clock(request):
    if "plain" in request.node.name:
        return ManualClock(START)
    return HomedClock(START)


async def test_an_own_clock_gives_a_fresh_installation_on_it(kkt_stack, kkt_clock):
    assert not kkt_stack.shared
    assert kkt_clock.now() == START
    await kkt_clock.advance(__import__("datetime").timedelta(days=1))
    assert (await kkt_stack.till_state())["faults"] == []


def test_a_plain_manual_clock_is_refused(kkt_stack_sync):
    raise AssertionError("never run")
"""


def _run_user_project(
    tmp_path: Path, mode: str, *extra: str, tests: str = USER_TESTS
) -> subprocess.CompletedProcess[str]:
    project = tmp_path / f"shop-{mode}"
    project.mkdir()
    (project / "pytest.ini").write_text(
        textwrap.dedent(
            f"""\
            [pytest]
            asyncio_mode = {mode}
            asyncio_default_fixture_loop_scope = function
            asyncio_default_test_loop_scope = function
            addopts = --strict-markers
            filterwarnings = error
            """
        ),
        encoding="utf-8",
    )
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    (project / "test_shop.py").write_text(tests.replace("{mark}", mark), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KKT_"))}
    return subprocess.run(  # noqa: S603 - sys.executable and constant arguments
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# Strict mode with the marker (pytest-asyncio runs the test) is in the synchronous project below;
# strict without it (the plugin runs the test) in test_readme_example.py.
def test_a_user_project_passes_with_only_the_fixtures(tmp_path: Path) -> None:
    result = _run_user_project(tmp_path, "auto")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_the_profile_option_and_help(tmp_path: Path) -> None:
    result = _run_user_project(
        tmp_path, "auto", "--kkt-profile", "modulkassa-ffd105", "--kkt-fresh", "-k", "marker"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    assert "--kkt-profile" in help_text
    assert "--kkt-fresh" in help_text


def test_tests_share_an_installation_that_is_reset_between_them(tmp_path: Path) -> None:
    result = _run_user_project(tmp_path, "auto", tests=SHARING_TESTS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 6 passed" in result.stdout, result.stdout + result.stderr
    assert "on purpose" in result.stdout


def test_sync_tests_get_blocking_twins_and_clear_errors(tmp_path: Path) -> None:
    project = tmp_path / "shop-sync"
    project.mkdir()
    (project / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n",
        encoding="utf-8",
    )
    (project / "test_sync.py").write_text(SYNC_TESTS, encoding="utf-8")
    (project / "test_clock.py").write_text(CLOCK_TESTS, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "KKT_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "1 failed, 8 passed, 1 error" in result.stdout, output
    failed = "FAILED test_sync.py::test_an_unmarked_test_with_an_async_fixture_of_its_own"
    # pytest adds the message after " - " where the line fits, and always on CI (CI=true).
    assert re.search(f"^{failed}( - .*)?$", result.stdout, re.MULTILINE), output
    assert "uses the async fixture 'own_async_fixture', which runs on another event loop" in output
    refused = "ERROR test_clock.py::test_a_plain_manual_clock_is_refused"
    assert re.search(f"^{refused} - Failed: kkt_clock", result.stdout, re.MULTILINE), output
    assert (
        "kkt_clock returned a ManualClock: return a kkt_emulator.testing.shared.HomedClock"
        in output
    )
