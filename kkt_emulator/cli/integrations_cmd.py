"""``kkt-emulator cabinet integrations …`` and ``… feeds …``: the back office in the cabinet.

The services ☐ МойСклад ☐ Обмен с 1С ☐ Моё Дело ☐ Контур.Эльба with their webhook URLs
(``orders-and-backoffice.md`` B17), the MoySklad webhook bodies received, and the integration
outbox: records, their delivery, «Отправить повторно», the 1С export for a period (B6, B19).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from kkt_emulator.cli.cloud_target import CabinetOptions, cabinet_command
from kkt_emulator.cli.output import console, emit
from kkt_emulator.cloud.backoffice_client import BackofficeClient
from kkt_emulator.cloud.feeds import INTEGRATIONS

__all__ = ["feeds_app", "integrations_app"]

integrations_app = typer.Typer(
    help="Back-office services: МойСклад, Обмен с 1С, Моё Дело, Контур.Эльба.",
    no_args_is_help=True,
)
feeds_app = typer.Typer(
    help="The integration outbox: shift reports per service.", no_args_is_help=True
)

POINT: Any = typer.Argument(help="Retail point id (the switches are its account's).")
RECORD_ID: Any = typer.Argument(help="Feed record id.")


def _client(opts: CabinetOptions) -> BackofficeClient:
    return BackofficeClient(opts.url(), opts.token)  # D106


def _integration_table(rows: list[dict[str, Any]]) -> None:
    table = Table("service", "name", "on", "webhook URL", "report", "uuid")
    for row in rows:
        daily = row.get("dailyAt")
        table.add_row(
            row["title"],
            row["name"],
            "☑" if row["enabled"] else "☐",
            row["webhookUrl"] or "",
            f"daily {daily} UTC+3" if daily else "per shift",
            row["uuid"] or "",
        )
    console.print(table)


@integrations_app.command("list")
@cabinet_command
def integrations_list(
    point_id: str = POINT,
    *,
    opts: CabinetOptions,
) -> None:
    """The four services of the point's account, on or off."""
    with _client(opts) as client:
        emit(client.integrations(point_id), opts.as_json, _integration_table)


@integrations_app.command("set")
@cabinet_command
def integrations_set(
    point_id: str = POINT,
    name: str = typer.Argument(help=f"One of {', '.join(INTEGRATIONS)}."),
    on: bool | None = typer.Option(None, "--on/--off", help="Switch the service on or off."),
    url: str | None = typer.Option(None, "--url", help="The webhook URL feed records go to."),
    no_url: bool = typer.Option(False, "--no-url", help="Remove the webhook URL."),  # noqa: FBT003 - typer default
    daily_at: str | None = typer.Option(
        None, "--daily-at", help="onec: one report a day at this time HH:MM (UTC+3), not per shift."
    ),
    per_shift: bool = typer.Option(False, "--per-shift", help="onec: a report per shift again."),  # noqa: FBT003 - typer default
    *,
    opts: CabinetOptions,
) -> None:
    """Switch a service and set its webhook URL; МойСклад on empties the INVENTORY catalogue.

    ``--daily-at HH:MM`` makes 1С's report one a day per point at that UTC+3 time (B23).
    """
    if name not in INTEGRATIONS:
        raise typer.BadParameter(f"one of {', '.join(INTEGRATIONS)}", param_hint="NAME")
    if url is not None and no_url:
        raise typer.BadParameter("--url or --no-url, not both", param_hint="--url")
    if daily_at is not None and per_shift:
        raise typer.BadParameter("--daily-at or --per-shift, not both", param_hint="--daily-at")
    if on is None and url is None and not no_url and daily_at is None and not per_shift:
        raise typer.BadParameter(
            "nothing to change: give --on/--off, --url, --no-url, --daily-at or --per-shift"
        )
    extra: dict[str, str | None] = {}
    if url is not None or no_url:
        extra["webhookUrl"] = url
    if daily_at is not None or per_shift:
        extra["dailyAt"] = daily_at  # the cloud checks it (B23): one source of the rule
    with _client(opts) as client:
        row = client.set_integration(point_id, name, enabled=on, **extra)
    emit(row, opts.as_json, lambda r: _integration_table([r]))


@integrations_app.command("events")
@cabinet_command
def integrations_events(
    point_id: str = POINT,
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many, newest first."),
    *,
    opts: CabinetOptions,
) -> None:
    """MoySklad webhook bodies received for the point's account."""

    def human(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            console.print(f"#{row['seq']} {row['receivedAt']} {row['integration']}: {row['body']}")

    with _client(opts) as client:
        emit(client.integration_events(point_id, limit), opts.as_json, human)


def _feed_table(records: list[dict[str, Any]]) -> None:
    table = Table("id", "service", "kind", "shift", "created", "delivery", "attempts", "last error")
    for r in records:
        d = r["delivery"]
        table.add_row(
            r["id"],
            r["integration"],
            r["kind"],
            str(r["shiftNum"] if r["shiftNum"] is not None else ""),
            r["createdAt"],
            d["state"],
            str(d["attempts"]),
            d["lastError"] or "",
        )
    console.print(table)


@feeds_app.command("list")
@cabinet_command
def feeds_list(
    point_id: str = POINT,
    integration: str | None = typer.Option(None, "--integration", help="Only this service."),
    start: int = typer.Option(0, "--start", min=0),
    count: int = typer.Option(100, "--count", min=1, max=1000),
    *,
    opts: CabinetOptions,
) -> None:
    """Feed records of the point, oldest first."""
    with _client(opts) as client:
        page = client.feeds(point_id, integration, start, count)
    emit(page, opts.as_json, lambda p: _feed_table(p["data"]))


def _show(record: dict[str, Any]) -> None:
    _feed_table([record])
    console.print_json(data=record["payload"])


@feeds_app.command("show")
@cabinet_command
def feeds_show(
    point_id: str = POINT,
    record_id: str = RECORD_ID,
    *,
    opts: CabinetOptions,
) -> None:
    """One record: its payload and delivery."""
    with _client(opts) as client:
        emit(client.feed(point_id, record_id), opts.as_json, _show)


@feeds_app.command("resend")
@cabinet_command
def feeds_resend(
    point_id: str = POINT,
    record_id: str = RECORD_ID,
    *,
    opts: CabinetOptions,
) -> None:
    """«Отправить повторно»: deliver again, to the service's current webhook URL."""
    with _client(opts) as client:
        emit(client.resend_feed(point_id, record_id), opts.as_json, lambda r: _feed_table([r]))


@feeds_app.command("export")
@cabinet_command
def feeds_export(
    point_id: str = POINT,
    period_from: str = typer.Option(..., "--from", help="Start, ISO 8601 with offset (inclusive)."),
    period_to: str = typer.Option(..., "--to", help="End, ISO 8601 with offset (exclusive)."),
    *,
    opts: CabinetOptions,
) -> None:
    """«Выгрузить за период»: a 1С retail-sales report of the cash documents of a period."""
    with _client(opts) as client:
        emit(client.onec_export(point_id, period_from, period_to), opts.as_json, _show)
