"""What a fleet's start-up costs the cloud, counted: requests a till and statements a till.

A till of a fleet watch (D69) binds with its first heartbeat (D134), leases once and syncs its
orders once (D132) as it starts; the bind and the order sync go beside FastAPI's router (D131),
and an order sync without a wait reads no revision first. Counted on the tills' lean HTTP client and on the cloud's
SQLite trace callback, so a call or a statement that comes back fails here, however fast.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from typing import TYPE_CHECKING, Any

from kkt_emulator.app.stack import FLEET_WATCH_FROM, Stack, StackOptions
from kkt_emulator.clock import RealClock
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till import lean_http
from kkt_emulator.till.fleet_watch import FleetWatch
from kkt_emulator.till.orders import WATCH_PENDING_LOOK

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

TILLS = FLEET_WATCH_FROM
POINTS = 4


async def _until(condition: Any, seconds: float = 20.0) -> None:
    """Look every 50 ms: what is waited for (a request count) has no event."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_fleet_till_starts_with_one_call_of_each_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests: Counter[str] = Counter()
    post = lean_http.LeanHttp.post

    async def counting(self: lean_http.LeanHttp, path: str, *args: Any, **kwargs: Any) -> Any:
        requests[path.split("?", 1)[0]] += 1
        return await post(self, path, *args, **kwargs)

    monkeypatch.setattr(lean_http.LeanHttp, "post", counting)
    statements: list[str] = []
    start_tills = Stack._start_tills

    async def traced(self: Stack) -> None:
        assert self.cloud is not None
        connection: sqlite3.Connection = self.cloud.storage._conn._conn  # type: ignore[attr-defined]
        requests.clear()
        connection.set_trace_callback(statements.append)
        await start_tills(self)

    monkeypatch.setattr(Stack, "_start_tills", traced)
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path / "stack",
        tills=TILLS,
        points=POINTS,
        long_poll=25.0,
    )
    async with Stack(options, RealClock()) as stack:
        assert stack.cloud is not None
        watch = FleetWatch.shared(stack.base_url)
        assert watch is not None
        await _until(lambda: watch.supported is True and watch.watching == TILLS)
        await _until(lambda: requests["/orders"] >= TILLS)
        # Before D132 every till synced again once the watch had answered, a look later.
        await asyncio.sleep(WATCH_PENDING_LOOK + 0.5)
        stack.cloud.storage._conn._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        counted = dict(requests)
    assert counted.get("/bind") == TILLS, counted
    # One order sync a till (D132); before it, every till synced twice (2 × TILLS). On a machine
    # loaded by the whole suite a watch answer can come late or twice, and a few tills sync again.
    assert TILLS <= counted.get("/orders", 0) <= TILLS + TILLS // 2, counted
    # The bind carried the first heartbeat (D134): before it, every till sent one more. A till
    # may heartbeat or lease again when the machine is slow (a long poll ends, a state changes):
    # the commits and statements below allow for every extra one.
    assert counted.get("/lease", 0) >= TILLS, counted
    extra = counted.get("/heartbeat", 0) + counted["/lease"] - TILLS
    assert counted.get("/heartbeat", 0) <= TILLS // 4, counted
    # Once every till has started, the OFD gates open (D119) and each drive's registration
    # report is acknowledged through /outbox: that exchange is no part of the start-up.
    started = _without_ofd_reports(statements)
    kinds = Counter(" ".join(sql.split()[:2]) for sql in started)
    # the bind (with the heartbeat) and the first lease; and one a repeated heartbeat or lease
    assert 2 * TILLS <= kinds["COMMIT"] <= 2 * TILLS + extra, (kinds, counted)
    revisions = [s for s in started if "MAX(rev)" in s and "FROM orders" in s]
    # A sync without a wait reads no revision first (D131); a watch without this cloud's cursor
    # reads each point's once (D141): fewer than the tills' syncs would.
    assert len(revisions) <= POINTS * counted.get("/watch", 0), (revisions, counted)
    assert len(revisions) < TILLS, (revisions, counted)
    assert len(started) <= 14 * TILLS + 8 * extra, kinds  # 13.2 a till; 15 before D134


def _without_ofd_reports(statements: list[str]) -> list[str]:
    """The statements but those of the transactions that store OFD acknowledgements."""
    kept: list[str] = []
    transaction: list[str] | None = None
    for sql in statements:
        if sql.startswith("BEGIN"):
            transaction = [sql]
        elif transaction is not None:
            transaction.append(sql)
            if sql.startswith(("COMMIT", "ROLLBACK")):
                if not any("ofd_parked" in s or "WHERE fn_number" in s for s in transaction):
                    kept.extend(transaction)
                transaction = None
        else:
            kept.append(sql)
    return kept
