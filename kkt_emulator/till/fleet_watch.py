"""One long poll per process for all its long-polling tills: the fleet watch (D69).

A long-polling till alone holds one ``/lease`` long poll at a time; a thousand tills in one process
hold a thousand, and each one renewed every 30 s costs the cloud a request. Instead the long-polling
tills of one process and one cloud share a :class:`FleetWatch`: one ``POST /watch`` long poll names
all their bearer tokens, and its answer says which of them have documents waiting at their retail
point since the last answer. Those tills lease (a plain ``/lease``); the others stay asleep, with
no timer of their own but their rare heartbeat (D68). The watch also tells the cloud that the tills
it names are alive (D67), and which of them should sync their orders because their point's
orders changed (D116): a watched till holds no order long poll of its own either.

A till registers when it first long-polls and unregisters when its poll loop ends. The watch is
renewed at once after an answer; a till that starts listening while the watch in flight does not
name it (a new till, a new token) makes the watch start again, after :data:`REGATHER` seconds so
that tills starting together cost one renewal. A cloud without ``/watch`` (404) is watched by no
one: the tills fall back to their own long polls. Only plain ``http`` clouds are watched (the lean
client, :mod:`kkt_emulator.till.lean_http`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, ClassVar, Final
from urllib.parse import quote

from kkt_emulator.logging import get_logger
from kkt_emulator.till.lean_http import LeanHttp, LeanHttpError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["MAX_MEMBERS", "REGATHER", "FleetWatch", "WatchMember", "regather_seconds"]

API: Final = "/api/device/v1"
MAX_MEMBERS: Final = 5000
"""The most tills one watch names; more tills of the process long-poll on their own."""
REGATHER: Final = 0.05
"""Seconds (pacing) a watch lets joining tills gather before it starts again with them."""
REGATHER_PER_TILL: Final = 0.00025
"""Seconds more a watch lets them gather for each till it names already (D140): a restart costs
the cloud a look-up of every token named, so a watch of 1,000 tills restarts at most every
0.3 s while a fleet joins, and the cost of its restarts a second does not grow with the fleet."""
REGATHER_MAX: Final = 0.5
"""The longest a joining till waits to be named (its first lease covers it meanwhile)."""
_RETRY_MAX: Final = 30.0

_log = get_logger(component="fleet_watch")


def regather_seconds(named: int) -> float:
    """How long a watch naming ``named`` tills lets joining tills gather (pacing, D140)."""
    return min(REGATHER + REGATHER_PER_TILL * named, REGATHER_MAX)


class WatchMember:
    """One till of a :class:`FleetWatch`.

    ``ready`` is set when the watch says the till's retail point has documents waiting (or that
    its token was refused: its own next call finds out why); the till clears it before it leases.
    """

    def __init__(
        self, watch: FleetWatch, token: Callable[[], str | None], active: Callable[[], bool]
    ) -> None:
        self.watch = watch
        self.token = token
        self.active = active
        self.ready = asyncio.Event()
        self.orders_ready = asyncio.Event()
        """Set when the watch says the orders of the till's point changed (D116)."""

    def listen(self) -> None:
        """The till waits for the watch now: start the watch again if it does not name the till."""
        self.watch.listening(self)

    def close(self) -> None:
        """Leave the watch (the till stops)."""
        self.watch.leave(self)


class FleetWatch:
    """The watch of one cloud for the long-polling tills of this process and event loop."""

    _shared: ClassVar[dict[tuple[int, str], FleetWatch]] = {}

    @classmethod
    def shared(cls, server: str) -> FleetWatch | None:
        """The process's watch of ``server`` (made on first use); ``None`` for a non-http cloud."""
        base = server.rstrip("/")
        if not base.startswith("http://"):
            return None
        loop = asyncio.get_running_loop()
        key = (id(loop), base)
        watch = cls._shared.get(key)
        if watch is None or watch.loop is not loop or watch.closed:
            watch = cls._shared[key] = cls(base, loop)
        return watch

    def __init__(self, server: str, loop: asyncio.AbstractEventLoop, wait: float = 25.0) -> None:
        self.server = server
        self.loop = loop
        self.wait = wait
        self.supported: bool | None = None
        """Whether the cloud serves ``/watch``; ``None`` until its first answer."""
        self.exchanges = 0
        self.closed = False
        self._http = LeanHttp(server + API)
        self._members: list[WatchMember] = []
        self._named: dict[WatchMember, str] = {}
        self._changed = asyncio.Event()
        self._after = ""
        # The cursor a watch starts again from when tills began to listen that no answer has
        # covered yet: the one known when the first of them began (D141).
        self._fresh_after: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def watching(self) -> int:
        """How many members the watch in flight names (tests wait for a whole fleet to listen)."""
        return len(self._named)

    def join(
        self, token: Callable[[], str | None], active: Callable[[], bool], wait: float
    ) -> WatchMember | None:
        """A new member whose bearer token ``token()`` gives; ``None`` if the watch takes no more.

        ``active()`` says whether the till listens at all (not in power saving, online); ``wait``
        is its long poll, the longest of which the watch uses.
        """
        if self.supported is False or self.closed or len(self._members) >= MAX_MEMBERS:
            return None
        member = WatchMember(self, token, active)
        self._members.append(member)
        self._began_listening()
        self.wait = min(max(self.wait, wait), 30.0)
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"fleet-watch {self.server}")
        return member

    def listening(self, member: WatchMember) -> None:
        """Start the watch again unless the one in flight names ``member`` with its token."""
        token = member.token()
        if token is not None and self._named.get(member) != token:
            self._began_listening()
            self._changed.set()

    def _began_listening(self) -> None:
        """A till listens that the watch in flight does not name (D141).

        Its own lease or order sync comes after this, and an answer that arrives before the
        watch names it may already cover a change made after that sync: the next watch asks
        from the cursor known now, so such a change is told to it too.
        """
        if self._fresh_after is None:
            self._fresh_after = self._after

    def leave(self, member: WatchMember) -> None:
        """Drop ``member``; the last one to leave ends the watch."""
        if member in self._members:
            self._members.remove(member)
        self._named.pop(member, None)
        if not self._members:
            self.closed = True
            key = (id(self.loop), self.server)
            if self._shared.get(key) is self:
                del self._shared[key]
            if self._task is not None:
                self._task.cancel()

    def _wake_all(self) -> None:
        for member in self._members:
            member.ready.set()
            member.orders_ready.set()

    async def _run(self) -> None:
        backoff = 0.5
        try:
            while self._members:
                self._changed.clear()
                # A till told already stays named: its lease may race a later document, and a
                # till that listens again while named costs no renewal (only news after
                # ``after`` is told, so a signal already taken is not repeated).
                named = [m for m in self._members if m.active() and m.token()]
                self._named = {m: m.token() or "" for m in named}
                if not named:
                    await self._changed.wait()
                    continue
                failed, told = await self._exchange(named)
                if self.supported is False:
                    _log.info("fleet_watch_unsupported", server=self.server)
                    self._wake_all()  # each till long-polls on its own from now on
                    return
                if failed:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _RETRY_MAX)
                    continue
                backoff = 0.5
                if not told:  # a wait that ran out: never a tight loop, whatever the cloud does
                    await asyncio.sleep(REGATHER)
        finally:
            self._named = {}
            await self._http.aclose()

    async def _exchange(self, named: list[WatchMember]) -> tuple[bool, int]:
        """One watch, cut short to start again when a till joins.

        Returns whether it failed and how many tills it told (or whether it was cut short).
        """
        fresh, self._fresh_after = self._fresh_after, None
        after = self._after if fresh is None else fresh
        answered = False
        try:
            failed, told, answered = await self._exchange_from(named, after)
        finally:
            if not answered and fresh is not None:
                # No answer covered them: the next watch starts from the same cursor (D141).
                self._fresh_after = fresh
        return failed, told

    async def _exchange_from(self, named: list[WatchMember], after: str) -> tuple[bool, int, bool]:
        """:meth:`_exchange` from cursor ``after``; also whether an answer was taken."""
        query = f"/watch?wait={self.wait:g}&after={quote(after)}"
        body = {"tokens": [self._named[m] for m in named]}
        request = asyncio.ensure_future(self._http.post(query, body=body, timeout=self.wait + 10))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({request, changed}, return_when=asyncio.FIRST_COMPLETED)
            if not request.done():  # tills that start together: one renewal (D140)
                await asyncio.sleep(regather_seconds(len(named)))
        finally:
            changed.cancel()
            if not request.done():
                request.cancel()
        try:
            response = await request
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the watch itself is ending
            return False, 1, False  # cut short for a joining till: not a failure
        except LeanHttpError as exc:
            _log.warning("fleet_watch_failed", server=self.server, error=str(exc))
            return True, 0, False
        self.exchanges += 1
        if response.status_code == 404:
            self.supported = False
            return False, 0, False
        try:
            answer = response.json() if response.status_code == 200 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            _log.warning(
                "fleet_watch_refused",
                server=self.server,
                status=response.status_code,
                answer=response.text[:200],
            )
            return True, 0, False
        self.supported = True
        self._after = str(answer.get("after", ""))
        told = 0
        for key in ("ready", "refused"):
            for index in answer.get(key, ()):
                if isinstance(index, int) and 0 <= index < len(named):
                    named[index].ready.set()
                    if key == "refused":  # its own next call, orders too, finds out why
                        named[index].orders_ready.set()
                    told += 1
        for index in answer.get("orders", ()):
            if isinstance(index, int) and 0 <= index < len(named):
                named[index].orders_ready.set()
                told += 1
        return False, told, True

    async def aclose(self) -> None:
        """End the watch now (tests; a process ending its tills leaves it by itself)."""
        self._members.clear()
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
