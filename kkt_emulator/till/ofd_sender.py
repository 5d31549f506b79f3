"""The till's side of the OFD exchange: signed documents from the drive to the operator (ОФД).

The loop of a real till (fn-protocol.md §6.6, §11), per document:

1. ``20h`` once per round: how many documents are unsent;
2. ``21h(1)`` when the sender has no connection to the OFD yet;
3. ``22h`` (length), ``23h`` blocks of at most the client's frame data, ``25h``: read the
   container the drive built — under ``client.exclusive``, so no receipt interleaves;
4. the 30-byte session header (A-version from the FFD, ФН number, body length, flags ``0x0014``,
   CRC 0) + the container over TCP; read the operator's 30-byte header and its body;
5. ``26h`` with that body (the header stripped, as fncore does), then ``41h`` to read back the
   stored acknowledgement, as the real till does — under ``client.exclusive`` again;
6. ``21h(0)`` when the connection ends: after any failure, after ``idle_close`` seconds without
   a document, or when :meth:`OfdSender.close` is called (the till goes offline or stops).

Decisions:

* One TCP connection carries many exchanges (a project decision, fn-protocol.md §11.4): the
  sender keeps it open across documents and rounds, so the drive's transport state (21h, bit 0 of
  20h) says whether that connection is up. The documents of a round are the ones 20h counted when
  it began; a document signed meanwhile wakes the next round. An OFD that closes after each
  answer is served too: a kept connection that fails before the answer began is replaced by a
  new one and the document sent again (the OFD stores a repeated document once and answers it
  again).
* An idle connection is closed (D72, fn-protocol.md §11.4): ``idle_close`` seconds (pacing time)
  after the last round that sent a document, the sender ends it with ``21h(0)``, and the next
  document opens a new one with ``21h(1)``. A thousand idle tills then hold no OFD sockets (nor the
  stand-in their accepted ends), while a busy till keeps its connection and its five drive commands
  per document.
* An unreachable, refusing, silent or garbled OFD raises
  :class:`~kkt_emulator.errors.TransportError` with a one-line reason after ``21h(0)``; a read that
  failed half-way is cancelled with ``24h`` first. The document stays at the head of the drive's
  queue and is sent again next round.
* A drive that refuses the acknowledgement (``26h`` → 20h + reason) is logged with the reason and
  the round stops by re-raising the :class:`~kkt_emulator.errors.DriveError` (``code`` 20h,
  ``data`` the reason byte). Documents acknowledged earlier in the round were already reported
  through ``on_ack``.
* The drive takes an acknowledgement with a non-zero 1022 code (11 «не распознан», 14 «не прошел
  ФЛК») as delivered: the document leaves the queue and 41h holds the ack. The sender does the
  same — it counts as acknowledged (``on_ack`` is called, the FD is returned) — and logs the code
  as a warning.
* :meth:`OfdSender.run` backs off exponentially (pacing time) while rounds fail and never raises
  except ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kkt_emulator.errors import ConfigError, DriveError, EmulatorError, FramingError, TransportError
from kkt_emulator.fn.codes import Command, OfdRejectReason, ResultCode
from kkt_emulator.fn.container import (
    A_VERSIONS,
    CONTAINER_HEADER_SIZE,
    SESSION_HEADER_SIZE,
    SessionHeader,
)
from kkt_emulator.logging import get_logger
from kkt_emulator.transport.tcp import tcp_connect

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from kkt_emulator.clock import Clock
    from kkt_emulator.fnio.client import FnClient
    from kkt_emulator.transport.base import BytePipe

__all__ = ["OfdSender", "parse_address"]

_MIN_INTERVAL = 0.001
IDLE_CLOSE_SECONDS = 1.5
"""How long a kept OFD connection stays open without a document (``OfdSender(idle_close=…)``)."""


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into host and port.

    Raises:
        ConfigError: no port, or a port outside 1..65535.
    """
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"OFD address {address!r} is not host:port")
    port = int(port_text)
    if not 1 <= port <= 0xFFFF:
        raise ConfigError(f"OFD address {address!r}: port must be 1..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


class OfdSender:
    """Moves the drive's unsent documents to the OFD and hands it the acknowledgements.

    Args:
        client: the till's drive client; multi-command steps hold ``client.exclusive``.
        clock: pacing for the back-off of :meth:`run`.
        address: the OFD as ``host:port``.
        ffd: the FFD version written in the session header ("1.05", "1.1" or "1.2").
        fn_serial: the drive's ФН number, written in the session header.
        on_sent: awaited with the FD number once its container was written to the OFD.
        on_ack: awaited with the FD number and the acknowledgement time (UTC, as the drive stored
            the operator's 1012) once the drive accepted the acknowledgement.
        connect_timeout: real seconds to wait for the TCP connection.
        reply_timeout: real seconds to wait for the operator's answer once the document was sent.
        idle_close: seconds (pacing time) after which a connection no document used is closed;
            ``None`` keeps it until a failure or :meth:`close`.

    Raises:
        ConfigError: a bad address, FFD version or timeout.
    """

    def __init__(
        self,
        client: FnClient,
        clock: Clock,
        address: str,
        *,
        ffd: str,
        fn_serial: str,
        on_sent: Callable[[int], Awaitable[None]] | None = None,
        on_ack: Callable[[int, datetime], Awaitable[None]] | None = None,
        connect_timeout: float = 5.0,
        reply_timeout: float = 30.0,
        idle_close: float | None = IDLE_CLOSE_SECONDS,
    ) -> None:
        if ffd not in A_VERSIONS:
            raise ConfigError(f"unknown FFD version {ffd!r}: use {', '.join(A_VERSIONS)}")
        if connect_timeout <= 0 or reply_timeout <= 0:
            raise ConfigError("OFD timeouts must be positive")
        if idle_close is not None and idle_close <= 0:
            raise ConfigError("the OFD idle close must be positive (or None: never)")
        self.client = client
        self.clock = clock
        self.address = address
        self.host, self.port = parse_address(address)
        self.ffd = ffd
        self.fn_serial = fn_serial
        self.on_sent = on_sent
        self.on_ack = on_ack
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.log = get_logger(fn_serial=fn_serial, component="ofd_sender", ofd=address)
        self._round = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pipe: BytePipe | None = None
        self._transport_up = False
        self.idle_close = idle_close
        self._rounds = 0
        """Rounds that sent at least one document (the idle timer closes only if none since)."""
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self.idle_closes = 0
        """How many kept connections were closed for being idle."""
        self.unacknowledged: int | None = None
        """The FD last written to the OFD that the drive has not seen acknowledged (a failed
        round leaves it set; see ``on_sent``)."""

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        """Whether a connection to the OFD is kept (or the drive still thinks one is up)."""
        return self._pipe is not None or self._transport_up

    def notify(self) -> None:
        """New documents were signed: end the idle wait of :meth:`run` now (not a back-off wait)."""
        self._wake.set()

    async def send_once(self) -> list[int]:
        """Send every document unsent when the round begins; return the acknowledged FD numbers.

        The connection to the OFD (and the drive's transport state) stays open afterwards, for
        the next round; any failure closes both.

        Raises:
            TransportError: the OFD could not be reached, did not answer, or answered garbage.
            DriveError: the drive refused a step (26h: 20h + the reject reason in ``data``).
        """
        async with self._round:
            acknowledged: list[int] = []
            try:
                async with self.client.exclusive:
                    unsent = int((await self.client.call(Command.OFD_STATUS)).unsent)
                for _ in range(unsent):
                    fd = await self._send_next(acknowledged[-1] if acknowledged else None)
                    if fd is None:
                        break
                    acknowledged.append(fd)
            except BaseException as exc:
                await self._disconnect(exc)
                raise
            if acknowledged:  # a round that sent nothing leaves the running idle timer alone
                self._rounds += 1
                self._arm_idle_timer()
            return acknowledged

    async def close(self) -> None:
        """End the connection to the OFD and tell the drive (21h(0)); a failure is only logged."""
        self._cancel_idle_timer()
        task, self._idle_task = self._idle_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._round:
            await self._disconnect(None)

    # ------------------------------------------------------------------ idle close

    def _arm_idle_timer(self) -> None:
        if self.idle_close is None or self._pipe is None:
            return
        self._cancel_idle_timer()
        rounds = self._rounds
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.idle_close, self._idle_expired, rounds)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_expired(self, rounds: int) -> None:
        self._idle_timer = None
        if self._idle_task is None or self._idle_task.done():
            self._idle_task = asyncio.create_task(
                self._close_idle(rounds), name=f"ofd-idle-{self.fn_serial}"
            )

    async def _close_idle(self, rounds: int) -> None:
        """Close the kept connection unless a round ran since the timer was armed."""
        async with self._round:
            if rounds != self._rounds or self._pipe is None:
                return  # used meanwhile: that round armed its own timer
            await self._disconnect(None)
            self.idle_closes += 1
            self.log.debug("ofd_connection_idle_closed", after=self.idle_close)

    async def run(
        self, stop: asyncio.Event, interval: float = 1.0, backoff_max: float = 60.0
    ) -> None:
        """Send rounds until ``stop`` is set: every ``interval`` seconds, backing off on failure.

        After ``n`` failed rounds in a row the next try waits ``interval × 2ⁿ`` seconds, at most
        ``backoff_max``; a good round resets it. All waits are pacing time. Never raises except
        ``CancelledError``.
        """
        base = max(interval, _MIN_INTERVAL)
        failures = 0
        while not stop.is_set():
            try:
                await self.send_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing may stop the loop: an OFD outage or a drive refusal is retried later.
                failures += 1
                delay = min(max(backoff_max, base), base * 2 ** min(failures, 30))
                event = "ofd_round_failed"
                if isinstance(exc, EmulatorError):
                    self.log.warning(event, reason=str(exc), failures=failures, retry_in=delay)
                else:
                    self.log.exception(event, reason=str(exc), failures=failures, retry_in=delay)
            else:
                if failures:
                    self.log.info("ofd_link_restored", after_failures=failures)
                failures = 0
                delay = base
            await self._wait(stop, delay, wakeable=failures == 0)

    # ------------------------------------------------------------------ one document

    async def _send_next(self, previous: int | None) -> int | None:
        client = self.client
        async with client.exclusive:
            if not self._transport_up:
                await client.call(Command.OFD_TRANSPORT, connected=1)
                self._transport_up = True
            message = await self._read_message()
        if len(message) < CONTAINER_HEADER_SIZE:
            raise TransportError(f"the drive gave a message of {len(message)} bytes, no container")
        fd = int.from_bytes(message[17:20], "big")  # the container header (fn-protocol.md §11.2)
        if fd == previous:
            # The drive kept the document at the head of its queue after accepting its
            # acknowledgement: stop rather than spin (a drive fault, not an OFD one).
            self.log.error("ofd_queue_stuck", fd=fd)
            return None
        reply = await self._exchange(fd, message)
        when = await self._pass_reply(fd, reply)
        self.unacknowledged = None
        if self.on_ack is not None:
            await self.on_ack(fd, when)
        return fd

    async def _read_message(self) -> bytes:
        client = self.client
        length = int((await client.call(Command.OFD_START_READ)).length)
        try:
            message = await self._read_blocks(length)
            await client.call(Command.OFD_FINISH_READ)
        except BaseException:
            # The read is half done: cancel it (24h) so the drive is left with no read open.
            with contextlib.suppress(EmulatorError):
                await client.call(Command.OFD_CANCEL_READ)
            raise
        return message

    async def _read_blocks(self, length: int) -> bytes:
        client = self.client
        message = bytearray()
        while len(message) < length:
            answer = await client.call(
                Command.OFD_READ_BLOCK,
                offset=len(message),
                length=min(client.max_data, length - len(message)),
            )
            if not answer.block:
                raise TransportError(
                    f"the drive gave an empty block at {len(message)} of {length} bytes"
                )
            message += answer.block
        return bytes(message[:length])

    async def _exchange(self, fd: int, message: bytes) -> bytes:
        frame = (
            SessionHeader.for_container(self.fn_serial, len(message), self.ffd).encode() + message
        )
        pipe = self._pipe
        if pipe is not None:
            try:
                return await self._send_on(pipe, fd, frame, kept=True)
            except _StaleConnectionError as exc:
                # The OFD closed the kept connection meanwhile (idle, restarted, one answer per
                # connection): the document goes again on a new one.
                self.log.debug("ofd_connection_renewed", fd=fd, reason=str(exc))
                await self._drop_pipe()
        pipe = await self._connect()
        return await self._send_on(pipe, fd, frame, kept=False)

    async def _connect(self) -> BytePipe:
        try:
            async with asyncio.timeout(self.connect_timeout):
                pipe = await tcp_connect(self.host, self.port, name=f"ofd:{self.address}")
        except TimeoutError:
            raise TransportError(
                f"OFD {self.address}: no connection within {self.connect_timeout:g} s"
            ) from None
        self._pipe = pipe
        return pipe

    async def _send_on(self, pipe: BytePipe, fd: int, frame: bytes, *, kept: bool) -> bytes:
        """One exchange on ``pipe``; a kept one that fails before any answer byte is stale."""
        answered = False
        try:
            await pipe.write(frame)
            self.unacknowledged = fd
            if self.on_sent is not None:
                await self.on_sent(fd)
            async with asyncio.timeout(self.reply_timeout):
                head = bytearray(await pipe.read(SESSION_HEADER_SIZE))
                answered = True
                while len(head) < SESSION_HEADER_SIZE:
                    head += await pipe.read(SESSION_HEADER_SIZE - len(head))
                try:
                    reply = SessionHeader.decode(bytes(head))
                except FramingError as exc:
                    raise TransportError(f"OFD {self.address} answered garbage: {exc}") from exc
                body = await _read_exactly(pipe, reply.body_length)
        except TimeoutError:
            raise TransportError(
                f"OFD {self.address}: no answer within {self.reply_timeout:g} s"
            ) from None
        except TransportError as exc:
            if kept and not answered:
                raise _StaleConnectionError(str(exc)) from exc
            raise
        return body

    async def _pass_reply(self, fd: int, reply: bytes) -> datetime:
        client = self.client
        async with client.exclusive:
            try:
                answer = await client.call(Command.OFD_RECEIPT, data=reply)
            except DriveError as exc:
                self._log_refusal(fd, exc)
                raise
            code = int(answer.ofd_code)
            try:
                stored: Any = await client.call(Command.OFD_ACK_BY_NUMBER, fd=fd)
            except DriveError as exc:
                self.log.warning("ofd_ack_not_stored", fd=fd, reason=str(exc))
                when = self.clock.now()
            else:
                # The drive keeps the operator's 1012 (UTC) as the acknowledgement time.
                when = stored.when.replace(tzinfo=UTC)
        if code:
            self.log.warning("ofd_document_rejected", fd=fd, ofd_code=code)
        else:
            self.log.info("ofd_document_acknowledged", fd=fd)
        return when

    def _log_refusal(self, fd: int, exc: DriveError) -> None:
        reason: int | None = None
        if exc.code == ResultCode.OFD_MESSAGE_REJECTED and exc.data:
            reason = exc.data[0]
        elif exc.code == ResultCode.LIFETIME:
            # fn-protocol.md §14.1: ФН-2016's 05h from 26h means a bad CRC, like 20h + reason 05.
            reason = OfdRejectReason.BAD_CRC
        text = ""
        if reason is not None:
            with contextlib.suppress(ValueError):
                text = OfdRejectReason(reason).name.lower()
        self.log.error(
            "ofd_ack_refused_by_drive",
            fd=fd,
            code=f"{exc.code:02X}h",
            reason=reason,
            reason_name=text,
            detail=str(exc),
        )

    async def _drop_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            await pipe.close()

    async def _disconnect(self, failure: BaseException | None) -> None:
        """Close the OFD connection and, if the drive was told it is up, send ``21h(0)``."""
        await self._drop_pipe()
        if not self._transport_up:
            return
        self._transport_up = False
        try:
            async with self.client.exclusive:
                await self.client.call(Command.OFD_TRANSPORT, connected=0)
        except EmulatorError as exc:
            # Never hide the failure that brought us here; a lone 21h(0) failure is only logged,
            # the next connection starts with 21h(1) anyway.
            self.log.warning("ofd_transport_close_failed", reason=str(exc), after=repr(failure))

    async def _wait(self, stop: asyncio.Event, delay: float, *, wakeable: bool) -> None:
        waiters: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.clock.pace(delay)),
        ]
        if wakeable:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        self._wake.clear()


class _StaleConnectionError(TransportError):
    """A kept connection failed before the OFD began to answer: send on a new one."""


async def _read_exactly(pipe: BytePipe, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        data += await pipe.read(size - len(data))
    return bytes(data)
