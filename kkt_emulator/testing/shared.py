"""Installations the tests of one pytest session share, reset between tests (the plugin's default).

Starting an installation (cloud, OFD stand-in, tills with registered drives) costs far more than a
sale, so ``kkt_stack`` keeps one per shape (profile, tills, points, MQTT, till settings) for the
whole session — for each xdist worker, as every worker is its own session — and puts it back
before each test:

* every fault cleared, on the tills and on the OFD stand-in;
* the till settings back to what the installation started with (power saving off, online …);
* the retail points' cabinet flags back (internet documents, stop on errors, pickup window …);
* the queue empty: nothing QUEUED, PENDING or REQUEUED, no document in a till's hands, nothing
  waiting for the OFD, and every OFD acknowledgement queued for the cloud.

What cannot be put back retires the installation and the next test gets a new one: a test that
moved business time (the manual clock never goes back), a test that failed (its state is not to
be trusted), a point whose flag cannot be unset, credentials that stopped working, a queue that
did not drain within :data:`DRAIN_SECONDS`.

The installations run on an event loop of their own in a background thread
(:class:`LoopThread`): a test's loop, where it has one, lives for that test only (pytest-asyncio's
default ``asyncio_default_test_loop_scope = function``, or the plugin's own loop for an unmarked
test) and nothing loop-bound may outlive it; a ``def`` test has no loop at all. So the plugin's
fixtures are synchronous and every call of a test hops to the installation's loop — awaited from
the test's loop (:meth:`LoopThread.call`) or blocking from its thread (:meth:`LoopThread.run`) —
and so does the clock (:class:`HomedClock`). Each test still has an HTTP client of its own
(:class:`~kkt_emulator.testing.stack.StackHarness`), closed after it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from kkt_emulator.clock import ManualClock
from kkt_emulator.eventloop import loop_factory
from kkt_emulator.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from concurrent.futures import Future
    from pathlib import Path

    from kkt_emulator.app.stack import PointAccess, Stack
    from kkt_emulator.till.till import Till

__all__ = [
    "DRAIN_SECONDS",
    "HomedClock",
    "LoopThread",
    "Shape",
    "SharedInstallation",
    "SharedPool",
]

_T = TypeVar("_T")
log = get_logger(__name__)

#: Real seconds a reset waits for the previous test's documents to be done with.
DRAIN_SECONDS = 5.0
#: Real seconds a reset waits for the OFD stand-in to drop the faults it was told to clear.
_SETTLE_SECONDS = 2.0
#: Real seconds a closing installation waits for its documents to settle first.
_CLOSE_SETTLE_SECONDS = 1.0
#: How often the reset looks again while it waits (real seconds).
_RECHECK_SECONDS = 0.005
#: The tills' poll interval between tests (seconds): an idle installation costs almost nothing.
PARKED_POLL_S = 1.0
#: Real seconds without a test before an installation is parked (back-to-back tests never are).
PARK_AFTER_S = 0.5
#: Installations of different shapes kept running at once; the least recently used one stops.
MAX_LIVE = 2
#: Statuses of documents a till still has to take or finish.
_UNFINISHED = ("QUEUED", "PENDING", "REQUEUED")
#: Cabinet fields of a retail point that the reset puts back.
_POINT_FIELDS = (
    "name",
    "address",
    "inn",
    "internetDocsEnabled",
    "stopOnErrors",
    "pickupWindow",
    "defaultTaxMode",
    "duplicatePolicy",
)


class LoopThread:
    """An event loop running in a daemon thread, for resources that outlive every test's loop."""

    def __init__(self, name: str = "kkt-shared") -> None:
        factory = loop_factory()
        self.loop = factory() if factory is not None else asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (its loop then runs until :meth:`stop`)."""
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 300.0) -> _T:
        """Run ``coroutine`` on the loop and wait for it from synchronous code (a sync fixture).

        The calling thread blocks; a caller interrupted while it waits (Ctrl-C, a timeout) cancels
        the coroutine rather than leaving it running.

        Raises:
            RuntimeError: called from the loop's own thread, where it could only deadlock.
        """
        if _running_loop() is self.loop:
            coroutine.close()
            raise RuntimeError(
                "a blocking call on the installation's own event loop would never return: "
                "await the coroutine instead"
            )
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the loop and await it from another loop (a test's)."""
        if _running_loop() is self.loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self) -> None:
        """Stop the loop and join the thread; closes the loop once it stopped."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10.0)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # called from synchronous code: no loop here
        return None


class HomedClock(ManualClock):
    """A manual clock whose sleepers live on one loop (``home``) and that any loop may move.

    ``advance`` and ``sleep_until`` called from another loop (a test's) run on ``home``, so the
    installation's timers fire on the loop they belong to. :attr:`advanced` says whether business
    time moved since it was last cleared.
    """

    def __init__(
        self, start: datetime | None = None, home: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__(start)
        self.home = home
        self.advanced = False

    def _away(self) -> bool:
        return self.home is not None and _running_loop() is not self.home

    async def advance(self, delta: timedelta) -> datetime:
        """Move business time (on the home loop); marks the clock as :attr:`advanced`."""
        if self._away():
            assert self.home is not None
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self.advance(delta), self.home)
            )
        if delta > timedelta(0):
            self.advanced = True
        return await super().advance(delta)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until business time reaches ``when`` (the sleeper waits on the home loop)."""
        if self._away():
            assert self.home is not None
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self.sleep_until(when), self.home)
            )
            return
        await super().sleep_until(when)


@dataclass(frozen=True, slots=True)
class Shape:
    """What makes two installations different: tests of one shape share one installation."""

    profile: str
    tills: int
    points: int
    mqtt_url: str | None
    settings: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A stable key for the pool."""
        return json.dumps(
            [self.profile, self.tills, self.points, self.mqtt_url, self.settings],
            sort_keys=True,
            default=repr,
        )


class SharedInstallation:
    """One running installation of a :class:`Shape`, on the pool's loop, reset between tests.

    Attributes:
        stack: the running installation.
        clock: its manual clock.
        retired: why it may not serve another test, or ``None``.
    """

    def __init__(self, shape: Shape, state_dir: Path, till_settings: dict[str, Any]) -> None:
        self.shape = shape
        self.state_dir = state_dir
        self.till_settings = till_settings
        self.clock = HomedClock()  # business time starts now, to the second
        self.stack: Stack | None = None
        self.retired: str | None = None
        self.clean = False
        """Reset after the last test (nothing to do before the next one)."""
        self._park_timer: asyncio.TimerHandle | None = None
        self._park_task: asyncio.Task[None] | None = None
        self._parking: asyncio.Lock | None = None
        self._http: httpx.AsyncClient | None = None
        self._settings: list[dict[str, Any]] = []
        self._points: dict[str, dict[str, Any]] = {}

    @property
    def running(self) -> Stack:
        """The stack (``RuntimeError`` before :meth:`start`)."""
        if self.stack is None:
            raise RuntimeError("the shared installation is not running")
        return self.stack

    # ------------------------------------------------------------ on the pool's loop

    async def start(self) -> None:
        """Start the installation and note what a reset puts back."""
        from kkt_emulator.app.stack import Stack, StackOptions  # noqa: PLC0415 - keep plugin load light
        from kkt_emulator.profiles import load_profile  # noqa: PLC0415
        from kkt_emulator.testing.stack import http_client  # noqa: PLC0415

        self.clock.home = asyncio.get_running_loop()
        options = StackOptions(
            profile=load_profile(self.shape.profile),
            state_dir=self.state_dir,
            tills=self.shape.tills,
            points=self.shape.points,
            till_settings=dict(self.till_settings),
            mqtt=self.shape.mqtt_url,
        )
        stack = Stack(options, self.clock)
        await stack.__aenter__()
        self.stack = stack
        self._http = http_client(base_url=stack.base_url, timeout=30.0)
        self._settings = [till.settings.to_json() for till in stack.tills]
        for point in stack.points:
            body = await self._cabinet("GET", f"/retail-points/{point['retail_point_id']}")
            self._points[point["retail_point_id"]] = {k: body.get(k) for k in _POINT_FIELDS}

    async def reset(self) -> str | None:
        """Put the installation back for the next test; returns why it cannot be, or ``None``."""
        await self.unpark()
        stack = self.running
        for till in stack.tills:
            till.clear_faults()
        ofd = stack.ofd
        if ofd is not None and not await self._wait(
            lambda: not ofd.active_faults(), _SETTLE_SECONDS
        ):
            return "the OFD stand-in kept its faults"
        for till, settings in zip(stack.tills, self._settings, strict=True):
            if till.settings.to_json() != settings:
                await till.set_settings(**settings)
        for point in stack.points:
            why = await self._reset_point(point)
            if why is not None:
                return why
        for till in stack.tills:
            # Every loop looks at once: a counter sale does not wake the OFD sender, for one.
            till.ctx.wake_all()
        if not await self._drained():
            deadline = self.clock.monotonic() + DRAIN_SECONDS
            while not await self._drained():
                if self.clock.monotonic() > deadline:
                    return f"the previous test's documents were not done within {DRAIN_SECONDS:g} s"
                await self.clock.pace(_RECHECK_SECONDS)
        return None

    def park_soon(self) -> None:
        """Park the installation if no test takes it within :data:`PARK_AFTER_S` (on its loop)."""
        self._cancel_park()
        loop = asyncio.get_running_loop()
        self._park_timer = loop.call_later(PARK_AFTER_S, self._start_parking)

    def _start_parking(self) -> None:
        self._park_timer = None
        self._park_task = asyncio.get_running_loop().create_task(
            self.park(), name="kkt-shared-park"
        )

    def _cancel_park(self) -> None:
        if self._park_timer is not None:
            self._park_timer.cancel()
            self._park_timer = None

    def _lock(self) -> asyncio.Lock:
        if self._parking is None:
            self._parking = asyncio.Lock()
        return self._parking

    async def park(self) -> None:
        """Slow the tills' polling down until the next test (:meth:`unpark`)."""
        async with self._lock():
            if self.stack is None:
                return
            for till in self.stack.tills:
                if till.settings.poll_interval < PARKED_POLL_S:
                    await till.set_settings(poll_interval=PARKED_POLL_S)

    async def unpark(self) -> None:
        """Give the tills their settings back; each polls at once."""
        self._cancel_park()
        async with self._lock():
            for till, settings in zip(self.running.tills, self._settings, strict=True):
                if till.settings.to_json() != settings:
                    await till.set_settings(**settings)

    async def _reset_point(self, point: PointAccess) -> str | None:
        point_id = point["retail_point_id"]
        wanted = self._points[point_id]
        try:
            now = await self._cabinet("GET", f"/retail-points/{point_id}")
        except httpx.HTTPStatusError as exc:
            return f"retail point {point_id}: {exc.response.status_code}"
        changes = {k: v for k, v in wanted.items() if now.get(k) != v}
        if any(v is None for v in changes.values()):
            return f"retail point {point_id}: {sorted(changes)} cannot be unset"
        if changes:
            await self._cabinet("PATCH", f"/retail-points/{point_id}", json=changes)
        assert self._http is not None
        answer = await self._http.get("/api/fn/v1/status", auth=(point["login"], point["password"]))
        if answer.status_code != httpx.codes.OK:
            return f"retail point {point_id}: its credentials answer {answer.status_code}"
        return None

    async def _drained(self) -> bool:
        stack = self.running
        for till in stack.tills:
            state = await till.snapshot_state()
            queue = state["queue"]
            if queue["inFlight"] or queue["outbox"] or state["ofdBacklog"]["unsent"]:
                return False
            if not _acks_queued(till, state):
                return False
        params: list[tuple[str, str | int]] = [("status", s) for s in _UNFINISHED]
        params.append(("limit", 1))
        for point in stack.points:
            found = await self._cabinet(
                "GET",
                "/documents",
                params=[*params, ("retailPointId", point["retail_point_id"])],
            )
            if found:
                return False
        return True

    async def _cabinet(self, method: str, path: str, **kwargs: Any) -> Any:
        assert self._http is not None
        response = await self._http.request(method, f"/api/cabinet/v1{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    async def _wait(self, done: Any, within_s: float) -> bool:
        deadline = self.clock.monotonic() + within_s
        while not done():
            if self.clock.monotonic() > deadline:
                return False
            await self.clock.pace(_RECHECK_SECONDS)
        return True

    async def close(self) -> None:
        """Stop the installation (after letting the last test's documents settle)."""
        if self.stack is None:
            return
        from kkt_emulator.testing.stack import settle  # noqa: PLC0415 - keep plugin load light

        # A loop that misses its cancellation sleeps out its pause: let that be the short one.
        await self.unpark()
        await settle(self.stack, _CLOSE_SETTLE_SECONDS)
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        stack, self.stack = self.stack, None
        await stack.close()


def _acks_queued(till: Till, state: dict[str, Any]) -> bool:
    """Whether ``till`` queued the OFD's acknowledgement of every document its drive signed.

    The drive stops counting a document as unsent when it takes the OFD's receipt, and the till
    queues the acknowledgement for the cloud just after: for that moment neither the backlog nor
    the outbox shows it, and a reset that looked then would hand the next test an outbox that
    fills up under it. The till's mark (the highest fiscal number whose acknowledgement is
    queued) closes the gap; a drive or a till without one is taken as it is.
    """
    store = till.store
    last_fd = (state.get("drive") or {}).get("lastFd")
    if store is None or last_fd is None:
        return True
    mark = store.ofd_acked_mark(till.fn_serial)
    return mark is None or mark >= int(last_fd)


class SharedPool:
    """The session's shared installations, by shape, on one background loop.

    Args:
        state_root: makes a fresh state directory for each installation.
        till_settings: the tills' settings before each shape's own.
    """

    def __init__(self, state_root: Any, till_settings: dict[str, Any]) -> None:
        self._mktemp = state_root
        self._till_settings = till_settings
        self._live: OrderedDict[str, SharedInstallation] = OrderedDict()
        self._thread: LoopThread | None = None
        self._lock = threading.Lock()

    @property
    def thread(self) -> LoopThread:
        """The loop the installations run on (started on first use)."""
        if self._thread is None:
            self._thread = LoopThread()
            self._thread.start()
        return self._thread

    def acquire(self, shape: Shape) -> SharedInstallation:
        """An installation of ``shape`` ready for a test: reset, or new if it could not be."""
        with self._lock:
            key = shape.key()
            installation = self._live.pop(key, None)
            if installation is not None and installation.retired is None:
                # Reset after the last test already: only the settings of a test come back.
                preparing = installation.unpark() if installation.clean else installation.reset()
                installation.clean = False
                try:
                    why = self.thread.run(preparing)
                except Exception as exc:  # a reset that broke retires the installation; logged
                    log.exception("kkt_shared_reset_failed", state_dir=str(installation.state_dir))
                    why = f"the reset failed: {exc!r}"
                if why is None:
                    self._live[key] = installation
                    return installation
                installation.retired = why
            if installation is not None:
                log.info("kkt_shared_installation_replaced", reason=installation.retired)
                self._stop(installation)
            while len(self._live) >= MAX_LIVE:
                _, oldest = self._live.popitem(last=False)
                self._stop(oldest)
            installation = SharedInstallation(
                shape, self._mktemp(), {**self._till_settings, **shape.settings}
            )
            try:
                self.thread.run(installation.start())
            except BaseException:
                self._stop(installation)
                raise
            self._live[key] = installation
            return installation

    async def release(self, installation: SharedInstallation) -> None:
        """A test is done with ``installation``: reset it now, or stop it if it is retired.

        Resetting at the end of the test, rather than only before the next one, keeps what the
        test's documents still do (OFD delivery, results) and its log lines within that test.
        """
        if installation.retired is None:
            try:
                installation.retired = await self.thread.call(self._reset_and_park(installation))
            except Exception as exc:  # a reset that broke retires the installation; logged
                log.exception("kkt_shared_reset_failed", state_dir=str(installation.state_dir))
                installation.retired = f"the reset failed: {exc!r}"
            installation.clean = installation.retired is None
        if installation.retired is not None:
            with self._lock:
                if self._live.get(installation.shape.key()) is installation:
                    del self._live[installation.shape.key()]
            log.info("kkt_shared_installation_retired", reason=installation.retired)
            try:
                await self.thread.call(installation.close())
            except Exception:  # the next test gets a new installation; say what failed
                log.exception(
                    "kkt_shared_installation_stop_failed", state_dir=str(installation.state_dir)
                )

    @staticmethod
    async def _reset_and_park(installation: SharedInstallation) -> str | None:
        why = await installation.reset()
        if why is None:
            installation.park_soon()
        return why

    def _stop(self, installation: SharedInstallation) -> None:
        try:
            self.thread.run(installation.close())
        except Exception:  # the session goes on with a new installation; say what failed
            log.exception(
                "kkt_shared_installation_stop_failed", state_dir=str(installation.state_dir)
            )

    def close(self) -> None:
        """Stop every installation and the loop."""
        with self._lock:
            while self._live:
                _, installation = self._live.popitem()
                self._stop(installation)
            if self._thread is not None:
                self._thread.stop()
                self._thread = None
