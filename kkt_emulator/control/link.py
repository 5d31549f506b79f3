"""The one adapter over aiomqtt: an MQTT 5 connection that survives broker restarts.

:class:`MqttLink` keeps one connection to the broker alive in a background task: it connects
(with an optional last will), re-subscribes everything and runs the ``on_connect`` hooks after
every (re)connection, and retries with exponential back-off (pacing time, never business time)
when the broker goes away. On top of it:

* :meth:`MqttLink.publish` — QoS and the retain flag; waits for the connection (or drops the
  message with ``wait=False``);
* :meth:`MqttLink.subscribe` — a callback per topic filter, routed by MQTT 5 subscription
  identifiers so overlapping filters never deliver twice; :meth:`MqttLink.messages` — the same as
  a queue;
* :meth:`MqttLink.request` — MQTT 5 request/response: the request carries this link's response
  topic and fresh correlation data; the pending request is registered by a context manager that
  always removes it (answered, timed out or cancelled), so late answers are dropped, never leaked;
* :meth:`MqttLink.sync` — a round trip through the broker: every retained message of an earlier
  subscription has been delivered when it returns.

aiomqtt and paho-mqtt errors are translated here, once, into
:class:`~kkt_emulator.errors.TransportError`. No other module imports aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from kkt_emulator.clock import Clock, RealClock
from kkt_emulator.control.tasks import stop_tasks
from kkt_emulator.control.topics import reply_topic
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.logging import get_logger

__all__ = ["BrokerAddress", "Inbox", "LastWill", "MqttLink", "Received", "Subscription"]

DEFAULT_PORT = 1883
_REPLY_SUBSCRIPTION = 1  # subscription identifier of the link's own response topic
_SUBACK_FAILURE = 0x80  # MQTT 5 §3.9.3: reason codes of 0x80 and above refuse a subscription


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho's Properties has no annotations


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens, parsed from ``mqtt://[user:password@]host[:port]``."""

    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Parse a broker URL.

        Raises:
            ConfigError: not an ``mqtt://`` URL with a host.
        """
        parts = urlsplit(url.strip())
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ConfigError(f"not a broker URL: {url!r} (use mqtt://host:port)")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError(f"bad port in broker URL {url!r}") from exc
        if parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"a broker URL has no path or query: {url!r}")
        return cls(
            parts.hostname,
            port,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
        )

    @property
    def url(self) -> str:
        """The URL without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LastWill:
    """The message the broker publishes when the connection dies without a DISCONNECT."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Received:
    """An incoming message, free of aiomqtt and paho types."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 0
    response_topic: str | None = None
    correlation: bytes | None = None

    @property
    def text(self) -> str:
        """The payload as UTF-8 text (undecodable bytes replaced)."""
        return self.payload.decode(errors="replace")


Deliver = Callable[[Received], None]


@dataclass(slots=True)
class _Route:
    sub_id: int
    topic_filter: str
    qos: int
    deliver: Deliver


class Subscription:
    """A registered topic filter; :meth:`cancel` unsubscribes (idempotent)."""

    def __init__(self, link: MqttLink, route: _Route) -> None:
        self._link = link
        self._route = route
        self.topic_filter = route.topic_filter

    async def cancel(self) -> None:
        """Stop delivering and unsubscribe at the broker (if connected)."""
        await self._link._unsubscribe(self._route)  # noqa: SLF001 - the link owns the route table


class Inbox:
    """Messages of one subscription, queued in arrival order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Received] = asyncio.Queue()

    def put(self, message: Received) -> None:
        """Queue a message (the subscription's callback)."""
        self._queue.put_nowait(message)

    async def get(self, timeout: float = 10.0) -> Received:  # noqa: ASYNC109 - a timeout per call reads best in tests and the CLI
        """The next message.

        Raises:
            TimeoutError: none within ``timeout`` seconds (real time).
        """
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def get_nowait(self) -> Received | None:
        """The next message if one is queued."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def drain(self) -> list[Received]:
        """Every queued message, oldest first."""
        out: list[Received] = []
        while (message := self.get_nowait()) is not None:
            out.append(message)
        return out

    def __aiter__(self) -> AsyncIterator[Received]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Received]:
        while True:
            yield await self._queue.get()


class MqttLink:
    """One MQTT 5 client connection, kept alive; use as an async context manager.

    Args:
        url: the broker, ``mqtt://host:port``.
        client_id: the MQTT client identifier (default: a random ``kkt-…`` one); also names the
            response topic ``kkt-reply/<client_id>``.
        will: published by the broker if this connection dies without disconnecting.
        clock: for pacing the back-off (business time is never involved).
        keepalive: seconds; the broker declares the client dead after 1.5× this without traffic.
        timeout: seconds for one broker operation (CONNACK, SUBACK, PUBACK).
        backoff: first and longest pause between connection attempts, in seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        will: LastWill | None = None,
        clock: Clock | None = None,
        keepalive: int = 10,
        timeout: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.address = BrokerAddress.parse(url)
        self.url = self.address.url
        self.client_id = client_id or f"kkt-{secrets.token_hex(6)}"
        self.reply_topic = reply_topic(self.client_id)
        self.will = will
        self.clock = clock or RealClock()
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self.connections = 0
        self.last_error: str | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._routes: dict[int, _Route] = {}
        self._next_sub_id = _REPLY_SUBSCRIPTION + 1
        self._pending: dict[bytes, asyncio.Future[Received]] = {}
        self._task: asyncio.Task[None] | None = None
        self._hooks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self.log = get_logger(component="mqtt", client_id=self.client_id)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background (idempotent)."""
        if self._task is None:
            self._closing.clear()
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def connect(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - the caller's budget for the first connection
        """Start and wait for the first connection.

        Raises:
            TransportError: not connected within ``timeout`` seconds (with the last reason).
        """
        self.start()
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            reason = f": {self.last_error}" if self.last_error else ""
            raise TransportError(f"cannot reach the MQTT broker at {self.url}{reason}") from None

    @property
    def connected(self) -> bool:
        """Whether the link is connected (and subscribed) right now."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until the link is connected (no timeout: wrap it in one)."""
        await self._connected.wait()

    async def close(self) -> None:
        """Disconnect cleanly (the will is not published) and stop reconnecting."""
        self._closing.set()
        await stop_tasks([*self._hooks, *([self._task] if self._task is not None else [])])
        self._task = None
        for future in self._pending.values():
            future.cancel()

    # ------------------------------------------------------------------ connection loop

    def _make_client(self) -> aiomqtt.Client:
        will = None
        if self.will is not None:
            will = aiomqtt.Will(
                self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain
            )
        client = aiomqtt.Client(
            self.address.host,
            self.address.port,
            username=self.address.username,
            password=self.address.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=self.keepalive,
            timeout=self.timeout,
            # A fresh session on every connection: this link re-subscribes by itself, and a
            # restarted broker (persistence off) has forgotten the session anyway.
            clean_start=True,
        )
        # aiomqtt warns from 10 unacknowledged publishes on; a burst of commands is normal here.
        client.pending_calls_threshold = 10_000
        return client

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closing.is_set():
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    await self._subscribe_all(client)
                    self.connections += 1
                    self.last_error = None
                    delay = self.backoff[0]
                    self._connected.set()
                    self.log.debug("mqtt_connected", broker=self.url, connections=self.connections)
                    for hook in self.on_connect:
                        self._spawn_hook(hook)
                    async for message in client.messages:
                        self._dispatch(message)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc) or type(exc).__name__
                if self.connections:
                    self.log.info("mqtt_disconnected", broker=self.url, error=self.last_error)
            except TransportError as exc:  # a refused subscription
                self.last_error = str(exc)
                self.log.warning("mqtt_subscribe_refused", broker=self.url, error=self.last_error)
            finally:
                self._connected.clear()
                self._client = None
            if self._closing.is_set():
                break
            await self.clock.pace(delay)
            delay = min(delay * 2, self.backoff[1])

    def _spawn_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            try:
                await hook()
            except TransportError as exc:
                self.log.info("mqtt_on_connect_failed", error=str(exc))
            except Exception:  # a hook's bug must not stop the link
                self.log.exception("mqtt_on_connect_crashed")

        task = asyncio.create_task(run())
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        await self._subscribe_at_broker(client, self.reply_topic, 1, _REPLY_SUBSCRIPTION)
        for route in list(self._routes.values()):
            await self._subscribe_at_broker(client, route.topic_filter, route.qos, route.sub_id)

    async def _subscribe_at_broker(
        self, client: aiomqtt.Client, topic_filter: str, qos: int, sub_id: int
    ) -> None:
        properties = _properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = sub_id
        granted = await client.subscribe(topic_filter, qos, properties=properties)
        for code in granted:
            value = code if isinstance(code, int) else code.value
            if value >= _SUBACK_FAILURE:
                raise TransportError(f"the broker refused a subscription to {topic_filter}: {code}")

    # ------------------------------------------------------------------ incoming

    def _dispatch(self, message: aiomqtt.Message) -> None:
        properties = message.properties
        sub_ids: list[int] = list(getattr(properties, "SubscriptionIdentifier", None) or [])
        correlation = getattr(properties, "CorrelationData", None)
        received = Received(
            topic=str(message.topic),
            payload=bytes(message.payload),
            retain=bool(message.retain),
            qos=int(message.qos),
            response_topic=getattr(properties, "ResponseTopic", None),
            correlation=bytes(correlation) if correlation is not None else None,
        )
        if _REPLY_SUBSCRIPTION in sub_ids or (not sub_ids and received.topic == self.reply_topic):
            self._answer(received)
        if sub_ids:
            routes = [self._routes[i] for i in sub_ids if i in self._routes]
        else:  # a broker without subscription identifiers: match the filters ourselves
            topic = aiomqtt.Topic(received.topic)
            routes = [r for r in self._routes.values() if topic.matches(r.topic_filter)]
        for route in routes:
            try:
                route.deliver(received)
            except Exception:  # one subscriber's bug must not stop the others
                self.log.exception("mqtt_subscriber_crashed", topic=received.topic)

    def _answer(self, received: Received) -> None:
        future = self._pending.get(received.correlation or b"")
        if future is None:
            self.log.debug("mqtt_late_answer", topic=received.topic)
        elif not future.done():
            future.set_result(received)

    # ------------------------------------------------------------------ outgoing

    async def _wait_client(self) -> aiomqtt.Client:
        while True:
            await self._connected.wait()
            if self._client is not None:
                return self._client

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        wait: bool = True,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> bool:
        """Publish one message; returns whether it was handed to the broker.

        With ``wait`` (the default) it waits for the connection; without, a message published
        while disconnected is dropped (state that is republished on reconnection anyway).

        Raises:
            TransportError: the broker refused it or the connection dropped meanwhile.
        """
        if not wait and not self.connected:
            return False
        client = await self._wait_client()
        properties = None
        if response_topic is not None or correlation is not None:
            properties = _properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation is not None:
                properties.CorrelationData = correlation
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        except aiomqtt.MqttError as exc:
            raise TransportError(f"cannot publish to {topic} at {self.url}: {exc}") from exc
        return True

    async def subscribe(self, topic_filter: str, deliver: Deliver, *, qos: int = 1) -> Subscription:
        """Deliver every message matching ``topic_filter`` to ``deliver`` (called in the loop).

        The subscription is renewed after every reconnection. ``deliver`` must not block.

        Raises:
            TransportError: the broker refused the subscription.
        """
        route = _Route(self._next_sub_id, topic_filter, qos, deliver)
        self._next_sub_id += 1
        self._routes[route.sub_id] = route
        client = self._client
        if self.connected and client is not None:
            try:
                await self._subscribe_at_broker(client, topic_filter, qos, route.sub_id)
            except aiomqtt.MqttError as exc:
                # The connection dropped: the loop subscribes again once it is back.
                self.log.info("mqtt_subscribe_deferred", topic=topic_filter, error=str(exc))
            except TransportError:
                del self._routes[route.sub_id]
                raise
        return Subscription(self, route)

    async def _unsubscribe(self, route: _Route) -> None:
        if self._routes.pop(route.sub_id, None) is None:
            return
        client = self._client
        if self.connected and client is not None:
            if any(r.topic_filter == route.topic_filter for r in self._routes.values()):
                return  # another route uses the same filter; it keeps its own identifier
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(route.topic_filter)

    @contextlib.asynccontextmanager
    async def messages(self, topic_filter: str, *, qos: int = 1) -> AsyncIterator[Inbox]:
        """A queue of the messages matching ``topic_filter`` while the block runs."""
        inbox = Inbox()
        subscription = await self.subscribe(topic_filter, inbox.put, qos=qos)
        try:
            yield inbox
        finally:
            await subscription.cancel()

    @contextlib.contextmanager
    def _pending_request(self) -> Iterator[tuple[bytes, asyncio.Future[Received]]]:
        correlation = secrets.token_bytes(16)
        future: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            yield correlation, future
        finally:
            # Answered, timed out, cancelled or failed: never leave a pending entry behind.
            self._pending.pop(correlation, None)
            future.cancel()

    @property
    def pending_requests(self) -> int:
        """Requests waiting for an answer (0 whenever no request call is running)."""
        return len(self._pending)

    async def request(self, topic: str, payload: bytes, *, timeout: float = 10.0) -> Received:  # noqa: ASYNC109 - a budget per request, as the protocol defines it
        """Publish a request with this link's response topic and wait for its answer.

        Raises:
            TransportError: not connected, not answered within ``timeout`` seconds, or the
                publish failed.
        """
        with self._pending_request() as (correlation, answer):
            try:
                async with asyncio.timeout(timeout):
                    await self.publish(
                        topic,
                        payload,
                        qos=1,
                        response_topic=self.reply_topic,
                        correlation=correlation,
                    )
                    return await answer
            except TimeoutError:
                if not self.connected:
                    reason = f": {self.last_error}" if self.last_error else ""
                    raise TransportError(
                        f"not connected to the MQTT broker at {self.url}{reason}"
                    ) from None
                raise TransportError(f"no answer on {topic} within {timeout:g} s") from None

    async def sync(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - same budget as request
        """Round-trip a message through the broker to this link.

        The broker delivers in order, so when this returns every message queued for this client
        before it — such as the retained messages of a subscription made earlier — has been
        delivered to its subscriber.

        Raises:
            TransportError: no round trip within ``timeout`` seconds.
        """
        await self.request(self.reply_topic, b"", timeout=timeout)

    def describe(self) -> dict[str, Any]:
        """Connection facts for logs and status output."""
        return {
            "broker": self.url,
            "clientId": self.client_id,
            "connected": self.connected,
            "connections": self.connections,
            "lastError": self.last_error,
        }
