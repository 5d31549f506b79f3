"""What every control command shares: ask the tills over MQTT, then print what they answered.

Each control command goes over MQTT (``till-protocol.md`` §3) to one till (``--device ID`` or a
unique prefix of it) or to every online till, finding the broker in the ready-file of a running
``kkt-emulator up`` (``--ready-file``, ``$KKT_READY_FILE`` or the default state directory) or in
``--mqtt URL`` (:class:`~kkt_emulator.cli.options.ControlOptions`). People get a table or a
sentence per till; ``--json`` prints ``{"tills": [{"deviceId", "ok", "result" | "error"}, …]}``. A
till that refuses, or a broker that cannot be reached, ends the command with ``error: …`` and exit
code 2.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from kkt_emulator.cli.output import console, emit
from kkt_emulator.control.client import ControlClient, Outcome
from kkt_emulator.control.topics import CommandError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from kkt_emulator.cli.options import ControlOptions, Target

__all__ = [
    "fan_out",
    "finish",
    "fmt",
    "generic",
    "minutes",
    "pick",
    "raise_failures",
    "run",
    "simple",
]

_T = TypeVar("_T")


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run one command's conversation with the tills on a fresh event loop."""
    return asyncio.run(coro)


async def fan_out(
    target: Target,
    device: str | None,
    command: str,
    args: dict[str, Any] | None,
    timeout: float,  # noqa: ASYNC109 - passed on to each request
) -> list[Outcome]:
    """Send ``command`` to the till ``device`` selects (or every online till); their outcomes."""
    async with ControlClient(target.url, timeout=timeout) as control:
        ids = control.select(await control.tills(), device)
        return await control.each(ids, command, args)


def raise_failures(outcomes: list[Outcome], *, one: bool) -> None:
    """End the command on refusals: ``error: …`` and exit code 2.

    Args:
        outcomes: what the tills answered.
        one: one till was addressed: its refusal becomes the command's error (one line).

    Raises:
        CommandError: ``one`` and that till refused.
        typer.Exit: several tills and some refused (each printed as an ``error: till …`` line).
    """
    failures = [o for o in outcomes if not o.ok]
    if one and failures:
        error = failures[0].error or {}
        raise CommandError(error.get("code", ""), error.get("message", ""), failures[0].device_id)
    for failure in failures:
        message = (failure.error or {}).get("message", "")
        typer.echo(f"error: till {failure.device_id}: {message}", err=True)
    if failures:
        raise typer.Exit(2)


def finish(
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
    raise_failures(outcomes, one=len(outcomes) == 1)


def simple(
    command: str,
    args: dict[str, Any] | None,
    sentence: Callable[[Outcome], str],
    opts: ControlOptions,
) -> None:
    """Send ``command`` with ``args`` to the addressed tills and print a sentence per till."""
    outcomes = run(fan_out(opts.target(), opts.device, command, args, opts.timeout))
    finish(outcomes, opts.as_json, sentence)


def pick(data: Any, *path: str) -> Any:
    """``data[a][b]…`` tolerating absent keys and camelCase/snake_case spellings."""
    for key in path:
        if not isinstance(data, dict):
            return None
        camel = key.split("_")[0] + "".join(w.title() for w in key.split("_")[1:])
        data = data.get(key, data.get(camel))
    return data


def fmt(value: Any) -> str:
    """A value of a till's answer in a few words: ``on``/``off``, ``a, b``, ``—`` for nothing."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "—"
    return str(value)


def minutes(value: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` (UTC, as the tills report it) for narrow tables."""
    if not isinstance(value, str):
        return fmt(value)
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def generic(outcome: Outcome) -> str:
    """The sentence of an answer no command has its own words for."""
    return f"till {outcome.device_id}: {fmt(outcome.result)}"
