"""The requesting side of the control plane: find tills on a broker and send them commands.

::

    async with ControlClient("mqtt://127.0.0.1:1883") as control:
        tills = await control.tills()                  # every till with a retained status
        result = await control.command(tills[0].device_id, "fault.inject", {"name": "fn.slow"})
        outcomes = await control.each(control.select(tills, None), "status")

A refused command raises :class:`~kkt_emulator.control.topics.CommandError` from :meth:`command`;
:meth:`each` collects one :class:`Outcome` per till instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Self

from kkt_emulator.control import topics
from kkt_emulator.control.link import MqttLink
from kkt_emulator.control.topics import CommandError, CommandRequest, ErrorCode
from kkt_emulator.errors import ConfigError, TransportError

__all__ = ["ControlClient", "Outcome", "TillInfo"]


@dataclass(slots=True)
class TillInfo:
    """A till seen on the broker: its retained status and last state.

    ``online`` is the till's status joined with its process's (``till-protocol.md`` §3, D70): a
    till whose process went away is offline though its own retained status still says ``online``.
    ``process`` is the id of the process serving it, when it runs on a process's shared link.
    """

    device_id: str
    online: bool
    state: dict[str, Any] | None = None
    process: str | None = None


@dataclass(slots=True)
class Outcome:
    """One till's answer to one command."""

    device_id: str
    ok: bool
    result: Any = None
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"deviceId", "ok", "result"}`` or ``{"deviceId", "ok", "error"}``."""
        data: dict[str, Any] = {"deviceId": self.device_id, "ok": self.ok}
        if self.ok:
            data["result"] = self.result
        else:
            data["error"] = self.error
        return {**data, **self.extra}


class ControlClient:
    """A short-lived control connection (the command line, scripts, tests).

    Args:
        url: the broker, ``mqtt://host:port``.
        timeout: seconds to wait for each till's answer.
        connect_timeout: seconds to wait for the broker.
    """

    def __init__(self, url: str, *, timeout: float = 10.0, connect_timeout: float = 3.0) -> None:
        self.link = MqttLink(url, backoff=(0.05, 0.5))
        self.url = self.link.url
        self.timeout = timeout
        self.connect_timeout = connect_timeout

    async def __aenter__(self) -> Self:
        try:
            await self.link.connect(self.connect_timeout)
        except BaseException:
            await self.link.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.link.close()

    async def tills(self) -> list[TillInfo]:
        """Every till that has a retained status on the broker, sorted by device id.

        A till is online when its status says so and the process it names is online too.
        """
        found: dict[str, TillInfo] = {}
        # QoS 0 (D120): a broker holds at most so many QoS 1 messages for a client beyond those in
        # flight (mosquitto: 1,000 queued and 20 in flight) and drops the rest, so the retained
        # statuses of 4,000 tills came as 1,015; on the client's own connection nothing is lost.
        async with (
            self.link.messages(topics.ALL_PROCESSES, qos=0) as process_statuses,
            self.link.messages(topics.ALL_STATUS, qos=0) as statuses,
            self.link.messages(topics.ALL_STATE, qos=0) as states,
        ):
            await self.link.sync(self.timeout)
            processes: dict[str, bool] = {}
            for message in process_statuses.drain():
                process = topics.process_of(message.topic)
                if process:
                    processes[process] = message.text == topics.ONLINE
            for message in statuses.drain():
                device = topics.device_of(message.topic)
                if device and message.payload:
                    _, process = topics.parse_status(message.payload)
                    online = topics.till_online(message.payload, processes)
                    found[device] = TillInfo(device, online, process=process)
            for message in states.drain():
                device = topics.device_of(message.topic)
                if device in found and message.payload:
                    try:
                        state = topics.decode_json(message.payload)
                    except CommandError:
                        continue
                    if isinstance(state, dict):
                        found[device].state = state
        return [found[k] for k in sorted(found)]

    @staticmethod
    def select(tills: list[TillInfo], device: str | None) -> list[str]:
        """The device ids a command goes to: ``device`` (an id or a unique prefix) or every online till.

        Raises:
            ConfigError: no such till, an ambiguous prefix, an offline till, or none online.
        """
        if device is None:
            online = [t.device_id for t in tills if t.online]
            if not online:
                raise ConfigError("no till is online on this broker")
            return online
        matches = [t for t in tills if t.device_id == device] or [
            t for t in tills if t.device_id.startswith(device)
        ]
        if not matches:
            known = ", ".join(t.device_id for t in tills) or "none"
            raise ConfigError(f"no till {device!r} on this broker (known: {known})")
        if len(matches) > 1:
            raise ConfigError(
                f"{device!r} matches {len(matches)} tills: {', '.join(t.device_id for t in matches)}"
            )
        if not matches[0].online:
            raise ConfigError(f"till {matches[0].device_id} is offline")
        return [matches[0].device_id]

    async def command(
        self, device_id: str, command: str, args: dict[str, Any] | None = None
    ) -> Any:
        """Send one command to one till; returns its result.

        Raises:
            CommandError: the till refused (its code and message).
            TransportError: no answer in time, or the broker is gone.
        """
        request = CommandRequest(command, args or {})
        answer = await self.link.request(
            topics.cmd_topic(device_id), request.encode(), timeout=self.timeout
        )
        return topics.parse_answer(answer.payload, device_id)

    async def outcome(
        self, device_id: str, command: str, args: dict[str, Any] | None = None
    ) -> Outcome:
        """Like :meth:`command`, with refusals and timeouts as an :class:`Outcome`."""
        try:
            result = await self.command(device_id, command, args)
        except CommandError as exc:
            return Outcome(device_id, ok=False, error={"code": exc.code, "message": exc.message})
        except TransportError as exc:
            return Outcome(
                device_id, ok=False, error={"code": ErrorCode.TIMEOUT, "message": str(exc)}
            )
        return Outcome(device_id, ok=True, result=result)

    async def each(
        self, device_ids: list[str], command: str, args: dict[str, Any] | None = None
    ) -> list[Outcome]:
        """Send one command to several tills at once; one outcome per till, in the given order."""
        return list(await asyncio.gather(*(self.outcome(d, command, args) for d in device_ids)))
