"""``up``'s web cabinet: its URL in the ready-file and the banner, live events, a prompt stop."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx

from kkt_emulator.testing.stack import StackHarness

if TYPE_CHECKING:
    from pathlib import Path


async def test_the_ready_file_and_banner_name_the_web_cabinet(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path, tills=1) as kkt:
        url = kkt.info["cabinet_web"]
        assert url == f"{kkt.stack.base_url}/cabinet/"
        written = json.loads((tmp_path / "ready.json").read_text(encoding="utf-8"))
        assert written["cabinet_web"] == url
        assert f"web cabinet      {url}" in kkt.stack.banner()
        page = await kkt.http.get(url, follow_redirects=True)
        assert page.status_code == 200
        assert "Интернет-магазин" in page.text


async def test_a_browser_stream_sees_a_document_and_does_not_hold_up_the_stop(
    tmp_path: Path,
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        events = f"{kkt.info['cabinet_web']}events"
        async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", events) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("retry: ")
            await kkt.post_document(kkt.sale())
            async for line in lines:
                if line.startswith("data: "):
                    assert kkt.retail_point_id in json.loads(line[6:])["keys"]
                    break
            started = time.monotonic()
            await kkt.stack.close()  # with the stream still open
            assert time.monotonic() - started < 5.0
