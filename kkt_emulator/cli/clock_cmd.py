"""``kkt-emulator clock show|advance``: business time of the tills (and of the cloud).

``clock advance`` moves every distinct clock once (tills of one process share one clock), then the
cloud's clock through the cabinet API when the cloud runs on its own manual clock.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from kkt_emulator.cli.cloud_target import TOKEN
from kkt_emulator.cli.fanout import fan_out, finish, fmt, minutes, pick, run
from kkt_emulator.cli.options import ControlOptions, Target, control_command
from kkt_emulator.cli.output import console
from kkt_emulator.clock import parse_duration
from kkt_emulator.control.client import ControlClient, Outcome
from kkt_emulator.control.topics import DEADLINES, ErrorCode

if TYPE_CHECKING:
    from kkt_emulator.cloud.cabinet_client import CabinetClient

__all__ = ["Deadline", "app"]

app = typer.Typer(help="The emulator clock of the tills (and the cloud).", no_args_is_help=True)


class Deadline(StrEnum):
    """A named deadline for ``clock advance --to``."""

    SHIFT_EXPIRES = "shift.expires"
    OFD_BLOCK = "ofd.block"
    FN_EXPIRES = "fn.expires"
    FN_WARNING = "fn.warning"


assert tuple(d.value for d in Deadline) == DEADLINES


@app.command("show")
@control_command()
def clock_show(*, opts: ControlOptions) -> None:
    """Business time of the till(s) and their deadlines (shift, OFD block, drive expiry)."""
    outcomes = run(fan_out(opts.target(), opts.device, "clock.show", None, opts.timeout))
    if not opts.as_json:
        grid = Table("device", "now (UTC)", "mode", *DEADLINES)
        for outcome in outcomes:
            if outcome.ok:
                deadlines = pick(outcome.result, "deadlines") or {}
                grid.add_row(
                    outcome.device_id[:8],
                    minutes(pick(outcome.result, "now")),
                    fmt(pick(outcome.result, "mode")),
                    *(minutes(deadlines.get(d)) for d in DEADLINES),
                )
        console.print(grid)
    finish(outcomes, opts.as_json, None)


def _cloud_url(cloud: str | None, target: Target) -> str | None:
    if cloud is not None:
        return None if cloud == "none" else cloud
    if target.ready is not None:
        base = target.ready.get("base_url")
        return str(base) if base else None
    return None


def _cabinet(url: str, token: str | None) -> CabinetClient:
    from kkt_emulator.cloud.cabinet_client import CabinetClient  # noqa: PLC0415 - only this command talks to the cloud

    return CabinetClient(url, token)


async def _advance_tills(
    control: ControlClient, ids: list[str], delta: str | None, to: str | None
) -> list[Outcome]:
    """Advance each distinct clock once (``delta``), or each till past its deadline (``to``)."""
    shows = await control.each(ids, "clock.show")
    groups: dict[str, list[str]] = {}
    failed: list[Outcome] = []
    for show in shows:
        if show.ok:
            groups.setdefault(str(pick(show.result, "clockId")), []).append(show.device_id)
        else:
            failed.append(show)

    async def one_clock(members: list[str]) -> list[Outcome]:
        if delta is not None:
            first = await control.outcome(members[0], "clock.advance", {"delta": delta})
            shared = [
                Outcome(d, ok=first.ok, result=first.result, error=first.error) for d in members[1:]
            ]
            for outcome in shared:
                outcome.extra["sharedClockWith"] = members[0]
            return [first, *shared]
        # One by one: a till whose deadline is already behind the shared clock moves nothing.
        return [await control.outcome(d, "clock.advance", {"to": to}) for d in members]

    results = await asyncio.gather(*(one_clock(m) for m in groups.values()))
    by_id = {o.device_id: o for group in results for o in group}
    by_id.update({o.device_id: o for o in failed})
    outcomes = [by_id[d] for d in ids]
    if to is not None and any(o.ok for o in outcomes):
        # Addressing every till: one without that deadline (no open shift …) is not an error
        # as long as some till had it; it is reported as not moved.
        for outcome in outcomes:
            if not outcome.ok and (outcome.error or {}).get("code") == ErrorCode.NO_DEADLINE:
                outcome.ok = True
                outcome.result = {"advanced": 0, "to": to, "note": outcome.error}
                outcome.error = None
    return outcomes


async def _advance_cloud(
    url: str, token: str | None, before: dict[str, Any], advanced: float
) -> dict[str, Any]:
    with _cabinet(url, token) as cabinet:
        if before.get("mode") != "manual":
            return {
                "url": url,
                "advanced": 0,
                "now": before.get("now"),
                "note": f"the cloud's clock is {before.get('mode')}: not advanced",
            }
        after = await asyncio.to_thread(cabinet.clock)
        moved = (
            datetime.fromisoformat(after["now"]) - datetime.fromisoformat(before["now"])
        ).total_seconds()
        # The cabinet reports whole seconds: a cloud that moved (within a second) as far as the
        # tills did shares their clock (one `up` process) and is not advanced a second time.
        remaining = advanced - moved
        if remaining <= 1.0:
            return {"url": url, "advanced": 0, "now": after["now"], "shared": moved > 0}
        answer = await asyncio.to_thread(cabinet.advance, f"{remaining:.3f}")
        return {"url": url, "advanced": remaining, "now": answer["now"], "shared": False}


def _human_seconds(seconds: float) -> str:
    if seconds <= 0:
        return "0 s (already past)"
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return " ".join(parts) or f"{seconds:.3f}s"


def _print_cloud(cloud_info: dict[str, Any]) -> None:
    if cloud_info.get("note"):
        console.print(f"cloud: {cloud_info['note']}")
    elif cloud_info.get("advanced"):
        console.print(
            f"cloud: clock moved {_human_seconds(cloud_info['advanced'])} to {cloud_info['now']}"
        )
    else:
        console.print(f"cloud: shares the tills' clock, now {cloud_info['now']}")


@app.command("advance")
@control_command()
def clock_advance(
    duration: str | None = typer.Argument(None, help="How far: 30d, 15m, 1h30m, 235s."),
    to: Deadline | None = typer.Option(
        None, "--to", help="Jump just past a deadline (1 minute after it)."
    ),
    cloud: str | None = typer.Option(
        None,
        "--cloud",
        help="The cloud's base URL (default: from the ready-file); `none` leaves it alone.",
    ),
    token: str | None = TOKEN,
    *,
    opts: ControlOptions,
) -> None:
    """Move business time forward on the tills (manual clock) and on the cloud.

    Tills sharing a clock move together, once. With `--to`, the clock moves to 1 minute past the
    deadline of each addressed till in turn, so all of them end up past theirs. The cloud is
    advanced through its cabinet API by as much as the tills were, unless it shares their clock.
    """
    if (duration is None) == (to is None):
        raise typer.BadParameter("give a DURATION or --to NAME (one of them)")
    if duration is not None:
        parse_duration(duration)  # refuse a bad duration before anything moves
    target = opts.target()
    cloud_url = _cloud_url(cloud, target)
    deadline = to.value if to is not None else None

    async def work() -> tuple[list[Outcome], dict[str, Any] | None]:
        before = None
        if cloud_url is not None:
            with _cabinet(cloud_url, token) as cabinet:
                before = await asyncio.to_thread(cabinet.clock)
        async with ControlClient(target.url, timeout=opts.timeout) as control:
            tills = await control.tills()
            if opts.device is None and cloud_url is not None and not any(t.online for t in tills):
                ids: list[str] = []  # an installation without tills: the cloud alone
            else:
                ids = control.select(tills, opts.device)
            outcomes = await _advance_tills(control, ids, duration, deadline)
        moved = [float(pick(o.result, "advanced") or 0) for o in outcomes if o.ok]
        if not ids and duration is not None:
            moved = [parse_duration(duration).total_seconds()]
        cloud_info = None
        if before is not None and cloud_url is not None and moved:
            cloud_info = await _advance_cloud(cloud_url, token, before, max(moved))
        return outcomes, cloud_info

    outcomes, cloud_info = run(work())

    def sentence(outcome: Outcome) -> str:
        shared = outcome.extra.get("sharedClockWith")
        if shared:
            return f"till {outcome.device_id}: shares the clock of {shared}, now {fmt(pick(outcome.result, 'now'))}"
        advanced = float(pick(outcome.result, "advanced") or 0)
        note = pick(outcome.result, "note")
        if isinstance(note, dict):
            return f"till {outcome.device_id}: has no {deadline} deadline now"
        return (
            f"till {outcome.device_id}: clock moved {_human_seconds(advanced)} "
            f"to {fmt(pick(outcome.result, 'now'))}"
        )

    if not opts.as_json and cloud_info is not None:
        _print_cloud(cloud_info)
    finish(outcomes, opts.as_json, sentence, {"cloud": cloud_info})
