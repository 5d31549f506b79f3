"""Fixtures of the web cabinet's tests: a cloud in process (pages) and a browser (tests/web)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from selenium import webdriver

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

from .browser import BrowserUnavailableError, Page, find_or_install, start_browser
from .web_helpers import T0

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def settings() -> CloudSettings:
    return CloudSettings(password_iterations=1000)


@pytest.fixture
async def cloud(
    tmp_path: Path, clock: ManualClock, settings: CloudSettings
) -> AsyncIterator[Cloud]:
    async with Cloud(tmp_path / "cloud.db", clock, settings) as running:
        yield running


@pytest.fixture
async def http(cloud: Cloud) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client


# -- the browser (one per session) ------------------------------------------------------------------

_ARTIFACTS: list[Path] = []


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$KKT_WEB_ARTIFACTS`` (CI uploads it) or a session temp folder."""
    configured = os.environ.get("KKT_WEB_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("web-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS.append(folder)
    return folder


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    try:
        browser, driver = find_or_install()
    except BrowserUnavailableError as exc:
        pytest.skip(f"no headless Chromium for the browser tests: {exc}")
    chrome = start_browser(browser, driver)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def page(
    chromium: webdriver.Chrome, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    folder = artifacts / request.node.name
    folder.mkdir(exist_ok=True)
    yield Page(chromium, folder)
    chromium.get("about:blank")  # closes the page's event stream before the installation stops
    chromium.delete_all_cookies()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for folder in _ARTIFACTS:
        shots = sorted(folder.rglob("*.png"))
        if shots:
            terminalreporter.write_line(f"web cabinet screenshots ({len(shots)}): {folder}")
