"""``kkt-emulator status``: drive, shift, queue, settings, faults and clock of every till.

The ``upload`` column is the till's upload queue (``orders-and-backoffice.md`` B7): how many of
its own documents wait for the cloud, how long the oldest has waited (business time) and why —
support's «нет ли очереди чеков на сервер» when МойСклад misses sales.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table

from kkt_emulator.cli.fanout import fmt, pick, raise_failures, run
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.cli.output import console, emit
from kkt_emulator.control.client import ControlClient, Outcome

if TYPE_CHECKING:
    import typer

__all__ = ["register", "status"]


def fault_names(faults: Any) -> list[str]:
    """The names of the armed faults, whether a till reports them as a mapping or a list."""
    if isinstance(faults, dict):
        return sorted(str(k) for k in faults)
    if isinstance(faults, list):
        return [str(f.get("name", f)) if isinstance(f, dict) else str(f) for f in faults]
    return []


def _shift_text(shift: Any) -> str:
    if not isinstance(shift, dict):
        return "—"
    number = pick(shift, "number")
    if pick(shift, "open"):
        return f"#{number} open, {pick(shift, 'receipts') or 0} receipts"
    return f"#{number} closed" if number else "none yet"


def _settings_text(settings: Any) -> str:
    if not isinstance(settings, dict):
        return "—"
    words = []
    if pick(settings, "power_saving"):
        words.append("power saving")
    if pick(settings, "online") is False:
        words.append("offline")
    words.append(f"poll {fmt(pick(settings, 'poll_interval'))} s")
    return ", ".join(words)


def _age(seconds: float) -> str:
    """A wait in the largest whole unit: ``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    whole = max(int(seconds), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if whole >= size:
            return f"{whole // size} {unit}"
    return f"{whole} s"


def upload_text(state: Any) -> str:
    """The upload queue in a few words: ``empty``, or ``4, oldest 12 min (upload blocked …)``."""
    queue = pick(state, "uploadQueue")
    if not isinstance(queue, dict):
        return "—"
    size = queue.get("size")
    if size is None:
        return "unknown"
    text = "empty" if size == 0 else str(size)
    oldest, now = queue.get("oldestAt"), pick(state, "clock", "now")
    if size and isinstance(oldest, str) and isinstance(now, str):
        try:
            waited = datetime.fromisoformat(now) - datetime.fromisoformat(oldest)
        except ValueError:
            waited = None
        if waited is not None:
            text += f", oldest {_age(waited.total_seconds())}"
    if queue.get("lastError"):
        text += f" ({queue['lastError']})"
    return text


def _clock_text(state: Any) -> str:
    return f"{fmt(pick(state, 'clock', 'now'))} ({fmt(pick(state, 'clock', 'mode'))})"


async def _collect(opts: ControlOptions, url: str) -> list[Outcome]:
    """Ask the addressed tills (every online one by default); the offline ones as last seen."""
    async with ControlClient(url, timeout=opts.timeout) as control:
        tills = await control.tills()
        if opts.device is not None:
            ids = control.select(tills, opts.device)
        else:
            ids = [t.device_id for t in tills if t.online]
        outcomes = {o.device_id: o for o in await control.each(ids, "status")}
        shown = [t for t in tills if t.device_id in outcomes or opts.device is None]
        result = []
        for till in shown:
            outcome = outcomes.get(till.device_id) or Outcome(
                till.device_id, ok=True, result=till.state
            )
            outcome.extra["status"] = "online" if till.online else "offline"
            if till.process is not None:
                outcome.extra["process"] = till.process
            result.append(outcome)
        return result


def _table(outcomes: list[Outcome], url: str) -> None:
    if not outcomes:
        console.print(f"no tills on {url}")
        return
    states = [o.result if o.ok else None for o in outcomes]
    times = {_clock_text(s) for s in states}
    one_time = len(times) == 1
    # Devices show as 8-character prefixes (--device takes a unique prefix); --json has all.
    grid = Table(
        "device",
        "status",
        "shift",
        "unsent",
        "upload",
        "settings",
        "faults",
        *([] if one_time else ["business time"]),
        caption=f"business time {times.pop()}" if one_time else None,
    )
    for outcome, state in zip(outcomes, states, strict=True):
        grid.add_row(
            outcome.device_id[:8],
            str(outcome.extra.get("status")) + ("" if outcome.ok else " (no answer)"),
            _shift_text(pick(state, "shift")),
            fmt(pick(state, "drive", "unsent")),
            upload_text(state),
            _settings_text(pick(state, "settings")),
            ", ".join(fault_names(pick(state, "faults"))) or "—",
            *([] if one_time else [_clock_text(state)]),
        )
    console.print(grid)


@control_command()
def status(*, opts: ControlOptions) -> None:
    """The state of every till (or one): drive, shift, queue, settings, faults, clock."""
    target = opts.target()
    outcomes = run(_collect(opts, target.url))
    emit(
        {"tills": [o.to_json() for o in outcomes]},
        opts.as_json,
        lambda _: _table(outcomes, target.url),
    )
    raise_failures(outcomes, one=opts.device is not None)


def register(app: typer.Typer) -> None:
    """Add ``status`` to the command line."""
    app.command("status")(status)
