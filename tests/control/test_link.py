"""The MQTT adapter and the mosquitto spawner against a real mosquitto."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from control_helpers import wait_for

from kkt_emulator.control import broker as broker_module
from kkt_emulator.control.broker import MosquittoBroker
from kkt_emulator.control.link import BrokerAddress, MqttLink, Received
from kkt_emulator.control.plane import resolve_mqtt
from kkt_emulator.errors import ConfigError, TransportError


@pytest.fixture
async def broker() -> AsyncIterator[MosquittoBroker]:
    async with MosquittoBroker() as running:
        yield running


def test_broker_urls() -> None:
    assert BrokerAddress.parse("mqtt://127.0.0.1:1884") == BrokerAddress("127.0.0.1", 1884)
    address = BrokerAddress.parse("mqtt://u:p%40ss@host")
    assert (address.username, address.password, address.url) == ("u", "p@ss", "mqtt://host:1883")
    assert BrokerAddress.parse("mqtt://host").url == "mqtt://host:1883"
    for bad in ("http://host:1", "mqtt://", "mqtt://host:99999", "mqtt://host/x"):
        with pytest.raises(ConfigError):
            BrokerAddress.parse(bad)


async def test_retained_message_reaches_a_late_subscriber(broker: MosquittoBroker) -> None:
    async with MqttLink(broker.url) as writer, MqttLink(broker.url) as reader:
        await writer.connect()
        await reader.connect()
        for n in range(3):
            await writer.publish("kkt/d1/state", f"v{n}", retain=True)
        async with reader.messages("kkt/+/state") as inbox:
            await reader.sync()
            assert [m.payload for m in inbox.drain()] == [b"v2"]
            await writer.publish("kkt/d1/state", "v3", retain=True)
            message = await inbox.get()
        assert (message.payload, message.retain) == (b"v3", False)


async def test_overlapping_subscriptions_deliver_once_each(broker: MosquittoBroker) -> None:
    async with MqttLink(broker.url) as link:
        await link.connect()
        async with link.messages("kkt/#") as everything, link.messages("kkt/d1/events") as events:
            await link.publish("kkt/d1/events", "e1")
            await link.publish("kkt/d2/events", "e2")
            await link.sync()
            assert [m.payload for m in everything.drain()] == [b"e1", b"e2"]
            assert [m.payload for m in events.drain()] == [b"e1"]


async def test_twenty_concurrent_requests_match_their_answers(broker: MosquittoBroker) -> None:
    async with MqttLink(broker.url) as server, MqttLink(broker.url) as client:
        await server.connect()
        await client.connect()
        pace = server.clock
        tasks: set[asyncio.Task[None]] = set()

        async def answer(message: Received) -> None:
            n = int(message.payload)
            await pace.pace((20 - n) * 0.002)  # later requests are answered first
            assert message.response_topic is not None
            await server.publish(
                message.response_topic, f"answer {n}", correlation=message.correlation
            )

        def on_request(message: Received) -> None:
            task = asyncio.create_task(answer(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await server.subscribe("svc/cmd", on_request)
        answers = await asyncio.gather(
            *(client.request("svc/cmd", str(n).encode(), timeout=5) for n in range(20))
        )
        assert [a.payload for a in answers] == [f"answer {n}".encode() for n in range(20)]
        assert client.pending_requests == 0


async def test_unanswered_request_times_out_and_leaves_nothing_pending(
    broker: MosquittoBroker,
) -> None:
    async with MqttLink(broker.url) as client:
        await client.connect()
        with pytest.raises(TransportError, match=r"no answer on nobody/cmd within 0.2 s"):
            await client.request("nobody/cmd", b"{}", timeout=0.2)
        task = asyncio.create_task(client.request("nobody/cmd", b"{}", timeout=5))
        await wait_for(lambda: client.pending_requests == 1, what="the request to be pending")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.pending_requests == 0


async def test_link_survives_a_broker_restart(broker: MosquittoBroker) -> None:
    async with MqttLink(broker.url) as link, MqttLink(broker.url) as other:
        await link.connect()
        await other.connect()
        got: list[bytes] = []
        await link.subscribe("kkt/+/events", lambda m: got.append(m.payload))
        await broker.restart()
        await wait_for(lambda: link.connections == 2 and other.connections == 2, what="reconnect")
        await link.wait_connected()
        await other.publish("kkt/d1/events", "after restart")
        await wait_for(lambda: got == [b"after restart"], what="the re-made subscription")


async def test_unreachable_broker_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        link = MqttLink(f"mqtt://127.0.0.1:{port}")
        with pytest.raises(TransportError, match=rf"cannot reach the MQTT broker at .*:{port}"):
            await link.connect(0.3)
        await link.close()


async def test_missing_mosquitto_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mosquitto not found"):
        await MosquittoBroker(binary="/nonexistent/mosquitto").start()


async def test_taken_fixed_port_fails_with_mosquittos_reason(broker: MosquittoBroker) -> None:
    clash = MosquittoBroker(port=broker.port)
    with pytest.raises(TransportError, match="Address already in use"):
        await clash.start()
    assert not clash.running


async def test_a_taken_free_port_is_retried(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([broker.port, 0])
    real = broker_module._free_port

    def racy(host: str) -> int:
        # The first "free" port is taken by the running broker, as in a race with another process.
        port = next(ports)
        return port or real(host)

    monkeypatch.setattr(broker_module, "_free_port", racy)
    async with MosquittoBroker() as second:
        assert second.port != broker.port
        async with MqttLink(second.url) as link:
            await link.connect()


def test_resolve_mqtt(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_mqtt("none") == (None, None)
    assert resolve_mqtt("auto") == ("spawn", None)
    assert resolve_mqtt("spawn") == ("spawn", None)
    assert resolve_mqtt("mqtt://10.0.0.5:1884") == ("mqtt://10.0.0.5:1884", None)
    with pytest.raises(ConfigError, match="not a broker URL"):
        resolve_mqtt("localhost:1883")
    monkeypatch.setenv("KKT_MOSQUITTO", "/nonexistent/mosquitto")
    mode, notice = resolve_mqtt("auto")
    assert mode is None
    assert notice is not None
    assert notice.startswith("mosquitto not found: running without the MQTT control plane")
    with pytest.raises(ConfigError, match="--mqtt spawn: mosquitto not found"):
        resolve_mqtt("spawn")
