"""Long polls wake by retail point, and only on a change or at their deadline (D66, D67).

The tests count what the cloud does (lease queries, notifications that ended a wait, the waits'
lengths), never time: a long poll that is not woken simply stays waiting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from cloud_helpers import FakeTill, Point, doc_status, make_point, minimal_doc, post_doc

from kkt_emulator.cloud.device_api import MAX_WATCHED, Notifier

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from kkt_emulator.clock import Clock, ManualClock
    from kkt_emulator.cloud.app import Cloud


class Counting:
    """Counts the service's lease queries and records how long each long-poll wait was asked for."""

    def __init__(self, cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
        self.leases: dict[str, int] = {}
        self.waits: list[float] = []
        lease = cloud.service.lease
        wait = cloud.notifier.wait

        def counted_lease(device: Any, point: Any, limit: int, **kw: Any) -> Any:
            self.leases[point.id] = self.leases.get(point.id, 0) + 1
            return lease(device, point, limit, **kw)

        async def recorded_wait(
            point_id: str, clock: Clock, seconds: float, gone: Any = None
        ) -> bool:
            self.waits.append(seconds)
            return await wait(point_id, clock, seconds, gone)

        monkeypatch.setattr(cloud.service, "lease", counted_lease)
        monkeypatch.setattr(cloud.notifier, "wait", recorded_wait)


async def _settle(http: httpx.AsyncClient, until: Callable[[], bool] | None = None) -> None:
    """Let the in-process long polls run (a cheap request gives the loop many turns)."""
    for _ in range(50):
        await http.get("/api/cabinet/v1/clock")
        if until is not None and until():
            return


async def test_a_document_at_another_point_wakes_no_long_poll(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(cloud, monkeypatch)
    tills = [await FakeTill(http, point).bind() for _ in range(3)]
    other = await make_point(http)
    waiting = [asyncio.create_task(t.lease(wait=30)) for t in tills]
    await _settle(http, lambda: cloud.notifier.waiting.get(point.id) == 3)
    assert cloud.notifier.waiting == {point.id: 3}
    assert counting.leases == {point.id: 3}

    for n in range(5):
        await post_doc(http, other, minimal_doc(docNum=str(n)))
    await _settle(http)
    assert cloud.notifier.wakeups == 0
    assert counting.leases == {point.id: 3}  # nobody re-checked
    assert not any(w.done() for w in waiting)

    doc = minimal_doc()
    await post_doc(http, point, doc)
    done, rest = await asyncio.wait(waiting, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    assert [d["docId"] for task in done for d in task.result()] == [doc["id"]]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    assert counting.leases.get(other.id) is None
    assert min(counting.waits) > 25  # each wait runs to the deadline, not to a 1 s re-check


async def test_a_notification_for_every_point_wakes_every_long_poll(
    http: httpx.AsyncClient, cloud: Cloud, point: Point
) -> None:
    other = await make_point(http)
    tills = [await FakeTill(http, p).bind() for p in (point, other)]
    waiting = [asyncio.create_task(t.lease(wait=30)) for t in tills]
    await _settle(http, lambda: len(cloud.notifier.waiting) == 2)
    cloud.service.on_change(None)
    await _settle(http, lambda: cloud.notifier.wakeups == 2)
    assert cloud.notifier.wakeups == 2
    assert not any(w.done() for w in waiting)  # woken, nothing eligible: waiting again
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_lease_expiry_and_requeue_wake_the_point_without_a_tick(
    http: httpx.AsyncClient,
    cloud: Cloud,
    clock: ManualClock,
    point: Point,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = [await FakeTill(http, point).bind() for _ in range(2)]
    doc = minimal_doc()
    await post_doc(http, point, doc)
    [leased] = await first.lease()
    counting = Counting(cloud, monkeypatch)
    waiting = asyncio.create_task(second.lease(wait=30))
    await _settle(http, lambda: cloud.notifier.waiting.get(point.id) == 1)
    assert counting.leases == {point.id: 1}

    # The 15-minute rule fires in the timer pass, which announces the point: one re-check.
    await clock.advance(timedelta(minutes=15))
    await cloud.wait_idle()
    await _settle(http, lambda: counting.leases[point.id] == 2)
    assert (await doc_status(http, point, doc["id"]))["status"] == "FAILED"
    assert cloud.notifier.wakeups == 1
    assert counting.leases == {point.id: 2}
    assert not waiting.done()

    # Re-queued: the waiting long poll takes it at once, though its deadline is far away.
    response = await http.put(f"/api/fn/v1/doc/{doc['id']}/re-queue", auth=point.assoc)
    assert response.status_code == 200, response.text
    got = await asyncio.wait_for(waiting, 10)
    assert [d["docId"] for d in got] == [leased["docId"]]
    assert counting.leases == {point.id: 3}
    assert min(counting.waits) > 25


async def test_a_notifier_forgets_a_point_nobody_waits_at() -> None:
    from kkt_emulator.clock import RealClock  # noqa: PLC0415 - only here

    notifier = Notifier()
    clock = RealClock()
    woken = asyncio.create_task(notifier.wait("p1", clock, 30))
    timed_out = asyncio.create_task(notifier.wait("p2", clock, 0))
    await asyncio.sleep(0)
    assert await timed_out is False
    notifier.notify("p2")  # nobody waits there any more: nothing to wake
    assert not woken.done()
    notifier.notify("p1")
    assert await woken is True
    assert notifier.waiting == {}
    assert notifier.wakeups == 1
    assert notifier._waiters == {}  # the notifier keeps nothing for idle points


async def test_a_change_announced_from_another_thread_wakes_the_point(
    http: httpx.AsyncClient, cloud: Cloud, point: Point
) -> None:
    till = await FakeTill(http, point).bind()
    waiting = asyncio.create_task(till.lease(wait=30))
    await _settle(http, lambda: cloud.notifier.waiting.get(point.id) == 1)
    await asyncio.to_thread(cloud.service.on_change, point.id)
    await _settle(http, lambda: cloud.notifier.wakeups == 1)
    assert cloud.notifier.wakeups == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)


# -- the till's last contact (D67) ----------------------------------------------------------------


async def _last_contact(http: httpx.AsyncClient, point: Point) -> str | None:
    response = await http.get("/api/fn/v1/status", auth=point.assoc)
    assert response.status_code == 200, response.text
    value: str | None = response.json()["dateTime"]
    return value


async def test_a_long_poll_moves_the_last_contact_not_the_heartbeat(
    http: httpx.AsyncClient, clock: ManualClock, point: Point, till: FakeTill
) -> None:
    async def cabinet_view() -> dict[str, Any]:
        [device] = (await http.get("/api/cabinet/v1/heartbeats")).json()
        assert isinstance(device, dict)
        return device

    await till.heartbeat("READY")
    first, seen = await _last_contact(http, point), await cabinet_view()
    await clock.advance(timedelta(minutes=3))
    assert await _last_contact(http, point) == first  # D40: no contact, an ageing time
    assert await till.lease(wait=0) == []
    assert await _last_contact(http, point) == first  # a plain poll comes with its heartbeat
    assert await till.lease(wait=0.05) == []
    moved, now_seen = await _last_contact(http, point), await cabinet_view()
    assert moved is not None
    assert first is not None
    assert moved > first
    assert now_seen["lastHeartbeatAt"] != seen["lastHeartbeatAt"]
    assert now_seen["heartbeat"] == seen["heartbeat"]  # what the till said stays
    status = (await http.get("/api/fn/v1/status", auth=point.assoc)).json()["status"]
    assert status == "READY"
    await clock.advance(timedelta(seconds=1))
    assert await till.lease(wait=0.05) == []
    assert await _last_contact(http, point) == moved  # within SEEN_EVERY: nothing written


async def test_a_long_poll_of_a_till_without_a_heartbeat_leaves_the_point_associated(
    http: httpx.AsyncClient, point: Point, till: FakeTill
) -> None:
    assert await till.lease(wait=0.05) == []
    response = await http.get("/api/fn/v1/status", auth=point.assoc)
    assert response.json()["status"] == "ASSOCIATED"


# -- the fleet watch (D69) ------------------------------------------------------------------------


async def _watch(
    http: httpx.AsyncClient, tokens: list[str], wait: float = 0, after: str = ""
) -> dict[str, Any]:
    response = await http.post(
        "/api/device/v1/watch", params={"wait": wait, "after": after}, json={"tokens": tokens}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_fleet_watch_names_the_tills_whose_point_has_news(
    http: httpx.AsyncClient, cloud: Cloud, point: Point, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await make_point(http)
    tills = [await FakeTill(http, p).bind() for p in (point, point, other)]
    tokens = [t.token for t in tills] + ["no-such-token"]
    await post_doc(http, point, minimal_doc())
    first = await _watch(http, tokens)
    assert first["ready"] == [0]  # one document, one of the point's two tills told (D112)
    assert first["refused"] == [3]
    # No point ever had an order: a watch without a cursor of this cloud is told of none (D141).
    assert first["orders"] == []
    tokens.pop()
    # Told once: the same queued document is no news for the next watch.
    assert (await _watch(http, tokens, after=first["after"]))["ready"] == []
    # A watch of another cloud process (another epoch) is told everything again.
    assert (await _watch(http, tokens, after="elsewhere:1"))["ready"] == [1]  # the next in turn

    counting = Counting(cloud, monkeypatch)
    held = asyncio.create_task(_watch(http, tokens, wait=30, after=first["after"]))
    # One wait for both points, their documents and their orders (D116).
    waiting = dict.fromkeys((point.id, other.id, f"orders:{point.id}", f"orders:{other.id}"), 1)
    await _settle(http, lambda: cloud.notifier.waiting == waiting)
    assert cloud.notifier.waiting == waiting
    await post_doc(http, other, minimal_doc())
    answer = await asyncio.wait_for(held, 10)
    assert answer["ready"] == [2]
    assert counting.leases == {}  # the watch itself leases nothing
    assert min(counting.waits) > 25


async def test_a_fleet_watch_is_the_sign_of_life_of_its_tills(
    http: httpx.AsyncClient, clock: ManualClock, point: Point
) -> None:
    tills = [await FakeTill(http, point).bind() for _ in range(2)]
    for till in tills:
        await till.heartbeat("READY")
    before = await _last_contact(http, point)
    await clock.advance(timedelta(minutes=2))
    await _watch(http, [t.token for t in tills], wait=0.05)
    after = await _last_contact(http, point)
    assert after is not None
    assert before is not None
    assert after > before
    seen = {d["lastHeartbeatAt"] for d in (await http.get("/api/cabinet/v1/heartbeats")).json()}
    assert len(seen) == 1  # both tills, in one transaction


async def test_a_fleet_watch_refuses_too_many_tokens(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/device/v1/watch", json={"tokens": ["t"] * (MAX_WATCHED + 1)})
    assert response.status_code == 400
    assert "tokens" in response.json()["message"]
