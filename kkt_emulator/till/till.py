"""The virtual till: a drive on a link, a loop that polls the cloud, and durable bookkeeping.

One :class:`Till` owns its state directory (one SQLite file: the drive's archive plus the till's
journal, outbox and settings), serves its own drive on an in-memory pipe or a pty, and talks to the
drive only through :class:`~kkt_emulator.fnio.client.FnClient`. Its loops:

* **poll** — heartbeat, lease, fiscalise, report; paced by the poll interval (real time), paused by
  power saving or being offline;
* **outbox** — results and OFD acknowledgements to the cloud, removed only when acknowledged;
* **ofd** — signed documents from the drive to the OFD.

Crash safety (``till-protocol.md`` §2): the journal entry for a document is committed before its
first drive command; the result is recorded in one transaction after the drive answers; on start
:meth:`Till.reconcile` reports a document the drive's archive already holds and re-processes one it
does not. A shop document is never fiscalised twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx

from kkt_emulator.clock import Clock
from kkt_emulator.errors import CloudError, ConfigError, DriveError, EmulatorError, TransportError
from kkt_emulator.fn.codes import Command, DocCode, Phase, ResultCode, WarningFlag
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.endpoint import DriveEndpoint
from kkt_emulator.fn.signing import fpd_from_1077, receipt_qr
from kkt_emulator.fn.tlv import decode_uint, decode_unixtime, decode_vln, parse_tlvs, tlv_string
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.fnio.client import FnClient
from kkt_emulator.fnio.server import DriveServer
from kkt_emulator.logging import get_logger
from kkt_emulator.profiles import Address, FirmwareProfile
from kkt_emulator.till.cloud_link import CloudLink
from kkt_emulator.till.failures import Failure, drive_failure, link_failure, till_failure
from kkt_emulator.till.faults import FAULTS, ActiveFault, FaultyLink, make_fault
from kkt_emulator.till.receipts import (
    CHECK_TYPES,
    TillCheckError,
    build_receipt,
    correction_receipt_tlv,
    counter_receipt_tlv,
)
from kkt_emulator.till.registration import registration_plan
from kkt_emulator.till.store import JournalEntry, TillStore
from kkt_emulator.transport.base import ByteManipulator, BytePipe
from kkt_emulator.transport.memory import memory_pipe_pair

__all__ = ["CRASH_POINTS", "SimulatedCrash", "Till", "TillConfig", "TillSettings"]

CRASH_POINTS = ("before_commit", "after_commit", "after_outbox")
CRASH_ENV = "KKT_TILL_CRASH_AT"
SHIFT_LENGTH = timedelta(hours=24)
OFD_IDLE_CHECK = 5.0  # seconds between OFD queue checks when nothing woke the sender


class SimulatedCrash(EmulatorError):  # noqa: N818 - it is an event, not an error of the caller
    """Raised at a crash point in-process (``till.crash`` fault); the till drops its state."""


@dataclass(slots=True)
class TillSettings:
    """Settings a till keeps with its drive (``kkt-emulator set …``)."""

    power_saving: bool = False
    online: bool = True
    poll_interval: float = 5.0
    long_poll: float = 0.0
    shift_mode: str = "shared"
    max_docs: int = 10

    def update(self, **values: Any) -> None:
        """Change settings, validating each one.

        Raises:
            ConfigError: an unknown setting or a bad value.
        """
        for key, raw in values.items():
            value = raw
            if key in ("power_saving", "online"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{key} must be true or false")
            elif key in ("poll_interval", "long_poll"):
                if (
                    not isinstance(value, int | float)
                    or isinstance(value, bool)
                    or value < 0
                    or value > 3600
                ):
                    raise ConfigError(f"{key} must be seconds between 0 and 3600")
                if key == "long_poll" and value > 30:
                    raise ConfigError("long_poll must be at most 30 seconds")
                value = float(value)
            elif key == "shift_mode":
                if value not in ("shared", "separate"):
                    raise ConfigError("shift_mode must be shared or separate")
            elif key == "max_docs":
                if not isinstance(value, int) or not 1 <= value <= 100:
                    raise ConfigError("max_docs must be 1..100")
            else:
                raise ConfigError(f"unknown setting {key!r}")
            setattr(self, key, value)


@dataclass(slots=True)
class TillConfig:
    """How to run one till."""

    profile: FirmwareProfile
    state_dir: Path
    server: str
    login: str
    password: str
    retail_point_id: str | None = None
    ofd_address: str | None = None
    serial_link: Path | None = None
    timing: str = "fast"
    utc_offset: timedelta = timedelta(hours=3)
    settings: dict[str, Any] = field(default_factory=dict)
    drive_timeout: float = 5.0


def _warning_names(flags: int) -> list[str]:
    return [flag.name or "" for flag in WarningFlag if flags & flag]


_SSL_CONTEXT: list[ssl.SSLContext] = []


def _cloud_transport() -> httpx.AsyncHTTPTransport:
    """An HTTP transport for the cloud link that shares one TLS context with every other till.

    Building a context per till parses the CA bundle each time (30 ms of CPU and ~0.8 MiB each),
    which made a 200-till start-up crawl.
    """
    if not _SSL_CONTEXT:
        _SSL_CONTEXT.append(ssl.create_default_context())
    return httpx.AsyncHTTPTransport(verify=_SSL_CONTEXT[0])


def _digits(n: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


class Till:
    """One virtual till.

    Use as an async context manager; :meth:`run` then serves until :meth:`stop` or cancellation.
    """

    def __init__(self, config: TillConfig, clock: Clock) -> None:
        self.config = config
        self.profile = config.profile
        self.clock = clock
        self.state_dir = config.state_dir
        self.db_path = self.state_dir / "till.sqlite3"
        self.drive_path = self.state_dir / "drive.sqlite3"
        self.store: TillStore | None = None
        self.drive: FiscalDrive | None = None
        self.endpoint: DriveEndpoint | None = None
        self.client: FnClient | None = None
        self.link = CloudLink(config.server, transport=_cloud_transport())
        self.link.before_call = self._cloud_latency
        self.settings = TillSettings()
        self.point_settings: dict[str, Any] = {}
        self.kkt_serial = ""
        self.fn_serial = ""
        self.rnm = ""
        self.device_id = ""
        self.faults: dict[str, ActiveFault] = {}
        self.ofd_server: Any = None
        self._background: set[asyncio.Task[Any]] = set()
        self._withheld: set[str] = set()
        self._ofd_wake = asyncio.Event()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.log = get_logger()
        self._tasks: list[asyncio.Task[None]] = []
        self._drive_tasks: list[asyncio.Task[None]] = []
        self._pipes: list[BytePipe] = []
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.last_error: str | None = None
        self.counters = {"fiscalized": 0, "failed": 0, "polls": 0, "backlogPaced": 0}
        self._backlog_warned = False
        self.ofd_sender: Any = None
        self._flush_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open state, bring up the drive and its link, register, bind, reconcile, start loops."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        store = TillStore(self.db_path)
        self.store = store
        self.kkt_serial = store.get("kkt_serial") or ""
        self.fn_serial = store.get("fn_serial") or ""
        if not self.kkt_serial:
            prefix = self.profile.kkt_serial_prefix
            self.kkt_serial = prefix + _digits(12 - len(prefix))
            drive_prefix = self.profile.drive.serial_prefix
            self.fn_serial = drive_prefix + _digits(16 - len(drive_prefix))
            store.put(
                kkt_serial=self.kkt_serial, fn_serial=self.fn_serial, profile=self.profile.name
            )
        elif store.get("profile") not in (None, self.profile.name):
            raise ConfigError(
                f"{self.state_dir} belongs to a till of profile {store.get('profile')!r}, not {self.profile.name!r}"
            )
        saved = store.get("settings") or {}
        self.settings.update(**{**saved, **self.config.settings})
        store.put(settings=asdict(self.settings))
        self.log = get_logger(fn_serial=self.fn_serial, kkt_serial=self.kkt_serial)
        await self._start_drive()
        await self._ensure_registered()
        await self._bind()
        await self.reconcile()
        self._tasks = [
            asyncio.create_task(self._poll_loop(), name=f"till-poll-{self.kkt_serial}"),
            asyncio.create_task(self._outbox_loop(), name=f"till-outbox-{self.kkt_serial}"),
        ]
        if self.config.ofd_address:
            self._tasks.append(
                asyncio.create_task(self._ofd_loop(), name=f"till-ofd-{self.kkt_serial}")
            )
        self.emit("till.started", {"kktSerial": self.kkt_serial, "fnSerial": self.fn_serial})

    async def close(self) -> None:
        """Stop loops, close the drive link and the state files."""
        self._stop.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self._stop_drive()
        await self.link.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    async def _start_drive(self) -> None:
        archive = SqliteStore(self.drive_path, serial=self.fn_serial, profile=self.profile.name)
        self.drive = FiscalDrive(
            DriveConfig.from_profile(
                self.profile, self.fn_serial, utc_offset=self.config.utc_offset
            ),
            archive,
        )
        self.drive.forced_result = self._drive_fault
        self._apply_warning_faults()
        self.endpoint = DriveEndpoint(self.drive)
        delay = self.profile.command_delay if self.config.timing == "realistic" else None
        server = DriveServer(self.endpoint, self.clock, delay)
        if self.config.serial_link is not None:
            from kkt_emulator.transport.pty import PtyServer, open_serial  # noqa: PLC0415 - only for --serial-link

            pty = PtyServer(link=self.config.serial_link, manipulator=self._faulty_link())
            self._drive_tasks.append(asyncio.create_task(server.serve(pty)))
            till_end: BytePipe = await open_serial(str(self.config.serial_link))
            self._pipes += [pty, till_end]
        else:
            till_end, drive_end = memory_pipe_pair(
                self.clock,
                manipulators=(ByteManipulator(clock=self.clock), self._faulty_link()),
                names=("till", "drive"),
            )
            self._drive_tasks.append(asyncio.create_task(server.serve(drive_end)))
            self._pipes += [till_end, drive_end]
        # A noisy UART is normal on cheap tills: ask again with ENQ up to 10 times per answer.
        self.client = FnClient(
            till_end,
            timeout=self.config.drive_timeout,
            retries=10,
            max_data=self.profile.drive.max_frame_data,
        )

    async def _stop_drive(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(Exception):
                await pipe.close()
        for task in self._drive_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pipes = []
        self._drive_tasks = []
        if self.drive is not None:
            store = self.drive.store
            if isinstance(store, SqliteStore):
                store.close()

    @property
    def fn(self) -> FnClient:
        """The drive client (only while started)."""
        if self.client is None:
            raise ConfigError("the till is not started")
        return self.client

    @property
    def state(self) -> TillStore:
        """The till's store (only while started)."""
        if self.store is None:
            raise ConfigError("the till is not started")
        return self.store

    def local_now(self) -> datetime:
        """The drive's wall-clock time for DATE_TIME fields (minute resolution on the wire)."""
        return (self.clock.now().astimezone(UTC) + self.config.utc_offset).replace(
            tzinfo=None, microsecond=0
        )

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Publish an event to every listener (the MQTT agent subscribes)."""
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):
                listener(event, data)

    # ------------------------------------------------------------------ registration and binding

    async def _ensure_registered(self) -> None:
        status = await self.fn.status()
        self.rnm = self.state.get("rnm") or ""
        if status.phase != Phase.READY:
            return
        plan = registration_plan(
            self.profile, self.kkt_serial, sequence=int(self.kkt_serial[-6:]) or 1
        )
        async with self.fn.exclusive:
            if status.current_document:
                await self.fn.cancel_document()
            await self.fn.call(plan.start, **plan.start_fields)
            await self.fn.send_tlv(plan.tlv)
            answer = await self.fn.call(plan.finish, when=self.local_now(), **plan.finish_fields)
        self.rnm = plan.rnm
        self.state.put(rnm=plan.rnm)
        self.log.info("drive_registered", fd=answer.fd, rnm=plan.rnm)

    async def _bind(self) -> None:
        token = self.state.get("token")
        if token and self.state.get("server") == self.config.server:
            self.link.token = token
            self.device_id = self.state.get("device_id") or ""
            return
        answer = await self.link.bind(
            self.config.login,
            self.config.password,
            till_serial=self.kkt_serial,
            fn_serial=self.fn_serial,
            model=self.profile.model,
            profile=self.profile.name,
            retail_point_id=self.config.retail_point_id,
        )
        self.device_id = answer["deviceId"]
        self.state.put(token=answer["token"], device_id=self.device_id, server=self.config.server)
        self.log = self.log.bind(device_id=self.device_id)
        self.log.info("till_bound", retail_point_id=answer.get("retailPointId"))

    # ------------------------------------------------------------------ crash points

    def crash_point(self, name: str) -> None:
        """Drop the process state here if a crash is armed for ``name``.

        ``KKT_TILL_CRASH_AT=name`` kills the process with SIGKILL (real crash tests); the
        ``till.crash`` fault raises :class:`SimulatedCrash` in-process.
        """
        if os.environ.get(CRASH_ENV) == name:
            os.kill(os.getpid(), signal.SIGKILL)
        fault = self.faults.get("till.crash")
        if fault is not None and fault.params.get("point") == name and fault.roll():
            self._struck("till.crash")
            raise SimulatedCrash(f"crash at {name}")

    # ------------------------------------------------------------------ reconciliation

    async def reconcile(self) -> list[str]:
        """Settle documents the journal says were in flight; returns the doc ids handled.

        The entry that had reached the drive (it has an expected fiscal document number; the
        drive lock allows one at a time) is settled first, against the drive's archive, before any
        other document may take the next number. Documents leased but never started follow.
        """
        handled = []
        entries = self.state.journal_entries()
        for entry in [e for e in entries if e.expected_fd]:
            if await self._settle_in_flight(entry):
                handled.append(entry.doc_id)
            else:
                self.state.journal(
                    entry.doc_id, entry.lease_id, 0, entry.document, self.clock.now().isoformat()
                )
                self.log.info("reconciled_retry", doc_id=entry.doc_id)
        for entry in self.state.journal_entries():
            # Leased (or rolled back above) but not on the drive: process it now.
            await self.fiscalise(
                {"docId": entry.doc_id, "leaseId": entry.lease_id, "document": entry.document}
            )
            handled.append(entry.doc_id)
        return handled

    async def _settle_in_flight(self, entry: JournalEntry) -> bool:
        """Settle a document that may have reached the drive, against the drive's archive.

        If the archive holds its receipt under the expected fiscal number, record it fiscalised
        and return True; otherwise cancel any open drive document and return False (it was never
        signed). Raises TransportError or DriveError when the drive cannot tell yet.
        """
        status = await self.fn.status()
        if status.last_fd >= entry.expected_fd:
            archived = await self._read_receipt(entry.expected_fd)
            if archived is not None:
                info = self._fiscal_info_from_archive(archived, entry.document)
                self.state.record_result(
                    entry.doc_id,
                    info["fnDocNumber"],
                    self._fiscalized(entry.doc_id, entry.lease_id, info),
                )
                self.log.info("reconciled_fiscalized", doc_id=entry.doc_id, fd=info["fnDocNumber"])
                self.counters["fiscalized"] += 1
                return True
        if status.current_document:
            await self.fn.cancel_document()
        return False

    async def _read_receipt(self, fd: int) -> dict[int, bytes] | None:
        try:
            head = await self.fn.call(Command.READ_DOCUMENT_TLV, fd=fd)
        except DriveError:
            return None
        if head.doc_type != DocCode.RECEIPT:
            return None
        values: dict[int, bytes] = {}
        while True:
            answer = await self.fn.request(Command.READ_DOCUMENT_TLV_NEXT)
            if answer.result != ResultCode.OK:
                break
            for tlv in parse_tlvs(answer.data):
                values.setdefault(tlv.tag, tlv.value)
        return values

    def _fiscal_info_from_archive(
        self, values: dict[int, bytes], document: dict[str, Any]
    ) -> dict[str, Any]:
        fd = decode_uint(values[1040], 4)
        when = decode_unixtime(values[1012]).replace(tzinfo=None)
        operation = values[1054][0]
        return self._fiscal_info(
            shift=decode_uint(values[1038], 4),
            receipt=decode_uint(values[1042], 4),
            fd=fd,
            fpd=fpd_from_1077(values[1077]),
            local=when,
            total=decode_vln(values[1020]),
            check_type=CHECK_TYPES.get(operation, str(document.get("docType"))),
            operation=operation,
        )

    # ------------------------------------------------------------------ fiscalisation

    def _fiscal_info(
        self,
        *,
        shift: int,
        receipt: int,
        fd: int,
        fpd: int,
        local: datetime,
        total: int,
        check_type: str,
        operation: int,
    ) -> dict[str, Any]:
        utc = (local - self.config.utc_offset).replace(tzinfo=UTC)
        return {
            "shiftNumber": shift,
            "checkNumber": receipt,
            "kktNumber": self.kkt_serial,
            "fnNumber": self.fn_serial,
            "fnDocNumber": fd,
            "fnDocMark": fpd,
            "date": utc.isoformat(),
            "sum": total / 100,
            "checkType": check_type,
            "qr": receipt_qr(
                local, total, self.fn_serial, fd, fpd, operation, seconds=True, fd_digits=10
            ),
            "ecrRegistrationNumber": self.rnm,
        }

    def _fiscalized(
        self, doc_id: str, lease_id: str | None, info: dict[str, Any]
    ) -> dict[str, Any]:
        return {"docId": doc_id, "leaseId": lease_id, "outcome": "fiscalized", "fiscalInfo": info}

    def _failed(self, doc_id: str, lease_id: str | None, failure: Failure) -> dict[str, Any]:
        result: dict[str, Any] = {
            "docId": doc_id,
            "leaseId": lease_id,
            "outcome": "failed",
            "failureInfo": failure.to_json(),
            "detail": failure.detail,
        }
        if failure.result_code is not None:
            result["resultCode"] = failure.result_code
        return result

    async def _ensure_shift(self, local: datetime) -> None:
        """Open a shift if none is open; close and reopen one older than 24 hours (D50)."""
        shift = await self.fn.call(Command.SHIFT_PARAMS)
        opened = self.state.get("shift_opened_at")
        if shift.shift_open and opened is not None:
            if local >= datetime.fromisoformat(opened) + SHIFT_LENGTH:
                await self._close_shift(local)
                shift.shift_open = 0
        elif shift.shift_open and opened is None:
            self.state.put(shift_opened_at=local.isoformat())
        if not shift.shift_open:
            answer = await self.fn.open_shift(
                local, tlv_string(1021, self.profile.registration.cashier)
            )
            self.state.put(shift_opened_at=local.isoformat())
            self.emit(
                "shift.opened", {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd}
            )

    async def _close_shift(self, local: datetime) -> Any:
        answer = await self.fn.close_shift(
            local, tlv_string(1021, self.profile.registration.cashier)
        )
        self.state.put(shift_opened_at=None)
        self.emit("shift.closed", {"shiftNumber": answer.shift_number, "fnDocNumber": answer.fd})
        return answer

    async def fiscalise(self, item: dict[str, Any]) -> dict[str, Any]:
        """Fiscalise one leased document and record its outcome; returns the result report."""
        doc_id = str(item["docId"])
        lease_id = item.get("leaseId")
        document: dict[str, Any] = item["document"]
        log = self.log.bind(doc_id=doc_id)
        done = self.state.processed(doc_id)
        if done is not None and done["outcome"] == "fiscalized":
            # Never twice: report what the drive already signed for this document.
            done = {**done, "leaseId": lease_id}
            self.state.record_result(doc_id, done["fiscalInfo"]["fnDocNumber"], done)
            log.warning("document_already_fiscalized", fd=done["fiscalInfo"]["fnDocNumber"])
            return done
        try:
            plan = build_receipt(document, self.profile)
        except TillCheckError as exc:
            return self._record_failure(doc_id, lease_id, till_failure(exc.text, exc.detail), log)
        async with self.fn.exclusive:
            local = self.local_now()
            try:
                if len(self.profile.registration.addresses) > 1:
                    plan = build_receipt(document, self.profile, self._address())
                await self._ensure_shift(local)
                status = await self.fn.status()
                if status.current_document:
                    await self.fn.cancel_document()
                expected = status.last_fd + 1
                self.state.journal(
                    doc_id, lease_id, expected, document, self.clock.now().isoformat()
                )
                self.crash_point("before_commit")
                answer = await self._run_receipt(local, plan)
            except DriveError as exc:
                self.state.drop_journal(doc_id)
                return self._record_failure(
                    doc_id,
                    lease_id,
                    drive_failure(exc, self.profile, self._explain(exc, plan)),
                    log,
                )
            except TransportError as exc:
                entry = next(
                    (
                        e
                        for e in self.state.journal_entries()
                        if e.doc_id == doc_id and e.expected_fd
                    ),
                    None,
                )
                if entry is not None:
                    # 16h may have reached the drive before the link broke: only its archive can
                    # tell. If it cannot tell yet, keep the journal entry: reconcile settles it
                    # when the link is back, so a signed receipt is never reported as failed.
                    log.warning("drive_link_lost_mid_receipt", error=str(exc))
                    try:
                        if await self._settle_in_flight(entry):
                            return self.state.processed(doc_id) or {}
                    except (TransportError, DriveError):
                        return {"docId": doc_id, "leaseId": lease_id, "outcome": "in_doubt"}
                return self._record_failure(
                    doc_id, lease_id, link_failure(self.profile, str(exc)), log
                )
            self.crash_point("after_commit")
            shift = await self.fn.call(Command.SHIFT_PARAMS)
        info = self._fiscal_info(
            shift=shift.shift_number,
            receipt=answer.receipt_number,
            fd=answer.fd,
            fpd=answer.fpd,
            local=local,
            total=plan.total,
            check_type=plan.check_type,
            operation=plan.operation,
        )
        result = self._fiscalized(doc_id, lease_id, info)
        self.state.record_result(doc_id, answer.fd, result)
        self._address_used()
        self.counters["fiscalized"] += 1
        log.info("document_fiscalized", fd=answer.fd, fpd=answer.fpd, receipt=answer.receipt_number)
        self.emit("document.fiscalized", {"docId": doc_id, **info})
        self.crash_point("after_outbox")
        self._wake.set()
        self._ofd_wake.set()
        return result

    async def _run_receipt(self, local: datetime, plan: Any) -> Any:
        try:
            return await self.fn.receipt(local, plan.operation, plan.total, plan.all_tlv)
        except DriveError as exc:
            if exc.code != ResultCode.SHIFT_TOO_LONG:
                raise
        # The drive says the shift is over 24 hours old: close it, open a new one, try again.
        await self._close_shift(local)
        await self._ensure_shift(local)
        return await self.fn.receipt(local, plan.operation, plan.total, plan.all_tlv)

    def _explain(self, exc: DriveError, plan: Any) -> dict[str, Any]:
        """Name the offending positions and the missing registration flag (support's first question)."""
        tag = int.from_bytes(exc.data[:2], "little") if len(exc.data) >= 2 else None
        detail: dict[str, Any] = {}
        if tag in (1057, 1222, 1223, 1224, 1226):
            detail["missingRegistrationFlag"] = "agent"
            detail["positions"] = [
                p["position"] for p in plan.positions if p["agent"] or p["supplier"]
            ]
        elif tag == 1212:
            detail["missingRegistrationFlag"] = "excise"
            detail["positions"] = [p["position"] for p in plan.positions if p["excise"]]
        elif tag == 1055:
            detail["taxSystem"] = plan.tax_system
            detail["registeredTaxSystems"] = self.profile.registration.tax_mask
        return detail

    def _record_failure(
        self, doc_id: str, lease_id: str | None, failure: Failure, log: Any
    ) -> dict[str, Any]:
        result = self._failed(doc_id, lease_id, failure)
        self.state.record_result(doc_id, None, result)
        self.counters["failed"] += 1
        log.info("document_failed", message=failure.message, detail=failure.detail)
        self.emit(
            "document.failed",
            {"docId": doc_id, "failureInfo": failure.to_json(), "detail": failure.detail},
        )
        self._wake.set()
        return result

    # ------------------------------------------------------------------ control actions

    def _address(self) -> Address:
        """The registered address the next receipt prints (1009/1187), never the shop's.

        A till registered with several addresses prints them in turn, one receipt each (the
        support case of one site whose receipts show several addresses, support-cases.md §6); the
        turn moves on only when the drive signs a receipt.
        """
        addresses = self.profile.registration.addresses
        return addresses[int(self.state.get("address_turn") or 0) % len(addresses)]

    def _address_used(self) -> None:
        if len(self.profile.registration.addresses) > 1:
            self.state.put(address_turn=int(self.state.get("address_turn") or 0) + 1)

    def counter_shift(self) -> dict[str, Any]:
        """The till app's own shift of counter sales (``shift_mode = separate``).

        In ``separate`` mode the till app numbers the counter's shifts itself («программная»
        смена: its Z-report shows this number) while the drive's shift numbers, which the OFD
        shows, advance for the internet shop's automatic shifts too. In ``shared`` mode the app
        shows the drive's numbers and this counter stays unused.
        """
        return {
            "number": int(self.state.get("counter_shift") or 0),
            "open": bool(self.state.get("counter_shift_open")),
        }

    def _open_counter_shift(self) -> int:
        counter = self.counter_shift()
        if not counter["open"]:
            counter["number"] += 1
            self.state.put(counter_shift=counter["number"], counter_shift_open=True)
        number: int = counter["number"]
        return number

    async def _close_shop_shift(self) -> None:
        """``separate`` mode: the shop's shift closes by itself after its documents.

        Its reports exist only at the OFD (no Z-report at the till); when the counter's shift is
        open, the shop's documents went into it and it stays open.
        """
        if self.counter_shift()["open"]:
            return
        async with self.fn.exclusive:
            with contextlib.suppress(DriveError, TransportError):
                if (await self.fn.call(Command.SHIFT_PARAMS)).shift_open:
                    await self._close_shift(self.local_now())

    async def sell(self, total: int, cashier: str = "Кассир") -> dict[str, Any]:
        """A counter sale entered at the till (cash, one item); returns its fiscal data.

        ``shiftNumber`` is the drive's (the OFD's) shift; ``appShiftNumber`` the one the till app
        prints, which differs in ``shift_mode = separate`` (see :meth:`counter_shift`).
        """
        async with self.fn.exclusive:
            local = self.local_now()
            await self._ensure_shift(local)
            answer = await self.fn.receipt(
                local, 1, total, counter_receipt_tlv(self.profile, total, cashier, self._address())
            )
            self._address_used()
            shift = await self.fn.call(Command.SHIFT_PARAMS)
        app_shift = (
            self._open_counter_shift()
            if self.settings.shift_mode == "separate"
            else shift.shift_number
        )
        return {
            "shiftNumber": shift.shift_number,
            "appShiftNumber": app_shift,
            "checkNumber": answer.receipt_number,
            "fnDocNumber": answer.fd,
            "fnDocMark": answer.fpd,
        }

    async def correction(
        self, total: int, cashier: str = "Кассир", operation: int = 1
    ) -> dict[str, Any]:
        """A correction receipt (чек коррекции, 17h) for a settlement that was not registered.

        One of the ways out of a shop document in error (support-cases.md §5): register the sale
        with a correction receipt at the till, then mark the document done in the cabinet.
        Returns its fiscal data.
        """
        async with self.fn.exclusive:
            local = self.local_now()
            await self._ensure_shift(local)
            tlv = correction_receipt_tlv(
                self.profile, total, cashier, local.replace(tzinfo=UTC), address=self._address()
            )
            answer = await self.fn.receipt(local, operation, total, tlv, correction=True)
            self._address_used()
            shift = await self.fn.call(Command.SHIFT_PARAMS)
        self._ofd_wake.set()
        self.emit("state.changed", {"reason": "correction", "fnDocNumber": answer.fd})
        return {
            "shiftNumber": shift.shift_number,
            "checkNumber": answer.receipt_number,
            "fnDocNumber": answer.fd,
            "fnDocMark": answer.fpd,
            "total": total,
            "operation": operation,
        }

    async def close_shift(self) -> dict[str, Any] | None:
        """Close the open shift (``shift.close``); ``None`` if none is open.

        ``appShiftNumber`` is the number the till app's Z-report shows (see :meth:`counter_shift`).
        """
        async with self.fn.exclusive:
            shift = await self.fn.call(Command.SHIFT_PARAMS)
            if not shift.shift_open:
                return None
            answer = await self._close_shift(self.local_now())
        app_shift = answer.shift_number
        if self.settings.shift_mode == "separate":
            app_shift = self.counter_shift()["number"]
            self.state.put(counter_shift_open=False)
        return {
            "shiftNumber": answer.shift_number,
            "appShiftNumber": app_shift,
            "fnDocNumber": answer.fd,
        }

    async def set_settings(self, **values: Any) -> TillSettings:
        """Change settings (validated), persist them and wake the poll loop."""
        self.settings.update(**values)
        self.state.put(settings=asdict(self.settings))
        self._wake.set()
        return self.settings

    # ------------------------------------------------------------------ state for heartbeat and control

    async def drive_state(self) -> dict[str, Any]:
        """What the till knows of its drive now (for heartbeats and the control plane)."""
        try:
            status = await self.fn.status()
            ofd = await self.fn.call(Command.OFD_STATUS)
            shift = (
                await self.fn.call(Command.SHIFT_PARAMS)
                if status.phase in (Phase.FISCAL, Phase.POST_FISCAL)
                else None
            )
            free = await self.fn.call(Command.FREE_RESOURCES)
            expiry = await self.fn.call(Command.EXPIRY) if status.phase != Phase.READY else None
        except (DriveError, TransportError) as exc:
            return {"ok": False, "error": str(exc), "serial": self.fn_serial}
        oldest = None
        if ofd.unsent and any(ofd.first_time):
            raw = ofd.first_time
            oldest = datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4]).isoformat()  # noqa: DTZ001 - drive wall time
        return {
            "ok": status.phase == Phase.FISCAL,
            "serial": self.fn_serial,
            "phase": status.phase,
            "warnings": status.warnings,
            "lastFd": status.last_fd,
            "unsent": ofd.unsent,
            "oldestUnsent": oldest,
            "documentsLeft": free.documents_left,
            "expiry": expiry.expiry.isoformat() if expiry is not None else None,
            "shift": {
                "open": bool(shift.shift_open),
                "number": shift.shift_number,
                "receipts": shift.receipt_number,
                "openedAt": self.state.get("shift_opened_at"),
            }
            if shift is not None
            else None,
        }

    def drive_view(self) -> dict[str, Any]:
        """The drive's state read directly from the in-process drive (no commands, no link)."""
        drive = self.drive
        if drive is None:
            return {"ok": False, "serial": self.fn_serial}
        s = drive.state
        now = self.clock.now()
        oldest = s.unsent[0].when.isoformat() if s.unsent else None
        fiscal = s.phase in (Phase.FISCAL, Phase.POST_FISCAL)
        return {
            "ok": s.phase == Phase.FISCAL and "fn.disconnected" not in self.faults,
            "serial": self.fn_serial,
            "phase": s.phase,
            "warnings": drive.warnings(now),
            "lastFd": s.last_fd,
            "unsent": len(s.unsent),
            "oldestUnsent": oldest,
            "documentsLeft": max(0, drive.config.capacity - s.last_fd),
            "expiry": s.expiry.isoformat() if s.expiry else None,
            "shift": {
                "open": s.shift_open,
                "number": s.shift_number,
                "receipts": s.receipts_in_shift,
                "openedAt": s.shift_opened_at.isoformat() if s.shift_opened_at else None,
            }
            if fiscal
            else None,
        }

    async def heartbeat(self) -> dict[str, Any]:
        """Send the till's state to the cloud; keeps the retail point's settings it answers."""
        drive = await self.drive_state()
        body = {
            "fnState": "READY" if drive.get("ok") else "FAILED",
            "fnSerial": self.fn_serial,
            "fn": drive,
            "powerSaving": self.settings.power_saving,
            "firmwareProfile": self.profile.name,
            "appVersion": self.profile.app_version,
        }
        answer = await self.link.heartbeat(body)
        self.point_settings = answer.get("settings", {})
        return answer

    # ------------------------------------------------------------------ faults

    _DOCUMENT_STARTS = frozenset(
        {
            Command.START_REGISTRATION,
            Command.START_REGISTRATION_12,
            Command.START_OPEN_SHIFT,
            Command.START_CLOSE_SHIFT,
            Command.START_RECEIPT,
            Command.START_CORRECTION,
            Command.START_SETTLEMENT_REPORT,
        }
    )

    async def _cloud_latency(self) -> None:
        latency = self.faults.get("cloud.latency")
        if latency is not None and latency.roll():
            self._struck("cloud.latency")
            await self.clock.pace(float(latency.params.get("delay_ms", 1000.0)) / 1000)

    def _faulty_link(self) -> FaultyLink:
        return FaultyLink(self.faults, self.clock, self._struck)

    def _drive_fault(self, command: int) -> DriveError | None:
        """The drive-layer faults: the drive itself answers the code (FiscalDrive.forced_result)."""
        # Each fault decides once per fiscal document (at its first command), so a seed gives
        # the same failures whatever the heartbeats do in between.
        if command not in self._DOCUMENT_STARTS:
            return None
        failure = self.faults.get("fn.failure")
        if failure is not None and failure.roll():
            self._struck("fn.failure")
            return DriveError(ResultCode.FN_FAILURE, detail="fault fn.failure")
        storage = self.faults.get("fn.storage_exhausted")
        if storage is not None and storage.roll():
            self._struck("fn.storage_exhausted")
            return DriveError(
                self.profile.drive.ofd_block_code, detail="fault fn.storage_exhausted"
            )
        expired = self.faults.get("fn.expired")
        if expired is not None and expired.roll():
            self._struck("fn.expired")
            return DriveError(ResultCode.RESOURCE_EXHAUSTED, detail="fault fn.expired")
        return None

    def _apply_warning_faults(self) -> None:
        if self.drive is not None:
            memory = "fn.memory_warning" in self.faults
            self.drive.forced_warnings = WarningFlag.MEMORY_OVERFLOW if memory else 0

    def _struck(self, name: str) -> None:
        """A fault just took effect: tell listeners; clear it once its count is used up."""
        fault = self.faults.get(name)
        self.emit("fault.applied", {"name": name, "applied": fault.applied if fault else None})
        if fault is not None and fault.exhausted:
            self._drop_fault(name)

    def _drop_fault(self, name: str) -> None:
        if self.faults.pop(name, None) is None:
            return
        if name.startswith("ofd."):
            self._ofd_call("clear")
        self._apply_warning_faults()
        self._wake.set()
        self._ofd_wake.set()
        self.emit("fault.cleared", {"name": name})
        self.emit("state.changed", {"reason": "fault.cleared"})

    def _ofd_call(self, action: str, fault: ActiveFault | None = None) -> None:
        ofd = self.ofd_server
        if ofd is None:
            return

        async def run() -> None:
            if action == "clear":
                remaining = [f for f in self.faults.values() if f.name.startswith("ofd.")]
                await ofd.clear_faults()
                for other in remaining:
                    await ofd.set_fault(other.name, **other.params)
            elif fault is not None:
                await ofd.set_fault(fault.name, **fault.params)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def inject_fault(
        self,
        name: str,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seed: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Inject a fault of the catalogue; returns it as listed.

        Raises:
            ConfigError: an unknown fault or a bad parameter; an OFD fault without the OFD
                stand-in in this process.
        """
        fault = make_fault(name, count=count, probability=probability, seed=seed, params=params)
        if name.startswith("ofd."):
            if self.ofd_server is None:
                raise ConfigError(
                    f"{name} acts on the OFD stand-in, which does not run in this process"
                )
            if count is not None or probability != 1.0:
                raise ConfigError(
                    f"{name} applies to every connection until cleared (no count or probability)"
                )
            self._ofd_call("set", fault)
        self.faults[name] = fault
        self._apply_warning_faults()
        self._wake.set()
        self.log.info("fault_injected", fault=name, count=count, probability=probability, seed=seed)
        self.emit("state.changed", {"reason": "fault.injected", "name": name})
        return fault.to_json()

    def clear_faults(self, name: str | None = None) -> list[str]:
        """Clear one fault (or every fault); returns the names cleared.

        Raises:
            ConfigError: ``name`` is not a fault of the catalogue.
        """
        if name is not None and name not in FAULTS:
            raise ConfigError(f"unknown fault {name!r}")
        names = [name] if name is not None else list(self.faults)
        cleared = [n for n in names if n in self.faults]
        for n in cleared:
            self._drop_fault(n)
        return cleared

    def list_faults(self) -> list[dict[str, Any]]:
        """The faults in force."""
        return [f.to_json() for f in self.faults.values()]

    async def _restart_after_crash(self, reason: str) -> None:
        """The process state is gone: reopen everything from disk and reconcile, as after a reboot."""
        self.log.warning("till_crashed", reason=reason)
        self.emit("warning", {"message": f"till crashed ({reason}); restarting"})
        await self._stop_drive()
        if self.store is not None:
            self.store.close()
        self.store = TillStore(self.db_path)
        await self._start_drive()
        await self.reconcile()

    # ------------------------------------------------------------------ control plane

    def deadlines(self) -> dict[str, datetime | None]:
        """Business times of the drive's next refusals (shift.expires, ofd.block, fn.expires, fn.warning)."""
        if self.drive is None:
            return {
                "shift.expires": None,
                "ofd.block": None,
                "fn.expires": None,
                "fn.warning": None,
            }
        return self.drive.deadlines()

    async def snapshot_state(self) -> dict[str, Any]:
        """The till's whole state as the control plane publishes it (``kkt/<id>/state``).

        The drive is read in-process, not over the till's link: watching the till must neither
        wait on a dead link nor use up the strikes of a drive-link fault meant for the firmware.
        """
        drive = self.drive_view()
        return {
            "deviceId": self.device_id,
            "kktSerial": self.kkt_serial,
            "profile": self.profile.name,
            "settings": asdict(self.settings),
            "polling": self.polling_allowed(),
            "lastError": self.last_error,
            "drive": {
                **drive,
                "rnm": self.rnm,
                "warningNames": _warning_names(drive.get("warnings", 0)),
            },
            "shift": drive.get("shift"),
            "counterShift": self.counter_shift() if self.store is not None else None,
            "ofdBacklog": {
                "unsent": drive.get("unsent"),
                "threshold": self.profile.quirks.ofd_backlog_threshold,
                "slowdownSeconds": self.profile.quirks.ofd_backlog_slowdown_s,
                "slowed": self._backlog_warned,
            },
            "queue": {
                "inFlight": len(self.state.journal_entries()) if self.store is not None else 0,
                "outbox": self.state.outbox_size() if self.store is not None else 0,
            },
            "counters": dict(self.counters),
            "faults": self.list_faults(),
            "deadlines": {k: v.isoformat() if v else None for k, v in self.deadlines().items()},
            "clock": {"now": self.clock.now().isoformat(), "mode": self.clock.mode},
        }

    async def replace_drive(self, ofd_wait: float = 30.0) -> dict[str, Any]:
        """Close the drive's fiscal mode, put in a new drive and re-register (``fn.replace``).

        As on a real till: close the shift, let the OFD take every document, close the drive
        (04h/05h), let the OFD take the closing report, then register the new drive with
        report type 1 (re-registration with drive replacement).

        Raises:
            ConfigError: the OFD did not take the old drive's documents within ``ofd_wait``
                seconds (pacing time).
        """
        async with self.fn.exclusive:
            status = await self.fn.status()
            if status.phase == Phase.FISCAL:
                if status.current_document:
                    await self.fn.cancel_document()
                if (await self.fn.call(Command.SHIFT_PARAMS)).shift_open:
                    await self._close_shift(self.local_now())
        if status.phase == Phase.FISCAL:
            await self._wait_ofd_empty(ofd_wait)
            async with self.fn.exclusive:
                await self.fn.call(Command.START_CLOSE_FN)
                closed = await self.fn.call(Command.CLOSE_FN, when=self.local_now(), rnm=self.rnm)
            self.log.info("drive_closed", fd=closed.fd)
        if (await self.fn.status()).phase == Phase.POST_FISCAL:
            await self._wait_ofd_empty(ofd_wait)
        old_serial = self.fn_serial
        await self._stop_drive()
        archive_dir = self.state_dir / "drives"
        archive_dir.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(self.drive_path) + suffix)
            if part.exists():  # noqa: ASYNC240 - a few local state files, not worth a thread
                part.replace(archive_dir / f"{old_serial}.sqlite3{suffix}")  # noqa: ASYNC240 - a few local state files, not worth a thread
        prefix = self.profile.drive.serial_prefix
        self.fn_serial = prefix + _digits(16 - len(prefix))
        self.state.put(fn_serial=self.fn_serial, shift_opened_at=None)
        self.log = self.log.bind(fn_serial=self.fn_serial)
        await self._start_drive()
        plan = registration_plan(
            self.profile,
            self.kkt_serial,
            sequence=int(self.kkt_serial[-6:]) or 1,
            report_type=1,
            reason=1,
        )
        async with self.fn.exclusive:
            await self.fn.call(plan.start, **plan.start_fields)
            await self.fn.send_tlv(plan.tlv)
            answer = await self.fn.call(plan.finish, when=self.local_now(), **plan.finish_fields)
        self.rnm = plan.rnm
        self.state.put(rnm=plan.rnm)
        self.emit("state.changed", {"reason": "fn.replace"})
        return {"oldFnSerial": old_serial, "fnSerial": self.fn_serial, "registrationFd": answer.fd}

    async def _wait_ofd_empty(self, seconds: float) -> None:
        deadline = self.clock.monotonic() + seconds
        self._ofd_wake.set()
        while (unsent := (await self.fn.call(Command.OFD_STATUS)).unsent) > 0:
            if self.clock.monotonic() >= deadline or not self.config.ofd_address:
                raise ConfigError(
                    f"the drive still holds {unsent} documents for the OFD: send them first"
                )
            await self.clock.pace(0.05)

    async def save_snapshot(self, path: Path) -> dict[str, Any]:
        """Save the till's whole state (till and drive databases) into directory ``path``."""
        import sqlite3  # noqa: PLC0415 - only snapshots use the backup API directly

        path.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a few local state files, not worth a thread
        async with self.fn.exclusive:
            for source in (self.db_path, self.drive_path):
                with (
                    contextlib.closing(sqlite3.connect(source)) as src,
                    contextlib.closing(sqlite3.connect(path / source.name)) as dst,
                ):
                    src.backup(dst)
        manifest = {
            "kktSerial": self.kkt_serial,
            "fnSerial": self.fn_serial,
            "profile": self.profile.name,
            "savedAt": self.clock.now().isoformat(),
        }
        (path / "snapshot.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        return {"path": str(path), **manifest}

    async def load_snapshot(self, path: Path) -> dict[str, Any]:
        """Replace the till's state with a snapshot taken by :meth:`save_snapshot` and restart.

        Raises:
            ConfigError: ``path`` is not a snapshot of a till of this profile.
        """
        import sqlite3  # noqa: PLC0415 - only snapshots use the backup API directly

        try:
            manifest = json.loads((path / "snapshot.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a till snapshot: {exc}") from exc
        if manifest.get("profile") != self.profile.name:
            raise ConfigError(
                f"the snapshot is of profile {manifest.get('profile')!r}, not {self.profile.name!r}"
            )
        await self._stop_drive()
        if self.store is not None:
            self.store.close()
        for target in (self.db_path, self.drive_path):
            with (
                contextlib.closing(sqlite3.connect(path / target.name)) as src,
                contextlib.closing(sqlite3.connect(target)) as dst,
            ):
                src.backup(dst)
        self.store = TillStore(self.db_path)
        self.kkt_serial = self.state.get("kkt_serial") or self.kkt_serial
        self.fn_serial = self.state.get("fn_serial") or self.fn_serial
        self.rnm = self.state.get("rnm") or self.rnm
        await self._start_drive()
        await self.reconcile()
        self.emit("state.changed", {"reason": "restore"})
        return {"path": str(path), **manifest}

    # ------------------------------------------------------------------ loops

    def polling_allowed(self) -> bool:
        """Whether the till polls now: online, not in power saving, no fault stopping it."""
        return (
            self.settings.online
            and not self.settings.power_saving
            and "till.offline" not in self.faults
            and "till.power_saving" not in self.faults
        )

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(seconds, 0.0))

    async def poll_once(self) -> int:
        """One poll cycle: reconcile, heartbeat, lease, fiscalise, report. Returns documents handled."""
        if self.state.journal_entries():
            await self.reconcile()
        await self.heartbeat()
        items = await self.link.lease(self.settings.max_docs, wait=self.settings.long_poll)
        self.counters["polls"] += 1
        if items:
            self.state.journal_leased(
                [(str(i["docId"]), i.get("leaseId"), i["document"]) for i in items],
                self.clock.now().isoformat(),
            )
        for item in items:
            await self._pace_ofd_backlog()
            await self.fiscalise(item)
        if items and self.settings.shift_mode == "separate":
            await self._close_shop_shift()
        await self.flush_outbox()
        return len(items)

    async def _pace_ofd_backlog(self) -> None:
        """Slow down while the drive holds more unsent documents than the profile allows.

        support-cases.md §4: an unpaid OFD rarely affects the shop queue, but it does at about
        700–800 documents waiting. Above ``quirks.ofd_backlog_threshold`` every document waits
        ``quirks.ofd_backlog_slowdown_s`` (pacing, real time) and one ``warning`` is published each
        time the backlog crosses the threshold.
        """
        quirks = self.profile.quirks
        try:
            unsent = (await self.fn.call(Command.OFD_STATUS)).unsent
        except (DriveError, TransportError):
            return  # the document's own drive commands will report the drive's trouble
        if unsent <= quirks.ofd_backlog_threshold:
            if self._backlog_warned:
                self._backlog_warned = False
                self.emit("state.changed", {"reason": "ofd.backlog.cleared", "unsent": unsent})
            return
        if not self._backlog_warned:
            self._backlog_warned = True
            self.log.warning(
                "ofd_backlog_slowdown", unsent=unsent, threshold=quirks.ofd_backlog_threshold
            )
            self.emit(
                "warning",
                {
                    "code": "ofd.backlog",
                    "message": (
                        f"the drive holds {unsent} documents the OFD has not acknowledged"
                        f" (more than {quirks.ofd_backlog_threshold}): each document now waits"
                        f" {quirks.ofd_backlog_slowdown_s:g} s"
                    ),
                    "unsent": unsent,
                    "threshold": quirks.ofd_backlog_threshold,
                    "slowdownSeconds": quirks.ofd_backlog_slowdown_s,
                },
            )
        self.counters["backlogPaced"] += 1
        await self.clock.pace(quirks.ofd_backlog_slowdown_s)

    async def _poll_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            if not self.polling_allowed():
                await self._pause(self.settings.poll_interval)
                continue
            try:
                handled = await self.poll_once()
                backoff = 0.5
                self.last_error = None
            except SimulatedCrash as exc:
                await self._restart_after_crash(str(exc))
                continue
            except (TransportError, CloudError) as exc:
                self.last_error = str(exc)
                self.log.warning("poll_failed", error=str(exc))
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if handled:
                continue  # more may be waiting: poll again at once
            if self.settings.long_poll <= 0:
                await self._pause(self.settings.poll_interval)

    async def flush_outbox(self) -> int:
        """Send waiting results and OFD acknowledgements; returns how many the cloud took."""
        if not self.settings.online or "till.offline" in self.faults:
            return 0
        async with self._flush_lock:
            return await self._flush_outbox()

    async def _flush_outbox(self) -> int:
        sent = 0
        results = self.state.outbox("result")
        dropping = self.faults.get("cloud.drop_result")
        if dropping is not None and results:
            # The reports are lost on the way: the server hears nothing until the fault clears.
            for entry in results:
                if entry.key not in self._withheld and dropping.roll():
                    self._withheld.add(entry.key)
                    self._struck("cloud.drop_result")
            results = [e for e in results if e.key not in self._withheld]
        elif self._withheld:
            self._withheld.clear()
        if results:
            await self.link.results([e.payload for e in results])
            self.state.delivered(results)
            sent += len(results)
        acks = self.state.outbox("ofd")
        if acks:
            await self.link.ofd_acks([e.payload for e in acks])
            self.state.delivered(acks)
            sent += len(acks)
        return sent

    async def _outbox_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                await self.flush_outbox()
                backoff = 0.5
                await self._pause(max(self.settings.poll_interval, 0.2))
            except (TransportError, CloudError) as exc:
                self.log.warning("outbox_flush_failed", error=str(exc))
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _ofd_loop(self) -> None:
        """Move signed documents to the OFD; offline (setting or fault) pauses it."""
        from kkt_emulator.till.ofd_sender import OfdSender  # noqa: PLC0415 - optional part

        assert self.config.ofd_address is not None

        async def on_ack(fd: int, when: datetime) -> None:
            self.state.queue_ofd_ack(
                fd,
                {
                    "fnDocNumber": fd,
                    "fnNumber": self.fn_serial,
                    "state": "acknowledged",
                    "at": when.replace(tzinfo=UTC).isoformat()
                    if when.tzinfo is None
                    else when.isoformat(),
                },
            )
            self.emit("ofd.acknowledged", {"fnDocNumber": fd})
            self._wake.set()

        async def on_sent(fd: int) -> None:
            # Reported too, so the cabinet can show «sent, not yet acknowledged»; an acknowledgement
            # queued before the next flush replaces it (same outbox key), and the cloud never
            # moves the OFD state backwards.
            self.state.queue_ofd_ack(
                fd, {"fnDocNumber": fd, "fnNumber": self.fn_serial, "state": "sent"}
            )
            self.emit("ofd.sent", {"fnDocNumber": fd})

        backoff = 0.0
        while not self._stop.is_set():
            if not self.settings.online or "till.offline" in self.faults or self.client is None:
                await self._ofd_pause(1.0)
                continue
            sender = OfdSender(
                self.fn,
                self.clock,
                self.config.ofd_address,
                ffd=self.profile.ffd_version,
                fn_serial=self.fn_serial,
                on_sent=on_sent,
                on_ack=on_ack,
            )
            self.ofd_sender = sender
            try:
                await sender.send_once()
                backoff = 0.0
                # Every new document wakes this loop at once; the timer is only a safety net, and
                # a long one keeps an idle fleet cheap (200 tills polled the drive 200 times a second).
                await self._ofd_pause(OFD_IDLE_CHECK)
            except (TransportError, DriveError) as exc:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                self.log.info("ofd_send_failed", error=str(exc), retry_in=backoff)
                await self._ofd_pause(backoff)

    async def _ofd_pause(self, seconds: float) -> None:
        self._ofd_wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ofd_wake.wait(), timeout=seconds)
