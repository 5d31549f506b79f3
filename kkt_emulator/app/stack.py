"""A whole installation in one process (``kkt-emulator up``): cloud, OFD, tills, sharing one clock.

The only module that sees every package. It starts the cloud on a real port, the OFD stand-in,
creates (or, on a restart, reuses) the retail points with the internet-shop flag on and their
service and association credentials, starts N tills bound to them, and writes the ready-file once
everything accepts requests. Everything lives under one state directory, so stopping and starting
again continues where it left off.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypedDict

import httpx
import uvicorn

from kkt_emulator.clock import Clock, ClockMode
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.exposure import check_cabinet_exposure
from kkt_emulator.cloud.schemas import RetailPointCreate
from kkt_emulator.cloud.settings import CloudSettings, FiscalDateFormat
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.logging import get_logger
from kkt_emulator.net import client_tls, host_port, listen_socket
from kkt_emulator.ofd.server import OfdServer
from kkt_emulator.profiles import FirmwareProfile
from kkt_emulator.till.till import Till, TillConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable, Iterator

    from kkt_emulator.cloud.db import DatabaseTarget
    from kkt_emulator.control.plane import ControlPlane

__all__ = [
    "EXAMPLE_SALE",
    "OfdGates",
    "PointAccess",
    "ReadyInfo",
    "Stack",
    "StackOptions",
    "TillInfo",
    "curl_example",
    "default_state_dir",
    "ensure_points",
    "sale_document",
    "till_config",
    "write_json_atomic",
]

EXAMPLE_SALE: dict[str, Any] = {
    "id": "<uuid>",
    "docNum": "ORDER-1",
    "docType": "SALE",
    "checkoutDateTime": "2026-01-01T12:00:00+03:00",
    "email": "buyer@example.com",
    "taxMode": "COMMON",
    "inventPositions": [{"name": "Хлеб", "price": 45.5, "quantity": 1, "vatTag": 1105}],
    "moneyPositions": [{"paymentType": "CARD", "sum": 45.5}],
}


def default_state_dir() -> Path:
    """``$KKT_STATE_DIR`` or the user's data directory."""
    env = os.environ.get("KKT_STATE_DIR")
    if env:
        return Path(env)
    import platformdirs  # noqa: PLC0415 - only needed for the default

    return Path(platformdirs.user_data_dir("kkt-emulator")) / "default"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers never see half a file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(path)


KEEP_ALIVE_SECONDS = 120  # above any poll interval a till uses in practice
FDS_PER_TILL = 12
"""Descriptors one till may hold while it works: two SQLite files with WAL and shm, its cloud
connection and the cloud's end of it, the OFD connection and its accepted end; with room to spare.
An idle till holds far fewer (its databases and OFD connection close when idle, D71; the MQTT
connection is the process's, D70), but start-up and a burst of documents open them all at once."""
START_ATTEMPTS = 3
"""Starts of one till of a fleet before its failure to reach the cloud ends the start-up."""
FIRST_BINDS = 8
"""The first tills of retail points started at once (each costs the cloud a password derivation)."""
START_BATCH = 25
"""Tills started (and stopped) at once: their drive commands, SQLite writes and bind requests
interleave on the loop, while the cloud and the broker are never flooded."""


OFD_GATE_GROUP = 50
"""Tills whose OFD loops one gate of :class:`OfdGates` opens at a time (D119)."""
OFD_GATE_STEP = 0.1
"""Seconds (pacing) between two gates of :class:`OfdGates` opening (D119)."""


class OfdGates:
    """Holds the OFD loops of a fleet's tills until every till has started (D119).

    A new till's drive has its registration report to send; a thousand tills sending theirs
    while the others start made every start wait behind OFD exchanges. The gates open after the
    last till started, :data:`OFD_GATE_GROUP` tills at a time every :data:`OFD_GATE_STEP`
    seconds, so the OFD stand-in is not asked for a thousand connections at once. Below
    :data:`FLEET_WATCH_FROM` tills there is no gate: a few tills start at once anyway.
    """

    def __init__(self, tills: int) -> None:
        self.enabled = uses_fleet_watch(tills)
        groups = (tills + OFD_GATE_GROUP - 1) // OFD_GATE_GROUP if self.enabled else 0
        self._gates = [asyncio.Event() for _ in range(groups)]

    def gate(self, n: int) -> asyncio.Event | None:
        """The gate of till ``n`` (from 0), ``None`` when the fleet has none."""
        return self._gates[n // OFD_GATE_GROUP] if self.enabled else None

    async def open(self, clock: Clock) -> None:
        """Open every gate, one group every :data:`OFD_GATE_STEP` seconds."""
        for n, gate in enumerate(self._gates):
            if n:
                await clock.pace(OFD_GATE_STEP)
            gate.set()


def _raise_fd_limit(needed: int) -> None:
    """Lift the soft descriptor limit towards the hard one when ``needed`` is above it.

    200 tills hold ~2000 descriptors, and many systems start processes with a soft limit of 1024
    (``Too many open files`` half-way through start-up).
    """
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < needed:
            target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    except (ImportError, OSError, ValueError):  # not POSIX, or not allowed: keep the limit
        pass


def curl_example(store_api: str, login: str, password: str) -> str:
    """A ready-to-paste shell line that posts the example sale and shows its id."""
    body = json.dumps({**EXAMPLE_SALE, "id": "@ID@"}, ensure_ascii=False).replace(
        '"@ID@"', "\"'$ID'\""
    )
    return (
        "ID=$(cat /proc/sys/kernel/random/uuid); "
        f"curl -s -u '{login}:{password}' -H 'Content-Type: application/json' "
        f"-X POST {store_api}/v2/doc -d '{body}'; echo; echo \"document id: $ID\""
    )


class PointAccess(TypedDict):
    """One retail point and its credentials, as ``points.json`` and the ready-file keep them.

    A ``TypedDict`` rather than a dataclass: it is the JSON on disk, read back on a restart, and
    the same mapping users of the ready-file and the test kit index by key.
    """

    retail_point_id: str
    service_login: str
    service_password: str
    login: str
    password: str


@dataclass(frozen=True, slots=True)
class TillInfo:
    """One running till, as the ready-file lists it."""

    device_id: str
    fn_serial: str
    kkt_serial: str
    rnm: str
    profile: str
    state_dir: Path
    retail_point_id: str = ""

    def to_json(self) -> dict[str, str]:
        """The ready-file's entry for this till."""
        return {
            "device_id": self.device_id,
            "fn_serial": self.fn_serial,
            "kkt_serial": self.kkt_serial,
            "rnm": self.rnm,
            "profile": self.profile,
            "state_dir": str(self.state_dir),
            "retail_point_id": self.retail_point_id,
        }

    @classmethod
    def of(cls, till: Till) -> TillInfo:
        """What the ready-file says about a started till."""
        return cls(
            device_id=till.device_id,
            fn_serial=till.fn_serial,
            kkt_serial=till.kkt_serial,
            rnm=till.rnm,
            profile=till.profile.name,
            state_dir=till.state_dir,
            retail_point_id=till.config.retail_point_id or "",
        )


@dataclass(frozen=True, slots=True)
class ReadyInfo:
    """What a running installation offers: URLs, the first point's credentials, every till.

    Attributes:
        base_url: the cloud's HTTP root; the APIs hang below it.
        point: the first retail point, whose credentials the banner and the test kit use.
        points: every retail point.
        tills: every till.
        ofd: the OFD stand-in's ``host:port``, or ``None`` when it is off.
        mqtt: the control plane's broker URL, or ``None``.
        clock: the clock mode.
        state_dir: where everything is kept.
        pid: the process serving it all.
    """

    base_url: str
    point: PointAccess
    points: tuple[PointAccess, ...]
    tills: tuple[TillInfo, ...]
    ofd: str | None
    mqtt: str | None
    clock: ClockMode
    state_dir: Path
    pid: int
    orders: tuple[str, str] | None = None
    """The account's «Заказы (выдача/доставка)» pair (orders-and-backoffice.md O2, D93)."""

    @property
    def store_api(self) -> str:
        """The shop API (``store-api.md``)."""
        return f"{self.base_url}/api/fn"

    @property
    def cabinet_api(self) -> str:
        """The cabinet API."""
        return f"{self.base_url}/api/cabinet/v1"

    @property
    def cabinet_web(self) -> str:
        """The web cabinet's pages (``kkt_emulator.cloud.web``)."""
        return f"{self.base_url}/cabinet/"

    @property
    def device_api(self) -> str:
        """The API tills talk to (``till-protocol.md``)."""
        return f"{self.base_url}/api/device/v1"

    def to_json(self) -> dict[str, Any]:
        """The ready-file's content: the first point's credentials flat, then every part."""
        return {
            "store_api": self.store_api,
            "cabinet_api": self.cabinet_api,
            "cabinet_web": self.cabinet_web,
            "device_api": self.device_api,
            "base_url": self.base_url,
            "retail_point_id": self.point["retail_point_id"],
            "service_login": self.point["service_login"],
            "service_password": self.point["service_password"],
            "login": self.point["login"],
            "password": self.point["password"],
            "points": list(self.points),
            "tills": [till.to_json() for till in self.tills],
            "ofd": self.ofd,
            "mqtt": self.mqtt,
            "clock": str(self.clock),
            "state_dir": str(self.state_dir),
            "pid": self.pid,
            "orders_api": f"{self.base_url}/api/v2/retail-point/{self.point['retail_point_id']}/order",
            "orders_login": self.orders[0] if self.orders else None,
            "orders_password": self.orders[1] if self.orders else None,
        }


@dataclass(slots=True)
class StackOptions:
    """What ``kkt-emulator up`` starts.

    ``long_poll`` is the tills' long poll in seconds (0: off, the real till's timer-paced poll;
    ``None``: whatever each till kept); a long-polling till is woken by the cloud as soon as a
    document is queued for its retail point (``till-protocol.md`` §1). ``till_settings`` win
    over it.
    """

    profile: FirmwareProfile
    state_dir: Path
    tills: int = 1
    points: int = 1
    host: str = "127.0.0.1"
    port: int = 0
    ofd_port: int = 0
    ready_file: Path | None = None
    timing: str = "fast"
    till_settings: dict[str, Any] = field(default_factory=dict)
    mqtt: str | None = None
    drive_timeout: float = 5.0
    cabinet_token: str | None = None
    long_poll: float | None = None
    cloud_db: DatabaseTarget | None = None  # None: cloud.sqlite3 in the state directory
    ofd_address: str | None = None
    """An external OFD's ``host:port``: no stand-in is started and the tills send there (D105)."""
    fiscal_date_format: FiscalDateFormat = FiscalDateFormat.ISO
    """The store API's ``fiscalInfo.date`` format, as ``cloud serve --fiscal-date-format``."""
    fiscal_sum_as_string: bool = False
    """The store API's ``fiscalInfo.sum`` as a string, as ``cloud serve --fiscal-sum-as-string``."""

    def settings_of_tills(self) -> dict[str, Any]:
        """The settings every till starts with."""
        settings: dict[str, Any] = {"orders": True}  # the courier's orders (D90)
        if self.long_poll is not None:
            settings["long_poll"] = self.long_poll
        return {**settings, **self.till_settings}


def till_config(
    profile: FirmwareProfile,
    state_dir: Path,
    server: str,
    point: PointAccess,
    *,
    ofd_address: str | None,
    timing: str = "fast",
    settings: dict[str, Any] | None = None,
    drive_timeout: float = 5.0,
    ofd: OfdServer | None = None,
    fleet_watch: bool = True,
    ofd_gate: asyncio.Event | None = None,
) -> TillConfig:
    """How one till of an installation or a fleet runs: bound to ``point`` with its service login.

    ``ofd`` is the OFD stand-in of the same process, when there is one (``ofd.*`` faults act on
    it); a till in another process than the OFD has only its address. ``fleet_watch``: see
    :func:`uses_fleet_watch`; ``ofd_gate``: see :class:`OfdGates`.
    """
    return TillConfig(
        profile=profile,
        state_dir=state_dir,
        server=server,
        login=point["service_login"],
        password=point["service_password"],
        retail_point_id=point["retail_point_id"],
        ofd_address=ofd_address,
        timing=timing,
        settings=dict(settings or {}),
        drive_timeout=drive_timeout,
        ofd=ofd,
        fleet_watch=fleet_watch,
        ofd_gate=ofd_gate,
    )


FLEET_LONG_POLL = 25.0
"""The long poll a fleet's tills use unless told otherwise (D117): a fleet waits on the cloud."""


def default_long_poll(tills: int, given: float | None) -> float:
    """``--long-poll`` as given, else :data:`FLEET_LONG_POLL` for a fleet, else 0 (D117).

    A fleet (:data:`FLEET_WATCH_FROM` tills or more) of the real 5 s poll burns a core doing
    nothing; one or a few tills keep the real till's timer-paced poll.
    """
    if given is not None:
        return given
    return FLEET_LONG_POLL if uses_fleet_watch(tills) else 0.0


FLEET_WATCH_FROM = 32
"""The number of tills in one process from which they wait on a fleet watch (D109)."""


def uses_fleet_watch(tills: int) -> bool:
    """Whether ``tills`` long-polling tills of one process share a fleet watch (D109).

    The watch makes an idle fleet cost one request instead of one per till, and costs each
    document one more exchange (the watch's answer, then the lease). Below
    :data:`FLEET_WATCH_FROM` tills the tills' own long polls cost little, and the exchange saved
    is most of the latency from a shop's POST to COMPLETED.
    """
    return tills >= FLEET_WATCH_FROM


def _saved_points(saved: Path) -> list[PointAccess]:
    if not saved.is_file():
        return []
    points: list[PointAccess] = json.loads(saved.read_text(encoding="utf-8"))
    return points


def _point_body(profile: FirmwareProfile, n: int) -> dict[str, Any]:
    return {
        "name": f"Интернет-магазин {n}",
        "address": profile.registration.addresses[0].address,
        "inn": profile.registration.inn,
        "internetDocsEnabled": True,
    }


def _point_access(point_id: str, creds: dict[str, str], assoc: dict[str, str]) -> PointAccess:
    """A point's entry in ``points.json``: its service credentials and the shop's association."""
    return {
        "retail_point_id": point_id,
        "service_login": creds["login"],
        "service_password": creds["password"],
        "login": assoc["userName"],
        "password": assoc["password"],
    }


def _make_points_in(
    cloud: Cloud, saved: Path, points: list[PointAccess], count: int, profile: FirmwareProfile
) -> list[PointAccess]:
    """:func:`ensure_points` through the cloud this process embeds, not over HTTP (D135)."""
    service = cloud.service
    while len(points) < count:
        body = RetailPointCreate.model_validate(_point_body(profile, len(points) + 1))
        point = service.create_point(body)
        creds = service.generate_credentials(point.id)
        basic = base64.b64encode(f"{creds['login']}:{creds['password']}".encode()).decode()
        assoc = service.associate(f"Basic {basic}", point.id, None)
        points.append(_point_access(point.id, creds, assoc))
        write_json_atomic(saved, points)
    return points


async def ensure_points(
    base_url: str,
    saved: Path,
    count: int,
    profile: FirmwareProfile,
    token: str | None,
    *,
    cloud: Cloud | None = None,
) -> list[PointAccess]:
    """The retail points kept in ``saved``, topped up to ``count`` through the cabinet API.

    Each new point has the internet-shop flag on, fresh service credentials and an association
    (the shop's login and password); ``saved`` is rewritten after each, so a restart reuses them.
    With ``cloud`` (the cloud this process embeds, ``up``) the points are made through its
    service directly, as the cabinet and store routes make them (D135).

    Raises:
        httpx.HTTPError: the cloud refused or did not answer.
    """
    points = _saved_points(saved)
    if len(points) >= count:
        return points  # a restart: no client to build (httpx's first one imports httpcore)
    if cloud is not None:
        return _make_points_in(cloud, saved, points, count, profile)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        base_url=base_url, timeout=10.0, headers=headers, verify=client_tls()
    ) as http:
        while len(points) < count:
            body = _point_body(profile, len(points) + 1)
            point = (
                (await http.post("/api/cabinet/v1/retail-points", json=body))
                .raise_for_status()
                .json()
            )
            creds = (
                (await http.post(f"/api/cabinet/v1/retail-points/{point['id']}/credentials"))
                .raise_for_status()
                .json()
            )
            assoc = (
                (
                    await http.post(
                        f"/api/fn/v1/associate/{point['id']}",
                        auth=(creds["login"], creds["password"]),
                    )
                )
                .raise_for_status()
                .json()
            )
            points.append(_point_access(point["id"], creds, assoc))
            write_json_atomic(saved, points)
    return points


def _saved_pair(saved: Path) -> tuple[str, str] | None:
    """The pair ``saved`` keeps, or ``None`` when there is none (or it is unreadable)."""
    try:
        kept = json.loads(saved.read_text(encoding="utf-8"))
        return str(kept["login"]), str(kept["password"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def ensure_orders_pair(
    base_url: str, saved: Path, point_id: str, token: str | None
) -> tuple[str, str]:
    """The account's orders-service pair kept in ``saved``, generated once (D93).

    A restart reuses it: generating a new one would invalidate the pair a shop already has (O2).

    Raises:
        httpx.HTTPError: the cloud refused or did not answer.
    """
    kept = _saved_pair(saved)
    if kept is not None:
        return kept
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        base_url=base_url, timeout=10.0, headers=headers, verify=client_tls()
    ) as http:
        url = f"/api/cabinet/v1/retail-points/{point_id}/services/orders/credentials"
        creds = (await http.post(url)).raise_for_status().json()
    write_json_atomic(saved, {"login": creds["login"], "password": creds["password"]})
    return str(creds["login"]), str(creds["password"])


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server without its own SIGINT/SIGTERM handlers.

    uvicorn's ``serve()`` replaces the process's handlers with its own, so a Ctrl-C stopped the
    cloud's HTTP first and the tills, still running, polled a closed port until :meth:`Stack.close`
    came to them. Whoever runs the stack (``up``, a test) decides when it stops, and the close goes
    in its order: control plane, tills, OFD, cloud.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing: the signals stay with the program that runs the stack."""
        yield


class Stack:
    """Cloud + OFD + tills in one process. Use as an async context manager."""

    def __init__(self, options: StackOptions, clock: Clock) -> None:
        if options.tills < 0 or options.points < 1:
            raise ConfigError("--tills must be at least 0 and --points at least 1")
        if options.tills and options.points > options.tills:
            raise ConfigError("--points cannot exceed --tills: every retail point needs a till")
        check_cabinet_exposure(options.host, options.cabinet_token)
        self.options = options
        self.clock = clock
        self.state_dir = options.state_dir
        self.cloud: Cloud | None = None
        self.ofd: OfdServer | None = None
        self.tills: list[Till] = []
        self.points: list[PointAccess] = []
        self.orders_pair: tuple[str, str] | None = None
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.control: ControlPlane | None = None
        self.mqtt_url: str | None = None
        self.ofd_gates = OfdGates(options.tills)
        self._gates_task: asyncio.Task[None] | None = None
        self.log = get_logger(component="stack")

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bring everything up; write the ready-file last."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _raise_fd_limit(64 + FDS_PER_TILL * self.options.tills)
        await self._start_cloud()
        await self._start_ofd()
        await self._ensure_points()
        await self._start_tills()
        await self._start_control()
        self.announce()
        self._gates_task = asyncio.create_task(self.ofd_gates.open(self.clock), name="ofd-gates")

    def announce(self) -> None:
        """Write the ready-files (``--ready-file`` and ``<state dir>/ready.json``)."""
        if self.options.ready_file is not None:
            write_json_atomic(self.options.ready_file, self.ready_info())
        write_json_atomic(self.state_dir / "ready.json", self.ready_info())

    async def _start_cloud(self) -> None:
        self.cloud = Cloud(
            self.options.cloud_db or self.state_dir / "cloud.sqlite3",
            self.clock,
            CloudSettings(
                cabinet_token=self.options.cabinet_token,
                fiscal_date_format=self.options.fiscal_date_format,
                fiscal_sum_as_string=self.options.fiscal_sum_as_string,
            ),
        )
        await self.cloud.__aenter__()
        self._socket = listen_socket(self.options.host, self.options.port)
        port = self._socket.getsockname()[1]
        self.base_url = f"http://{host_port(self.options.host, port)}"
        # Tills keep their connection between polls; uvicorn's default 5 s keep-alive equals the
        # default poll interval, so the server closed connections just as tills reused them
        # (ReadError, a failed poll and a back-off, a few times a minute in a fleet).
        config = uvicorn.Config(
            self.cloud.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = _EmbeddedServer(config)
        self._server_task = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name="cloud-http"
        )
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise TransportError("the cloud's HTTP server stopped during start-up")
            await self.clock.pace(0.01)

    @property
    def ofd_address(self) -> str | None:
        """Where the tills send to the OFD: the stand-in, or ``--ofd`` (D105)."""
        return self.ofd.address if self.ofd is not None else self.options.ofd_address

    async def _start_ofd(self) -> None:
        if self.options.ofd_address is not None:
            return  # an external OFD (D105)
        inn = self.options.profile.registration.ofd_inn
        db = self.state_dir / "ofd.sqlite3"
        ofd = OfdServer(
            self.clock,
            host=self.options.host,
            port=self.options.ofd_port,
            ofd_inn=inn,
            db_path=db,
            signing_seed=self.options.profile.drive.seed,
        )
        await ofd.__aenter__()
        self.ofd = ofd

    async def _ensure_points(self) -> None:
        self.points = await ensure_points(
            self.base_url,
            self.state_dir / "points.json",
            self.options.points,
            self.options.profile,
            self.options.cabinet_token,
            cloud=self.cloud,
        )
        self.orders_pair = await ensure_orders_pair(
            self.base_url,
            self.state_dir / "orders.json",
            self.points[0]["retail_point_id"],
            self.options.cabinet_token,
        )

    async def _start_tills(self) -> None:
        """Start the tills concurrently, ``START_BATCH`` at a time; keep them in till order.

        Tills ``1..points`` (one per retail point) start first, then the others.

        A till that fails to start is closed, the others that started are kept (``close`` stops
        them) and the first failure is raised.
        """
        tills = [self._till(n) for n in range(self.options.tills)]
        if len(tills) == 1:  # nothing to overlap: start it in this task, as one till always did
            await tills[0].start()
            self.tills = tills
            return

        async def start(n: int, limit: asyncio.Semaphore) -> None:
            async with limit:
                for attempt in range(1, START_ATTEMPTS + 1):
                    till = tills[n]
                    try:
                        await till.start()
                    except TransportError as exc:
                        # A cloud too busy to answer in time (a fleet starting on a shared
                        # machine): its state directory keeps what was done; start it afresh.
                        await self._stop_part("till", till.close(), fn_serial=till.fn_serial)
                        if attempt == START_ATTEMPTS:
                            raise
                        self.log.warning("till_start_retried", till=n + 1, error=str(exc))
                        tills[n] = self._till(n)
                    except BaseException:
                        await self._stop_part("till", till.close(), fn_serial=till.fn_serial)
                        raise
                    else:
                        return

        # The first till of each retail point binds before the others: the cloud derives a
        # point's password once and remembers the verdict (store-api.md D58), so the rest never
        # wait for a derivation; started together, every till of a point would queue one. The
        # cloud derives in one worker thread, so few of these binds wait at a time (each within
        # the till's HTTP timeout).
        first = len(self.points)
        pioneers = asyncio.Semaphore(FIRST_BINDS)
        outcomes = await asyncio.gather(
            *(start(n, pioneers) for n in range(min(first, len(tills)))), return_exceptions=True
        )
        limit = asyncio.Semaphore(START_BATCH)
        outcomes += await asyncio.gather(
            *(start(n, limit) for n in range(first, len(tills))), return_exceptions=True
        )
        self.tills = [t for t, o in zip(tills, outcomes, strict=True) if o is None]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _till(self, n: int) -> Till:
        point = self.points[n % len(self.points)]
        config = till_config(
            self.options.profile,
            self.state_dir / "tills" / f"till-{n + 1}",
            self.base_url,
            point,
            ofd_address=self.ofd_address,
            timing=self.options.timing,
            settings=self.options.settings_of_tills(),
            drive_timeout=self.options.drive_timeout,
            ofd=self.ofd,
            fleet_watch=uses_fleet_watch(self.options.tills),
            ofd_gate=self.ofd_gates.gate(n),
        )
        return Till(config, self.clock)

    async def _start_control(self) -> None:
        """The MQTT control plane: ``options.mqtt`` is ``"spawn"``, a broker URL or ``None``."""
        if not self.options.mqtt:
            return
        from kkt_emulator.control.plane import ControlPlane  # noqa: PLC0415 - only with --mqtt

        self.control = ControlPlane(self.options.mqtt, self.clock)
        await self.control.start(self.tills)
        self.mqtt_url = self.control.url

    async def close(self) -> None:
        """Stop the control plane, tills, the OFD and the cloud, in that order.

        Raises nothing but cancellation (it runs on every way out of :meth:`start`): a part that
        fails to stop is logged with its traceback and the rest are still stopped.
        """
        if self._gates_task is not None:
            self._gates_task.cancel()
            await asyncio.gather(self._gates_task, return_exceptions=True)
            self._gates_task = None
        if self.control is not None:
            await self._stop_part("control_plane", self.control.close())
            self.control = None
        tills, self.tills = self.tills, []
        for first in range(0, len(tills), START_BATCH):
            await asyncio.gather(
                *(
                    self._stop_part(
                        "till", till.close(), device_id=till.device_id, fn_serial=till.fn_serial
                    )
                    for till in tills[first : first + START_BATCH]
                )
            )
        if self.ofd is not None:
            await self._stop_part("ofd", self.ofd.__aexit__(None, None, None))
            self.ofd = None
        if self.cloud is not None:
            self.cloud.web_hub.close()  # open event streams end, so the server need not wait
        if self._server is not None:
            self._server.should_exit = True
        if self._server_task is not None:
            await self._stop_part("cloud_http", self._server_task)
            self._server_task = None
        if self.cloud is not None and self.cloud.running:
            await self._stop_part("cloud", self.cloud.__aexit__(None, None, None))
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _stop_part(self, part: str, stopping: Awaitable[object], **context: str) -> None:
        try:
            await stopping
        except asyncio.CancelledError:
            # The uvicorn task ends cancelled when its serve() was interrupted: stopped all the same.
            if part != "cloud_http":
                raise
        except Exception:  # shutdown goes on whatever one part raised; logged with its traceback
            self.log.exception("stack_stop_failed", part=part, **context)

    # ------------------------------------------------------------------ what users see

    def till_infos(self) -> tuple[TillInfo, ...]:
        """Every till of the installation, as the ready-file lists them."""
        return tuple(TillInfo.of(t) for t in self.tills)

    def ready(self) -> ReadyInfo:
        """What is running and how to reach it (the ready-file, the banner, the test kit)."""
        return ReadyInfo(
            base_url=self.base_url,
            point=self.points[0],
            points=tuple(self.points),
            tills=self.till_infos(),
            ofd=self.ofd_address,
            mqtt=self.mqtt_url,
            clock=self.clock.mode,
            state_dir=self.state_dir,
            pid=os.getpid(),
            orders=self.orders_pair,
        )

    def ready_info(self) -> dict[str, Any]:
        """The ready-file's content (:meth:`ready` as JSON)."""
        return self.ready().to_json()

    def banner(self) -> str:
        """What a newcomer needs to act: URLs, ids, credentials, a curl that posts a sale."""
        info = self.ready()
        point = info.point
        web_hint = (
            "    (open once with ?token=<cabinet token>)"
            if self.options.cabinet_token
            else "    (documents, retail points, tills; live)"
        )
        lines = [
            "kkt-emulator is up",
            f"  store API        {info.store_api}    (the vendor's shop API: /v2/doc, /v1/doc/ID/status …)",
            f"  cabinet API      {info.cabinet_api}",
            f"  web cabinet      {info.cabinet_web}{web_hint}",
            f"  OFD stand-in     {info.ofd or 'off'}"
            if self.options.ofd_address is None
            else f"  OFD              {info.ofd}    (external, --ofd)",
            f"  MQTT broker      {info.mqtt or 'off'}    (kkt-emulator status, fault, clock …)",
            f"  retail point id  {point['retail_point_id']}",
            f"  login/password   {point['login']} / {point['password']}    (association, for shops and plugins)",
            f"  service creds    {point['service_login']} / {point['service_password']}    (for /v1/associate)",
            f"  orders creds     {fmt_pair(info.orders)}    (orders API, POST {info.base_url}/api/v2/retail-point/<id>/order)",
            f"  tills            {len(info.tills)} × {self.options.profile.name}, clock {info.clock}",
            f"  state dir        {info.state_dir}",
            "",
            "post a sale:",
            "  " + curl_example(info.store_api, point["login"], point["password"]),
            "then: kkt-emulator doc status <id>   (or GET /api/fn/v1/doc/<id>/status)",
        ]
        return "\n".join(lines)


def fmt_pair(pair: tuple[str, str] | None) -> str:
    """``login / password`` of a pair for the banner, ``—`` when there is none."""
    return "—" if pair is None else f"{pair[0]} / {pair[1]}"


def sale_document(
    total: float = 45.5,
    *,
    email: str = "buyer@example.com",
    tax_mode: str | None = "COMMON",
    doc_type: str = "SALE",
    **extra: Any,
) -> dict[str, Any]:
    """A valid store document with a fresh id: one position paid by card."""
    doc = copy.deepcopy(EXAMPLE_SALE)
    doc.update(id=str(uuid.uuid4()), email=email, docType=doc_type)
    doc["inventPositions"][0]["price"] = total
    doc["moneyPositions"][0]["sum"] = total
    if tax_mode is None:
        doc.pop("taxMode")
    else:
        doc["taxMode"] = tax_mode
    doc.update(extra)
    return doc
