"""The cloud benchmark runs end to end and reports its three rates."""

from __future__ import annotations

import asyncio

import pytest

from kkt_emulator.cloud.bench import bench_cloud


@pytest.mark.parametrize("in_process", [False, True], ids=["http", "asgi"])
async def test_bench_cloud_reports_rates(in_process: bool) -> None:
    result = await asyncio.to_thread(bench_cloud, 20, 20, 2, in_process=in_process)
    assert result["benchmark"] == "cloud"
    assert result["transport"] == ("asgi" if in_process else "http")
    for key in (
        "document_posts_per_second",
        "document_status_reads_per_second",
        "service_status_per_second",
    ):
        assert result[key] > 0
