"""Headless Chromium for the web cabinet's browser tests: found or installed, then driven async.

Debian's ``chromium`` and ``chromium-driver`` are used where they are; missing, they are installed
with apt-get when the tests run as root (CI), else the tests are skipped with the reason. Selenium
is synchronous while the installation under test runs on the test's event loop, so every browser
call runs in a worker thread (:class:`Page`), never blocking the loop that serves the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

__all__ = ["BrowserUnavailableError", "Page", "find_or_install", "start_browser"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")
_DRIVERS = ("chromedriver",)
_DRIVER_PATHS = ("/usr/lib/chromium/chromedriver",)


#: apt-get and dpkg refuse to run beside another apt-get: test sessions running side by side
#: (pytest-xdist workers) take turns through this lock, and the later one finds the package there.
_APT_LOCK = Path(tempfile.gettempdir()) / "kkt-tests-apt.lock"


@contextlib.contextmanager
def _apt_turn() -> Iterator[None]:
    with _APT_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class BrowserUnavailableError(RuntimeError):
    """No Chromium with its driver here, and none could be installed (the reason in the text)."""


def _which(names: tuple[str, ...], extra: tuple[str, ...] = ()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in extra if Path(p).is_file()), None)


def find_or_install() -> tuple[str, str]:
    """The paths of Chromium and chromedriver; apt-get installs them when root may.

    Raises:
        BrowserUnavailableError: missing and not installable here.
    """
    browser, driver = _which(_BROWSERS), _which(_DRIVERS, _DRIVER_PATHS)
    if browser and driver:
        return browser, driver
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrowserUnavailableError(
            "chromium and chromium-driver are not installed and apt-get cannot run here"
            " (not root or not Debian): apt-get install chromium chromium-driver"
        )
    with _apt_turn():
        return _install()


def _install() -> tuple[str, str]:
    browser, driver = _which(_BROWSERS), _which(_DRIVERS, _DRIVER_PATHS)
    if browser and driver:  # installed by the session that had its turn first
        return browser, driver
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
    ):
        result = subprocess.run(  # noqa: S603 - constant arguments
            command, capture_output=True, text=True, timeout=540, env=env, check=False
        )
        if result.returncode == 0 and command[1] == "install":
            break
    browser, driver = _which(_BROWSERS), _which(_DRIVERS, _DRIVER_PATHS)
    if not (browser and driver):
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BrowserUnavailableError(f"apt-get could not install chromium: {tail[0]}")
    return browser, driver


def start_browser(browser: str, driver: str) -> webdriver.Chrome:
    """Headless Chromium, 1280×900, Russian first, no sandbox (CI runs as root)."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--lang=ru-RU",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@dataclass
class Page:
    """The browser as async calls for a test whose server runs on the same event loop."""

    driver: webdriver.Chrome
    artifacts: Path
    shots: list[Path] = field(default_factory=list)

    async def _call(self, function: Any, *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    async def open(self, url: str) -> None:
        """Load ``url`` and wait for the page."""
        await self._call(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        """Run ``script`` in the page; its return value."""
        return await self._call(self.driver.execute_script, script, *args)

    def _text_now(self, css: str) -> str | None:
        try:
            text: str = self.driver.find_element(By.CSS_SELECTOR, css).text
        except (NoSuchElementException, StaleElementReferenceException):
            return None
        return text

    async def text(self, css: str) -> str | None:
        """The visible text of the first element matching ``css``; ``None`` if there is none."""
        found: str | None = await self._call(self._text_now, css)
        return found

    async def wait_text(self, css: str, wanted: str, seconds: float = 15.0) -> str:
        """Wait until the element's text contains ``wanted``; fails with what it showed."""
        deadline = time.monotonic() + seconds
        seen = None
        while time.monotonic() < deadline:
            seen = await self.text(css)
            if seen is not None and wanted in seen:
                return seen
            await asyncio.sleep(0.05)
        await self.screenshot("timeout")
        raise AssertionError(f"{css!r} shows {seen!r}, not {wanted!r}, after {seconds} s")

    async def click(self, css: str) -> None:
        """Click the first element matching ``css``."""

        def click() -> None:
            self.driver.find_element(By.CSS_SELECTOR, css).click()

        await self._call(click)

    async def checked(self, css: str) -> bool:
        """Whether the checkbox matching ``css`` is checked."""

        def checked() -> bool:
            return bool(self.driver.find_element(By.CSS_SELECTOR, css).is_selected())

        result: bool = await self._call(checked)
        return result

    async def screenshot(self, name: str) -> Path:
        """Save a PNG of the window in the artifacts folder; its path."""
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        await self._call(self.driver.save_screenshot, str(path))
        self.shots.append(path)
        return path
