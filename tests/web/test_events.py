"""The change hub and the event stream: cheap with nobody watching, one event for a burst."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.web.hub import ANY, ChangeHub
from kkt_emulator.cloud.web.pages import _stream

from .web_helpers import T0

if TYPE_CHECKING:
    from kkt_emulator.cloud.app import Cloud


def test_publishing_with_nobody_watching_keeps_nothing() -> None:
    hub = ChangeHub()
    hub.publish("point-1")
    with hub.subscribe() as subscription:
        assert hub.subscribers == 1
        assert subscription.take() == set()  # nothing from before it subscribed
        hub.publish("point-1")
        hub.publish(None)
        hub.publish("point-1")
        assert subscription.take() == {"point-1", ANY}
        assert subscription.take() == set()
    assert hub.subscribers == 0


async def test_a_burst_of_changes_is_one_event() -> None:
    hub = ChangeHub()
    stream = _stream(hub, ManualClock(T0))
    assert (await anext(stream)).startswith("retry: ")
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    for _ in range(100):
        hub.publish("point-1")
    hub.publish("orders:point-1")
    event = await asyncio.wait_for(pending, 2)
    name, data = event.strip().split("\n")
    assert name == "event: change"
    assert json.loads(data.removeprefix("data: ")) == {"keys": ["orders:point-1", "point-1"]}
    hub.close()
    rest = [chunk async for chunk in stream]
    assert len(rest) <= 1  # at most the closing change, then the stream ends
    assert hub.subscribers == 0


async def test_the_cloud_announces_its_writes_to_the_hub(cloud: Cloud) -> None:
    with cloud.web_hub.subscribe() as subscription:
        cloud.service.on_change("point-7")
        assert subscription.take() == {"point-7"}
