"""Fixtures for the cloud stand-in: a manual clock, a fake shop, the app in process, a bound till.

``pg`` is a real PostgreSQL server for the whole session (:mod:`pg_server`); ``any_db`` is a fresh
database on SQLite and then on PostgreSQL, for the storage contract suite and the modules that
run the lifecycle, timers and leases through storage (they set ``db_path = any_db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from cloud_helpers import T0, FakeShop, FakeTill, Point, make_point
from pg_server import PgServer, PgUnavailableError, start_server

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    try:
        server = start_server()
    except PgUnavailableError as exc:
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh cloud database: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "cloud.db")
    server: PgServer = request.getfixturevalue("pg")
    return server.cloud_database()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def shop() -> FakeShop:
    return FakeShop()


@pytest.fixture
def settings() -> CloudSettings:
    return CloudSettings(password_iterations=1000)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cloud.db"


@pytest.fixture
async def cloud(
    db_path: Path, clock: ManualClock, settings: CloudSettings, shop: FakeShop
) -> AsyncIterator[Cloud]:
    async with Cloud(db_path, clock, settings, callback_transport=shop.transport) as running:
        yield running


@pytest.fixture
async def http(cloud: Cloud) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield client


@pytest.fixture
async def point(http: httpx.AsyncClient) -> Point:
    return await make_point(http)


@pytest.fixture
async def till(http: httpx.AsyncClient, point: Point) -> FakeTill:
    return await FakeTill(http, point).bind()
