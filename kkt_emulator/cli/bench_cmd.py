"""``kkt-emulator bench``: benchmarks that print JSON."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from kkt_emulator.app.bench import bench_fn
from kkt_emulator.app.chaos.procs import Kind
from kkt_emulator.cli.run_options import PROFILE_OPTION

app = typer.Typer(
    help=(
        "Benchmarks; every one prints a JSON document.\n\n"
        "Without a subcommand: the whole suite side by side in one run (bare FastAPI endpoint, "
        "/v1/status, e2e receipts/s, CPU per receipt, latency at 50/s, the drive, the pytest "
        "plugin, `up` start-up), every figure with its goal and ok; progress on stderr. Exits 0 "
        "for a completed measurement (read `ok`), 2 on bad arguments or when a part cannot start. "
        "Suite options go before a subcommand's name and apply only without one. Every figure "
        "and how it is measured: docs/benchmarks.md."
    ),
    invoke_without_command=True,
)


class StoreKind(StrEnum):
    """Where the benchmarked drive keeps its archive."""

    MEMORY = "memory"
    SQLITE = "sqlite"


def _parts(text: str | None) -> tuple[str, ...]:
    from kkt_emulator.app.bench_suite import PARTS  # noqa: PLC0415 - only the suite needs it

    if text is None:
        return PARTS
    names = {t.strip() for t in text.split(",") if t.strip()}
    names = {"e2e" if n == "cpu" else n for n in names}
    unknown = sorted(names - set(PARTS))
    if unknown or not names:
        raise typer.BadParameter(
            f"{text!r}: use {', '.join(PARTS)} (and cpu, measured by e2e), comma-separated",
            param_hint="--only",
        )
    return tuple(p for p in PARTS if p in names)


@app.callback()
def suite(
    ctx: typer.Context,
    quick: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--quick",
        help="Small counts (seconds, not minutes): checks that every part works, not how fast.",
    ),
    docs: int | None = typer.Option(
        None, "--docs", min=1, max=1_000_000, help="Sales posted by e2e (default 2000; quick 100)."
    ),
    seconds: float | None = typer.Option(
        None,
        "--seconds",
        min=0.1,
        help="Seconds of each requests/s measurement, bare and status (default 5; quick 1; wrk rounds).",
    ),
    tills: int = typer.Option(8, "--tills", min=1, max=100, help="Tills of the measured `up`."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=0,
        max=16,
        help="Run the measured `up`'s tills in this many worker processes (`up --workers N`), "
        "so the cloud keeps a core of its own; 0: the tills in `up`'s own process. Default: 1 on "
        "a machine with two or more cores, else 0.",
    ),
    only: str | None = typer.Option(
        None,
        "--only",
        help="Parts to run, comma-separated: bare, status, e2e (with cpu), latency, drive, plugin, startup.",
    ),
    json_out: Path | None = typer.Option(
        None, "--json-out", help="Also write the JSON document to this file."
    ),
) -> None:
    """Every figure of the project, side by side in one run (see `docs/benchmarks.md`)."""
    if ctx.invoked_subcommand is not None:
        if (
            quick
            or docs is not None
            or seconds is not None
            or only is not None
            or json_out
            or workers is not None
        ):
            raise typer.BadParameter(
                f"suite options do not apply to `bench {ctx.invoked_subcommand}`; drop them"
            )
        return
    from kkt_emulator import eventloop  # noqa: PLC0415 - only the suite runs an event loop
    from kkt_emulator.app.bench_suite import (  # noqa: PLC0415
        BenchStartError,
        SuiteOptions,
        run_suite,
    )
    from kkt_emulator.errors import ConfigError  # noqa: PLC0415

    overrides: dict[str, Any] = {"tills": tills, "parts": _parts(only)}
    if workers is not None:
        overrides["workers"] = workers or None
    if docs is not None:
        overrides["docs"] = docs
    if seconds is not None:
        overrides["seconds"] = seconds
    options = SuiteOptions.quick(**overrides) if quick else SuiteOptions(**overrides)
    try:
        result = eventloop.run(run_suite(options, lambda line: typer.echo(line, err=True)))
    except (BenchStartError, ConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for row in result["summary"]:
        verdict = {True: "ok", False: "MISSED", None: "-"}[row["ok"]]
        typer.echo(
            f"  {row['part']:>8} {row['figure']:<34} {row['value']!s:>10}  "
            f"goal {row['goal']:<8} {verdict}",
            err=True,
        )
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if json_out is not None:
        try:
            json_out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            typer.echo(f"error: cannot write {json_out}: {exc.strerror or exc}", err=True)
            typer.echo(text)
            raise typer.Exit(2) from exc
    typer.echo(text)


@app.command("fn")
def fn_command(
    seconds: float = typer.Option(1.0, min=0.05, help="How long each case runs."),
    store: StoreKind = typer.Option(
        StoreKind.MEMORY, help="memory: the state machine alone; sqlite: every command committed."
    ),
) -> None:
    """Drive frames per second (status, one 07h item, a whole receipt) vs the 115200-baud line."""
    typer.echo(json.dumps(bench_fn(seconds, store.value), ensure_ascii=False, indent=2))


@app.command("e2e")
def e2e_command(
    tills: int = typer.Option(1, "--tills", min=1, max=1000, help="Tills to start."),
    docs: int = typer.Option(100, "--docs", min=1, max=1_000_000, help="Sales to post."),
    points: int = typer.Option(
        1, "--points", min=1, max=1000, help="Retail points (tills are spread over them)."
    ),
    concurrency: int = typer.Option(
        20, "--concurrency", min=1, max=1000, help="Requests in flight at once."
    ),
    profile: str = PROFILE_OPTION,
) -> None:
    """Shop to COMPLETED over real HTTP: receipts/s, latency p50/p99, CPU per receipt, peak RSS."""
    from kkt_emulator import eventloop  # noqa: PLC0415 - only this command runs an event loop
    from kkt_emulator.app.bench import bench_e2e  # noqa: PLC0415

    result = eventloop.run(bench_e2e(tills, docs, points, concurrency, profile))
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("cloud")
def cloud_command(
    documents: int = typer.Option(500, "--documents", min=1, help="Documents to post."),
    reads: int = typer.Option(1000, "--reads", min=1, help="Status reads to make."),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, max=1000, help="Requests in flight at once."
    ),
    in_process: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--in-process",
        help="Call the ASGI app directly instead of over loopback HTTP.",
    ),
) -> None:
    """The cloud alone: document posts/s and status reads/s, with plain GET /v1/status for comparison."""
    from kkt_emulator.cloud.bench import bench_cloud  # noqa: PLC0415 - heavy import, only here

    result = bench_cloud(documents, reads, concurrency, in_process=in_process)
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("fleet")
def fleet_command(
    tills: int = typer.Option(200, "--tills", min=1, max=10_000, help="Tills to start."),
    points: int = typer.Option(
        20, "--points", min=1, max=10_000, help="Retail points (tills are spread over them)."
    ),
    docs_per_point: int = typer.Option(
        1, "--docs-per-point", min=1, max=10_000, help="Sales to post to every retail point."
    ),
    poll_interval: float = typer.Option(
        5.0, "--poll-interval", min=0.0, help="Seconds between till polls (as `up`)."
    ),
    idle_seconds: float = typer.Option(
        5.0, "--idle-seconds", min=0.5, help="How long to measure the idle fleet's CPU."
    ),
    long_poll: float | None = typer.Option(
        None, "--long-poll", min=0.0, help="The tills' long poll in seconds (as `up --long-poll`)."
    ),
    mqtt: str = typer.Option(
        "auto", "--mqtt", help="Control plane: auto, spawn, none or mqtt://host:port (as `up`)."
    ),
    profile: str = PROFILE_OPTION,
) -> None:
    """`up --tills N --points M` under load: start-up, idle CPU, fds per till, receipts/s, stop, RSS."""
    from kkt_emulator import eventloop  # noqa: PLC0415 - only this command runs an event loop
    from kkt_emulator.app.bench import bench_fleet  # noqa: PLC0415
    from kkt_emulator.control.plane import resolve_mqtt  # noqa: PLC0415

    mode, notice = resolve_mqtt(mqtt)
    if notice:
        typer.echo(notice, err=True)
    result = eventloop.run(
        bench_fleet(
            tills,
            points,
            docs_per_point,
            poll_interval=poll_interval,
            idle_seconds=idle_seconds,
            long_poll=long_poll,
            mqtt=mode,
            profile=profile,
        )
    )
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


def _targets(text: str) -> tuple[Kind, ...]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return tuple(Kind(n) for n in names)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use till, cloud and ofd, comma-separated") from exc


def _delay(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high)) if sep else (float(low), float(low))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use MIN:MAX seconds, e.g. 0.05:2") from exc


@app.command("chaos")
def chaos_command(
    duration: float = typer.Option(60.0, "--duration", min=1.0, help="Seconds of load and kills."),
    rate: float = typer.Option(15.0, "--rate", min=0.1, max=1000.0, help="Documents per second."),
    seed: int = typer.Option(1, "--seed", help="Seed of the kill moments and kill points."),
    tills: int = typer.Option(1, "--tills", min=1, max=50, help="Till processes to run."),
    kills: int = typer.Option(
        0,
        "--kills",
        min=0,
        help="Kill points to reach, evenly over the kinds; the load then stops (0: until --duration).",
    ),
    targets: str = typer.Option(
        "till,cloud,ofd", "--targets", help="Processes killed at random moments (comma-separated)."
    ),
    kill_delay: str = typer.Option(
        "0.05:2", "--kill-delay", help="A random kill comes MIN:MAX seconds after each start."
    ),
    commit_kill_chance: float = typer.Option(
        0.1,
        "--commit-kill-chance",
        min=0.0,
        max=1.0,
        help="Chance to kill the cloud between a store-API commit and its 200.",
    ),
    lease_kill_chance: float = typer.Option(
        0.5,
        "--lease-kill-chance",
        min=0.0,
        max=1.0,
        help="Chance to kill a till between the cloud's lease answer and the till.",
    ),
    drain_timeout: float = typer.Option(
        120.0, "--drain-timeout", min=1.0, help="Seconds to wait for documents to settle."
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Keep state and logs here (default: a temporary directory)."
    ),
    profile: str = PROFILE_OPTION,
) -> None:
    """Cloud, OFD and tills as processes, SIGKILLed under load; checks lost/doubled/stuck/acks.

    Prints one JSON document; progress goes to stderr. Exits 0 when every check passes, 1 when
    one fails, 2 on bad arguments or when the processes cannot be started.
    """
    from kkt_emulator import eventloop  # noqa: PLC0415 - only this command runs an event loop
    from kkt_emulator.app.chaos import ChaosOptions, run_chaos  # noqa: PLC0415

    options = ChaosOptions(
        duration=duration,
        rate=rate,
        seed=seed,
        tills=tills,
        kills=kills,
        targets=_targets(targets),
        kill_delay=_delay(kill_delay),
        commit_kill_chance=commit_kill_chance,
        lease_kill_chance=lease_kill_chance,
        drain_timeout=drain_timeout,
        work_dir=work_dir,
        profile=profile,
    )
    result = eventloop.run(run_chaos(options, lambda line: typer.echo(line, err=True)))
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    if not result.ok:
        raise typer.Exit(1)
