"""The control plane from a terminal: ``status``, ``set``, ``fault``, ``clock`` and the rest.

The commands are ``status``, ``set``, ``fault inject|clear|list``, ``clock show|advance``,
``shift close``, ``sell``, ``fn replace``, ``snapshot`` and ``restore``. Each command goes over MQTT (``till-protocol.md`` §3) to one till (``--device ID`` or a unique
prefix of it) or to every online till, finding the broker in the ready-file of a running
``kkt-emulator up`` (``--ready-file``, ``$KKT_READY_FILE`` or the default state directory) or in
``--mqtt URL``. People get a table or a sentence per till; ``--json`` prints
``{"tills": [{"deviceId", "ok", "result" | "error"}, …]}``. A till that refuses, or a broker that
cannot be reached, ends the command with ``error: …`` and exit code 2.

``clock advance`` moves every distinct clock once (tills of one process share one clock), then the
cloud's clock through the cabinet API when the cloud runs on its own manual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from kkt_emulator.cli.output import JSON_OPTION, console, emit
from kkt_emulator.cli.ready import READY_OPTION, load_ready
from kkt_emulator.clock import parse_duration
from kkt_emulator.control.client import ControlClient, Outcome, TillInfo
from kkt_emulator.control.topics import DEADLINES, CommandError, ErrorCode
from kkt_emulator.errors import ConfigError

__all__ = ["parse_params", "parse_roubles", "parse_settings", "register"]

_T = TypeVar("_T")

DEVICE: Any = typer.Option(
    None,
    "--device",
    "-d",
    help="One till: its device id or a unique prefix of it (default: every online till).",
)
MQTT: Any = typer.Option(
    None,
    "--mqtt",
    envvar="KKT_MQTT_URL",
    help="The broker, mqtt://host:port (default: the one in the ready-file).",
)
TIMEOUT: Any = typer.Option(
    10.0, "--timeout", min=0.1, help="Seconds to wait for each till's answer."
)

fault_app = typer.Typer(
    help="Inject, clear and list faults (till-protocol.md §4).", no_args_is_help=True
)
clock_app = typer.Typer(
    help="The emulator clock of the tills (and the cloud).", no_args_is_help=True
)
shift_app = typer.Typer(help="The till's shift.", no_args_is_help=True)


class Deadline(StrEnum):
    """A named deadline for ``clock advance --to``."""

    SHIFT_EXPIRES = "shift.expires"
    OFD_BLOCK = "ofd.block"
    FN_EXPIRES = "fn.expires"
    FN_WARNING = "fn.warning"


assert tuple(d.value for d in Deadline) == DEADLINES


# ---------------------------------------------------------------------------------------- plumbing


@dataclass(slots=True)
class _Target:
    url: str
    ready: dict[str, Any] | None


def _target(mqtt: str | None, ready_file: Path | None) -> _Target:
    """The broker URL, and the ready-file when it is the source of truth."""
    if mqtt is not None:
        ready = load_ready(ready_file) if ready_file is not None else None
        return _Target(mqtt, ready)
    ready = load_ready(ready_file)
    url = ready.get("mqtt")
    if not url:
        raise ConfigError(
            "the running installation has no MQTT control plane (it was started with --mqtt none "
            "or without mosquitto); restart it with --mqtt spawn, or pass --mqtt URL"
        )
    return _Target(str(url), ready)


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


async def _fan_out(
    target: _Target,
    device: str | None,
    command: str,
    args: dict[str, Any] | None,
    timeout: float,  # noqa: ASYNC109 - passed on to each request
) -> list[Outcome]:
    async with ControlClient(target.url, timeout=timeout) as control:
        ids = control.select(await control.tills(), device)
        return await control.each(ids, command, args)


def _finish(
    outcomes: list[Outcome],
    as_json: bool,
    sentence: Callable[[Outcome], str] | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print outcomes (a sentence per till, unless the caller printed a table: ``None``).

    Refusals become ``error: …`` lines and exit code 2.
    """
    data = {"tills": [o.to_json() for o in outcomes], **(extra or {})}

    def human(_: Any) -> None:
        for outcome in outcomes:
            if outcome.ok and sentence is not None:
                console.print(sentence(outcome))

    emit(data, as_json, human)
    failures = [o for o in outcomes if not o.ok]
    if len(outcomes) == 1 and failures:
        error = failures[0].error or {}
        raise CommandError(error.get("code", ""), error.get("message", ""), failures[0].device_id)
    if failures:
        for failure in failures:
            message = (failure.error or {}).get("message", "")
            typer.echo(f"error: till {failure.device_id}: {message}", err=True)
        raise typer.Exit(2)


def _simple(
    command: str,
    args: dict[str, Any] | None,
    sentence: Callable[[Outcome], str],
    *,
    device: str | None,
    mqtt: str | None,
    ready_file: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    target = _target(mqtt, ready_file)
    outcomes = _run(_fan_out(target, device, command, args, timeout))
    _finish(outcomes, as_json, sentence)


def _pick(data: Any, *path: str) -> Any:
    """``data[a][b]…`` tolerating absent keys and camelCase/snake_case spellings."""
    for key in path:
        if not isinstance(data, dict):
            return None
        camel = key.split("_")[0] + "".join(w.title() for w in key.split("_")[1:])
        data = data.get(key, data.get(camel))
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "—"
    return str(value)


def _minutes(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` (UTC, as the tills report it) for narrow tables."""
    if not isinstance(value, str):
        return _fmt(value)
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def _generic(outcome: Outcome) -> str:
    return f"till {outcome.device_id}: {_fmt(outcome.result)}"


def _fault_names(faults: Any) -> list[str]:
    if isinstance(faults, dict):
        return sorted(str(k) for k in faults)
    if isinstance(faults, list):
        return [str(f.get("name", f)) if isinstance(f, dict) else str(f) for f in faults]
    return []


# ------------------------------------------------------------------------------------------ status


def _shift_text(shift: Any) -> str:
    if not isinstance(shift, dict):
        return "—"
    number = _pick(shift, "number")
    if _pick(shift, "open"):
        return f"#{number} open, {_pick(shift, 'receipts') or 0} receipts"
    return f"#{number} closed" if number else "none yet"


def _settings_text(settings: Any) -> str:
    if not isinstance(settings, dict):
        return "—"
    words = []
    if _pick(settings, "power_saving"):
        words.append("power saving")
    if _pick(settings, "online") is False:
        words.append("offline")
    words.append(f"poll {_fmt(_pick(settings, 'poll_interval'))} s")
    return ", ".join(words)


def status(
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """The state of every till (or one): drive, shift, queue, settings, faults, clock."""
    target = _target(mqtt, ready_file)

    async def collect() -> tuple[list[TillInfo], list[Outcome]]:
        async with ControlClient(target.url, timeout=timeout) as control:
            tills = await control.tills()
            if device is not None:
                ids = control.select(tills, device)
            else:
                ids = [t.device_id for t in tills if t.online]
            outcomes = {o.device_id: o for o in await control.each(ids, "status")}
            shown = [t for t in tills if t.device_id in outcomes or device is None]
            result = []
            for till in shown:
                outcome = outcomes.get(till.device_id) or Outcome(
                    till.device_id, ok=True, result=till.state
                )
                outcome.extra["status"] = "online" if till.online else "offline"
                result.append(outcome)
            return shown, result

    _, outcomes = _run(collect())

    def table(_: Any) -> None:
        if not outcomes:
            console.print(f"no tills on {target.url}")
            return
        states = [o.result if o.ok else None for o in outcomes]
        times = {
            f"{_fmt(_pick(s, 'clock', 'now'))} ({_fmt(_pick(s, 'clock', 'mode'))})" for s in states
        }
        one_time = len(times) == 1
        # Devices show as 8-character prefixes (--device takes a unique prefix); --json has all.
        grid = Table(
            "device",
            "status",
            "shift",
            "unsent",
            "settings",
            "faults",
            *([] if one_time else ["business time"]),
            caption=f"business time {times.pop()}" if one_time else None,
        )
        for outcome, state in zip(outcomes, states, strict=True):
            clock = f"{_fmt(_pick(state, 'clock', 'now'))} ({_fmt(_pick(state, 'clock', 'mode'))})"
            grid.add_row(
                outcome.device_id[:8],
                str(outcome.extra.get("status")) + ("" if outcome.ok else " (no answer)"),
                _shift_text(_pick(state, "shift")),
                _fmt(_pick(state, "drive", "unsent")),
                _settings_text(_pick(state, "settings")),
                ", ".join(_fault_names(_pick(state, "faults"))) or "—",
                *([] if one_time else [clock]),
            )
        console.print(grid)

    emit({"tills": [o.to_json() for o in outcomes]}, as_json, table)
    failures = [o for o in outcomes if not o.ok]
    if failures and device is not None:
        error = failures[0].error or {}
        raise CommandError(error.get("code", ""), error.get("message", ""), failures[0].device_id)
    for failure in failures:
        typer.echo(
            f"error: till {failure.device_id}: {(failure.error or {}).get('message')}", err=True
        )
    if failures:
        raise typer.Exit(2)


# --------------------------------------------------------------------------------------------- set

_BOOL_SETTINGS = ("power_saving", "online")
_SECONDS_SETTINGS = ("poll_interval", "long_poll")
_SETTINGS = (*_BOOL_SETTINGS, *_SECONDS_SETTINGS, "shift_mode")
_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``["power-saving", "on", "poll-interval", "2"]`` → ``{"power_saving": True, …}``.

    Raises:
        typer.BadParameter: an odd count, an unknown setting or a bad value.
    """
    if not pairs or len(pairs) % 2:
        raise typer.BadParameter("give KEY VALUE pairs, e.g. `set power-saving on`")
    values: dict[str, Any] = {}
    for raw_key, raw in zip(pairs[::2], pairs[1::2], strict=True):
        key = raw_key.strip().lower().replace("-", "_")
        text = raw.strip().lower()
        if key in _BOOL_SETTINGS:
            if text not in (*_TRUE, *_FALSE):
                raise typer.BadParameter(f"{raw_key} takes on or off, not {raw!r}")
            values[key] = text in _TRUE
        elif key in _SECONDS_SETTINGS:
            try:
                values[key] = parse_duration(text).total_seconds()
            except ConfigError as exc:
                raise typer.BadParameter(f"{raw_key}: {exc}") from exc
        elif key == "shift_mode":
            values[key] = text
        else:
            known = ", ".join(k.replace("_", "-") for k in _SETTINGS)
            raise typer.BadParameter(f"unknown setting {raw_key!r} (known: {known})")
    return values


def set_settings(
    pairs: list[str] = typer.Argument(
        ...,
        metavar="KEY VALUE…",
        help="power-saving on|off, online on|off, poll-interval SECONDS, long-poll SECONDS, "
        "shift-mode shared|separate.",
    ),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change till settings, e.g. `set power-saving on` or `set online off poll-interval 2`."""
    values = parse_settings(pairs)

    def sentence(outcome: Outcome) -> str:
        settings = _pick(outcome.result, "settings") or {}
        shown = ", ".join(
            f"{k.replace('_', '-')} {_fmt(_pick(settings, k) if _pick(settings, k) is not None else v)}"
            for k, v in values.items()
        )
        return f"till {outcome.device_id}: {shown}"

    _simple(
        "set",
        values,
        sentence,
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


# ------------------------------------------------------------------------------------------ faults


def _param_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["delay_ms=500", "point=after_commit"]`` → ``{"delay_ms": 500, "point": "after_commit"}``.

    Raises:
        typer.BadParameter: an item without ``=``.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param takes KEY=VALUE, not {item!r}")
        params[key.strip().replace("-", "_")] = _param_value(value.strip())
    return params


@fault_app.command("inject")
def fault_inject(
    name: str = typer.Argument(..., help="A fault of the catalogue, e.g. fn.storage_exhausted."),
    count: int | None = typer.Option(None, "--count", min=1, help="Apply N times, then clear."),
    probability: float | None = typer.Option(
        None, "--probability", min=0.0, max=1.0, help="Chance of applying at each occasion."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed: the same failures on every run."),
    param: list[str] = typer.Option(
        [], "--param", help="Fault parameter KEY=VALUE (repeatable): delay_ms, code, point."
    ),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Arm a fault on the till(s); it stays in the state until cleared (or its count runs out)."""
    args: dict[str, Any] = {"name": name}
    if count is not None:
        args["count"] = count
    if probability is not None:
        args["probability"] = probability
    if seed is not None:
        args["seed"] = seed
    if param:
        args["params"] = parse_params(param)
    how = [
        f"count {count}" if count else "",
        f"probability {probability:g}" if probability is not None else "",
    ]
    how += [f"seed {seed}" if seed is not None else ""]
    how += [f"{k}={v}" for k, v in args.get("params", {}).items()]
    detail = ", ".join(h for h in how if h)
    _simple(
        "fault.inject",
        args,
        lambda o: f"till {o.device_id}: fault {name} armed" + (f" ({detail})" if detail else ""),
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


@fault_app.command("clear")
def fault_clear(
    name: str | None = typer.Argument(None, help="The fault to clear (default: every fault)."),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Clear one fault, or every fault."""

    def sentence(outcome: Outcome) -> str:
        cleared = _pick(outcome.result, "cleared") or []
        if not cleared:
            return f"till {outcome.device_id}: no fault to clear"
        return f"till {outcome.device_id}: cleared {', '.join(map(str, cleared))}"

    _simple(
        "fault.clear",
        {"name": name} if name else {},
        sentence,
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


@fault_app.command("list")
def fault_list(
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """The faults armed on the till(s)."""
    target = _target(mqtt, ready_file)
    outcomes = _run(_fan_out(target, device, "fault.list", None, timeout))
    if not as_json:
        grid = Table("device", "fault", "details")
        for outcome in outcomes:
            for fault in _pick(outcome.result, "faults") or []:
                if isinstance(fault, dict):
                    rest = {k: v for k, v in fault.items() if k != "name"}
                    grid.add_row(outcome.device_id[:8], str(fault.get("name")), _fmt(rest))
                else:
                    grid.add_row(outcome.device_id[:8], str(fault), "")
        if grid.row_count:
            console.print(grid)
        else:
            console.print("no faults armed")
    _finish(outcomes, as_json, None)


# ------------------------------------------------------------------------------------------- clock


@clock_app.command("show")
def clock_show(
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Business time of the till(s) and their deadlines (shift, OFD block, drive expiry)."""
    target = _target(mqtt, ready_file)
    outcomes = _run(_fan_out(target, device, "clock.show", None, timeout))
    if not as_json:
        grid = Table("device", "now (UTC)", "mode", *DEADLINES)
        for outcome in outcomes:
            if outcome.ok:
                deadlines = _pick(outcome.result, "deadlines") or {}
                grid.add_row(
                    outcome.device_id[:8],
                    _minutes(_pick(outcome.result, "now")),
                    _fmt(_pick(outcome.result, "mode")),
                    *(_minutes(deadlines.get(d)) for d in DEADLINES),
                )
        console.print(grid)
    _finish(outcomes, as_json, None)


def _cloud_url(cloud: str | None, target: _Target) -> str | None:
    if cloud is not None:
        return None if cloud == "none" else cloud
    if target.ready is not None:
        base = target.ready.get("base_url")
        return str(base) if base else None
    return None


async def _advance_tills(
    control: ControlClient, ids: list[str], delta: str | None, to: str | None
) -> list[Outcome]:
    """Advance each distinct clock once (``delta``), or each till past its deadline (``to``)."""
    shows = await control.each(ids, "clock.show")
    groups: dict[str, list[str]] = {}
    failed: list[Outcome] = []
    for show in shows:
        if show.ok:
            groups.setdefault(str(_pick(show.result, "clockId")), []).append(show.device_id)
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
    from kkt_emulator.cloud.cabinet_client import CabinetClient  # noqa: PLC0415 - only this command talks to the cloud

    with CabinetClient(url, token) as cabinet:
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


@clock_app.command("advance")
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
    token: str | None = typer.Option(
        None, "--token", envvar="KKT_CABINET_TOKEN", help="Cabinet token, if the cloud has one."
    ),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
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
    target = _target(mqtt, ready_file)
    cloud_url = _cloud_url(cloud, target)
    deadline = to.value if to is not None else None

    async def work() -> tuple[list[Outcome], dict[str, Any] | None]:
        before = None
        if cloud_url is not None:
            from kkt_emulator.cloud.cabinet_client import CabinetClient  # noqa: PLC0415 - only this command talks to the cloud

            with CabinetClient(cloud_url, token) as cabinet:
                before = await asyncio.to_thread(cabinet.clock)
        async with ControlClient(target.url, timeout=timeout) as control:
            tills = await control.tills()
            if device is None and cloud_url is not None and not any(t.online for t in tills):
                ids: list[str] = []  # an installation without tills: the cloud alone
            else:
                ids = control.select(tills, device)
            outcomes = await _advance_tills(control, ids, duration, deadline)
        moved = [float(_pick(o.result, "advanced") or 0) for o in outcomes if o.ok]
        if not ids and duration is not None:
            moved = [parse_duration(duration).total_seconds()]
        cloud_info = None
        if before is not None and cloud_url is not None and moved:
            cloud_info = await _advance_cloud(cloud_url, token, before, max(moved))
        return outcomes, cloud_info

    outcomes, cloud_info = _run(work())

    def sentence(outcome: Outcome) -> str:
        shared = outcome.extra.get("sharedClockWith")
        if shared:
            return f"till {outcome.device_id}: shares the clock of {shared}, now {_fmt(_pick(outcome.result, 'now'))}"
        advanced = float(_pick(outcome.result, "advanced") or 0)
        note = _pick(outcome.result, "note")
        if isinstance(note, dict):
            return f"till {outcome.device_id}: has no {deadline} deadline now"
        return (
            f"till {outcome.device_id}: clock moved {_human_seconds(advanced)} "
            f"to {_fmt(_pick(outcome.result, 'now'))}"
        )

    if not as_json and cloud_info is not None:
        if cloud_info.get("note"):
            console.print(f"cloud: {cloud_info['note']}")
        elif cloud_info.get("advanced"):
            console.print(
                f"cloud: clock moved {_human_seconds(cloud_info['advanced'])} to {cloud_info['now']}"
            )
        else:
            console.print(f"cloud: shares the tills' clock, now {cloud_info['now']}")
    _finish(outcomes, as_json, sentence, {"cloud": cloud_info})


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


# ------------------------------------------------------------------------ shift, sell, drive, state


@shift_app.command("close")
def shift_close(
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """Close the open shift (the drive prints the shift-closing report)."""

    def sentence(outcome: Outcome) -> str:
        if not _pick(outcome.result, "closed"):
            return f"till {outcome.device_id}: no open shift"
        number = _pick(outcome.result, "shift_number")
        fd = _pick(outcome.result, "fn_doc_number")
        return f"till {outcome.device_id}: shift {number} closed (fiscal document {fd})"

    _simple(
        "shift.close",
        None,
        sentence,
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


def parse_roubles(text: str) -> int:
    """``"45.50"`` (or ``"45,50"``) roubles → 4550 kopecks.

    Raises:
        typer.BadParameter: not a positive sum with at most two decimals.
    """
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as exc:
        raise typer.BadParameter(f"not a sum: {text!r}") from exc
    kopecks = value * 100
    if not value.is_finite() or value <= 0 or kopecks != kopecks.to_integral_value():
        raise typer.BadParameter(f"a sum in roubles with at most 2 decimals, not {text!r}")
    return int(kopecks)


def sell(
    total: str = typer.Argument(..., metavar="SUM", help="The sum in roubles, e.g. 45.50."),
    cashier: str | None = typer.Option(None, "--cashier", help="The cashier's name (tag 1021)."),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """A counter sale entered at the till (cash, one item), in the till's current shift."""
    kopecks = parse_roubles(total)
    args: dict[str, Any] = {"total_kopecks": kopecks}
    if cashier:
        args["cashier"] = cashier

    def sentence(outcome: Outcome) -> str:
        r = outcome.result
        return (
            f"till {outcome.device_id}: sold {kopecks // 100}.{kopecks % 100:02d} ₽ — receipt "
            f"{_fmt(_pick(r, 'check_number'))} in shift {_fmt(_pick(r, 'shift_number'))}, "
            f"fiscal document {_fmt(_pick(r, 'fn_doc_number'))}"
        )

    _simple(
        "sell",
        args,
        sentence,
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


def correction(
    total: str = typer.Argument(..., metavar="SUM", help="The sum in roubles, e.g. 45.50."),
    operation: int = typer.Option(
        1,
        "--operation",
        min=1,
        max=4,
        help="1054: 1 приход, 2 возврат прихода, 3 расход, 4 возврат расхода.",
    ),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = TIMEOUT,
    as_json: bool = JSON_OPTION,
) -> None:
    """A correction receipt (чек коррекции) at the till: one way out of a shop document in error.

    Register the settlement the failed document stood for, then mark that document done in the
    cabinet (`kkt-emulator cabinet mark-done ID`).
    """
    kopecks = parse_roubles(total)
    args: dict[str, Any] = {"total_kopecks": kopecks, "operation": operation}

    def sentence(outcome: Outcome) -> str:
        r = outcome.result
        return (
            f"till {outcome.device_id}: correction receipt {kopecks // 100}.{kopecks % 100:02d} ₽, "
            f"fiscal document {_fmt(_pick(r, 'fn_doc_number'))}"
        )

    _simple(
        "correction",
        args,
        sentence,
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


def fn_replace(
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.1, help="Seconds to wait (registration takes a while)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Put a new fiscal drive into the till(s) and register it."""
    _simple(
        "fn.replace",
        None,
        lambda o: (
            f"till {o.device_id}: new drive {_fmt(_pick(o.result, 'fn_serial'))}"
            if _pick(o.result, "fn_serial")
            else _generic(o)
        ),
        device=device,
        mqtt=mqtt,
        ready_file=ready_file,
        timeout=timeout,
        as_json=as_json,
    )


def _snapshot_paths(path: Path, ids: list[str]) -> dict[str, str]:
    text = str(path.expanduser().resolve())
    if len(ids) > 1 and "{device}" not in text:
        raise ConfigError(
            f"{len(ids)} tills would share {path}: use --device, or put {{device}} in PATH"
        )
    return {d: text.replace("{device}", d) for d in ids}


async def _with_paths(
    target: _Target,
    device: str | None,
    command: str,
    path: Path,
    timeout: float,  # noqa: ASYNC109 - passed on to each request
) -> list[Outcome]:
    async with ControlClient(target.url, timeout=timeout) as control:
        ids = control.select(await control.tills(), device)
        paths = _snapshot_paths(path, ids)
        return list(
            await asyncio.gather(*(control.outcome(d, command, {"path": paths[d]}) for d in ids))
        )


PATH_HELP = "A directory on the till's host; {device} in it is replaced by the device id."


def snapshot(
    path: Path = typer.Argument(..., help=PATH_HELP),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds to wait."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Save the till's whole state (drive, journal, outbox, settings) into a directory."""
    target = _target(mqtt, ready_file)
    outcomes = _run(_with_paths(target, device, "snapshot", path, timeout))
    _finish(outcomes, as_json, lambda o: f"till {o.device_id}: saved to {_pick(o.result, 'path')}")


def restore(
    path: Path = typer.Argument(..., help=PATH_HELP),
    device: str | None = DEVICE,
    mqtt: str | None = MQTT,
    ready_file: Path | None = READY_OPTION,
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds to wait."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Load a till's whole state from a snapshot directory (the till restarts on it)."""
    target = _target(mqtt, ready_file)
    outcomes = _run(_with_paths(target, device, "restore", path, timeout))
    _finish(
        outcomes, as_json, lambda o: f"till {o.device_id}: restored from {_pick(o.result, 'path')}"
    )


def register(app: typer.Typer, fn_app: typer.Typer) -> None:
    """Add the control-plane commands to ``app`` (and ``fn replace`` to the ``fn`` group)."""
    app.command("status")(status)
    app.command("set")(set_settings)
    app.add_typer(fault_app, name="fault")
    app.add_typer(clock_app, name="clock")
    app.add_typer(shift_app, name="shift")
    app.command("sell")(sell)
    app.command("correction")(correction)
    app.command("snapshot")(snapshot)
    app.command("restore")(restore)
    fn_app.command("replace")(fn_replace)
