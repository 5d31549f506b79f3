"""The control plane of one process: a broker (spawned or given) and an agent for every till.

``kkt-emulator up`` (through :class:`~kkt_emulator.app.stack.Stack`) uses it as::

    plane = ControlPlane("spawn", clock)        # or "mqtt://host:port"
    await plane.start(tills)
    plane.url                                   # for the ready-file and the banner
    await plane.close()                         # agents say offline, then the broker stops

:func:`resolve_mqtt` turns the ``--mqtt`` option into ``"spawn"``, a URL or ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence

from kkt_emulator.clock import Clock
from kkt_emulator.control.agent import ControlSource, TillAgent, agent_link
from kkt_emulator.control.broker import MosquittoBroker, find_mosquitto
from kkt_emulator.control.link import BrokerAddress, MqttLink
from kkt_emulator.errors import ConfigError
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
    """A broker and the agents of a set of tills, started and stopped together.

    Args:
        mqtt: ``"spawn"`` (a private mosquitto on a free loopback port) or a broker URL.
        clock: the process clock (for pacing only).
        host: where a spawned broker listens.
        state_interval: see :class:`~kkt_emulator.control.agent.TillAgent`.
    """

    def __init__(
        self,
        mqtt: str,
        clock: Clock,
        *,
        host: str = "127.0.0.1",
        state_interval: float = 3.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.mqtt = mqtt
        self.clock = clock
        self.host = host
        self.state_interval = state_interval
        self.connect_timeout = connect_timeout
        self.broker: MosquittoBroker | None = None
        self.url: str | None = None if mqtt == SPAWN else mqtt
        self.agents: list[TillAgent] = []
        self.links: list[MqttLink] = []

    async def start(self, tills: Sequence[ControlSource]) -> None:
        """Start the broker (if spawned) and one agent per till.

        Raises:
            ConfigError: no mosquitto to spawn, or a bad URL.
            TransportError: the broker cannot be reached.
        """
        if self.mqtt == SPAWN:
            loopback = self.host if self.host in ("127.0.0.1", "::1", "localhost") else "127.0.0.1"
            self.broker = MosquittoBroker(host=loopback, clock=self.clock)
            await self.broker.__aenter__()
            self.url = self.broker.url
        assert self.url is not None
        for till in tills:
            await self.add(till)

    async def add(self, till: ControlSource) -> TillAgent:
        """Start an agent for one more till (driven through its ``control``)."""
        assert self.url is not None
        control = till.control
        link = agent_link(self.url, control.device_id, clock=self.clock)
        self.links.append(link)
        await link.connect(self.connect_timeout)
        agent = TillAgent(control, link, state_interval=self.state_interval)
        await agent.start()
        self.agents.append(agent)
        return agent

    async def close(self) -> None:
        """Stop agents (each publishes ``offline``), links, then the broker."""
        for agent in reversed(self.agents):
            try:
                await agent.stop()
            except Exception:  # noqa: BLE001 - one agent must not keep the others running; logged
                _log.exception("agent_stop_failed", device_id=agent.device_id)
        self.agents = []
        for link in reversed(self.links):
            try:
                await link.close()
            except Exception:  # noqa: BLE001 - one link must not keep the others open; logged
                _log.exception("mqtt_link_close_failed")
        self.links = []
        if self.broker is not None:
            await self.broker.__aexit__(None, None, None)
            self.broker = None
