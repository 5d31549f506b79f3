"""`status` of a big fleet lists every till (D120), on any broker.

mosquitto holds at most 1,000 QoS 1 messages for a client beyond the 20 in flight and drops the
rest: the retained statuses of 4,000 tills reached `status` as 1,015. The listing subscribes with
QoS 0, and the private broker queues far more for the answers of a command sent to every till.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kkt_emulator.control import topics
from kkt_emulator.control.broker import MAX_QUEUED, MosquittoBroker, find_mosquitto
from kkt_emulator.control.client import ControlClient
from kkt_emulator.control.link import MqttLink

pytestmark = pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed")

TILLS = 1500


class _DefaultQueueBroker(MosquittoBroker):
    """A mosquitto with its default per-client queue, as an operator's own broker runs."""

    def _config(self, port: int) -> str:
        return "\n".join(
            line for line in super()._config(port).splitlines() if "max_queued" not in line
        )


@pytest.fixture
async def default_broker() -> AsyncIterator[MosquittoBroker]:
    async with _DefaultQueueBroker() as running:
        yield running


async def test_status_lists_every_till_beyond_the_brokers_queue(
    default_broker: MosquittoBroker,
) -> None:
    async with MqttLink(default_broker.url) as publisher:  # QoS 1, retained: as the agents publish
        await publisher.connect(5.0)
        for n in range(TILLS):
            await publisher.publish(
                topics.status_topic(f"till-{n:05d}"), topics.ONLINE, qos=1, retain=True
            )
        await publisher.sync(10.0)
    async with ControlClient(default_broker.url, timeout=10) as control:
        tills = await control.tills()
    assert len(tills) == TILLS
    assert all(t.online for t in tills)


def test_the_private_broker_queues_more_than_moquittos_default() -> None:
    config = MosquittoBroker()._config(1883)
    assert f"max_queued_messages {MAX_QUEUED}" in config.splitlines()
    assert MAX_QUEUED > 5000  # the most tills one process holds, each answering one command
