"""``kkt-emulator bench chaos``: cloud, OFD and tills as processes, killed under load, then checked.

The run (issue 11): start the cloud, the OFD stand-in and N tills from the installed CLI, each on
its own state in the work directory; set up a retail point through the cabinet API; post sales
through the store API at a fixed rate; SIGKILL the processes at seeded random moments and at two
precise points seen by the proxies (after the cloud committed a document, before its 200 reached
the shop; after the cloud committed a lease, before the till could journal it); restart each on
the same state and ports. When the load stops, everything is brought up and drained, then the
store API, the cabinet and the drives' archives are read and compared (:mod:`.checks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from kkt_emulator.app.chaos.checks import DriveReceipt, StoredDocument, check
from kkt_emulator.app.chaos.load import Load
from kkt_emulator.app.chaos.model import (
    CLOUD_AFTER_COMMIT,
    KILL_KINDS,
    TILL_AFTER_LEASE,
    ChaosOptions,
    ChaosResult,
)
from kkt_emulator.app.chaos.procs import ChaosStartError, Kind, Managed, cli_command, free_port
from kkt_emulator.app.chaos.proxy import Answer, KillProxy
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.logging import get_logger
from kkt_emulator.profiles import load_profile

__all__ = ["run_chaos"]

log = get_logger(component="chaos")

_STORE_POSTS = frozenset({"/api/fn/v1/doc", "/api/fn/v2/doc"})
_LEASE = "/api/device/v1/lease"
_BOUND = re.compile(r"with drive \S+ bound as")
_PAGE = 10000
RESTART_WAIT = 90.0
ARM_SECONDS = 20.0


def _quotas(options: ChaosOptions) -> dict[str, int]:
    """Kill points each enabled kind may have (0: no limit): ``kills`` shared out evenly."""
    kinds = [t.value for t in options.targets]
    if options.commit_kill_chance > 0:
        kinds.append(CLOUD_AFTER_COMMIT)
    if options.lease_kill_chance > 0:
        kinds.append(TILL_AFTER_LEASE)
    share = -(-options.kills // len(kinds)) if kinds and options.kills else 0
    return dict.fromkeys(kinds, share)


class _Run:
    """One run's processes, proxies, counters and random streams."""

    def __init__(self, options: ChaosOptions, work: Path, progress: Callable[[str], None]) -> None:
        self.options = options
        self.work = work
        self.progress = progress
        self.cloud_port = free_port()
        self.ofd_port = free_port()
        self.cloud_url = f"http://127.0.0.1:{self.cloud_port}"
        self.http = httpx.AsyncClient(timeout=10.0)
        self.kill_points: Counter[str] = Counter(dict.fromkeys(KILL_KINDS, 0))
        self.chaos = False
        self.quotas = _quotas(options)
        self.rng_commit = random.Random(f"{options.seed}:commit")  # noqa: S311 - not crypto
        self.rng_lease = random.Random(f"{options.seed}:lease")  # noqa: S311 - not crypto
        self.cloud = Managed(
            "cloud",
            Kind.CLOUD,
            cli_command(
                "cloud",
                "serve",
                "--port",
                str(self.cloud_port),
                "--db",
                str(work / "cloud.sqlite3"),
                "--json",
            ),
            work,
            self._cloud_ready,
        )
        self.ofd = Managed(
            "ofd",
            Kind.OFD,
            cli_command(
                "ofd",
                "serve",
                "--port",
                str(self.ofd_port),
                "--db",
                str(work / "ofd.sqlite3"),
                "--json",
            ),
            work,
            self._ofd_ready,
        )
        self.tills: list[Managed] = []
        self.proxies: list[KillProxy] = []
        self.store_proxy = KillProxy(self.cloud_port, self._on_store_answer, "store")
        self.point: dict[str, str] = {}
        self.notes: list[str] = []

    # -- readiness ------------------------------------------------------------------------------

    async def _cloud_ready(self, _: Managed) -> bool:
        try:
            answer = await self.http.get(f"{self.cloud_url}/api/cabinet/v1/clock", timeout=2.0)
        except httpx.TransportError:  # not listening yet
            return False
        return answer.status_code == httpx.codes.OK

    async def _ofd_ready(self, _: Managed) -> bool:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", self.ofd_port)
        except OSError:  # not listening yet
            return False
        writer.close()
        with contextlib.suppress(OSError):  # closing a probe connection
            await writer.wait_closed()
        return True

    @staticmethod
    async def _till_ready(till: Managed) -> bool:
        return _BOUND.search(till.log_text()) is not None

    # -- kill points ----------------------------------------------------------------------------

    def _budget_left(self, kind: str) -> bool:
        quota = self.quotas.get(kind)
        return self.chaos and quota is not None and (quota == 0 or self.kill_points[kind] < quota)

    def _quotas_met(self) -> bool:
        return all(q and self.kill_points[k] >= q for k, q in self.quotas.items())

    def _on_store_answer(self, answer: Answer) -> bool:
        if (
            answer.method == "POST"
            and answer.path in _STORE_POSTS
            and answer.status == httpx.codes.OK
            and self._budget_left(CLOUD_AFTER_COMMIT)
            and self.cloud.armed
            and self.cloud.ready.is_set()
            and self.rng_commit.random() < self.options.commit_kill_chance
            and self.cloud.kill()
        ):
            self.kill_points[CLOUD_AFTER_COMMIT] += 1
            return True
        return False

    def _lease_hook(self, till: Managed) -> Callable[[Answer], bool]:
        def on_answer(answer: Answer) -> bool:
            if (
                answer.method == "POST"
                and answer.path == _LEASE
                and answer.status == httpx.codes.OK
                and self._budget_left(TILL_AFTER_LEASE)
                and till.armed
                and till.ready.is_set()
                and self.rng_lease.random() < self.options.lease_kill_chance
                and till.kill()
            ):
                self.kill_points[TILL_AFTER_LEASE] += 1
                return True
            return False

        return on_answer

    def _kinds_of(self, target: Managed) -> list[str]:
        """The kill-point kinds that end a life of ``target``."""
        kinds = [target.kind.value]
        if target.kind is Kind.CLOUD:
            kinds.append(CLOUD_AFTER_COMMIT)
        elif target.kind is Kind.TILL:
            kinds.append(TILL_AFTER_LEASE)
        return [k for k in kinds if k in self.quotas]

    async def _monkey(self, target: Managed) -> None:
        """Give each life of ``target`` one kill point: the kind it had fewest of (seeded ties).

        A random kill comes ``kill_delay`` seconds after the process is ready; a proxy kill
        point arms the process, and its proxy kills it at a matching answer (or, after
        :data:`ARM_SECONDS` without one, the life gets a new choice).
        """
        rng = random.Random(f"{self.options.seed}:{target.name}")  # noqa: S311 - not crypto
        low, high = self.options.kill_delay
        while self.chaos:
            await target.ready.wait()
            kinds = [k for k in self._kinds_of(target) if self._budget_left(k)]
            if not kinds:
                await asyncio.sleep(0.5)
                continue
            fewest = min(self.kill_points[k] for k in kinds)
            kind = rng.choice([k for k in kinds if self.kill_points[k] == fewest])
            if kind == target.kind.value:
                await asyncio.sleep(rng.uniform(low, high))
                if self._budget_left(kind) and target.ready.is_set() and target.kill():
                    self.kill_points[kind] += 1
                continue
            target.armed = True
            try:
                with contextlib.suppress(TimeoutError):  # no matching answer: choose again
                    await asyncio.wait_for(target.down.wait(), ARM_SECONDS)
            finally:
                target.armed = False

    # -- set-up ---------------------------------------------------------------------------------

    async def _cabinet(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = await self.http.request(method, f"{self.cloud_url}{path}", **kwargs)
        if answer.status_code != httpx.codes.OK:
            raise ChaosStartError(f"{method} {path}: HTTP {answer.status_code} {answer.text}")
        result: dict[str, Any] = answer.json()
        return result

    async def _set_up_point(self) -> None:
        registration = load_profile(self.options.profile).registration
        body = {
            "name": "Chaos shop",
            "address": registration.addresses[0].address,
            "inn": registration.inn,
            "internetDocsEnabled": True,
            "duplicatePolicy": "replay",
        }
        point = await self._cabinet("POST", "/api/cabinet/v1/retail-points", json=body)
        creds = await self._cabinet(
            "POST", f"/api/cabinet/v1/retail-points/{point['id']}/credentials"
        )
        assoc = await self._cabinet(
            "POST",
            f"/api/fn/v1/associate/{point['id']}",
            auth=(creds["login"], creds["password"]),
        )
        self.point = {
            "id": point["id"],
            "service_login": creds["login"],
            "service_password": creds["password"],
            "login": assoc["userName"],
            "password": assoc["password"],
        }

    async def start(self) -> None:
        """Cloud, OFD, the retail point, the proxies, the tills."""
        self.progress(f"chaos: work directory {self.work}")
        await asyncio.gather(self.cloud.start(), self.ofd.start())
        await self._set_up_point()
        await self.store_proxy.start()
        for n in range(1, self.options.tills + 1):
            proxy = KillProxy(self.cloud_port, lambda _: False, f"till-{n}")
            await proxy.start()
            self.proxies.append(proxy)
            till = Managed(
                f"till-{n}",
                Kind.TILL,
                cli_command(
                    "till",
                    "run",
                    "--server",
                    f"http://127.0.0.1:{proxy.port}",
                    "--retail-point",
                    self.point["id"],
                    "--login",
                    self.point["service_login"],
                    "--password-file",
                    str(self._password_file()),
                    "--profile",
                    self.options.profile,
                    "--state-dir",
                    str(self.work / f"till-{n}"),
                    "--ofd",
                    f"127.0.0.1:{self.ofd_port}",
                    "--poll-interval",
                    "0",
                    "--long-poll",
                    "2",
                ),
                self.work,
                self._till_ready,
            )
            proxy.on_answer = self._lease_hook(till)
            self.tills.append(till)
        await asyncio.gather(*(till.start() for till in self.tills))
        self.progress(f"chaos: {self.options.tills} till(s), cloud and OFD up; load starts")

    def _password_file(self) -> Path:
        """The service password in a file of the work directory, so no ``ps`` shows it."""
        path = self.work / "service-password"
        if not path.exists():
            path.write_text(self.point["service_password"] + "\n", encoding="utf-8")
            path.chmod(0o600)
        return path

    @property
    def processes(self) -> list[Managed]:
        """Every managed process."""
        return [self.cloud, self.ofd, *self.tills]

    # -- the run --------------------------------------------------------------------------------

    async def load_and_kill(self) -> Load:
        """Load for ``duration`` seconds with the kills on; returns the finished load."""
        load = Load(
            f"http://127.0.0.1:{self.store_proxy.port}/api/fn",
            (self.point["login"], self.point["password"]),
            self.options.rate,
            f"chaos-{self.options.seed}",
            give_up_after=max(60.0, self.options.drain_timeout),
        )
        self.chaos = True
        monkeys = [
            asyncio.create_task(self._monkey(p)) for p in self.processes if self._kinds_of(p)
        ]
        loading = asyncio.create_task(load.run())
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            shown = began
            while (elapsed := loop.time() - began) < self.options.duration:
                if self.quotas and self._quotas_met():
                    break
                await asyncio.sleep(min(0.5, self.options.duration - elapsed))
                if loop.time() - shown < 5.0:
                    continue
                shown = loop.time()
                self.progress(
                    f"chaos: {loop.time() - began:.0f}s posted {len(load.tally.posted)}"
                    f" answered {len(load.tally.answered_200)}"
                    f" kills {dict(self.kill_points)}"
                )
        finally:
            self.chaos = False
            load.stop()
            for monkey in monkeys:
                monkey.cancel()
            for monkey in monkeys:
                with contextlib.suppress(asyncio.CancelledError):  # the cancel we just asked for
                    await monkey
        self.progress("chaos: load stopped; waiting for answers and restarts")
        await loading
        for process in self.processes:
            try:
                await asyncio.wait_for(process.ready.wait(), RESTART_WAIT)
            except TimeoutError:
                self.notes.append(
                    f"{process.name} was not ready {RESTART_WAIT:.0f} s after the load"
                )
                log.warning("chaos_not_ready_after_load", process=process.name)
        return load

    async def documents(self) -> list[dict[str, Any]]:
        """Every document the cabinet lists (all pages)."""
        found: list[dict[str, Any]] = []
        while True:
            page: list[dict[str, Any]] = (
                (
                    await self.http.get(
                        f"{self.cloud_url}/api/cabinet/v1/documents",
                        params={"limit": _PAGE, "offset": len(found)},
                        timeout=60.0,
                    )
                )
                .raise_for_status()
                .json()
            )
            found.extend(page)
            if len(page) < _PAGE:
                return found

    async def drain(self, ids: set[str]) -> bool:
        """Wait until the answered documents settle (no change for ``settle`` seconds), bounded.

        Returns whether they settled before ``drain_timeout``; when not, documents still on
        their way (and acknowledgements still in a till's outbox) count as stuck or missing.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.drain_timeout
        last: tuple[tuple[str, int], ...] = ()
        since = loop.time()
        while loop.time() < deadline:
            rows = [d for d in await self.documents() if d["id"] in ids]
            snapshot = tuple(
                sorted(
                    Counter(
                        f"{d['status']}/{(d.get('ofd') or {}).get('state')}" for d in rows
                    ).items()
                )
            )
            busy = any(d["status"] not in ("COMPLETED", "FAILED") for d in rows)
            if snapshot != last:
                last, since = snapshot, loop.time()
                self.progress(f"chaos: draining {dict(snapshot)}")
            quiet = loop.time() - since
            if quiet >= (self.options.settle if not busy else self.options.settle * 3):
                return True
            await asyncio.sleep(0.5)
        return False

    async def store_statuses(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        """The store API's status of each id (404 → absent)."""
        limit = asyncio.Semaphore(8)
        auth = (self.point["login"], self.point["password"])
        statuses: dict[str, dict[str, Any]] = {}

        async def one(doc_id: str) -> None:
            async with limit:
                answer = await self.http.get(
                    f"{self.cloud_url}/api/fn/v1/doc/{doc_id}/status", auth=auth
                )
            if answer.status_code == httpx.codes.OK:
                statuses[doc_id] = answer.json()

        await asyncio.gather(*(one(i) for i in sorted(ids)))
        return statuses

    def archives(self) -> dict[str, list[DriveReceipt]]:
        """Each till's drive archive, read at rest (the tills are stopped), by drive serial."""
        drives: dict[str, list[DriveReceipt]] = {}
        for till in self.tills:
            path = self.work / till.name / "drive.sqlite3"
            if not path.is_file():
                continue
            serial = SqliteStore.read_meta(path).get("serial", "")
            store = SqliteStore(path, serial=serial or None)
            try:
                drives[serial] = [
                    DriveReceipt(
                        serial,
                        doc.fd,
                        DocCode(doc.doc_code).name
                        if doc.doc_code in DocCode._value2member_map_
                        else str(doc.doc_code),
                        store.get_ack(doc.fd) is not None,
                    )
                    for doc in store.documents()
                ]
            finally:
                store.close()
        return drives

    async def close(self) -> None:
        """Stop every process and proxy."""
        for process in reversed(self.processes):
            await process.stop()
        await self.store_proxy.close()
        for proxy in self.proxies:
            await proxy.close()
        await self.http.aclose()


async def run_chaos(
    options: ChaosOptions, progress: Callable[[str], None] = lambda _: None
) -> ChaosResult:
    """Run the chaos harness once and check the outcome from outside.

    Args:
        options: what to run.
        progress: receives one line now and then (``bench chaos`` writes them to stderr).

    Raises:
        ConfigError: contradictory options.
        ChaosStartError: a process could not be started.
    """
    options.validate()
    temporary = None
    if options.work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="kkt-chaos-")
        work = Path(temporary.name)
    else:
        work = options.work_dir
        work.mkdir(parents=True, exist_ok=True)
    run = _Run(options, work, progress)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await run.start()
        load = await run.load_and_kill()
        drain_began = loop.time()
        answered = set(load.tally.answered_200)
        drained = await run.drain(answered)
        if not drained:
            run.notes.append(
                f"not settled within --drain-timeout {options.drain_timeout:.0f} s: documents"
                " still moving count as stuck, acknowledgements still queued as missing"
            )
        drain_seconds = loop.time() - drain_began
        for till in run.tills:
            await till.stop()  # the cloud's view and the archives are read at rest
        statuses = await run.store_statuses(answered)
        listed = {d["id"]: d for d in await run.documents()}
        stored = {
            i: StoredDocument.from_api(statuses[i], listed[i])
            for i in answered
            if i in statuses and i in listed
        }
        drives = run.archives()
        findings = check(answered, stored, drives)
        return ChaosResult(
            options=options,
            kill_points=dict(run.kill_points),
            posted=len(load.tally.posted),
            answered_200=len(answered),
            answered_other=load.tally.other_by_status(),
            never_answered=sorted(load.tally.never_answered),
            retries=load.tally.retries,
            findings=findings,
            unexpected_exits={p.name: p.unexpected_exits for p in run.processes},
            seconds=loop.time() - began,
            drain_seconds=drain_seconds,
            drained=drained,
            work_dir=None if temporary is not None else str(work),
            documents_in_cloud=len(listed),
            proxy_answers={p.name: dict(p.answers) for p in (run.store_proxy, *run.proxies)},
            startup_seconds={p.name: p.startup_seconds() for p in run.processes},
            notes=run.notes,
        )
    finally:
        await run.close()
        if temporary is not None:
            temporary.cleanup()
