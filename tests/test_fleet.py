"""A small fleet through ``bench fleet``: every point gets documents and every one completes.

The 200-till run is the benchmark (``kkt-emulator bench fleet``); this keeps the suite fast.
"""

from __future__ import annotations

import pytest

from kkt_emulator.app.bench import bench_fleet
from kkt_emulator.control.broker import find_mosquitto

pytestmark = pytest.mark.slow


async def test_a_fleet_completes_every_document_of_every_point() -> None:
    result = await bench_fleet(
        20,
        5,
        2,
        poll_interval=0.5,
        idle_seconds=0.5,
        mqtt="spawn" if find_mosquitto() else None,
        timeout=60.0,
    )
    assert result["statuses"] == {"COMPLETED": 10}
    assert result["all_completed"] is True
    assert result["settle_seconds"] >= 0
    assert result["unsettled_tills"] == 0
    assert result["documents"] == 10
    assert result["tills"] == 20
    assert result["startup_seconds"] > 0
    assert result["peak_rss_mib"] > 0
    assert result["open_fds"] is None or result["open_fds"] < 20 * 12 + 64
