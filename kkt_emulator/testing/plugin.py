"""The pytest plugin: a whole virtual installation for a shop's own test suite, in one fixture.

Installed with the package and loaded through the ``pytest11`` entry point, so ``pip install
kkt-emulator`` is all a user needs — no asyncio plugin, no configuration::

    async def test_sale_is_fiscalised(kkt_stack, kkt_documents):
        doc = kkt_documents.sale(total=45.50)
        await kkt_stack.post_document(doc)
        status = await kkt_stack.wait_for_status(doc["id"], "COMPLETED")
        assert status["fiscalInfo"]["fnNumber"]


    def test_sale_from_a_synchronous_suite(kkt_stack_sync, kkt_documents):
        doc = kkt_documents.sale(total=45.50)
        kkt_stack_sync.post_document(doc)
        assert kkt_stack_sync.wait_for_status(doc["id"], "COMPLETED")["fiscalInfo"]["fnNumber"]

Fixtures:

* ``kkt_stack`` — cloud, OFD stand-in, tills (one by default) and, when mosquitto is installed, the
  MQTT control plane on the session's broker; a manual clock. One installation per shape serves
  the whole session and is reset after each test (faults, settings, point flags, queue; see
  :mod:`~kkt_emulator.testing.shared`); ``@pytest.mark.kkt_fresh`` (or ``--kkt-fresh`` for the run)
  gives a test an installation of its own, started for it and torn down after it. Its methods are
  coroutines (:class:`KktStack`).
* ``kkt_stack_sync`` — the same installation with blocking methods of the same names, for
  ``def test_…`` suites (:class:`SyncKktStack`).
* ``kkt_documents`` — builders of valid store documents (:class:`Documents`).
* ``kkt_clock`` — the manual clock ``kkt_stack`` runs on (business time moves only on ``advance``).
* ``mqtt_broker`` — a private mosquitto for the whole session (skips the test without mosquitto).

``@pytest.mark.kkt(profile=..., tills=..., points=..., mqtt=..., **till_settings)`` shapes one
test's installation (tests of one shape share one); ``--kkt-profile NAME`` chooses the firmware
profile for the whole run.

Event loops (``docs/ci.md``, "The pytest plugin"). Every fixture is synchronous: each
installation, shared or fresh, runs on the session's own event loop in a background thread
(:class:`~kkt_emulator.testing.shared.LoopThread`), and every method of :class:`KktStack` hops
there from whatever loop awaits it. So the fixtures need no asyncio plugin and no loop scope, and
an ``async def`` test that uses them runs whoever runs it: pytest-asyncio when it takes the test
(``asyncio_mode = "auto"``, or ``@pytest.mark.asyncio`` in strict mode), else this plugin, on a
new event loop of the test's own (:func:`pytest_pyfunc_call`) — in strict mode without the marker,
with pytest-asyncio disabled (``-p no:asyncio``) or not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import threading
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from kkt_emulator.logging import get_logger
from kkt_emulator.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from kkt_emulator.app.stack import PointAccess, Stack
    from kkt_emulator.clock import ManualClock
    from kkt_emulator.control.broker import MosquittoBroker
    from kkt_emulator.testing.shared import HomedClock, LoopThread, SharedInstallation, SharedPool
    from kkt_emulator.testing.stack import StackHarness
    from kkt_emulator.till.till import Till

__all__ = ["Documents", "KktStack", "MqttBroker", "SyncKktStack"]

_T = TypeVar("_T")
log = get_logger(__name__)
_FAULT_OPTIONS = ("count", "probability", "seed")
#: What every till of the plugin's installations starts with (before a marker's settings).
TILL_SETTINGS: dict[str, Any] = {"poll_interval": 0.05}
#: The plugin's fixtures: an ``async def`` test that uses one (directly or through a fixture of
#: its own) and that no asyncio plugin took is run by :func:`pytest_pyfunc_call`.
FIXTURES = frozenset({"kkt_stack", "kkt_stack_sync", "kkt_clock", "kkt_documents", "mqtt_broker"})
#: Markers of the async plugins that run their tests themselves.
_OTHER_ASYNC_MARKERS = ("anyio", "trio")
_INSTALLATION = pytest.StashKey["SharedInstallation"]()
_FAILED = pytest.StashKey[bool]()


# ---------------------------------------------------------------------------- hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--kkt-profile``: the firmware profile of every ``kkt_stack`` in the run."""
    group = parser.getgroup("kkt", "kkt-emulator (virtual МодульКасса till)")
    group.addoption(
        "--kkt-profile",
        action="store",
        default=None,
        help=f"Firmware profile for kkt_stack (default {DEFAULT_PROFILE}; see `kkt-emulator profiles list`).",
    )
    group.addoption(
        "--kkt-fresh",
        action="store_true",
        default=False,
        help="Give every test that uses kkt_stack an installation of its own (as kkt_fresh does).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``kkt`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "kkt(profile=None, tills=1, points=1, mqtt=None, **till_settings): "
        "shape the kkt_stack installation of this test",
    )
    config.addinivalue_line(
        "markers",
        "kkt_fresh: give this test a kkt_stack installation of its own instead of the shared one",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed test: the shared installation it used is not reused after it."""
    report = yield
    if call.when in ("setup", "call") and report.failed:
        item.stash[_FAILED] = True
    return report


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test that uses the plugin's fixtures when no asyncio plugin took it.

    pytest-asyncio (auto mode, or a test marked ``asyncio``) hands pytest a synchronous wrapper
    of the test; a test for anyio or trio (``anyio_backend``, the ``anyio``/``trio`` markers) is
    left to that plugin. What is still a coroutine function here would fail in pytest's own hook
    (which runs last) with "async def functions are not natively supported": this hook runs it on
    a new event loop of the test's own, closed after it. Every other test is left alone.
    """
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function) or FIXTURES.isdisjoint(pyfuncitem.fixturenames):
        return None
    if "anyio_backend" in pyfuncitem.fixturenames or any(
        pyfuncitem.get_closest_marker(name) is not None for name in _OTHER_ASYNC_MARKERS
    ):
        return None
    info = pyfuncitem._fixtureinfo  # noqa: SLF001 - how pytest's own hook finds the arguments
    for name, definitions in info.name2fixturedefs.items():
        fixture = definitions[-1].func
        if inspect.iscoroutinefunction(fixture) or inspect.isasyncgenfunction(fixture):
            pytest.fail(
                f"{pyfuncitem.name} uses the async fixture {name!r}, which runs on another event "
                "loop than the test: mark the test @pytest.mark.asyncio or set asyncio_mode = auto "
                "(pytest-asyncio then runs both on one loop)",
                pytrace=False,
            )
    arguments = {name: pyfuncitem.funcargs[name] for name in info.argnames}
    with asyncio.Runner() as runner:
        runner.run(function(**arguments))
    return True


# ---------------------------------------------------------------------------- documents


class Documents:
    """Builders of valid store documents (``POST /v2/doc`` bodies), each with a fresh id."""

    def sale(
        self,
        total: float = 45.5,
        *,
        email: str = "buyer@example.com",
        tax_mode: str | None = "COMMON",
        items: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A sale paid by card.

        Args:
            total: the price of the one position (and the card payment), in roubles.
            email: the buyer's contact (electronic receipts need one).
            tax_mode: the taxation system; ``None`` leaves it out (the point's default applies).
            items: positions to add after the first, as the store API spells them
                (``{"name", "price", "quantity", "vatTag"}``); the payment becomes the sum of all.
            extra: other document fields (``responseURL``, ``docNum`` …).
        """
        return self._document(
            "SALE", total, email=email, tax_mode=tax_mode, items=items, extra=extra
        )

    def return_(
        self,
        total: float = 45.5,
        *,
        email: str = "buyer@example.com",
        tax_mode: str | None = "COMMON",
        items: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A return of a sale (``docType`` RETURN); the arguments are those of :meth:`sale`."""
        return self._document(
            "RETURN", total, email=email, tax_mode=tax_mode, items=items, extra=extra
        )

    @staticmethod
    def _document(
        doc_type: str,
        total: float,
        *,
        email: str,
        tax_mode: str | None,
        items: list[dict[str, Any]] | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        from kkt_emulator.testing.stack import sale_document  # noqa: PLC0415 - keep plugin load light

        doc = sale_document(total, email=email, tax_mode=tax_mode, doc_type=doc_type)
        for item in items or []:
            position = {"quantity": 1, "vatTag": 1105, **copy.deepcopy(item)}
            doc["inventPositions"].append(position)
        if items:
            paid = sum(float(p["price"]) * float(p["quantity"]) for p in doc["inventPositions"])
            doc["moneyPositions"][0]["sum"] = round(paid, 2)
        doc.update(extra)
        return doc

    @staticmethod
    def new_id() -> str:
        """A fresh document id."""
        return str(uuid.uuid4())


# ---------------------------------------------------------------------------- the installation


class KktStack:
    """What a test sees of a running installation (the ``kkt_stack`` fixture).

    Every method is a coroutine that runs on the installation's own event loop (a background
    thread) and may be awaited from any loop: pytest-asyncio's, the plugin's, one of the test's
    own. For a ``def`` test, :class:`SyncKktStack` (``kkt_stack_sync``) has the same methods
    blocking.

    Attributes:
        store_url: the store API base (``…/api/fn``).
        cabinet_url: the cabinet API base (``…/api/cabinet/v1``).
        login: the association login shops use (HTTP basic auth).
        password: its password.
        retail_point_id: the first retail point.
        points: every retail point with its credentials.
        mqtt_url: the control plane's broker, or ``None``.
        harness: the underlying :class:`~kkt_emulator.testing.stack.StackHarness` (this test's own
            HTTP client, used on the installation's loop like its ``stack``: see :meth:`run`).
        clock: the installation's manual clock.
        shared: whether the installation is the session's shared one (else the test's own).
    """

    def __init__(self, harness: StackHarness, home: LoopThread, *, shared: bool = True) -> None:
        self.harness = harness
        self._home = home
        self.shared = shared
        self.clock = harness.clock
        self.store_url = harness.store_url
        self.cabinet_url = harness.cabinet_url
        self.login = harness.login
        self.password = harness.password
        self.retail_point_id = harness.retail_point_id
        self.points: list[PointAccess] = list(harness.stack.points)
        self.mqtt_url: str | None = harness.stack.mqtt_url

    @property
    def tills(self) -> list[Till]:
        """The running tills."""
        return list(self.harness.stack.tills)

    @property
    def till(self) -> Till:
        """The first till."""
        return self.harness.till

    @property
    def home(self) -> LoopThread:
        """The event loop (and its thread) the installation runs on."""
        return self._home

    def info(self) -> dict[str, Any]:
        """What ``kkt-emulator up`` writes to its ready-file."""
        return self.harness.stack.ready_info()

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coroutine`` where the installation's tasks run; returns its result.

        The installation runs on an event loop of its own (a background thread), so a test that
        calls the tills or the stack directly goes through here::

            receipt = await kkt_stack.run(kkt_stack.till.sell(10000))
        """
        return await self._home.call(coroutine)

    async def post_document(
        self, doc: dict[str, Any], auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /v2/doc``; returns the DocumentStatus.

        The tills are woken as soon as the cloud took the document, so it waits for no poll
        interval (a till that may not poll — power saving, offline — goes back to sleep).

        Raises:
            CloudError: the cloud refused the document (its HTTP status and message).
        """
        return await self.run(self._post_document(doc, auth))

    async def _post_document(
        self, doc: dict[str, Any], auth: tuple[str, str] | None
    ) -> dict[str, Any]:
        answer = await self.harness.post_document(doc, auth)
        for till in self.tills:
            till.ctx.wake.set()
        return answer

    async def status(self, doc_id: str) -> dict[str, Any]:
        """``GET /v1/doc/{id}/status``."""
        return await self.run(self.harness.status(doc_id))

    async def wait_for_status(
        self,
        doc_id: str,
        *statuses: str,
        timeout: float = 10.0,  # noqa: ASYNC109 - the fixture API names it timeout, like asyncio.wait_for
    ) -> dict[str, Any]:
        """Poll until the document's status is one of ``statuses`` (default: COMPLETED or FAILED).

        Raises:
            TimeoutError: not reached within ``timeout`` real seconds (the last status is in the
                message).
        """
        return await self.run(self.harness.wait_for_status(doc_id, *statuses, timeout=timeout))

    async def document_detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's view of a document: history, OFD delivery, error detail."""
        return await self.run(self.harness.document_detail(doc_id))

    async def advance(self, delta: timedelta | str) -> datetime:
        """Move business time forward (``timedelta`` or ``"31d"``, ``"15m"``, ``"1h30m"``).

        Raises:
            ConfigError: ``delta`` is not a duration.
        """
        return await self.run(self.harness.advance(delta))

    async def inject(self, fault: str, **params: Any) -> list[dict[str, Any]]:
        """Inject a fault into every till (``till-protocol.md`` §4); returns it as each till lists it.

        ``count``, ``probability`` and ``seed`` shape when it strikes; every other keyword is a
        parameter of the fault (``inject("fn.slow", delay_ms=300)``).

        Raises:
            ConfigError: an unknown fault or a bad parameter.
        """
        options = {k: params.pop(k) for k in _FAULT_OPTIONS if k in params}
        return await self.run(self._inject(fault, params, options))

    async def _inject(
        self, fault: str, params: dict[str, Any], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        injected = [
            till.inject_fault(fault, params=params or None, **options) for till in self.tills
        ]
        ofd = self.harness.stack.ofd
        if fault.startswith("ofd.") and ofd is not None:
            # The till hands OFD faults to the stand-in in a task: be sure it is on before returning.
            await self._settle(lambda: fault in ofd.active_faults())
        return injected

    async def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault (or all) on every till; returns the names cleared."""
        return await self.run(self._clear_faults(name))

    async def _clear_faults(self, name: str | None) -> list[str]:
        cleared: list[str] = []
        for till in self.tills:
            cleared += [n for n in till.clear_faults(name) if n not in cleared]
        ofd = self.harness.stack.ofd
        if ofd is not None and (name is None or name.startswith("ofd.")):
            await self._settle(lambda: not ofd.active_faults())
        return cleared

    async def _settle(self, done: Callable[[], bool], within_s: float = 5.0) -> None:
        """Wait (real time) until ``done()``, at most ``within_s``: the OFD applies faults in a task."""
        deadline = self.clock.monotonic() + within_s
        while not done() and self.clock.monotonic() < deadline:
            await self.clock.pace(0.005)

    async def set_till(self, **settings: Any) -> dict[str, Any]:
        """Change every till's settings (``power_saving``, ``online``, ``poll_interval`` …).

        Returns the first till's settings. Raises ConfigError for an unknown setting or bad value.
        A shared installation gets its settings back after the test.
        """
        return await self.run(self._set_till(settings))

    async def _set_till(self, settings: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for n, till in enumerate(self.tills):
            changed = await till.set_settings(**settings)
            if n == 0:
                result = {k: getattr(changed, k) for k in changed.__slots__}
        return result

    async def set_point(
        self,
        *,
        internet_docs: bool | None = None,
        stop_on_errors: bool | None = None,
        retail_point_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change a retail point in the cabinet (``PATCH /retail-points/{id}``); returns the point.

        Args:
            internet_docs: «use for internet-shop documents» (``internetDocsEnabled``).
            stop_on_errors: stop taking documents after an error (``stopOnErrors``).
            retail_point_id: which point (the first by default).
            fields: other cabinet fields, as the API spells them (``pickupWindow`` …).

        Raises:
            CloudError: the cabinet refused the change (its HTTP status and answer).
        """
        body = dict(fields)
        if internet_docs is not None:
            body["internetDocsEnabled"] = internet_docs
        if stop_on_errors is not None:
            body["stopOnErrors"] = stop_on_errors
        point = retail_point_id or self.retail_point_id
        answer: dict[str, Any] = await self.run(
            self.harness.cabinet("PATCH", f"/retail-points/{point}", json=body)
        )
        return answer

    async def till_state(self, index: int = 0) -> dict[str, Any]:
        """A till's whole state, as the control plane publishes it (settings, drive, shift …)."""
        return await self.run(self.tills[index].snapshot_state())


class SyncKktStack:
    """A running installation with blocking methods (the ``kkt_stack_sync`` fixture).

    The twin of :class:`KktStack` for ``def test_…`` suites (Django, Flask, requests): the same
    attributes and the same methods, each of which runs its :class:`KktStack` coroutine on the
    installation's loop and waits for it, returning what the coroutine returns and raising what
    it raises. It needs no event loop in the test; called from inside a running loop (an
    ``async def`` test), it blocks that loop while it waits, so async tests use ``kkt_stack``.

    Attributes:
        aio: the :class:`KktStack` it wraps (the same installation as ``kkt_stack``).
    """

    def __init__(self, stack: KktStack) -> None:
        self.aio = stack
        self.harness = stack.harness
        self.shared = stack.shared
        self.clock = stack.clock
        self.store_url = stack.store_url
        self.cabinet_url = stack.cabinet_url
        self.login = stack.login
        self.password = stack.password
        self.retail_point_id = stack.retail_point_id
        self.points = stack.points
        self.mqtt_url = stack.mqtt_url

    @property
    def tills(self) -> list[Till]:
        """The running tills."""
        return self.aio.tills

    @property
    def till(self) -> Till:
        """The first till."""
        return self.aio.till

    def info(self) -> dict[str, Any]:
        """What ``kkt-emulator up`` writes to its ready-file."""
        return self.aio.info()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 300.0) -> _T:
        """Run ``coroutine`` on the installation's loop and wait for it, at most ``timeout`` s.

        ::

            receipt = kkt_stack_sync.run(kkt_stack_sync.till.sell(10000))

        Raises:
            TimeoutError: the coroutine did not finish in time (it is cancelled).
            RuntimeError: called on the installation's own loop, where it could only deadlock.
        """
        return self.aio.home.run(coroutine, timeout)

    def post_document(
        self, doc: dict[str, Any], auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /v2/doc``; returns the DocumentStatus (see :meth:`KktStack.post_document`).

        Raises:
            CloudError: the cloud refused the document (its HTTP status and message).
        """
        return self.run(self.aio.post_document(doc, auth))

    def status(self, doc_id: str) -> dict[str, Any]:
        """``GET /v1/doc/{id}/status``."""
        return self.run(self.aio.status(doc_id))

    def wait_for_status(self, doc_id: str, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the document's status is one of ``statuses`` (default: COMPLETED or FAILED).

        Raises:
            TimeoutError: not reached within ``timeout`` real seconds (the last status is in the
                message).
        """
        return self.run(self.aio.wait_for_status(doc_id, *statuses, timeout=timeout))

    def document_detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's view of a document: history, OFD delivery, error detail."""
        return self.run(self.aio.document_detail(doc_id))

    def advance(self, delta: timedelta | str) -> datetime:
        """Move business time forward (``timedelta`` or ``"31d"``, ``"15m"``, ``"1h30m"``).

        Raises:
            ConfigError: ``delta`` is not a duration.
        """
        return self.run(self.aio.advance(delta))

    def inject(self, fault: str, **params: Any) -> list[dict[str, Any]]:
        """Inject a fault into every till (see :meth:`KktStack.inject`).

        Raises:
            ConfigError: an unknown fault or a bad parameter.
        """
        return self.run(self.aio.inject(fault, **params))

    def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault (or all) on every till; returns the names cleared."""
        return self.run(self.aio.clear_faults(name))

    def set_till(self, **settings: Any) -> dict[str, Any]:
        """Change every till's settings; returns the first till's (see :meth:`KktStack.set_till`).

        Raises:
            ConfigError: an unknown setting or a bad value.
        """
        return self.run(self.aio.set_till(**settings))

    def set_point(
        self,
        *,
        internet_docs: bool | None = None,
        stop_on_errors: bool | None = None,
        retail_point_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Change a retail point in the cabinet; returns the point (see :meth:`KktStack.set_point`).

        Raises:
            CloudError: the cabinet refused the change (its HTTP status and answer).
        """
        return self.run(
            self.aio.set_point(
                internet_docs=internet_docs,
                stop_on_errors=stop_on_errors,
                retail_point_id=retail_point_id,
                **fields,
            )
        )

    def till_state(self, index: int = 0) -> dict[str, Any]:
        """A till's whole state, as the control plane publishes it (settings, drive, shift …)."""
        return self.run(self.aio.till_state(index))


@dataclass(frozen=True, slots=True)
class _StackShape:
    profile: str
    tills: int
    points: int
    mqtt: bool | None
    settings: dict[str, Any]


def _shape(request: pytest.FixtureRequest) -> _StackShape:
    marker = request.node.get_closest_marker("kkt")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    option = request.config.getoption("--kkt-profile", default=None)
    profile = kwargs.pop("profile", None) or option or DEFAULT_PROFILE
    tills = int(kwargs.pop("tills", 1))
    points = int(kwargs.pop("points", 1))
    mqtt = kwargs.pop("mqtt", None)
    return _StackShape(str(profile), tills, points, mqtt, kwargs)


def _mqtt_url(request: pytest.FixtureRequest, shape: _StackShape) -> str | None:
    """The session broker's URL when the shape wants MQTT (``None``: as installed)."""
    from kkt_emulator.control.broker import find_mosquitto  # noqa: PLC0415 - keep plugin load light

    if shape.mqtt or (shape.mqtt is None and find_mosquitto() is not None):
        broker: MqttBroker = request.getfixturevalue("mqtt_broker")
        return broker.url
    return None


def _shares(request: pytest.FixtureRequest) -> bool:
    """Whether this test's ``kkt_stack`` is the session's shared installation."""
    return (
        "kkt_stack" in request.fixturenames
        and request.node.get_closest_marker("kkt_fresh") is None
        and not request.config.getoption("--kkt-fresh", default=False)
    )


def _shared_installation(request: pytest.FixtureRequest) -> SharedInstallation:
    """The shared installation of this test's shape, reset for it."""
    from kkt_emulator.testing.shared import Shape  # noqa: PLC0415 - keep plugin load light

    shape = _shape(request)
    pool: SharedPool = request.getfixturevalue("_kkt_shared_pool")
    installation = pool.acquire(
        Shape(shape.profile, shape.tills, shape.points, _mqtt_url(request, shape), shape.settings)
    )
    installation.clock.advanced = False
    request.node.stash[_INSTALLATION] = installation
    return installation


def _homed(clock: ManualClock, home: LoopThread) -> HomedClock:
    """``clock`` as a clock any loop may move, homed on the installation's loop.

    Fails the test when an overriding ``kkt_clock`` returned a clock of another kind.
    """
    from kkt_emulator.testing.shared import HomedClock  # noqa: PLC0415 - keep plugin load light

    if not isinstance(clock, HomedClock):
        pytest.fail(
            f"kkt_clock returned a {type(clock).__name__}: return a "
            "kkt_emulator.testing.shared.HomedClock(start) (a ManualClock that the test's event "
            "loop may move while the installation runs on its own)",
            pytrace=False,
        )
    if clock.home is None:
        clock.home = home.loop
    elif clock.home is not home.loop:
        pytest.fail("kkt_clock is already homed on another event loop", pytrace=False)
    return clock


@contextlib.contextmanager
def _fresh_stack(request: pytest.FixtureRequest, clock: ManualClock) -> Iterator[KktStack]:
    """An installation of the test's own (``kkt_fresh``), on the session's installation loop."""
    from kkt_emulator.app.stack import Stack, StackOptions  # noqa: PLC0415
    from kkt_emulator.profiles import load_profile  # noqa: PLC0415 - keep plugin load light
    from kkt_emulator.testing.stack import StackHarness  # noqa: PLC0415

    pool: SharedPool = request.getfixturevalue("_kkt_shared_pool")
    home = pool.thread
    homed = _homed(clock, home)
    shape = _shape(request)
    mqtt_url = _mqtt_url(request, shape)
    state_dir = request.getfixturevalue("tmp_path_factory").mktemp("kkt")
    options = StackOptions(
        profile=load_profile(shape.profile),
        state_dir=state_dir,
        tills=shape.tills,
        points=shape.points,
        till_settings={**TILL_SETTINGS, **shape.settings},
        mqtt=mqtt_url,
    )
    stack = Stack(options, homed)
    home.run(stack.__aenter__())
    try:
        harness = StackHarness(stack, homed)
        try:
            yield KktStack(harness, home, shared=False)
        finally:
            home.run(harness.http.aclose())
    finally:
        home.run(_stop(stack))


async def _stop(stack: Stack) -> None:
    from kkt_emulator.testing.stack import settle  # noqa: PLC0415 - keep plugin load light

    try:
        await settle(stack)
    finally:
        await stack.close()


@contextlib.contextmanager
def _shared_stack(
    request: pytest.FixtureRequest, installation: SharedInstallation
) -> Iterator[KktStack]:
    """This test's view of a shared installation, with an HTTP client of its own."""
    from kkt_emulator.testing.stack import StackHarness  # noqa: PLC0415 - keep plugin load light

    pool: SharedPool = request.getfixturevalue("_kkt_shared_pool")
    harness = StackHarness(installation.running, installation.clock)
    try:
        yield KktStack(harness, pool.thread)
    finally:
        pool.thread.run(harness.http.aclose())
        if installation.clock.advanced:
            installation.retired = "the test moved business time"
        elif request.node.stash.get(_FAILED, False):
            installation.retired = "the test failed"
        pool.thread.run(pool.release(installation))


@pytest.fixture
def kkt_stack(request: pytest.FixtureRequest, kkt_clock: ManualClock) -> Iterator[KktStack]:
    """A running installation (cloud, OFD, tills, control plane) on a manual clock.

    The session's shared installation of the test's shape, reset before the test; one of the
    test's own with ``@pytest.mark.kkt_fresh``, ``--kkt-fresh`` or an overridden ``kkt_clock``.
    Its methods are coroutines; ``kkt_stack_sync`` has them blocking.
    """
    installation = request.node.stash.get(_INSTALLATION, None)
    if installation is not None and installation.clock is kkt_clock:
        with _shared_stack(request, installation) as stack:
            yield stack
    else:
        with _fresh_stack(request, kkt_clock) as stack:
            yield stack


@pytest.fixture
def kkt_stack_sync(kkt_stack: KktStack) -> SyncKktStack:
    """``kkt_stack`` with blocking methods, for ``def test_…`` (the same installation)."""
    return SyncKktStack(kkt_stack)


@pytest.fixture
def kkt_documents() -> Documents:
    """Builders of valid store documents: ``sale(total=…)``, ``return_(…)``."""
    return Documents()


@pytest.fixture
def kkt_clock(request: pytest.FixtureRequest) -> ManualClock:
    """The manual clock of ``kkt_stack``: business time moves only on ``advance``.

    In the shared installation it is the installation's clock: business time stays where it was
    when the installation started (a test that advances it gets the installation replaced after
    it). Otherwise a new clock that starts now. Either may be moved from any event loop
    (:class:`HomedClock`); a fixture that overrides this one returns a ``HomedClock`` too.
    """
    if _shares(request):
        return _shared_installation(request).clock
    from kkt_emulator.testing.shared import HomedClock  # noqa: PLC0415 - keep plugin load light

    return HomedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="session")
def _kkt_shared_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedPool]:
    """The session's shared installations (one per shape) and the loop every installation runs on.

    Stopped when the session ends.
    """
    from kkt_emulator.control.broker import find_mosquitto  # noqa: PLC0415 - keep plugin load light
    from kkt_emulator.testing.shared import SharedPool  # noqa: PLC0415

    if find_mosquitto() is not None:
        # The broker is set up first, so it outlives the installations whose control planes use it.
        request.getfixturevalue("mqtt_broker")
    pool = SharedPool(lambda: tmp_path_factory.mktemp("kkt-shared"), TILL_SETTINGS)
    try:
        yield pool
    finally:
        pool.close()


# ---------------------------------------------------------------------------- the broker


class MqttBroker:
    """A private mosquitto for a whole test session (the ``mqtt_broker`` fixture).

    It runs on an event loop of its own in a background thread, so it serves every test whatever
    loop each test runs on.

    Attributes:
        url: ``mqtt://127.0.0.1:PORT``.
        host: the listener's address.
        port: its port.
    """

    def __init__(self) -> None:
        from kkt_emulator.control.broker import MosquittoBroker  # noqa: PLC0415 - keep plugin load light

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kkt-mqtt-broker", daemon=True
        )
        self._broker: MosquittoBroker = MosquittoBroker()
        self.url = ""
        self.host = ""
        self.port = 0

    def _run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self) -> None:
        """Start the loop thread and mosquitto; raises what MosquittoBroker.start raises."""
        self._thread.start()
        self._run(self._broker.start())
        self.url = self._broker.url
        self.host = self._broker.host
        self.port = self._broker.port or 0

    def restart(self) -> None:
        """Stop and start mosquitto on the same port (clients see it go away and return)."""
        self._run(self._broker.restart())

    def stop(self) -> None:
        """Stop mosquitto and the loop thread."""
        if self._thread.is_alive():
            try:
                self._run(self._broker.stop())
            except Exception:  # the session ends whatever the broker did; say what it did
                log.exception("mqtt_broker_stop_failed", url=self.url)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        if not self._loop.is_running():
            self._loop.close()


@pytest.fixture(scope="session")
def mqtt_broker() -> Iterator[MqttBroker]:
    """A private mosquitto on a free loopback port for the session; skips without mosquitto."""
    from kkt_emulator.control.broker import find_mosquitto  # noqa: PLC0415 - keep plugin load light

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto, or set $KKT_MOSQUITTO)")
    broker = MqttBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
