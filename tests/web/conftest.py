"""Fixtures of the web cabinet's tests: a cloud in process (pages) and a browser (tests/web)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from web_helpers import T0

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


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
