"""Where a scenario runs: an installation seen through its store, cabinet and control interfaces.

A support case (:mod:`kkt_emulator.app.scenarios.cases_documents`, ``cases_errors``) talks to the
shop's store API and support's cabinet API over HTTP, and to the first till through the commands of
``till-protocol.md`` §3. :class:`Installation` is that view; two implementations give it:

* :class:`LiveInstallation` — a running ``kkt-emulator up``, found through its ready-file: HTTP to
  its ports, the till commands over its MQTT control plane (what ``scenario run`` uses);
* :class:`InProcessInstallation` — a :class:`~kkt_emulator.app.stack.Stack` in this process (what
  the scenario tests use): HTTP to its loopback ports too, the till commands run by the same
  :class:`~kkt_emulator.control.agent.TillAgent` code the control plane runs, without a broker.

Either way a command's result is the JSON the control plane would answer, so a case sees the same
shapes whichever way it runs.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from kkt_emulator.control.agent import TillAgent
from kkt_emulator.control.client import ControlClient
from kkt_emulator.control.link import MqttLink
from kkt_emulator.control.topics import CommandRequest, decode_json, encode_json, parse_answer
from kkt_emulator.errors import ConfigError
from kkt_emulator.net import client_tls

if TYPE_CHECKING:
    from kkt_emulator.app.stack import Stack

__all__ = ["InProcessInstallation", "Installation", "LiveInstallation"]

#: Seconds an HTTP call may take before the scenario gives up on it.
HTTP_TIMEOUT = 30.0
#: A broker address the in-process agent never connects to: its state publications are dropped.
_NO_BROKER = "mqtt://127.0.0.1:1"


class Installation(abc.ABC):
    """An installation a scenario drives: its ready-file facts, HTTP, and first till's commands.

    Args:
        ready: the ready-file's content (``store_api``, ``cabinet_api``, ``login``, ``password``,
            ``retail_point_id``, ``service_login``, ``service_password``, ``clock``).
        http: the HTTP client to reach the store and cabinet APIs with.
    """

    def __init__(self, ready: Mapping[str, Any], http: httpx.AsyncClient) -> None:
        self.ready = dict(ready)
        self.http = http

    @property
    @abc.abstractmethod
    def has_till(self) -> bool:
        """Whether till commands can be sent (a live installation needs its MQTT plane)."""

    @abc.abstractmethod
    async def command(self, command: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run a control-plane command on the first till; returns its JSON result.

        Raises:
            ConfigError: the installation cannot take till commands.
            CommandError: the till refused the command.
        """


class LiveInstallation(Installation):
    """A running ``kkt-emulator up``: HTTP to its APIs, till commands over its MQTT plane."""

    def __init__(
        self,
        ready: Mapping[str, Any],
        http: httpx.AsyncClient,
        control: ControlClient | None,
        device_id: str | None,
    ) -> None:
        super().__init__(ready, http)
        self.control = control
        self.device_id = device_id

    @classmethod
    @asynccontextmanager
    async def open(cls, ready: Mapping[str, Any]) -> AsyncIterator[LiveInstallation]:
        """Connect to the installation of ``ready``; the first till if it has an MQTT plane."""
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=client_tls()) as http:
            url = ready.get("mqtt")
            if not url:
                yield cls(ready, http, None, None)
                return
            async with ControlClient(str(url)) as control:
                ids = control.select(await control.tills(), None)
                yield cls(ready, http, control, ids[0])

    @property
    def has_till(self) -> bool:
        """Whether the installation has an MQTT control plane with a till on it."""
        return self.control is not None and self.device_id is not None

    async def command(self, command: str, args: Mapping[str, Any] | None = None) -> Any:
        """Send ``command`` to the first till over MQTT."""
        if self.control is None or self.device_id is None:
            raise ConfigError("this scenario needs the MQTT control plane (`up --mqtt spawn`)")
        return await self.control.command(self.device_id, command, dict(args or {}))


class InProcessInstallation(Installation):
    """A :class:`~kkt_emulator.app.stack.Stack` in this process; till commands without a broker.

    The commands go through :meth:`TillAgent.execute` — the request and answer payloads of the
    control plane — so arguments are checked and results encoded exactly as over MQTT.
    """

    def __init__(self, stack: Stack, http: httpx.AsyncClient) -> None:
        super().__init__(stack.ready_info(), http)
        till = stack.tills[0]
        self.agent = TillAgent(till.control, MqttLink(_NO_BROKER))
        self.device_id = till.device_id

    @classmethod
    @asynccontextmanager
    async def open(cls, stack: Stack) -> AsyncIterator[InProcessInstallation]:
        """The installation of a started ``stack`` (its first till takes the commands)."""
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, verify=client_tls()) as http:
            yield cls(stack, http)

    @property
    def has_till(self) -> bool:
        """Always: the till is right here."""
        return True

    async def command(self, command: str, args: Mapping[str, Any] | None = None) -> Any:
        """Run ``command`` as the till's control agent would.

        ``status`` is the agent's state taken now: over MQTT the running agent republishes it
        after every till event, which this agent, never started, does not see.
        """
        if command == "status" and not args:
            return decode_json(encode_json(await self.agent.state()))
        answer = await self.agent.execute(CommandRequest(command, dict(args or {})).encode())
        return parse_answer(answer, self.device_id)
