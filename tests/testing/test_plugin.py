"""The pytest plugin, used the way a shop's own suite uses it: a project outside the package."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_a_user_project_passes_with_only_the_fixtures(tmp_path: Path, mode: str) -> None:
    result = _run_user_project(tmp_path, mode)
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
