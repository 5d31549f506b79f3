"""The OFD stand-in (оператор фискальных данных): an asyncio TCP server that acknowledges documents.

The till sends a 30-byte session header and the container the drive built (FN spec §11); the
stand-in answers with a session header and an operator acknowledgement container (document code 7,
:func:`~kkt_emulator.ofd.ack.build_ack`). A connection may carry any number of such exchanges, one
after another (a project decision, fn-protocol.md §11.4: the emulator's till keeps its connection;
a till that closes after one answer is served the same). A kept connection that brings no new
header within ``read_timeout`` seconds is closed quietly.

Project decisions on bad input (FN spec §11.1, §14.1). Nothing a peer sends crashes the server:
every bad connection is logged and counted in ``malformed``.

* A session header with another signature or S-version (the ОИСМ framing, test messages,
  garbage), an unknown A-protocol version, or a peer that leaves (or stalls for ``read_timeout``
  seconds) before the whole header and body arrived: the connection is closed without an answer.
* A whole body that is not a valid fiscal-document container (CRC mismatch, bad length, type or
  version, a document STLV that runs past the end, an acknowledgement or an unknown document
  code): answered with an acknowledgement carrying 1022 = 11 («не распознан») when the FD number
  and the ФН number can still be read from the container header (the ФН number from the session
  header if the BCD field is broken); otherwise the connection is closed. Such a container is not
  stored.

Faults (``till-protocol.md`` §4), each a real effect at the OFD layer:

* ``ofd.down``: the listening socket is closed, so connection attempts are refused by the
  operating system; clearing the fault binds the same port again (``SO_REUSEADDR``). Kept
  connections waiting for their next document are closed at once; an exchange under way finishes
  normally and then closes its connection. If another process took the port meanwhile, clearing raises
  :class:`~kkt_emulator.errors.TransportError`.
* ``ofd.reject`` (``code``, default 14 «не прошел ФЛК»): every document is stored and answered
  with that 1022 code instead of 0 (for code 14 under FFD 1.1/1.2 also with 1206 bit 1, the
  ФЛК-error flag).
* ``ofd.slow`` (``delay_ms``): the answer is paced (real time) after the document was stored.

Storage: always in memory; with ``db_path`` also in an SQLite table (opened through
:func:`kkt_emulator.sqlite.open_database`: WAL mode, one ``BEGIN IMMEDIATE`` transaction per
document, committed before the answer is sent), reloaded on the next start.
A document received again (the till lost the first answer) is stored once, keeping its first
receipt time, and answered again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from kkt_emulator.errors import (
    ConfigError,
    EmulatorError,
    FramingError,
    TransportError,
    ValidationError,
)
from kkt_emulator.fn.codes import DocCode
from kkt_emulator.fn.container import (
    CONTAINER_HEADER_SIZE,
    S_VERSION,
    SESSION_HEADER_SIZE,
    SESSION_SIGNATURE,
    Container,
    SessionHeader,
    decode_bcd_serial,
    verify_trailer,
)
from kkt_emulator.fn.signing import (
    DEFAULT_SIGNING_SEED,
    TAG_FISCAL_SIGN,
    drive_secret,
    inn_is_valid,
    strip_tlv,
    verify_document,
)
from kkt_emulator.logging import get_logger
from kkt_emulator.net import host_port
from kkt_emulator.ofd.ack import OFD_ACCEPTED, OFD_FLC_FAILED, OFD_NOT_RECOGNISED, build_ack
from kkt_emulator.sqlite import immediate, open_database
from kkt_emulator.transport.tcp import tcp_serve

if TYPE_CHECKING:
    import structlog

    from kkt_emulator.clock import Clock
    from kkt_emulator.transport.base import BytePipe

__all__ = ["FAULT_NAMES", "FFD_BY_A_VERSION", "OfdFault", "OfdServer", "ReceivedDocument"]

FFD_BY_A_VERSION: Final[dict[bytes, str]] = {
    bytes.fromhex("0001"): "1.05",
    bytes.fromhex("0002"): "1.05",
    bytes.fromhex("0100"): "1.05",
    bytes.fromhex("0105"): "1.05",
    bytes.fromhex("0110"): "1.1",
    bytes.fromhex("0120"): "1.2",
}
"""The FFD version of the acknowledgement, by the A-protocol version of the till's header."""


class OfdFault(StrEnum):
    """The faults :meth:`OfdServer.set_fault` knows (``till-protocol.md`` §4)."""

    DOWN = "ofd.down"
    REJECT = "ofd.reject"
    SLOW = "ofd.slow"


FAULT_NAMES: Final = tuple(OfdFault)
"""Every :class:`OfdFault`, in the order help texts list them."""

_FAULT_PARAMS: Final[dict[OfdFault, frozenset[str]]] = {
    OfdFault.DOWN: frozenset(),
    OfdFault.REJECT: frozenset({"code"}),
    OfdFault.SLOW: frozenset({"delay_ms"}),
}

# Documents a till sends to the OFD (FN spec §10.3); 7 is the operator's own acknowledgement.
_FISCAL_DOC_CODES: Final = frozenset(int(code) for code in DocCode) - {int(DocCode.OPERATOR_ACK)}
log = get_logger(__name__, component="ofd")

_DEFAULT_SLOW_MS: Final = 1000
_MAX_SECRETS: Final = 4096
_MAX_CODE: Final = 0xFF
_FLAG_FLC_ERROR: Final = 0b10

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS received (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    fn_serial TEXT NOT NULL,
    fd_number INTEGER NOT NULL,
    doc_code INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    ofd_code INTEGER NOT NULL,
    raw BLOB NOT NULL,
    verified INTEGER NOT NULL DEFAULT 0,
    UNIQUE (fn_serial, fd_number)
);
"""


@dataclass(frozen=True, slots=True)
class ReceivedDocument:
    """A document the OFD stand-in received.

    Attributes:
        fn_serial: the ФН number from the container.
        fd_number: the fiscal document number.
        doc_code: the FFD document code (FN spec §10.3).
        received_at: business time of the first receipt (timezone-aware).
        size: the container's length in bytes.
        ofd_code: the 1022 code of the last answer (0 = accepted).
        verified: its message sign and fiscal sign verify with the installation's seed (a
            container of this emulator's drives; a real drive's capture cannot verify).
    """

    fn_serial: str
    fd_number: int
    doc_code: int
    received_at: datetime
    size: int
    ofd_code: int = OFD_ACCEPTED
    verified: bool = False


class _BadInputError(Exception):
    """The peer's bytes cannot be answered; the connection is closed (internal control flow)."""

    def __init__(self, reason: str, *, empty: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.empty = empty


@dataclass(slots=True)
class _Peer:
    """One connection's logger, re-bound with ``fn_serial`` and ``fd`` as soon as they are read."""

    log: structlog.typing.FilteringBoundLogger


class _Archive:
    """What the stand-in received: a dict in memory, mirrored to SQLite when a path is given."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, int], ReceivedDocument] = {}
        self.raw: dict[tuple[str, int], bytes] = {}
        self._conn: sqlite3.Connection | None = None

    def open(self, path: Path) -> None:
        # NORMAL: after a crash WAL keeps every committed answer; a lost last one is only resent.
        try:
            conn = open_database(path, schema=_SCHEMA, synchronous="NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open the OFD database {path}: {exc}") from exc
        try:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(received)")}
            if "verified" not in columns:  # a database from before signs were checked
                conn.execute("ALTER TABLE received ADD COLUMN verified INTEGER NOT NULL DEFAULT 0")
            rows = conn.execute(
                "SELECT fn_serial, fd_number, doc_code, received_at, size, ofd_code, raw, verified"
                " FROM received ORDER BY seq"
            ).fetchall()
        except sqlite3.Error as exc:
            conn.close()
            raise ConfigError(f"cannot read the OFD database {path}: {exc}") from exc
        self.documents.clear()
        self.raw.clear()
        for serial, fd, code, at, size, ofd_code, raw, verified in rows:
            key = (str(serial), int(fd))
            self.documents[key] = ReceivedDocument(
                key[0],
                key[1],
                int(code),
                datetime.fromisoformat(at),
                int(size),
                int(ofd_code),
                verified=bool(verified),
            )
            self.raw[key] = bytes(raw)
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:  # every answer was committed before it was sent: nothing is lost
                log.warning("ofd_database_close_failed", exc_info=True)
            self._conn = None

    def store(self, document: ReceivedDocument, raw: bytes) -> ReceivedDocument | None:
        """Store (or update the answer code of) one document; returns the earlier copy, if any.

        The first copy of a (drive, fiscal number) is kept, with one exception: a verified copy
        replaces an unverified one. A verified copy is never replaced, and an unverified resend
        changes nothing of it, so a forged container can neither pre-empt nor displace the
        drive's own.
        """
        key = (document.fn_serial, document.fd_number)
        first = self.documents.get(key)
        if first is None or (document.verified and not first.verified):
            kept, kept_raw = document, raw
        elif first.verified and not document.verified:
            return first
        else:
            kept, kept_raw = dataclasses.replace(first, ofd_code=document.ofd_code), self.raw[key]
        if self._conn is not None:
            self._write(kept, kept_raw)
        self.documents[key] = kept
        self.raw[key] = kept_raw
        return first

    def _write(self, document: ReceivedDocument, raw: bytes) -> None:
        assert self._conn is not None
        try:
            with immediate(self._conn) as conn:
                conn.execute(
                    "INSERT INTO received (fn_serial, fd_number, doc_code, received_at, size,"
                    " ofd_code, raw, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (fn_serial, fd_number) DO UPDATE SET"
                    " doc_code = excluded.doc_code, received_at = excluded.received_at,"
                    " size = excluded.size, ofd_code = excluded.ofd_code, raw = excluded.raw,"
                    " verified = excluded.verified",
                    (
                        document.fn_serial,
                        document.fd_number,
                        document.doc_code,
                        document.received_at.isoformat(),
                        document.size,
                        document.ofd_code,
                        raw,
                        int(document.verified),
                    ),
                )
        except sqlite3.Error as exc:
            raise EmulatorError(f"cannot store document {document.fd_number}: {exc}") from exc

    def iter(self, fn_serial: str | None) -> Iterator[ReceivedDocument]:
        for document in self.documents.values():
            if fn_serial is None or document.fn_serial == fn_serial:
                yield document


class OfdServer:
    """The OFD stand-in: accepts session header + container over TCP and acknowledges it.

    Use as an async context manager (reusable, not reentrant)::

        async with OfdServer(clock, port=0) as ofd:
            till_settings.ofd_address = ofd.address

    Args:
        clock: business time for receipt times and the acknowledgement's 1012; pacing for
            ``ofd.slow``.
        host: the address to listen on (an address literal; a name resolving to several addresses
            would listen on several ports when ``port`` is 0).
        port: the TCP port; 0 picks a free one (see :attr:`port`).
        ofd_inn: the operator's ИНН written in 1017, which the drive compares with its
            registration.
        db_path: an SQLite file that keeps received documents across restarts.
        read_timeout: real seconds a peer may take to send its header and body.
        signing_seed: the installation's seed of the drives' secrets (a profile's ``seed``); a
            container whose message sign or fiscal sign does not verify with it never
            replaces one that does (see :attr:`ReceivedDocument.verified`).

    Attributes:
        reject_code: the ``ofd.reject`` fault: answer every document with this 1022 code.
        ack_delay_s: the ``ofd.slow`` fault: real seconds to wait before answering.
        connections: connections accepted.
        malformed: connections whose bytes were not a good header + container.
        rejected: answers with a non-zero 1022 code.
        errors: connections that failed inside the stand-in (storage errors and the like).
        unverified: containers whose signs do not verify with ``signing_seed`` (a real drive's
            capture, or a forgery): acknowledged, but never kept over a verified copy.

    Raises:
        ConfigError: from the constructor for a bad port or ИНН; from entering for a database that
            cannot be opened.
        TransportError: from entering when the address cannot be bound.
    """

    def __init__(
        self,
        clock: Clock,
        host: str = "127.0.0.1",
        port: int = 0,
        ofd_inn: str = "7704358518",
        db_path: str | Path | None = None,
        *,
        read_timeout: float = 30.0,
        signing_seed: str = DEFAULT_SIGNING_SEED,
    ) -> None:
        if isinstance(port, bool) or not 0 <= port <= 0xFFFF:
            raise ConfigError(f"OFD port must be 0..65535, got {port}")
        if not inn_is_valid(ofd_inn):
            raise ConfigError(f"OFD ИНН {ofd_inn!r} is not a valid 10- or 12-digit ИНН")
        if read_timeout <= 0:
            raise ConfigError(f"read_timeout must be positive, got {read_timeout}")
        self.clock = clock
        self.host = host
        self._port = port
        self.ofd_inn = ofd_inn
        self.db_path = Path(db_path) if db_path is not None else None
        self.read_timeout = read_timeout
        self.signing_seed = signing_seed
        self.unverified = 0
        self.reject_code: int | None = None
        self.ack_delay_s = 0.0
        self.connections = 0
        self.malformed = 0
        self.rejected = 0
        self.errors = 0
        self._down = False
        self._server: asyncio.Server | None = None
        self._running = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle: set[BytePipe] = set()  # kept connections between two exchanges
        self._secrets: dict[str, bytes] = {}
        self._archive = _Archive()
        self._log = log

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._running:
            raise RuntimeError("OfdServer is already running")
        if self.db_path is not None:
            self._archive.open(self.db_path)
        try:
            await self._listen()
        except BaseException:
            self._archive.close()
            raise
        if self._down and self._server is not None:
            # ofd.down was set before the start: keep the port, refuse connections.
            self._server.close()
            self._server = None
        self._running = True
        self._log.info("ofd_listening", address=self.address, db=str(self.db_path or ""))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._running = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._close_idle()
        tasks = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._archive.close()
        self._log.info("ofd_stopped", address=self.address)

    async def _close_idle(self) -> None:
        """Close every kept connection that waits for its next document (it ends quietly)."""
        for pipe in list(self._idle):
            await pipe.close()
        await asyncio.sleep(0)  # let their handlers see the end and leave

    async def _listen(self) -> None:
        server = await tcp_serve(self.host, self._port, self._handle)
        if self._port == 0:
            self._port = int(server.sockets[0].getsockname()[1])
        self._server = server

    @property
    def port(self) -> int:
        """The listening port (the one picked for port 0 once running)."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` for a till's settings (IPv6 hosts in brackets)."""
        return host_port(self.host, self._port)

    # ------------------------------------------------------------------ faults

    @property
    def down(self) -> bool:
        """Whether the ``ofd.down`` fault is on (the listening socket is closed)."""
        return self._down

    async def set_down(self, down: bool) -> None:
        """Close the listening socket (connections are refused) or bind the same port again.

        Raises:
            TransportError: the port could not be bound again.
        """
        if down == self._down:
            return
        if down:
            self._down = True
            if self._server is not None:
                self._server.close()
                self._server = None
            await self._close_idle()  # a kept connection must not outlive the outage
            self._log.info("ofd_fault_down", address=self.address)
            return
        if self._running:
            await self._listen()
        self._down = False
        self._log.info("ofd_fault_cleared_down", address=self.address)

    async def set_fault(self, name: str, **params: Any) -> None:
        """Turn on ``ofd.down``, ``ofd.reject`` (``code``, default 14) or ``ofd.slow`` (``delay_ms``).

        Raises:
            ConfigError: an unknown fault or parameter, or a value out of range.
        """
        try:
            fault = OfdFault(name)
        except ValueError:
            raise ConfigError(f"unknown OFD fault {name!r}: use {', '.join(FAULT_NAMES)}") from None
        unknown = set(params) - _FAULT_PARAMS[fault]
        if unknown:
            raise ConfigError(f"fault {name} takes no parameter {', '.join(sorted(unknown))}")
        if fault is OfdFault.DOWN:
            await self.set_down(True)
        elif fault is OfdFault.REJECT:
            code = _int_param(name, "code", params.get("code", OFD_FLC_FAILED))
            if not 1 <= code <= _MAX_CODE:
                raise ConfigError(f"{name}: code must be 1..255, got {code}")
            self.reject_code = code
        else:
            delay_ms = _float_param(name, "delay_ms", params.get("delay_ms", _DEFAULT_SLOW_MS))
            if not 0 <= delay_ms < float("inf"):
                raise ConfigError(f"{name}: delay_ms must be a non-negative number, got {delay_ms}")
            self.ack_delay_s = delay_ms / 1000
        self._log.info("ofd_fault_set", fault=name, **params)

    async def clear_faults(self) -> None:
        """Clear every fault: listen again, answer 0, answer at once.

        Raises:
            TransportError: the port could not be bound again.
        """
        self.reject_code = None
        self.ack_delay_s = 0.0
        await self.set_down(False)

    def active_faults(self) -> dict[str, dict[str, Any]]:
        """The faults that are on, with their parameters (for state reports)."""
        faults: dict[str, dict[str, Any]] = {}
        if self._down:
            faults[OfdFault.DOWN] = {}
        if self.reject_code is not None:
            faults[OfdFault.REJECT] = {"code": self.reject_code}
        if self.ack_delay_s > 0:
            faults[OfdFault.SLOW] = {"delay_ms": self.ack_delay_s * 1000}
        return faults

    # ------------------------------------------------------------------ queries

    def received(self, fn_serial: str | None = None) -> list[ReceivedDocument]:
        """Documents received (of one drive, or all), in the order they first arrived."""
        return list(self._archive.iter(fn_serial))

    def acknowledged_fds(self, fn_serial: str) -> set[int]:
        """FD numbers of drive ``fn_serial`` whose last answer was 0 (accepted)."""
        return {d.fd_number for d in self._archive.iter(fn_serial) if d.ofd_code == OFD_ACCEPTED}

    def raw_container(self, fn_serial: str, fd_number: int) -> bytes | None:
        """The container bytes as first received, or ``None``."""
        return self._archive.raw.get((fn_serial, fd_number))

    # ------------------------------------------------------------------ one connection

    async def _handle(self, pipe: BytePipe) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        peer = _Peer(self._log.bind(peer=getattr(pipe, "name", "")))
        try:
            start = b""
            while self._running:
                if not await self._exchange(pipe, peer, start):
                    return  # left unanswered: the connection is closed
                if self._down:
                    return  # ofd.down: the exchange under way was finished, no next one
                start = await self._next_exchange(pipe)
                if not start:
                    return
        except _BadInputError as exc:
            if exc.empty:
                peer.log.debug("ofd_connection_empty")
            else:
                self.malformed += 1
                peer.log.warning("ofd_input_malformed", reason=exc.reason)
        except TransportError as exc:
            peer.log.warning("ofd_peer_left", reason=str(exc))
        except Exception as exc:
            # The stand-in must outlive any bug or storage failure: log it with the traceback and
            # the drive and document it was about (bound as soon as they were read), count it, go on.
            self.errors += 1
            peer.log.exception("ofd_connection_failed", reason=str(exc))
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _next_exchange(self, pipe: BytePipe) -> bytes:
        """Wait on a kept connection for the start of the next header; ``b""`` ends it quietly."""
        self._idle.add(pipe)
        try:
            async with asyncio.timeout(self.read_timeout):
                return await pipe.read(SESSION_HEADER_SIZE)
        except (TimeoutError, TransportError):
            return b""  # the till left, kept it idle too long, or ofd.down closed it
        finally:
            self._idle.discard(pipe)

    async def _exchange(self, pipe: BytePipe, peer: _Peer, start: bytes) -> bool:
        """One header + container and its answer; whether it was answered."""
        try:
            async with asyncio.timeout(self.read_timeout):
                head = start + await _read_exactly(
                    pipe, SESSION_HEADER_SIZE - len(start), "session header", started=bool(start)
                )
                header = _decode_header(head)
                body = await _read_exactly(pipe, header.body_length, "container")
        except TimeoutError:
            raise _BadInputError(f"nothing complete within {self.read_timeout:g} s") from None
        ffd = FFD_BY_A_VERSION[header.a_version]
        log = peer.log = peer.log.bind(fn_serial=header.fn_serial)
        try:
            container = _parse_document(body)
        except FramingError as exc:
            self.malformed += 1
            return await self._answer_unrecognised(
                pipe, header, body=body, ffd=ffd, reason=str(exc), log=log
            )
        log = peer.log = peer.log.bind(fn_serial=container.fn_serial, fd=container.fd_number)
        verified = self._signed_by_its_drive(body, container)
        if not verified:
            self.unverified += 1
            log.info("ofd_container_unverified", reason="its signs do not verify with the seed")
        code = OFD_ACCEPTED if self.reject_code is None else self.reject_code
        earlier = self._archive.store(
            ReceivedDocument(
                container.fn_serial,
                container.fd_number,
                container.doc_code,
                self.clock.now(),
                len(body),
                code,
                verified=verified,
            ),
            body,
        )
        log.info("ofd_document_received", doc_code=container.doc_code, size=len(body), code=code)
        if earlier is not None:
            log.info("ofd_document_repeated", first_received_at=earlier.received_at.isoformat())
        await self._answer(
            pipe, header, serial=container.fn_serial, fd=container.fd_number, ffd=ffd, code=code
        )
        return True

    def _signed_by_its_drive(self, raw: bytes, container: Container) -> bool:
        """Whether the container's message sign and its document's fiscal sign (1077) verify.

        Both are derived from the drive's secret (``fn-protocol.md`` §12.1), which the stand-in
        recomputes from the ФН number and the installation's signing seed.
        """
        try:
            secret = self._secrets.get(container.fn_serial)
            if secret is None:
                if len(self._secrets) >= _MAX_SECRETS:  # forged serials must not grow it forever
                    self._secrets.clear()
                secret = self._secrets[container.fn_serial] = drive_secret(
                    container.fn_serial, self.signing_seed
                )
            if not verify_trailer(raw, secret):
                return False
            _, sign = strip_tlv(container.document_value, TAG_FISCAL_SIGN)
            if sign is None:
                return True  # a document without a fiscal sign is checked by its message sign
            return verify_document(
                secret, container.fn_serial, container.fd_number, container.document_value
            )
        except (ValidationError, FramingError):
            return False

    async def _answer_unrecognised(
        self,
        pipe: BytePipe,
        header: SessionHeader,
        *,
        body: bytes,
        ffd: str,
        reason: str,
        log: structlog.typing.FilteringBoundLogger,
    ) -> bool:
        ids = _identify(body, header.fn_serial)
        if ids is None:
            log.warning("ofd_container_malformed", reason=reason, answered=False)
            return False
        serial, fd = ids
        log.warning("ofd_container_malformed", reason=reason, answered=True, fd=fd)
        await self._answer(pipe, header, serial=serial, fd=fd, ffd=ffd, code=OFD_NOT_RECOGNISED)
        return True

    async def _answer(
        self, pipe: BytePipe, header: SessionHeader, *, serial: str, fd: int, ffd: str, code: int
    ) -> None:
        if self.ack_delay_s > 0:
            await self.clock.pace(self.ack_delay_s)
        # FFD 1.1/1.2: a ФЛК failure is also flagged in 1206 (bit 1), which the drive turns into
        # its «ошибка ФЛК» warning (FN spec §5); FFD 1.05 has only the 1022 code.
        flags = _FLAG_FLC_ERROR if code == OFD_FLC_FAILED and ffd != "1.05" else 0
        ack = build_ack(serial, fd, self.ofd_inn, self.clock.now(), ffd=ffd, code=code, flags=flags)
        reply = SessionHeader(SESSION_SIGNATURE, S_VERSION, header.a_version, serial, len(ack))
        if code != OFD_ACCEPTED:
            self.rejected += 1
        await pipe.write(reply.encode() + ack)


async def _read_exactly(pipe: BytePipe, size: int, what: str, *, started: bool = False) -> bytes:
    data = bytearray()
    while len(data) < size:
        try:
            data += await pipe.read(size - len(data))
        except TransportError:
            empty = not data and not started and what == "session header"
            raise _BadInputError(
                f"connection closed after {len(data)} of {size} bytes of the {what}", empty=empty
            ) from None
    return bytes(data)


def _decode_header(raw: bytes) -> SessionHeader:
    try:
        header = SessionHeader.decode(raw)
    except FramingError as exc:
        raise _BadInputError(str(exc)) from None
    if header.a_version not in FFD_BY_A_VERSION:
        raise _BadInputError(f"unknown A-protocol version {header.a_version.hex(' ')}")
    return header


def _parse_document(body: bytes) -> Container:
    container = Container.parse(body)
    if container.doc_code not in _FISCAL_DOC_CODES:
        raise FramingError(f"document code {container.doc_code} is not a fiscal document")
    if container.document_tag != container.doc_code:
        raise FramingError(
            f"document STLV tag {container.document_tag} differs from code {container.doc_code}"
        )
    return container


def _identify(body: bytes, header_serial: str) -> tuple[str, int] | None:
    """The ФН number and FD number of a container that did not parse, if they can be read."""
    if len(body) < CONTAINER_HEADER_SIZE:
        return None
    fd = int.from_bytes(body[17:20], "big")
    try:
        serial = decode_bcd_serial(body[9:17])
    except FramingError:
        serial = header_serial
    if not (serial.isascii() and serial.isdigit() and len(serial) <= 16):
        return None
    return serial, fd


def _int_param(fault: str, name: str, value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{fault}: {name} must be an integer, got {value!r}") from None


def _float_param(fault: str, name: str, value: object) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise ConfigError(f"{fault}: {name} must be a number, got {value!r}") from None
