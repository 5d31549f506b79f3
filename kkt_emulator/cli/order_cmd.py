"""``kkt-emulator order list`` and ``order pay``: the courier's orders at the till.

Over the control plane (``till-protocol.md`` §3) like ``sell``: ``order list`` asks the tills for
the orders they keep (each syncs with the cloud first when it can), ``order pay ORDER_ID`` has one
till take the payment and fiscalise the receipt (``orders-and-backoffice.md`` O8, D91): cash,
card or both (``--cash`` is what the buyer hands over; the change is computed), ``--drop N`` for
each position the buyer refuses, ``--qty N=Q`` for a position the buyer takes less of (B22), a
prepaid order with neither, a ``RETURN`` order as a return
receipt. The shift opens when needed, as for ``sell``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import typer
from rich.table import Table

from kkt_emulator.cli.fanout import finish, fmt, pick, run
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.cli.output import console
from kkt_emulator.cli.sale_cmd import parse_roubles
from kkt_emulator.control.client import ControlClient, Outcome
from kkt_emulator.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(help="The courier's orders at the till (МодульЗаказ).", no_args_is_help=True)


def _sum(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if text.strip() in ("0", "0.0", "0.00"):
        return 0
    try:
        return parse_roubles(text)
    except typer.BadParameter as exc:
        raise typer.BadParameter(str(exc), param_hint=name) from exc


def _quantity(text: str) -> str:
    """``--qty N=Q`` checked: a position from 1 and a positive number (``2=1.5``)."""
    n, sep, q = text.partition("=")
    try:
        quantity = Decimal(q.strip().replace(",", "."))
    except InvalidOperation:
        quantity = None
    if not sep or not n.strip().isdigit() or int(n) < 1 or quantity is None or not quantity > 0:
        raise typer.BadParameter(
            f"{text!r} is not POSITION=QUANTITY (a position from 1, a quantity above 0)",
            param_hint="--qty",
        )
    return f"{int(n)}={quantity}"


@app.command("list")
@control_command()
def order_list(*, opts: ControlOptions) -> None:
    """The orders each till keeps: number, state, sum, positions."""

    async def ask() -> list[Outcome]:
        async with ControlClient(opts.target().url, timeout=opts.timeout) as control:
            ids = control.select(await control.tills(), opts.device)
            return await control.each(ids, "order.list", None)

    outcomes = run(ask())
    if not opts.as_json:
        table = Table("till", "order", "number", "type", "state", "sum", "positions")
        for outcome in outcomes:
            if not outcome.ok:
                continue
            for order in pick(outcome.result, "orders") or []:
                state = str(order.get("state"))
                if order.get("paid"):
                    state += " (paid here)"
                elif order.get("claimedByMe"):
                    state += " (taken here)"
                elif order.get("takenElsewhere"):
                    state += " (taken by another till)"
                if order.get("prepaid"):
                    state += ", prepaid"
                positions = "; ".join(
                    f"{p['n']}. {p['name']} × {fmt(p['quantity'])}"
                    for p in order.get("positions") or []
                )
                table.add_row(
                    outcome.device_id,
                    str(order.get("id")),
                    fmt(order.get("documentNumber")),
                    fmt(order.get("documentType")),
                    state,
                    fmt(order.get("totalSum")),
                    positions,
                )
        console.print(table)
    finish(outcomes, opts.as_json, None)


@app.command("pay")
@control_command()
def order_pay(
    order_id: str = typer.Argument(..., metavar="ORDER_ID", help="The order's id (order list)."),
    cash: str | None = typer.Option(None, "--cash", metavar="SUM", help="Cash handed over."),
    card: str | None = typer.Option(None, "--card", metavar="SUM", help="Paid by card."),
    drop: list[int] = typer.Option(
        [], "--drop", metavar="POSITION", help="A position (1, 2, …) the buyer refuses; repeat."
    ),
    qty: list[str] = typer.Option(
        [],
        "--qty",
        metavar="POSITION=QUANTITY",
        help="A position the buyer takes less of, with the quantity taken (2=1.5); repeat.",
    ),
    *,
    opts: ControlOptions,
) -> None:
    """Take the payment for an order at one till and print its receipt.

    Without --cash and --card the sum is paid in cash exactly; a prepaid order takes neither.
    """
    args: dict[str, Any] = {"order_id": order_id}
    cash_kopecks, card_kopecks = _sum(cash, "--cash"), _sum(card, "--card")
    if cash_kopecks is not None:
        args["cash_kopecks"] = cash_kopecks
    if card_kopecks is not None:
        args["card_kopecks"] = card_kopecks
    if any(n < 1 for n in drop):
        raise typer.BadParameter("positions are numbered from 1", param_hint="--drop")
    if drop:
        args["drop"] = ",".join(str(n) for n in drop)
    if qty:
        args["quantities"] = ",".join(_quantity(text) for text in qty)

    async def ask() -> list[Outcome]:
        async with ControlClient(opts.target().url, timeout=opts.timeout) as control:
            ids = control.select(await control.tills(), opts.device)
            if len(ids) != 1:
                raise ConfigError(
                    f"order pay: {len(ids)} tills are online; name the courier's with --device"
                )
            return await control.each(ids, "order.pay", args)

    def sentence(outcome: Outcome) -> str:
        r = outcome.result
        money = f"total {fmt(pick(r, 'total'))}"
        if pick(r, "prepaid"):
            money += f", prepaid {fmt(pick(r, 'prepaid'))}"
        else:
            money += f", cash {fmt(pick(r, 'cash'))}, card {fmt(pick(r, 'card'))}"
            money += f", change {fmt(pick(r, 'change'))}"
        return (
            f"till {outcome.device_id}: order {fmt(pick(r, 'document_number'))} paid — "
            f"{fmt(pick(r, 'check_type'))} receipt {fmt(pick(r, 'fiscal_info', 'check_number'))}, "
            f"fiscal document {fmt(pick(r, 'fiscal_info', 'fn_doc_number'))}; {money}"
        )

    finish(run(ask()), opts.as_json, sentence)
