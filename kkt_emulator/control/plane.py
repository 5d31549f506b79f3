"""The control plane of one process: a broker (spawned or given) and an agent for every till.

``kkt-emulator up`` (through :class:`~kkt_emulator.app.stack.Stack`) uses it as::

    plane = ControlPlane("spawn", clock)        # or "mqtt://host:port"
    await plane.start(tills)
    plane.url                                   # for the ready-file and the banner
    plane.process_id                            # names kkt/proc/<processId>/status
    await plane.close()                         # agents say offline, the process too, then the broker stops

:func:`resolve_mqtt` turns the ``--mqtt`` option into ``"spawn"``, a URL or ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from kkt_emulator.clock import Clock
from kkt_emulator.control import topics
from kkt_emulator.control.agent import ControlSource, TillAgent, new_process_id, process_link
from kkt_emulator.control.broker import MosquittoBroker, find_mosquitto
from kkt_emulator.control.link import BrokerAddress, MqttLink, Received
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.logging import get_logger

__all__ = ["SPAWN", "ControlPlane", "resolve_mqtt"]

_log = get_logger(__name__)

SPAWN = "spawn"


def resolve_mqtt(option: str) -> tuple[str | None, str | None]:
    """Interpret ``--mqtt``: ``auto``, ``spawn``, ``none`` or ``mqtt://host:port``.

    Returns ``(mode, notice)``: mode is ``"spawn"``, a broker URL or ``None`` (no control plane);
    notice is a line to show the user when ``auto`` found no mosquitto.

    Raises:
        ConfigError: any other value, or ``spawn`` without a mosquitto executable.
    """
    value = option.strip()
    if value == "none":
        return None, None
    if value == "auto":
        if find_mosquitto() is None:
            return None, (
                "mosquitto not found: running without the MQTT control plane "
                "(install mosquitto, or pass --mqtt mqtt://host:port)"
            )
        return SPAWN, None
    if value == SPAWN:
        if find_mosquitto() is None:
            raise ConfigError(
                "--mqtt spawn: mosquitto not found (install it, or use --mqtt URL or --mqtt none)"
            )
        return SPAWN, None
    BrokerAddress.parse(value)  # refuse a malformed URL before anything starts
    return value, None


class ControlPlane:
    """A broker and the agents of a set of tills on one shared connection, started and stopped together.

    The process holds one broker connection whatever the number of tills (D70): its last will is
    ``kkt/proc/<processId>/status`` = ``offline``, every till's ``online`` names the process, and
    one subscription to ``kkt/+/cmd`` brings every command, handed to the agent of its till (a
    command for a till of another process is dropped here). One subscription, not one per till:
    a thousand SUBSCRIBE round trips at start and after every reconnection would outlast the
    broker's answer timeout.

    Args:
        mqtt: ``"spawn"`` (a private mosquitto on a free loopback port) or a broker URL.
        clock: the process clock (for pacing only).
        host: where a spawned broker listens.
        state_interval: see :class:`~kkt_emulator.control.agent.TillAgent`; the default ``None``
            publishes a till's state on every change only, so an idle fleet sends nothing.
        connect_timeout: seconds to wait for the broker at start.
        batch: agents started (or stopped) at once.
    """

    def __init__(
        self,
        mqtt: str,
        clock: Clock,
        *,
        host: str = "127.0.0.1",
        state_interval: float | None = None,
        connect_timeout: float = 5.0,
        batch: int = 50,
    ) -> None:
        self.mqtt = mqtt
        self.clock = clock
        self.host = host
        self.state_interval = state_interval
        self.connect_timeout = connect_timeout
        self.batch = max(1, batch)
        self.broker: MosquittoBroker | None = None
        self.url: str | None = None if mqtt == SPAWN else mqtt
        self.process_id = new_process_id()
        self.link: MqttLink | None = None
        self.agents: list[TillAgent] = []
        self._by_device: dict[str, TillAgent] = {}

    async def start(self, tills: Sequence[ControlSource]) -> None:
        """Start the broker (if spawned), the process's link and one agent per till.

        Raises:
            ConfigError: no mosquitto to spawn, or a bad URL.
            TransportError: the broker cannot be reached.
        """
        if self.mqtt == SPAWN:
            loopback = self.host if self.host in ("127.0.0.1", "::1", "localhost") else "127.0.0.1"
            self.broker = MosquittoBroker(host=loopback, clock=self.clock)
            await self.broker.__aenter__()
            self.url = self.broker.url
        await self._connect()
        for first in range(0, len(tills), self.batch):
            await asyncio.gather(*(self.add(t) for t in tills[first : first + self.batch]))

    async def _connect(self) -> MqttLink:
        if self.link is None:
            assert self.url is not None
            link = process_link(self.url, self.process_id, clock=self.clock)
            # Before any agent's hook: the process is online before its tills say so.
            link.on_connect.append(self._process_online)
            self.link = link
            await link.connect(self.connect_timeout)
            await link.subscribe(topics.ALL_COMMANDS, self._route, qos=1)
        return self.link

    def _route(self, message: Received) -> None:
        device = topics.device_of(message.topic)
        agent = self._by_device.get(device) if device else None
        if agent is None:
            _log.debug("control_command_for_another_process", topic=message.topic)
            return
        agent.deliver(message)

    async def _process_online(self) -> None:
        assert self.link is not None
        await self.link.publish(
            topics.process_status_topic(self.process_id), topics.ONLINE, retain=True
        )

    async def add(self, till: ControlSource) -> TillAgent:
        """Start an agent for one more till (driven through its ``control``) on the shared link."""
        link = await self._connect()
        agent = TillAgent(
            till.control,
            link,
            process=self.process_id,
            routed=True,
            state_interval=self.state_interval,
        )
        self.agents.append(agent)
        await agent.start()
        self._by_device[agent.device_id] = agent
        return agent

    async def close(self) -> None:
        """Stop agents (each says ``offline``), then the process's status, link and broker."""
        agents, self.agents = self.agents, []
        self._by_device = {}
        for first in range(0, len(agents), self.batch):
            await asyncio.gather(*(self._stop_agent(a) for a in agents[first : first + self.batch]))
        link, self.link = self.link, None
        if link is not None:
            with contextlib.suppress(TransportError, TimeoutError):
                async with asyncio.timeout(link.timeout):
                    await link.publish(
                        topics.process_status_topic(self.process_id),
                        topics.OFFLINE,
                        retain=True,
                        wait=False,
                    )
            try:
                await link.close()
            except Exception:  # noqa: BLE001 - the broker must still be stopped; logged
                _log.exception("mqtt_link_close_failed")
        if self.broker is not None:
            await self.broker.__aexit__(None, None, None)
            self.broker = None

    @staticmethod
    async def _stop_agent(agent: TillAgent) -> None:
        try:
            await agent.stop()
        except Exception:  # noqa: BLE001 - one agent must not keep the others running; logged
            _log.exception("agent_stop_failed", device_id=agent.device_id)
