"""``kkt-emulator sell`` and ``correction``: receipts entered at the till itself."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import typer

from kkt_emulator.cli.fanout import fmt, pick, simple
from kkt_emulator.cli.options import ControlOptions, control_command
from kkt_emulator.control.client import Outcome
from kkt_emulator.errors import ConfigError
from kkt_emulator.till.catalog import parse_item

__all__ = ["correction", "parse_roubles", "register", "sell"]

SUM_HELP = "The sum in roubles, e.g. 45.50."


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


def _roubles(kopecks: int) -> str:
    return f"{kopecks // 100}.{kopecks % 100:02d} ₽"


@control_command()
def sell(
    total: str | None = typer.Argument(
        None, metavar="[SUM]", help=SUM_HELP + " Not with --item (the items make the sum)."
    ),
    cashier: str | None = typer.Option(None, "--cashier", help="The cashier's name (tag 1021)."),
    items: list[str] | None = typer.Option(
        None,
        "--item",
        help="A catalogue item by inventCode, CODE or CODE*QUANTITY (001*2, 777*0.350);"
        " repeat for several. The till sells from its copy of the point's catalogue.",
    ),
    card: str | None = typer.Option(None, "--card", help="With --item: the part paid by card."),
    cash: str | None = typer.Option(
        None, "--cash", help="With --item: the cash handed over (more than due gives change)."
    ),
    *,
    opts: ControlOptions,
) -> None:
    """A counter sale entered at the till, in the till's current shift.

    SUM alone: cash, one free-price item. `--item CODE[*QTY]`: the items of the retail point's
    catalogue (`catalog-changes`), paid in cash and/or `--card`.
    """
    if items:
        if total is not None:
            raise typer.BadParameter("give SUM or --item, not both", param_hint="SUM")
        _sell_items(items, cashier, card, cash, opts)
        return
    if total is None:
        raise typer.BadParameter("a SUM or at least one --item is required", param_hint="SUM")
    if card is not None or cash is not None:
        raise typer.BadParameter("--card and --cash go with --item", param_hint="--card")
    kopecks = parse_roubles(total)
    args: dict[str, Any] = {"total_kopecks": kopecks}
    if cashier:
        args["cashier"] = cashier

    def sentence(outcome: Outcome) -> str:
        r = outcome.result
        return (
            f"till {outcome.device_id}: sold {_roubles(kopecks)} — receipt "
            f"{fmt(pick(r, 'check_number'))} in shift {fmt(pick(r, 'shift_number'))}, "
            f"fiscal document {fmt(pick(r, 'fn_doc_number'))}"
        )

    simple("sell", args, sentence, opts)


def _sell_items(
    items: list[str],
    cashier: str | None,
    card: str | None,
    cash: str | None,
    opts: ControlOptions,
) -> None:
    """``sell --item …``: the ``sell.items`` command (orders-and-backoffice.md B16)."""
    for item in items:
        try:
            parse_item(item)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--item") from exc
    args: dict[str, Any] = {"items": list(items)}
    if card is not None:
        args["card_kopecks"] = parse_roubles(card)
    if cash is not None:
        args["cash_kopecks"] = parse_roubles(cash)
    if cashier:
        args["cashier"] = cashier

    def sentence(outcome: Outcome) -> str:
        r = outcome.result
        info = pick(r, "fiscalInfo")
        total = info.get("sum") if isinstance(info, dict) else None
        return (
            f"till {outcome.device_id}: sold {', '.join(items)} for {fmt(total)} ₽ — receipt "
            f"{fmt(pick(r, 'check_number'))} in shift {fmt(pick(r, 'shift_number'))}, "
            f"fiscal document {fmt(pick(r, 'fn_doc_number'))}"
        )

    simple("sell.items", args, sentence, opts)


@control_command()
def correction(
    total: str = typer.Argument(..., metavar="SUM", help=SUM_HELP),
    operation: int = typer.Option(
        1,
        "--operation",
        min=1,
        max=4,
        help="1054: 1 приход, 2 возврат прихода, 3 расход, 4 возврат расхода.",
    ),
    *,
    opts: ControlOptions,
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
            f"till {outcome.device_id}: correction receipt {_roubles(kopecks)}, "
            f"fiscal document {fmt(pick(r, 'fn_doc_number'))}"
        )

    simple("correction", args, sentence, opts)


def register(app: typer.Typer) -> None:
    """Add ``sell`` and ``correction`` to the command line."""
    app.command("sell")(sell)
    app.command("correction")(correction)
