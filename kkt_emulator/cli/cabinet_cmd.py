"""``kkt-emulator cabinet``: the cloud's personal cabinet (ЛК) over HTTP.

Retail points and their flags, service credentials, documents, «Провести повторно» (``redrive``),
«Отметить как выполненный» (``mark-done``), till heartbeats, warnings and the cloud clock. Every
command takes ``--server`` (or ``KKT_CLOUD_URL``; without it the running installation's ready-file,
D106), ``--ready-file`` and ``--json``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from kkt_emulator.cli import integrations_cmd
from kkt_emulator.cli.cloud_target import CabinetOptions, cabinet_command
from kkt_emulator.cli.output import console, emit
from kkt_emulator.cloud.cabinet_client import CabinetClient
from kkt_emulator.cloud.settings import PickupWindow

__all__ = ["app"]

app = typer.Typer(
    help="The cloud's cabinet (ЛК): retail points, credentials, documents, re-drive, mark done.",
    no_args_is_help=True,
)
points_app = typer.Typer(help="Retail points and their settings.", no_args_is_help=True)
documents_app = typer.Typer(help="Documents received from shops.", no_args_is_help=True)
clock_app = typer.Typer(help="The clock of a cloud that runs alone.", no_args_is_help=True)
app.add_typer(points_app, name="points")
app.add_typer(documents_app, name="documents")
app.add_typer(clock_app, name="clock")
app.add_typer(integrations_cmd.integrations_app, name="integrations")  # B17
app.add_typer(integrations_cmd.feeds_app, name="feeds")  # B6, B19

POINT: Any = typer.Option(
    None, "--retail-point", help="Retail point of the document (found by id when omitted)."
)
DOC_ID: Any = typer.Argument(help="The shop's document id.")


class OnOff(StrEnum):
    """A flag value on the command line."""

    ON = "on"
    OFF = "off"


def _flag(value: OnOff | None) -> bool | None:
    return None if value is None else value is OnOff.ON


def _client(opts: CabinetOptions) -> CabinetClient:
    return CabinetClient(opts.url(), opts.token)  # D106


def _show_point(point: dict[str, Any]) -> None:
    console.print(f"[bold]{point['name']}[/bold] {point['id']}")
    for key in (
        "address",
        "inn",
        "accountId",
        "internetDocsEnabled",
        "stopOnErrors",
        "pickupWindow",
        "defaultTaxMode",
        "duplicatePolicy",
        "fnState",
        "lastHeartbeatAt",
    ):
        console.print(f"  {key}: {point.get(key)}")


def _doc_table(rows: list[dict[str, Any]]) -> None:
    table = Table("#", "id", "retail point", "docNum", "total", "status", "changed", "OFD", "note")
    for row in rows:
        note = "; ".join(
            [*(["blocking"] if row["blocking"] else []), *row["warnings"]]
            + ([row["failureText"]] if row.get("failureText") else [])
        )
        table.add_row(
            str(row["number"]),
            row["id"],
            row["retailPointId"][:8],
            row["docNum"],
            row["total"],
            f"{row['status']} «{row['statusText']}»",
            row["timeStatusChanged"],
            row["ofd"]["state"],
            note,
        )
    console.print(table)


def _show_document(doc: dict[str, Any]) -> None:
    console.print(
        f"[bold]{doc['id']}[/bold] ({doc['status']} «{doc['statusText']}»),"
        f" retail point {doc['retailPointId']}"
    )
    console.print(f"  docNum {doc['docNum']}, total {doc['total']}, accepted {doc['acceptedAt']}")
    if doc.get("failureInfo"):
        console.print(f"  error: {doc['failureInfo']['type']}: {doc['failureText']}")
    if doc.get("errorDetail"):
        console.print(f"  error detail: {doc['errorDetail']}")
    console.print(f"  OFD: {doc['ofd']['state']} {doc['ofd']['changedAt'] or ''}")
    for warning in doc["warnings"]:
        console.print(f"  warning: {warning}")
    if doc.get("possibleDuplicateOf"):
        console.print(f"  possible duplicate of: {doc['possibleDuplicateOf']}")
    console.print("  history:")
    for entry in doc.get("history", []):
        status = f"{entry['status']} «{entry['statusText']}»"
        console.print(f"    {entry['at']}  {status:<40} {entry['event']}")


# -- retail points --------------------------------------------------------------------------------------


@points_app.command("create")
@cabinet_command
def points_create(
    *,
    name: str = typer.Option(..., "--name", help="Retail point name."),
    address: str = typer.Option("", "--address", help="Address returned by /associate."),
    inn: str = typer.Option("", "--inn", help="INN, 10 or 12 digits."),
    account: str | None = typer.Option(None, "--account", help="Owning account id."),
    internet_docs: OnOff = typer.Option(
        OnOff.ON, "--internet-docs", help="The internet-shop flag."
    ),
    stop_on_errors: OnOff = typer.Option(OnOff.OFF, "--stop-on-errors"),
    pickup_window: PickupWindow = typer.Option(PickupWindow.THREE_DAYS, "--pickup-window"),
    opts: CabinetOptions,
) -> None:
    """Create a retail point."""
    with _client(opts) as client:
        point = client.create_point(
            name,
            address=address,
            inn=inn,
            accountId=account,
            internetDocsEnabled=internet_docs is OnOff.ON,
            stopOnErrors=stop_on_errors is OnOff.ON,
            pickupWindow=pickup_window.value,
        )
    emit(point, opts.as_json, _show_point)


@points_app.command("list")
@cabinet_command
def points_list(*, opts: CabinetOptions) -> None:
    """List retail points with their flags and fnState."""
    with _client(opts) as client:
        points = client.list_points()

    def human(rows: list[dict[str, Any]]) -> None:
        table = Table("id", "name", "internet docs", "stop on errors", "pickup", "fnState")
        for p in rows:
            table.add_row(
                p["id"],
                p["name"],
                "on" if p["internetDocsEnabled"] else "off",
                "on" if p["stopOnErrors"] else "off",
                p["pickupWindow"],
                p["fnState"],
            )
        console.print(table)

    emit(points, opts.as_json, human)


@points_app.command("show")
@cabinet_command
def points_show(
    point_id: str = typer.Argument(help="Retail point id."),
    *,
    opts: CabinetOptions,
) -> None:
    """Show one retail point."""
    with _client(opts) as client:
        emit(client.get_point(point_id), opts.as_json, _show_point)


@points_app.command("set")
@cabinet_command
def points_set(
    point_id: str = typer.Argument(help="Retail point id."),
    *,
    internet_docs: OnOff | None = typer.Option(None, "--internet-docs"),
    stop_on_errors: OnOff | None = typer.Option(None, "--stop-on-errors"),
    pickup_window: PickupWindow | None = typer.Option(None, "--pickup-window"),
    tax_mode: str | None = typer.Option(None, "--tax-mode", help="Default taxMode (D21)."),
    duplicate_policy: str | None = typer.Option(None, "--duplicate-policy", help="replay|conflict"),
    name: str | None = typer.Option(None, "--name"),
    address: str | None = typer.Option(None, "--address"),
    opts: CabinetOptions,
) -> None:
    """Change flags and details of a retail point."""
    fields = {
        "internetDocsEnabled": _flag(internet_docs),
        "stopOnErrors": _flag(stop_on_errors),
        "pickupWindow": pickup_window.value if pickup_window else None,
        "defaultTaxMode": tax_mode,
        "duplicatePolicy": duplicate_policy,
        "name": name,
        "address": address,
    }
    changes = {k: v for k, v in fields.items() if v is not None}
    with _client(opts) as client:
        emit(client.update_point(point_id, **changes), opts.as_json, _show_point)


class ServiceName(StrEnum):
    """Which service's pair ``cabinet credentials`` generates (``orders-and-backoffice.md`` O2)."""

    SHOP = "shop"  # «Чеки интернет-магазина»: the store API's pair
    ORDERS = "orders"
    MOYSKLAD = "moysklad"
    ONEC = "onec"
    SKLAD = "sklad"
    MOEDELO = "moedelo"
    ELBA = "elba"


@app.command("credentials")
@cabinet_command
def credentials(
    point_id: str = typer.Argument(help="Retail point id."),
    service: ServiceName = typer.Option(
        ServiceName.SHOP,
        "--service",
        help="shop: the store API's pair; orders, moysklad, onec, sklad, moedelo, elba: the"
        " account's pair of that service (switches it on, the old pair stops working).",
    ),
    *,
    opts: CabinetOptions,
) -> None:
    """«Сгенерировать логин и пароль»: new service credentials (shown once)."""
    with _client(opts) as client:
        if service is ServiceName.SHOP:
            creds: dict[str, Any] = dict(client.generate_credentials(point_id))
        else:
            creds = client.generate_service_credentials(point_id, service.value)

    def human(c: dict[str, Any]) -> None:
        if "title" in c:
            console.print(f"service:      {c['title']}")
        console.print(f"retail point: {c['retailPointId']}")
        console.print(f"login:        {c['login']}")
        console.print(f"password:     {c['password']}")

    emit(creds, opts.as_json, human)


# -- documents --------------------------------------------------------------------------------------------


@documents_app.command("list")
@cabinet_command
def documents_list(
    *,
    status: list[str] | None = typer.Option(None, "--status", help="Repeat for several."),
    retail_point: str | None = typer.Option(None, "--retail-point"),
    doc_id: str | None = typer.Option(None, "--id", help="The shop's document id."),
    since: str | None = typer.Option(None, "--since", help="Accepted at or after (ISO 8601)."),
    until: str | None = typer.Option(None, "--until", help="Accepted before (ISO 8601)."),
    limit: int = typer.Option(100, "--limit"),
    history: bool = typer.Option(False, "--history", help="Include every document's history."),  # noqa: FBT003 - typer default
    opts: CabinetOptions,
) -> None:
    """List documents with filters."""
    with _client(opts) as client:
        rows = client.list_documents(
            statuses=status,
            retail_point_id=retail_point,
            doc_id=doc_id,
            since=since,
            until=until,
            limit=limit,
            history=history,
        )

    def human(data: list[dict[str, Any]]) -> None:
        _doc_table(data)
        if history:
            for doc in data:
                _show_document(doc)

    emit(rows, opts.as_json, human)


@documents_app.command("show")
@cabinet_command
def documents_show(
    doc_id: str = DOC_ID,
    retail_point: str | None = POINT,
    *,
    opts: CabinetOptions,
) -> None:
    """Document detail: history, OFD delivery, error detail, warnings."""
    with _client(opts) as client:
        emit(client.document(doc_id, retail_point), opts.as_json, _show_document)


def _show_status(doc: dict[str, Any]) -> None:
    console.print(f"{doc['id']}: {doc['status']}")


@app.command("redrive")
@cabinet_command
def redrive(
    doc_id: str = DOC_ID,
    retail_point: str | None = POINT,
    *,
    opts: CabinetOptions,
) -> None:
    """«Провести повторно»: re-queue a FAILED document."""
    with _client(opts) as client:
        doc = client.redrive(doc_id, retail_point)
    emit(doc, opts.as_json, _show_status)


@app.command("mark-done")
@cabinet_command
def mark_done(
    doc_id: str = DOC_ID,
    retail_point: str | None = POINT,
    *,
    opts: CabinetOptions,
) -> None:
    """«Отметить как выполненный»: complete a FAILED document without a receipt."""
    with _client(opts) as client:
        doc = client.mark_done(doc_id, retail_point)
    emit(doc, opts.as_json, _show_status)


@app.command("heartbeats")
@cabinet_command
def heartbeats(*, opts: CabinetOptions) -> None:
    """Tills with their last heartbeat."""
    with _client(opts) as client:
        rows = client.heartbeats()

    def human(data: list[dict[str, Any]]) -> None:
        table = Table("device", "till serial", "retail point", "ФН", "fn ok", "last heartbeat")
        for d in data:
            table.add_row(
                d["deviceId"],
                d["tillSerial"],
                d["retailPointId"][:8],
                d["fnSerial"],
                str(d["fnOk"]),
                d["lastHeartbeatAt"] or "never",
            )
        console.print(table)

    emit(rows, opts.as_json, human)


@app.command("warnings")
@cabinet_command
def warnings(*, opts: CabinetOptions) -> None:
    """Documents with duplicate-id or double-integration warnings."""
    with _client(opts) as client:
        emit(client.warnings(), opts.as_json, _doc_table)


# -- clock -----------------------------------------------------------------------------------------------


def _show_clock(data: dict[str, Any]) -> None:
    console.print(f"now {data['now']} ({data['mode']}), next deadline {data['nextDeadline']}")


@clock_app.command("show")
@cabinet_command
def clock_show(*, opts: CabinetOptions) -> None:
    """Show the cloud clock and its next timer deadline."""
    with _client(opts) as client:
        emit(client.clock(), opts.as_json, _show_clock)


@clock_app.command("advance")
@cabinet_command
def clock_advance(
    duration: str = typer.Argument(help="30d, 15m, 1h30m, 235s …"),
    *,
    opts: CabinetOptions,
) -> None:
    """Advance the cloud clock; due timers fire in order."""
    with _client(opts) as client:
        emit(client.advance(duration), opts.as_json, _show_clock)
