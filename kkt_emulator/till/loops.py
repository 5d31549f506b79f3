"""The till's three loops and the work of one turn of each.

* **poll** — heartbeat, lease, fiscalise, report; paced by the poll interval (real time), paused by
  power saving or being offline;
* **outbox** — results and OFD acknowledgements to the cloud, removed only when acknowledged;
* **ofd** — signed documents from the drive to the OFD.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kkt_emulator.errors import CloudError, DriveError, TransportError
from kkt_emulator.fn.codes import Command
from kkt_emulator.till.cloud_link import CloudLink
from kkt_emulator.till.context import SimulatedCrash, TillContext
from kkt_emulator.till.fault_control import FaultControl
from kkt_emulator.till.faults import FaultName
from kkt_emulator.till.fiscal import Fiscaliser
from kkt_emulator.till.fleet_watch import FleetWatch, WatchMember
from kkt_emulator.till.shifts import Shifts
from kkt_emulator.till.views import StateViews

if TYPE_CHECKING:
    from kkt_emulator.till.catalog import TillCatalog
    from kkt_emulator.till.cloud_link import Lease
    from kkt_emulator.till.ofd_sender import OfdSender

__all__ = ["ACK_GATHER", "IDLE_SAFETY_NET", "OFD_IDLE_CHECK", "OUTBOX_GATHER", "Loops"]

OFD_IDLE_CHECK = 5.0  # seconds between OFD queue checks when nothing woke the sender
IDLE_SAFETY_NET = 60.0
"""Seconds (pacing) between the outbox and OFD loops' checks of a long-polling till when nothing
woke them (D68): every report and every new document wakes them at once, so an idle fleet's loops
stay asleep; the real till's timer-paced settings (``long_poll`` 0) keep their short checks."""
MIN_LONG_POLL = 0.5
"""The shortest long poll a long-polling till sends when a coalesced heartbeat shortens it."""
OUTBOX_GATHER = 0.1
"""Seconds the outbox loop lets reports gather after a wake-up, so reports queued close together
reach the cloud in one exchange rather than one each."""
ACK_GATHER = 1.0
"""Seconds OFD acknowledgements alone gather before the outbox loop sends them (a poll that
reports results sends the waiting acknowledgements with them, earlier)."""


def _result_fd(payload: dict[str, Any]) -> int | None:
    """The fiscal document number a result report names, if it is a success."""
    info = payload.get("fiscalInfo")
    fd = info.get("fnDocNumber") if isinstance(info, dict) else None
    return fd if isinstance(fd, int) else None


class Loops:
    """Runs a till's poll, outbox and OFD loops.

    Args:
        ctx: the till's shared state.
        link: the cloud link.
        fiscaliser: fiscalises leased documents and reconciles.
        shifts: the till's shifts (their timer closes them on time, not the poll loop).
        views: heartbeats.
        faults: the faults in force (``cloud.drop_result``).
        restart: reopens the till from disk after a simulated crash.
        catalog: the till's catalogue, pulled when a heartbeat names another revision (B16).
    """

    def __init__(
        self,
        ctx: TillContext,
        *,
        link: CloudLink,
        fiscaliser: Fiscaliser,
        shifts: Shifts,
        views: StateViews,
        faults: FaultControl,
        restart: Callable[[str], Awaitable[None]],
        catalog: TillCatalog | None = None,
    ) -> None:
        self.ctx = ctx
        self.link = link
        self.fiscaliser = fiscaliser
        self.shifts = shifts
        self.views = views
        self.faults = faults
        self.restart = restart
        self.catalog = catalog
        self.ofd_sender: OfdSender | None = None
        self._withheld: set[str] = set()
        self._flush_lock = asyncio.Lock()
        self._in_batch = False
        """Whether the poll loop is fiscalising a batch, whose flush at its end reports it."""
        self._watch: WatchMember | None = None
        self._watch_refused = False

    # ------------------------------------------------------------------ poll

    async def poll_once(self) -> int:
        """One poll cycle: reconcile, heartbeat, lease, fiscalise, report. Returns documents handled."""
        ctx = self.ctx
        if ctx.state.journal_entries():
            await self.fiscaliser.reconcile()
        beat = self.views.take_carried()  # the bind's heartbeat (D134): the first poll's
        if self.views.heartbeat_due():  # the state moved on since, or no bind carried one
            beat = await self.views.heartbeat()
        if beat is not None and self.catalog is not None:  # B16: pulled when the revision moved
            await self.catalog.follow(beat.raw.get("catalogRevision"))
        items = await self._lease()
        ctx.counters["polls"] += 1
        if items:
            ctx.state.journal_leased(
                [(i.doc_id, i.lease_id, i.document) for i in items], ctx.clock.now().isoformat()
            )
        self._in_batch = bool(items)
        try:
            for item in items:
                await self._pace_ofd_backlog()
                await self.fiscaliser.fiscalise(item)
        finally:
            self._in_batch = False
        await self.flush_outbox()
        return len(items)

    async def _lease(self) -> list[Lease]:
        """Lease the next documents; a long poll ends early when a setting or a fault changes.

        A long poll waits up to ``long_poll`` seconds on the cloud. When :attr:`TillContext.wake`
        is set meanwhile (power saving, online, a fault, a reset), the wait is abandoned so the
        next cycle sees the change. An answer the cloud may have sent just as the request was
        abandoned is not lost: the next lease asks for this till's own pending leases too
        (``resume``, ``till-protocol.md`` §1). A till of a process's fleet watch (D69) waits
        on the watch instead (:meth:`_lease_watched`); a till on its own, or of a cloud without
        the watch, holds its own long poll, shortened when a coalesced heartbeat falls due (D68).
        """
        ctx = self.ctx
        wait = ctx.settings.long_poll
        if wait <= 0:
            return await self.link.lease(ctx.settings.max_docs)
        member = self._fleet_watch(wait)
        if member is not None:
            return await self._lease_watched(member)
        # Moved counts are reported with a coalesced heartbeat (D68): the wait ends when it is due.
        wait = min(wait, max(self.views.heartbeat_in(), MIN_LONG_POLL))
        lease = asyncio.ensure_future(self.link.lease(ctx.settings.max_docs, wait=wait))
        woken = asyncio.ensure_future(ctx.wake.wait())
        try:
            await asyncio.wait({lease, woken}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            lease.cancel()
            raise
        finally:
            woken.cancel()
        if not lease.done():
            lease.cancel()
        try:
            return await lease  # finished before the cancel took: its documents are ours
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this loop itself is being stopped
            self.link.resume_leases()
            ctx.log.debug("long_poll_abandoned")
            return []

    def _fleet_watch(self, wait: float) -> WatchMember | None:
        """This till's place in its process's fleet watch (D69), joined on first use.

        ``None`` when the till long-polls on its own: a till configured without the watch (a
        small installation, D109), an ``https`` cloud or a test transport, a cloud without
        ``/watch``, or a watch that names as many tills as it may.
        """
        if not self.ctx.config.fleet_watch:
            return None
        member = self._watch
        if member is not None:
            if member.watch.supported is not False and not member.watch.closed:
                return member
            member.close()
            self._watch = None
            if member.watch.supported is False:
                self._watch_refused = True
        if self._watch_refused:
            return None
        watch = FleetWatch.shared(self.link.server) if self.link.plain_http else None
        link, ctx = self.link, self.ctx
        self._watch = (
            None if watch is None else watch.join(lambda: link.token, ctx.polling_allowed, wait)
        )
        self._watch_refused = self._watch is None
        return self._watch

    async def _lease_watched(self, member: WatchMember) -> list[Lease]:
        """Lease, and when nothing is there wait for the fleet watch to say there is (D69).

        The watch's signal is cleared before the lease, so one that comes during the lease is
        kept. The wait also ends on :attr:`TillContext.wake` (a setting or a fault changed) and
        when a heartbeat falls due (D68); a signal from the watch is followed by a lease at once.
        """
        ctx = self.ctx
        member.ready.clear()
        items = await self.link.lease(ctx.settings.max_docs)
        if items:
            return items
        ctx.trim_held()  # idle until the watch speaks: a held till's caches are not needed (D133)
        member.listen()
        ready = asyncio.ensure_future(member.ready.wait())
        woken = asyncio.ensure_future(ctx.wake.wait())
        try:
            await asyncio.wait(
                {ready, woken},
                timeout=max(self.views.heartbeat_in(), MIN_LONG_POLL),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            woken.cancel()
        if member.ready.is_set() and not ctx.wake.is_set():
            member.ready.clear()
            return await self.link.lease(ctx.settings.max_docs)
        return []

    def watch_pending(self) -> bool:
        """Whether this till is to join a fleet watch whose cloud has not answered yet (D116)."""
        if not self.ctx.config.fleet_watch or self._watch_refused:
            return False
        return self._watch is None or self._watch.watch.supported is None

    def watch_member(self) -> WatchMember | None:
        """This till's place in a fleet watch that the cloud serves (D116), if it has one."""
        member = self._watch
        if member is None or member.watch.supported is not True or member.watch.closed:
            return None
        return member

    def leave_fleet_watch(self) -> None:
        """Leave the fleet watch (the poll loop ends)."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._watch_refused = False

    async def _report_going_quiet(self) -> None:
        """A till that stops polling with a network (power saving) tells the cloud, once (D68).

        The heartbeat that says ``powerSaving`` is the last one until the till polls again, so
        the cabinet shows why it went quiet (support-cases.md §4). Offline, nothing can be sent;
        the first poll back reports the change.
        """
        ctx = self.ctx
        if not ctx.online() or ctx.store is None or not self.views.state_changed():
            return
        try:
            await self.views.heartbeat()
        except (TransportError, CloudError, DriveError) as exc:
            ctx.last_error = str(exc)
            ctx.log.warning("quiet_heartbeat_failed", error=str(exc))

    async def _pace_ofd_backlog(self) -> None:
        """Slow down while the drive holds more unsent documents than the profile allows.

        support-cases.md §4: an unpaid OFD rarely affects the shop queue, but it does at about
        700–800 documents waiting. Above ``quirks.ofd_backlog_threshold`` every document waits
        ``quirks.ofd_backlog_slowdown_s`` (pacing, real time) and one ``warning`` is published each
        time the backlog crosses the threshold.
        """
        ctx = self.ctx
        quirks = ctx.profile.quirks
        try:
            unsent = (await ctx.fn.call(Command.OFD_STATUS)).unsent
        except (DriveError, TransportError):
            return  # the document's own drive commands will report the drive's trouble
        if unsent <= quirks.ofd_backlog_threshold:
            if ctx.backlog_slowed:
                ctx.backlog_slowed = False
                ctx.emit("state.changed", {"reason": "ofd.backlog.cleared", "unsent": unsent})
            return
        if not ctx.backlog_slowed:
            ctx.backlog_slowed = True
            ctx.log.warning(
                "ofd_backlog_slowdown", unsent=unsent, threshold=quirks.ofd_backlog_threshold
            )
            ctx.emit(
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
        ctx.counters["backlogPaced"] += 1
        await ctx.clock.pace(quirks.ofd_backlog_slowdown_s)

    async def poll_loop(self) -> None:
        """Poll until the till stops; back off while the cloud or the link fails."""
        try:
            await self._poll_loop()
        finally:
            self.leave_fleet_watch()

    async def _poll_loop(self) -> None:
        ctx = self.ctx
        backoff = 0.5
        while not ctx.stopping.is_set():
            ctx.wake.clear()  # a change from here on ends this cycle's long poll (see _lease)
            if not ctx.polling_allowed():
                await self._report_going_quiet()
                await ctx.pause(ctx.settings.poll_interval)
                continue
            try:
                handled = await self.poll_once()
                backoff = 0.5
                ctx.last_error = None
            except SimulatedCrash as exc:
                await self.restart(str(exc))
                continue
            except (TransportError, CloudError) as exc:
                ctx.last_error = str(exc)
                ctx.log.warning("poll_failed", error=str(exc))
                await ctx.pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception as exc:  # a bug must not stop the till for good: logged
                ctx.last_error = f"{type(exc).__name__}: {exc}"
                ctx.log.exception("poll_crashed")
                await ctx.pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if handled:
                continue  # more may be waiting: poll again at once
            if ctx.settings.long_poll <= 0:
                await ctx.pause(ctx.settings.poll_interval)

    def _idle_check(self, realistic: float) -> float:
        """Seconds between a loop's checks when nothing woke it: short only for the real poll."""
        return realistic if self.ctx.settings.long_poll <= 0 else max(realistic, IDLE_SAFETY_NET)

    # ------------------------------------------------------------------ outbox

    async def flush_outbox(self) -> int:
        """Send waiting results and OFD acknowledgements; returns how many the cloud took."""
        if not self.ctx.online():
            return 0
        async with self._flush_lock:
            return await self._flush_outbox()

    async def _flush_outbox(self) -> int:
        state = self.ctx.state
        results = state.outbox("result")
        dropping = self.ctx.faults.get(FaultName.CLOUD_DROP_RESULT)
        if dropping is not None and results:
            # The reports are lost on the way: the server hears nothing until the fault clears.
            for entry in results:
                if entry.key not in self._withheld and dropping.roll():
                    self._withheld.add(entry.key)
                    self.faults.struck(FaultName.CLOUD_DROP_RESULT)
            results = [e for e in results if e.key not in self._withheld]
        elif self._withheld:
            self._withheld.clear()
        acks = state.outbox("ofd")
        if acks:
            # An acknowledgement never overtakes its document's result (till-protocol.md §2);
            # it may travel with it: the cloud applies the results of an exchange first.
            held = state.unreported_fds() - {_result_fd(e.payload) for e in results}
            acks = [e for e in acks if e.payload.get("fnDocNumber") not in held]
        if not results and not acks:
            return 0
        # One exchange for everything waiting (D63), removed only once the cloud answered.
        await self.link.outbox([e.payload for e in results], [e.payload for e in acks])
        state.delivered(results + acks)
        return len(results) + len(acks)

    async def outbox_loop(self) -> None:
        """Flush the outbox when reports are queued, or every poll interval; back off on failure.

        Reports queued close together go in one exchange: after a wake-up the loop waits
        :data:`OUTBOX_GATHER` (pacing) first, :data:`ACK_GATHER` when only OFD acknowledgements
        wait, and the poll loop's own flush after a batch of documents takes every
        acknowledgement waiting by then as well.
        """
        ctx = self.ctx
        backoff = 0.5
        while not ctx.stopping.is_set():
            try:
                ctx.outbox_wake.clear()  # anything queued during the flush wakes the next turn
                await self.flush_outbox()
                backoff = 0.5
                if await ctx.outbox_pause(self._idle_check(max(ctx.settings.poll_interval, 0.2))):
                    await ctx.clock.pace(OUTBOX_GATHER)
                    store = ctx.store
                    if self._in_batch or store is None or not store.outbox("result", limit=1):
                        # A poll's batch reports its own results at its end; acknowledgements
                        # alone change no shop's status: they wait longer, and a poll's flush in
                        # between takes them with its results.
                        await ctx.clock.pace(ACK_GATHER - OUTBOX_GATHER)
            except (TransportError, CloudError) as exc:
                ctx.log.warning("outbox_flush_failed", error=str(exc))
                await ctx.pause(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:  # e.g. the store reopened under a flush: logged, retried
                ctx.log.exception("outbox_flush_crashed")
                await ctx.pause(backoff)
                backoff = min(backoff * 2, 30.0)

    # ------------------------------------------------------------------ OFD

    async def report_missed_acks(self) -> int:
        """Queue acknowledgements the drive holds but the till never queued; returns how many.

        A till killed after the drive took the OFD's receipt (26h) and before the outbox write
        has the acknowledgement only in the drive; the OFD will not send it again. On start the
        drive's OFD status says which documents are acknowledged (all below the first unsent
        one), and every one above the till's mark is reported now (till-protocol.md §2).
        """
        ctx = self.ctx
        try:
            ofd = await ctx.fn.call(Command.OFD_STATUS)
            acked_through = ofd.first_fd - 1 if ofd.unsent else (await ctx.fn.status()).last_fd
        except (DriveError, TransportError) as exc:
            # The mark stays where it is, so the next start reports what this one could not.
            ctx.log.warning("ofd_acks_not_checked", error=str(exc))
            return 0
        mark = ctx.state.ofd_acked_mark(ctx.fn_serial)
        if mark is None:  # first start with this drive, or a state from before the mark
            await ctx.state.set_ofd_acked_mark_synced(ctx.fn_serial, acked_through)  # D118
            return 0
        missed = range(mark + 1, acked_through + 1)
        for fd in missed:
            ctx.state.queue_ofd_ack(
                fd, {"fnDocNumber": fd, "fnNumber": ctx.fn_serial, "state": "acknowledged"}
            )
        if missed:
            ctx.log.warning("ofd_acks_recovered", first=missed.start, last=missed.stop - 1)
        return len(missed)

    async def _on_ofd_ack(self, fd: int, when: datetime) -> None:
        ctx = self.ctx
        ctx.state.queue_ofd_ack(
            fd,
            {
                "fnDocNumber": fd,
                "fnNumber": ctx.fn_serial,
                "state": "acknowledged",
                "at": when.replace(tzinfo=UTC).isoformat()
                if when.tzinfo is None
                else when.isoformat(),
            },
        )
        ctx.emit("ofd.acknowledged", {"fnDocNumber": fd})
        ctx.outbox_wake.set()

    async def _on_ofd_sent(self, fd: int) -> None:
        self.ctx.emit("ofd.sent", {"fnDocNumber": fd})

    def _report_unacknowledged(self, sender: OfdSender) -> None:
        # A document written to the OFD in a round that failed before its acknowledgement is
        # reported as sent, so the cabinet can show «sent, not yet acknowledged». Only then: an
        # acknowledged one is reported at once, which would replace a «sent» report anyway (same
        # outbox key), and the cloud never moves the OFD state backwards.
        fd, sender.unacknowledged = sender.unacknowledged, None
        if fd is not None:
            ctx = self.ctx
            report = {"fnDocNumber": fd, "fnNumber": sender.fn_serial, "state": "sent"}
            ctx.state.queue_ofd_ack(fd, report)

    async def ofd_loop(self) -> None:
        """Move signed documents to the OFD; offline (setting or fault) pauses it."""
        from kkt_emulator.till.ofd_sender import OfdSender  # noqa: PLC0415 - optional part

        ctx = self.ctx
        address = ctx.config.ofd_address
        assert address is not None
        backoff = 0.0
        sender: OfdSender | None = None
        gate = ctx.config.ofd_gate
        if gate is not None and not gate.is_set():
            await gate.wait()  # the fleet is still starting (D119)
        first_round = True
        try:
            while not ctx.stopping.is_set():
                ctx.ofd_wake.clear()  # a wake-up from now on cuts the next pause short
                if not ctx.online() or ctx.client is None:
                    if sender is not None:  # no network: the kept OFD connection ends too
                        await sender.close()
                        sender = None
                    await ctx.ofd_pause(1.0)
                    continue
                if sender is None or sender.client is not ctx.client:
                    if sender is not None:  # another drive (or link): a new sender, new header
                        await sender.close()
                    sender = OfdSender(
                        ctx.fn,
                        ctx.clock,
                        address,
                        ffd=ctx.profile.ffd_version,
                        fn_serial=ctx.fn_serial,
                        on_sent=self._on_ofd_sent,
                        on_ack=self._on_ofd_ack,
                    )
                    self.ofd_sender = sender
                try:
                    try:
                        await sender.send_once()
                    finally:
                        if first_round:  # the databases held open for it may close (D119)
                            first_round = False
                            ctx.release_stores()
                    backoff = 0.0
                    # Every new document wakes this loop at once; the timer is only a safety net,
                    # and a long one keeps an idle fleet cheap (200 tills polled the drive 200
                    # times a second).
                    await ctx.ofd_pause(self._idle_check(OFD_IDLE_CHECK))
                except (TransportError, DriveError) as exc:
                    self._report_unacknowledged(sender)
                    backoff = min(max(backoff * 2, 0.5), 30.0)
                    ctx.log.info("ofd_send_failed", error=str(exc), retry_in=backoff)
                    await ctx.ofd_pause(backoff)
                except Exception:  # a bug must not stop OFD delivery for good: logged
                    self._report_unacknowledged(sender)
                    backoff = min(max(backoff * 2, 0.5), 30.0)
                    ctx.log.exception("ofd_send_crashed", retry_in=backoff)
                    await ctx.ofd_pause(backoff)
        finally:
            if sender is not None:
                await sender.close()
