"""A real `kkt-emulator till run` process killed with SIGKILL at each crash point, then restarted.

After the restart every shop document ends fiscalised exactly once, and the drive's fiscal
document numbers stay consecutive.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.clock import RealClock
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.testing.stack import StackHarness

KKT = [sys.executable, "-m", "kkt_emulator"]


async def start_till(
    kkt: StackHarness, state: Path, crash_at: str | None
) -> asyncio.subprocess.Process:
    point = kkt.stack.points[0]
    env = {k: v for k, v in os.environ.items() if k != "KKT_TILL_CRASH_AT"}
    if crash_at:
        env["KKT_TILL_CRASH_AT"] = crash_at
    return await asyncio.create_subprocess_exec(
        *KKT,
        "till",
        "run",
        "--server",
        kkt.stack.base_url,
        "--retail-point",
        point["retail_point_id"],
        "--login",
        point["service_login"],
        "--password",
        point["service_password"],
        "--state-dir",
        str(state),
        "--poll-interval",
        "0.05",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.mark.parametrize("point", ["before_commit", "after_commit", "after_outbox"])
async def test_sigkill_at_each_crash_point_loses_and_doubles_nothing(
    tmp_path: Path, point: str
) -> None:
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE), state_dir=tmp_path / "stack", tills=0
    )
    clock = RealClock()
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        state = tmp_path / "till"
        docs = [kkt.sale(10.0 + n) for n in range(3)]
        for doc in docs:
            await kkt.post_document(doc)
        process = await start_till(kkt, state, point)
        returncode = await asyncio.wait_for(process.wait(), timeout=60)
        assert returncode == -signal.SIGKILL, (
            (await process.stderr.read()).decode() if process.stderr else ""
        )

        restarted = await start_till(kkt, state, None)
        try:
            statuses = [
                await kkt.wait_for_status(doc["id"], "COMPLETED", timeout=60) for doc in docs
            ]
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(restarted.wait(), timeout=30) == 0
        await kkt.http.aclose()

    fds = sorted(s["fiscalInfo"]["fnDocNumber"] for s in statuses)
    assert len(set(fds)) == len(docs)
    meta = SqliteStore.read_meta(state / "drive.sqlite3")
    archive = SqliteStore(state / "drive.sqlite3", serial=meta["serial"])
    documents = archive.documents()
    archive.close()
    # Consecutive fiscal document numbers, and exactly one receipt per shop document.
    assert [d.fd for d in documents] == list(range(1, len(documents) + 1))
    receipts = [d for d in documents if d.doc_code == DocCode.RECEIPT]
    assert sorted(d.fd for d in receipts) == fds
