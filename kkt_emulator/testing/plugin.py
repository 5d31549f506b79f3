"""The pytest plugin: a whole virtual installation for a shop's own test suite, in one fixture.

Installed with the package and loaded through the ``pytest11`` entry point, so ``pip install
kkt-emulator`` (plus ``pytest-asyncio``) is all a user needs::

    async def test_sale_is_fiscalised(kkt_stack, kkt_documents):
        doc = kkt_documents.sale(total=45.50)
        await kkt_stack.post_document(doc)
        status = await kkt_stack.wait_for_status(doc["id"], "COMPLETED")
        assert status["fiscInfo"]["fnNumber"]

Fixtures:

* ``kkt_stack`` — cloud, OFD stand-in, tills (one by default) and, when mosquitto is installed, the
  MQTT control plane on the session's broker; a manual clock. One installation per shape serves
  the whole session and is reset after each test (faults, settings, point flags, queue; see
  :mod:`~kkt_emulator.testing.shared`); ``@pytest.mark.kkt_fresh`` (or ``--kkt-fresh`` for the run)
  gives a test an installation of its own, started for it and torn down after it.
* ``kkt_documents`` — builders of valid store documents (:class:`Documents`).
* ``kkt_clock`` — the manual clock ``kkt_stack`` runs on (business time moves only on ``advance``).
* ``mqtt_broker`` — a private mosquitto for the whole session (skips the test without mosquitto).

``@pytest.mark.kkt(profile=..., tills=..., points=..., mqtt=..., **till_settings)`` shapes one
test's installation (tests of one shape share one); ``--kkt-profile NAME`` chooses the firmware
profile for the whole run. The async fixtures are ``pytest_asyncio`` fixtures, so they work in both
``asyncio_mode = "auto"`` and ``"strict"`` (where the tests carry ``@pytest.mark.asyncio``), on
each test's own loop: the shared installation runs on a loop of its own in a background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from kkt_emulator.logging import get_logger
from kkt_emulator.profiles import DEFAULT_PROFILE

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from kkt_emulator.app.stack import PointAccess
    from kkt_emulator.clock import ManualClock
    from kkt_emulator.control.broker import MosquittoBroker
    from kkt_emulator.testing.shared import LoopThread, SharedInstallation, SharedPool
    from kkt_emulator.testing.stack import StackHarness
    from kkt_emulator.till.till import Till

try:
    import pytest_asyncio

    _HAS_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - the fixtures then explain what is missing
    _HAS_PYTEST_ASYNCIO = False

__all__ = ["Documents", "KktStack", "MqttBroker"]

_T = TypeVar("_T")
log = get_logger(__name__)
_FAULT_OPTIONS = ("count", "probability", "seed")
#: What every till of the plugin's installations starts with (before a marker's settings).
TILL_SETTINGS: dict[str, Any] = {"poll_interval": 0.05}
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

    Attributes:
        store_url: the store API base (``…/api/fn``).
        cabinet_url: the cabinet API base (``…/api/cabinet/v1``).
        login: the association login shops use (HTTP basic auth).
        password: its password.
        retail_point_id: the first retail point.
        points: every retail point with its credentials.
        mqtt_url: the control plane's broker, or ``None``.
        harness: the underlying :class:`~kkt_emulator.testing.stack.StackHarness` (this test's own
            HTTP client; in a shared installation its ``stack`` runs on the installation's loop).
        clock: the installation's manual clock.
        shared: whether the installation is the session's shared one (see :meth:`run`).
    """

    def __init__(self, harness: StackHarness, home: LoopThread | None = None) -> None:
        self.harness = harness
        self._home = home
        self.shared = home is not None
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

    def info(self) -> dict[str, Any]:
        """What ``kkt-emulator up`` writes to its ready-file."""
        return self.harness.stack.ready_info()

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coroutine`` where the installation's tasks run; returns its result.

        A shared installation runs on an event loop of its own (a background thread), so a test
        that calls the tills or the stack directly goes through here::

            receipt = await kkt_stack.run(kkt_stack.till.sell(10000))

        For an installation of the test's own (``kkt_fresh``) it simply awaits the coroutine.
        """
        if self._home is None:
            return await coroutine
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
        answer = await self.harness.post_document(doc, auth)
        for till in self.tills:
            if self._home is None:
                till.ctx.wake.set()
            else:
                self._home.loop.call_soon_threadsafe(till.ctx.wake.set)
        return answer

    async def status(self, doc_id: str) -> dict[str, Any]:
        """``GET /v1/doc/{id}/status``."""
        return await self.harness.status(doc_id)

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
        return await self.harness.wait_for_status(doc_id, *statuses, timeout=timeout)

    async def document_detail(self, doc_id: str) -> dict[str, Any]:
        """The cabinet's view of a document: history, OFD delivery, error detail."""
        return await self.harness.document_detail(doc_id)

    async def advance(self, delta: timedelta | str) -> datetime:
        """Move business time forward (``timedelta`` or ``"31d"``, ``"15m"``, ``"1h30m"``)."""
        return await self.harness.advance(delta)

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
        """
        body = dict(fields)
        if internet_docs is not None:
            body["internetDocsEnabled"] = internet_docs
        if stop_on_errors is not None:
            body["stopOnErrors"] = stop_on_errors
        point = retail_point_id or self.retail_point_id
        answer: dict[str, Any] = await self.harness.cabinet(
            "PATCH", f"/retail-points/{point}", json=body
        )
        return answer

    async def till_state(self, index: int = 0) -> dict[str, Any]:
        """A till's whole state, as the control plane publishes it (settings, drive, shift …)."""
        return await self.run(self.tills[index].snapshot_state())


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


@contextlib.asynccontextmanager
async def _kkt_stack(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[KktStack]:
    """An installation of the test's own (``kkt_fresh``), on the test's loop."""
    from kkt_emulator.app.stack import Stack, StackOptions  # noqa: PLC0415
    from kkt_emulator.profiles import load_profile  # noqa: PLC0415 - keep plugin load light
    from kkt_emulator.testing.stack import StackHarness, settle  # noqa: PLC0415

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
    async with Stack(options, clock) as stack:
        harness = StackHarness(stack, clock)
        try:
            yield KktStack(harness)
        finally:
            await harness.http.aclose()
            await settle(stack)


@contextlib.asynccontextmanager
async def _shared_stack(
    request: pytest.FixtureRequest, installation: SharedInstallation
) -> AsyncIterator[KktStack]:
    """This test's view of a shared installation: its own HTTP client, calls hop to the loop."""
    from kkt_emulator.testing.stack import StackHarness  # noqa: PLC0415 - keep plugin load light

    pool: SharedPool = request.getfixturevalue("_kkt_shared_pool")
    harness = StackHarness(installation.running, installation.clock)
    try:
        yield KktStack(harness, home=pool.thread)
    finally:
        await harness.http.aclose()
        if installation.clock.advanced:
            installation.retired = "the test moved business time"
        elif request.node.stash.get(_FAILED, False):
            installation.retired = "the test failed"
        await pool.release(installation)


def _missing_asyncio() -> None:
    pytest.fail("kkt_stack needs pytest-asyncio: pip install pytest-asyncio", pytrace=False)


if _HAS_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def kkt_stack(
        request: pytest.FixtureRequest, kkt_clock: ManualClock
    ) -> AsyncIterator[KktStack]:
        """A running installation (cloud, OFD, tills, control plane) on a manual clock.

        The session's shared installation of the test's shape, reset before the test; one of
        the test's own with ``@pytest.mark.kkt_fresh``, ``--kkt-fresh`` or an overridden
        ``kkt_clock``.
        """
        installation = request.node.stash.get(_INSTALLATION, None)
        if installation is not None and installation.clock is kkt_clock:
            async with _shared_stack(request, installation) as stack:
                yield stack
        else:
            async with _kkt_stack(request, kkt_clock) as stack:
                yield stack

else:  # pragma: no cover - without pytest-asyncio there is no event loop for the installation

    @pytest.fixture
    def kkt_stack() -> None:
        """A running installation (needs pytest-asyncio)."""
        _missing_asyncio()


@pytest.fixture
def kkt_documents() -> Documents:
    """Builders of valid store documents: ``sale(total=…)``, ``return_(…)``."""
    return Documents()


@pytest.fixture
def kkt_clock(request: pytest.FixtureRequest) -> ManualClock:
    """The manual clock of ``kkt_stack``: business time moves only on ``advance``.

    In the shared installation it is the installation's clock: business time stays where it was
    when the installation started (a test that advances it gets the installation replaced after
    it). Otherwise a new clock that starts now.
    """
    if _shares(request):
        return _shared_installation(request).clock
    from kkt_emulator.clock import ManualClock  # noqa: PLC0415 - keep plugin load light

    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="session")
def _kkt_shared_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedPool]:
    """The session's shared installations (one per shape), stopped when the session ends."""
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
