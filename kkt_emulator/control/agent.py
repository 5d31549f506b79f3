"""The till-side agent of the control plane: state, events and commands of one till over MQTT.

:class:`TillAgent` joins a till and an :class:`~kkt_emulator.control.link.MqttLink`. The link is
either the till's own, whose last will is ``kkt/<id>/status`` = ``offline`` (:func:`agent_link`), or
the one link its process shares among all its tills (:func:`process_link`, D70), whose last will is
the process's ``kkt/proc/<processId>/status`` = ``offline``; the agent then names the process in
its ``online``:

* ``kkt/<id>/status`` — retained ``online`` (own link) or ``online <processId>`` (shared link) on
  every (re)connection, ``offline`` on a clean stop; when the process dies the broker publishes the
  will (the till's, or its process's, which makes all its tills offline to every client);
* ``kkt/<id>/state`` — the retained snapshot, republished after every till event, after every
  command that changes something (before its answer, so the answer never outruns the state), on
  every reconnection and at least every ``state_interval`` seconds;
* ``kkt/<id>/events`` — every till event in order, ``{"event", "deviceId", "at", "data"}``;
* ``kkt/<id>/cmd`` — the commands of ``till-protocol.md`` §3, each in its own task; a malformed
  request, an unknown command or a bad argument is answered with an error, never raised.

The agent uses only the till's public control methods (:class:`ControlledTill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol, Self

from kkt_emulator.clock import Clock, ManualClock, parse_duration
from kkt_emulator.control import topics
from kkt_emulator.control.link import LastWill, MqttLink, Received
from kkt_emulator.control.tasks import stop_tasks
from kkt_emulator.control.topics import Args, CommandError, CommandRequest, ErrorCode
from kkt_emulator.errors import (
    CloudError,
    ConfigError,
    DriveError,
    EmulatorError,
    TransportError,
    ValidationError,
)
from kkt_emulator.logging import get_logger
from kkt_emulator.till.faults import FAULTS, FaultName

__all__ = [
    "ControlSource",
    "ControlledTill",
    "JsonView",
    "TillAgent",
    "agent_link",
    "clock_id",
    "new_process_id",
    "process_link",
]

#: How far past a named deadline ``clock.advance --to`` moves the clock.
PAST_DEADLINE = timedelta(minutes=1)
_EVENT_BACKLOG = 1000


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class JsonView(Protocol):
    """A typed value the agent sends: it turns itself into JSON-ready data at the edge."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (``datetime`` values are encoded by :mod:`.topics`)."""
        ...


class ControlledTill(Protocol):
    """The till's control API the agent drives (``Till.control``, a ``TillControl``).

    Every answer is a typed value with a ``to_json()``; the agent turns it into the payload.
    """

    @property
    def device_id(self) -> str:
        """The id the cloud gave the till; names its topics."""

    @property
    def kkt_serial(self) -> str:
        """The till's serial number."""

    @property
    def fn_serial(self) -> str:
        """The drive's serial number."""

    @property
    def profile(self) -> _Named:
        """The firmware profile (its ``name`` goes into the state)."""

    @property
    def clock(self) -> Clock:
        """The clock the till (and the rest of its process) runs on."""

    @property
    def listeners(self) -> list[Callable[[str, dict[str, Any]], None]]:
        """Called as ``listener(event, data)`` for every event of the till."""

    async def snapshot_state(self) -> JsonView:
        """Settings, drive, shift, queue, faults and clock."""

    async def set_settings(self, **values: Any) -> JsonView:
        """Change settings (returns them all); raises ConfigError on a bad name or value."""

    def inject_fault(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> JsonView:
        """Arm a fault of the catalogue; raises ConfigError for an unknown one or a bad parameter."""

    def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault or all; returns the names cleared."""

    def list_faults(self) -> Sequence[JsonView]:
        """The armed faults with their parameters and counters."""

    def deadlines(self) -> dict[str, datetime | None]:
        """Business-time deadlines: shift.expires, ofd.block, fn.expires, fn.warning."""

    async def close_shift(self) -> JsonView | None:
        """Close the open shift; ``None`` when none is open."""

    async def sell(self, total_kopecks: int, cashier: str = ..., /) -> JsonView:
        """A counter sale entered at the till; returns its fiscal data."""

    async def sell_items(
        self, items: list[str], card: int = ..., cash: int | None = ..., cashier: str = ..., /
    ) -> JsonView:
        """A counter sale of catalogue items (``CODE*QTY``), card and cash as given (B16)."""

    async def correction(self, total: int, cashier: str = ..., operation: int = ..., /) -> JsonView:
        """A correction receipt (17h) for a settlement that was not registered."""

    async def replace_drive(self) -> JsonView:
        """Put in a new drive and register it."""

    async def order_list(self) -> JsonView:
        """The courier's orders on the till (orders-and-backoffice.md O7)."""

    async def order_pay(
        self,
        order_id: str,
        cash: Decimal | None = ...,
        card: Decimal | None = ...,
        drop: tuple[int, ...] = ...,
        quantities: tuple[tuple[int, Decimal], ...] = ...,
        /,
    ) -> JsonView:
        """Take the payment for an order and fiscalise its receipt (O8, B22)."""

    async def save_snapshot(self, path: Path, /) -> JsonView:
        """Save the till's whole state to ``path``."""

    async def load_snapshot(self, path: Path, /) -> JsonView:
        """Load the till's whole state from ``path``."""


class ControlSource(Protocol):
    """Something with a control face: a ``Till`` (its ``control``)."""

    @property
    def control(self) -> ControlledTill:
        """The till's control API."""


def clock_id(clock: Clock) -> str:
    """Names one clock object among all processes on all hosts.

    Tills that report the same id share one clock: advancing it once moves all of them (the
    command line advances each clock once, not each till).
    """
    return f"{socket.gethostname()}/{os.getpid()}/{id(clock):x}"


def agent_link(url: str, device_id: str, *, clock: Clock | None = None) -> MqttLink:
    """A link for one till: client id ``kkt-till-<id>``, last will ``kkt/<id>/status`` = offline."""
    will = LastWill(topics.status_topic(device_id), topics.OFFLINE.encode(), retain=True, qos=1)
    return MqttLink(url, client_id=f"kkt-till-{device_id}", will=will, clock=clock)


def new_process_id() -> str:
    """A fresh id for this process's connection: ``<host>-<pid>-<random>``, valid as a topic level."""
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in socket.gethostname())
    return f"{host or 'host'}-{os.getpid()}-{secrets.token_hex(3)}"


def process_link(url: str, process_id: str, *, clock: Clock | None = None) -> MqttLink:
    """The one link of a process's tills, client id ``kkt-proc-<processId>``.

    Its last will is ``kkt/proc/<processId>/status`` = offline (retained).
    """
    will = LastWill(topics.process_status_topic(process_id), topics.OFFLINE.encode())
    return MqttLink(url, client_id=f"kkt-proc-{process_id}", will=will, clock=clock)


Handler = Callable[[Args], Awaitable[dict[str, Any]]]


class TillAgent:
    """Publishes a till's status, state and events, and answers its commands.

    Args:
        till: the till (started: its device id is known).
        link: a link whose will is this till's ``offline`` status (see :func:`agent_link`), or
            the process's shared link (see :func:`process_link`) with ``process`` naming it; the
            agent starts it if needed but never closes it.
        process: the process id whose status stands for this till's (shared link), or ``None``.
        routed: the caller delivers this till's commands (:meth:`deliver`) from one wildcard
            subscription of its own; the agent then subscribes nothing itself.
        state_interval: seconds between unconditional state publications (pacing time);
            ``None``: only on a change (an event, a changing command, a reconnection).
        answer_budget: how long a command waits for a fresh state before it answers anyway
            (a till whose drive does not answer takes a drive timeout per snapshot).
    """

    def __init__(
        self,
        till: ControlledTill,
        link: MqttLink,
        *,
        process: str | None = None,
        routed: bool = False,
        state_interval: float | None = 3.0,
        answer_budget: float = 3.0,
    ) -> None:
        if not till.device_id:
            raise ConfigError("the till has no device id yet: start it before its agent")
        self.till = till
        self.link = link
        self.process = process
        self.routed = routed
        self.device_id = till.device_id
        self.state_interval = state_interval
        self.answer_budget = answer_budget
        self.log = get_logger(component="agent", device_id=self.device_id)
        self.commands: dict[str, tuple[Handler, bool]] = {
            # name: (handler, changes state → publish the state before answering)
            "status": (self._status, False),
            "set": (self._set, True),
            "fault.inject": (self._fault_inject, True),
            "fault.clear": (self._fault_clear, True),
            "fault.list": (self._fault_list, False),
            "clock.advance": (self._clock_advance, True),
            "clock.show": (self._clock_show, False),
            "shift.close": (self._shift_close, True),
            "sell": (self._sell, True),
            "sell.items": (self._sell_items, True),
            "correction": (self._correction, True),
            "fn.replace": (self._fn_replace, True),
            "snapshot": (self._snapshot, False),
            "restore": (self._restore, True),
            "order.list": (self._order_list, False),
            "order.pay": (self._order_pay, True),
        }
        assert set(self.commands) == set(topics.COMMANDS)
        self._events: asyncio.Queue[tuple[str, dict[str, Any], datetime]] = asyncio.Queue()
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        # Every change (event, changing command, tick, reconnection) bumps the generation; a
        # snapshot remembers the generation it started at, so callers can ask for one that is
        # no older than a change, and concurrent callers share the one in flight.
        self._generation = 0
        self._snapshot_task: asyncio.Task[dict[str, Any]] | None = None
        self._snapshot_generation = -1
        self._state_now: datetime | None = None  # the business time of the last snapshot
        self.last_state: dict[str, Any] | None = None
        self._last_state_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._subscription: Any = None
        self.published_states = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen to the till, subscribe to commands and start publishing."""
        self._stopping.clear()
        self.till.listeners.append(self._on_event)
        self.link.on_connect.append(self._on_connect)
        if not self.routed:
            self._subscription = await self.link.subscribe(
                topics.cmd_topic(self.device_id), self.deliver, qos=1
            )
        self.link.start()
        self._tasks = [
            asyncio.create_task(self._state_loop(), name=f"agent-state-{self.device_id}"),
            asyncio.create_task(self._event_loop(), name=f"agent-events-{self.device_id}"),
        ]
        if self.link.connected:  # the hook only runs on connections made from now on
            try:
                await self._on_connect()
            except TransportError as exc:
                # A busy broker or loop (a thousand tills starting): say online again later
                # rather than fail the till's start.
                self.log.info("agent_announce_deferred", error=str(exc))
                self._tasks.append(
                    asyncio.create_task(self._announce(), name=f"agent-announce-{self.device_id}")
                )

    async def _announce(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            await self.till.clock.pace(delay)
            try:
                await self._on_connect()
            except TransportError as exc:
                self.log.info("agent_announce_deferred", error=str(exc))
                delay = min(delay * 2, 10.0)
            else:
                return

    async def stop(self) -> None:
        """Publish ``offline`` (if connected), stop answering and leave the till alone."""
        with contextlib.suppress(ValueError):
            self.till.listeners.remove(self._on_event)
        with contextlib.suppress(ValueError):
            self.link.on_connect.remove(self._on_connect)
        self._stopping.set()
        self._dirty.set()  # wake the state loop so that it sees the flag
        snapshot = [self._snapshot_task] if self._snapshot_task is not None else []
        await stop_tasks([*self._tasks, *self._command_tasks, *snapshot])
        self._tasks = []
        if self._subscription is not None:
            with contextlib.suppress(TransportError):
                await self._subscription.cancel()
            self._subscription = None
        with contextlib.suppress(TransportError, TimeoutError):
            async with asyncio.timeout(self.link.timeout):
                await self.link.publish(
                    topics.status_topic(self.device_id), topics.OFFLINE, retain=True, wait=False
                )

    async def _on_connect(self) -> None:
        await self.link.publish(
            topics.status_topic(self.device_id), topics.online_payload(self.process), retain=True
        )
        self._changed()  # a restarted broker has forgotten the retained state
        await self.publish_state()

    # ------------------------------------------------------------------ state and events

    def _on_event(self, event: str, data: dict[str, Any]) -> None:
        # Called synchronously from inside the till: queue, never block it.
        if self._events.qsize() >= _EVENT_BACKLOG:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._events.get_nowait()
            self.log.warning("agent_event_dropped", reason="backlog full")
        self._events.put_nowait((event, dict(data), self.till.clock.now()))
        self._changed()

    def _changed(self) -> None:
        self._generation += 1
        self._dirty.set()

    async def _event_loop(self) -> None:
        while not self._stopping.is_set():
            event, data, at = await self._events.get()
            payload = topics.event_payload(event, data, self.device_id, at)
            try:
                await self.link.publish(topics.events_topic(self.device_id), payload, qos=1)
            except TransportError as exc:
                self.log.info("agent_event_lost", event_name=event, error=str(exc))

    async def _state_loop(self) -> None:
        while True:
            if self.state_interval is None:
                await self._dirty.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.state_interval):
                        await self._dirty.wait()
            if self._stopping.is_set():
                return
            self._changed()  # at least business time moved: take a new snapshot
            self._dirty.clear()
            try:
                await self.publish_state()
            except Exception:  # a failing snapshot must not end the periodic publication
                self.log.exception("agent_snapshot_failed")
                await self.till.clock.pace(self.state_interval or 3.0)

    async def state(self) -> dict[str, Any]:
        """The snapshot published on ``kkt/<id>/state`` (taken now, not published)."""
        snapshot = (await self.till.snapshot_state()).to_json()
        return {
            "deviceId": self.device_id,
            "kktSerial": self.till.kkt_serial,
            "fnSerial": self.till.fn_serial,
            "profile": self.till.profile.name,
            **snapshot,
        }

    async def _take_snapshot(self) -> dict[str, Any]:
        now = self.till.clock.now()
        state = await self.state()
        self._state_now = now
        self.last_state = state
        self._last_state_at = self.till.clock.monotonic()
        try:
            if await self.link.publish(
                topics.state_topic(self.device_id),
                topics.encode_json(state),
                retain=True,
                wait=False,  # disconnected: the reconnection publishes a new one
            ):
                self.published_states += 1
        except TransportError as exc:
            self.log.info("agent_state_not_published", error=str(exc))
        return state

    async def publish_state(self) -> dict[str, Any]:
        """Take and publish (retained) a snapshot that reflects every change made so far."""
        wanted = self._generation
        while True:
            task = self._snapshot_task
            if task is not None and self._snapshot_generation >= wanted:
                # Shielded: a caller that stops waiting must not cancel the others' snapshot.
                return await asyncio.shield(task)
            if task is not None and not task.done():
                try:
                    await asyncio.shield(task)
                except Exception:
                    self.log.info("agent_older_snapshot_failed", exc_info=True)
                continue
            self._snapshot_generation = self._generation
            self._snapshot_task = asyncio.create_task(
                self._take_snapshot(), name=f"agent-snapshot-{self.device_id}"
            )

    # ------------------------------------------------------------------ commands

    def deliver(self, message: Received) -> None:
        """Answer one request of ``kkt/<id>/cmd`` in its own task (never blocks the caller)."""
        if self._stopping.is_set():
            return
        task = asyncio.create_task(self._handle(message))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _handle(self, message: Received) -> None:
        answer = await self.execute(message.payload)
        if message.response_topic is None:
            self.log.info("agent_command_without_response_topic")
            return
        try:
            await self.link.publish(
                message.response_topic, answer, qos=1, correlation=message.correlation
            )
        except TransportError as exc:
            self.log.info("agent_answer_lost", error=str(exc))

    async def execute(self, payload: bytes) -> bytes:
        """Run one request payload; returns the answer payload (never raises)."""
        command = "?"
        try:
            request = CommandRequest.decode(payload)
            command = request.command
            result = await self._run(request)
        except CommandError as exc:
            return topics.error_answer(exc.code, exc.message)
        except (ConfigError, ValidationError) as exc:
            return topics.error_answer(ErrorCode.BAD_ARGS, f"{command}: {exc}")
        except DriveError as exc:
            return topics.error_answer(ErrorCode.DRIVE_ERROR, f"{command}: {exc}")
        except TransportError as exc:
            return topics.error_answer(ErrorCode.TRANSPORT_ERROR, f"{command}: {exc}")
        except CloudError as exc:
            return topics.error_answer(ErrorCode.CLOUD_ERROR, f"{command}: {exc}")
        except EmulatorError as exc:
            return topics.error_answer(ErrorCode.FAILED, f"{command}: {exc}")
        except Exception as exc:  # a bug in the till: answer, log, keep serving
            self.log.exception("agent_command_crashed", command=command)
            return topics.error_answer(
                ErrorCode.INTERNAL, f"{command}: {type(exc).__name__}: {exc}"
            )
        self.log.info("agent_command", command=command)
        return topics.ok_answer(result)

    async def _run(self, request: CommandRequest) -> dict[str, Any]:
        entry = self.commands.get(request.command)
        if entry is None:
            raise CommandError(
                ErrorCode.UNKNOWN_COMMAND,
                f"unknown command {request.command!r}; known: {', '.join(topics.COMMANDS)}",
            )
        handler, changes_state = entry
        result = await handler(Args(request.command, request.args))
        if changes_state:
            # The state reflects the change before the answer goes out, unless taking it is
            # slow (a drive that does not answer): then the answer goes first, the state later.
            self._changed()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.answer_budget):
                    await self.publish_state()
        return result

    async def _status(self, args: Args) -> dict[str, Any]:
        args.done()
        clock = self.till.clock
        if isinstance(clock, ManualClock) and self._state_now != clock.now():
            # Business time moved since the last snapshot (a clock shared with a sibling till,
            # advanced through the sibling's command): the snapshot's clock and deadlines are old.
            self._changed()
        try:
            async with asyncio.timeout(self.answer_budget):
                return await self.publish_state()
        except TimeoutError:
            if self.last_state is None:
                raise CommandError(
                    ErrorCode.TRANSPORT_ERROR,
                    f"status: the till gave no state within {self.answer_budget:g} s "
                    "(is its drive answering?)",
                ) from None
            age = self.till.clock.monotonic() - self._last_state_at
            return {**self.last_state, "stale": True, "staleSeconds": round(age, 1)}

    async def _set(self, args: Args) -> dict[str, Any]:
        values = args.rest()
        if not values:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                "set: name at least one of power_saving, online, poll_interval, long_poll, shift_mode",
            )
        settings = await self.till.set_settings(**values)
        return {"settings": settings.to_json()}

    async def _fault_inject(self, args: Args) -> dict[str, Any]:
        name = args.text("name", required=True)
        assert name is not None
        if name not in FAULTS:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                f"fault.inject: unknown fault {name!r} (known: {', '.join(FaultName)})",
            )
        count = args.integer("count")
        probability = args.number("probability")
        seed = args.integer("seed")
        params = args.mapping("params")
        args.done()
        if count is not None and count < 1:
            raise CommandError(ErrorCode.BAD_ARGS, "fault.inject: count must be at least 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise CommandError(ErrorCode.BAD_ARGS, "fault.inject: probability must be 0..1")
        return self.till.inject_fault(
            name,
            count=count,
            probability=1.0 if probability is None else probability,
            seed=seed,
            params=params,
        ).to_json()

    async def _fault_clear(self, args: Args) -> dict[str, Any]:
        name = args.text("name")
        args.done()
        if name is not None and name not in FAULTS:
            raise CommandError(ErrorCode.BAD_ARGS, f"fault.clear: unknown fault {name!r}")
        return {"cleared": self.till.clear_faults(name)}

    async def _fault_list(self, args: Args) -> dict[str, Any]:
        args.done()
        return {"faults": [fault.to_json() for fault in self.till.list_faults()]}

    def _clock_facts(self) -> dict[str, Any]:
        clock = self.till.clock
        return {"now": clock.now(), "mode": clock.mode, "clockId": clock_id(clock)}

    async def _clock_show(self, args: Args) -> dict[str, Any]:
        args.done()
        return {**self._clock_facts(), "deadlines": self.till.deadlines()}

    async def _clock_advance(self, args: Args) -> dict[str, Any]:
        delta_text = args.text("delta")
        target_name = args.text("to")
        args.done()
        if (delta_text is None) == (target_name is None):
            raise CommandError(ErrorCode.BAD_ARGS, "clock.advance: give either delta or to")
        clock = self.till.clock
        if not isinstance(clock, ManualClock):
            raise CommandError(
                ErrorCode.CLOCK_NOT_MANUAL,
                f"clock.advance needs the manual clock; this till's clock is {clock.mode} "
                "(start it with --clock manual)",
            )
        before = clock.now()
        if delta_text is not None:
            delta = parse_duration(delta_text)
            target = None
        else:
            assert target_name is not None
            if target_name not in topics.DEADLINES:
                raise CommandError(
                    ErrorCode.BAD_ARGS,
                    f"clock.advance: to must be one of {', '.join(topics.DEADLINES)}",
                )
            deadline = self.till.deadlines().get(target_name)
            if deadline is None:
                raise CommandError(
                    ErrorCode.NO_DEADLINE,
                    f"clock.advance: the till has no {target_name} deadline now",
                )
            target = deadline + PAST_DEADLINE
            # Already past it (another till on the same clock went further): nothing to do.
            delta = max(target - before, timedelta(0))
        now = await clock.advance(delta)
        return {
            **self._clock_facts(),
            "before": before,
            "advanced": (now - before).total_seconds(),
            "to": target_name,
            "target": target,
        }

    async def _shift_close(self, args: Args) -> dict[str, Any]:
        args.done()
        closed = await self.till.close_shift()
        return {"closed": closed is not None, **(closed.to_json() if closed is not None else {})}

    async def _sell(self, args: Args) -> dict[str, Any]:
        total = args.integer("total_kopecks", required=True)
        cashier = args.text("cashier")
        args.done()
        assert total is not None
        if total <= 0:
            raise CommandError(ErrorCode.BAD_ARGS, "sell: total_kopecks must be positive")
        if cashier is None:
            return (await self.till.sell(total)).to_json()
        return (await self.till.sell(total, cashier)).to_json()

    async def _sell_items(self, args: Args) -> dict[str, Any]:
        items = args.strings("items", required=True)
        card = args.integer("card_kopecks") or 0
        cash = args.integer("cash_kopecks")
        cashier = args.text("cashier") or "Кассир"
        args.done()
        assert items is not None
        if card < 0 or (cash is not None and cash < 0):
            raise CommandError(ErrorCode.BAD_ARGS, "sell.items: sums must not be negative")
        return (await self.till.sell_items(items, card, cash, cashier)).to_json()

    async def _correction(self, args: Args) -> dict[str, Any]:
        total = args.integer("total_kopecks", required=True)
        operation = args.integer("operation")
        args.done()
        assert total is not None
        if total <= 0:
            raise CommandError(ErrorCode.BAD_ARGS, "correction: total_kopecks must be positive")
        if operation is not None and operation not in (1, 2, 3, 4):
            raise CommandError(ErrorCode.BAD_ARGS, "correction: operation must be 1..4 (tag 1054)")
        return (await self.till.correction(total, "Кассир", operation or 1)).to_json()

    async def _fn_replace(self, args: Args) -> dict[str, Any]:
        args.done()
        return (await self.till.replace_drive()).to_json()

    def _path(self, args: Args) -> Path:
        path = args.text("path", required=True)
        args.done()
        assert path is not None
        return Path(path).expanduser()

    async def _snapshot(self, args: Args) -> dict[str, Any]:
        return (await self.till.save_snapshot(self._path(args))).to_json()

    async def _restore(self, args: Args) -> dict[str, Any]:
        return (await self.till.load_snapshot(self._path(args))).to_json()

    async def _order_list(self, args: Args) -> dict[str, Any]:
        args.done()
        return (await self.till.order_list()).to_json()

    async def _order_pay(self, args: Args) -> dict[str, Any]:
        """``order.pay``: ``order_id``; ``cash_kopecks``, ``card_kopecks``; ``drop``; ``quantities``.

        ``drop`` lists positions ("1,3"); ``quantities`` lowered quantities ("2=1,3=0.5", B22).
        """
        order_id = args.text("order_id", required=True)
        cash = args.integer("cash_kopecks")
        card = args.integer("card_kopecks")
        drop_text = args.text("drop")
        quantities_text = args.text("quantities")
        args.done()
        assert order_id is not None
        for name, value in (("cash_kopecks", cash), ("card_kopecks", card)):
            if value is not None and value < 0:
                raise CommandError(ErrorCode.BAD_ARGS, f"order.pay: {name} must be 0 or more")
        drop: list[int] = []
        for part in (drop_text or "").split(","):
            if part.strip():
                if not part.strip().isdigit():
                    raise CommandError(
                        ErrorCode.BAD_ARGS, f"order.pay: drop lists position numbers, not {part!r}"
                    )
                drop.append(int(part))
        quantities = [
            _quantity(part.strip()) for part in (quantities_text or "").split(",") if part.strip()
        ]
        paid = await self.till.order_pay(
            order_id,
            None if cash is None else Decimal(cash) / 100,
            None if card is None else Decimal(card) / 100,
            tuple(drop),
            tuple(quantities),
        )
        return paid.to_json()


def _quantity(part: str) -> tuple[int, Decimal]:
    """``N=Q`` of ``order.pay``'s ``quantities``: position N, its quantity Q.

    Raises:
        CommandError: not of that form (bad_args).
    """
    n, sep, q = part.partition("=")
    try:
        quantity: Decimal | None = Decimal(q.strip())
    except InvalidOperation:
        quantity = None
    if not sep or not n.strip().isdigit() or quantity is None or not quantity.is_finite():
        raise CommandError(
            ErrorCode.BAD_ARGS, f"order.pay: quantities lists POSITION=QUANTITY, not {part!r}"
        )
    return int(n), quantity
