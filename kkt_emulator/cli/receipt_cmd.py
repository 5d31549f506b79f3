"""``kkt-emulator receipt show ID``: a fiscalised document's receipt as the till printed it (D102).

The cloud is ``--server``, else the installation its ready-file names, as for the ``cabinet``
commands (D106); the
receipt's requisites come from the cloud's ``/cabinet/receipt/ID.json`` and are printed as text,
or drawn as PNG or SVG by :mod:`kkt_emulator.slip` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import typer

from kkt_emulator.cli.cloud_target import READY_OPTION, SERVER, TOKEN, cloud_url, raise_for_error
from kkt_emulator.cli.output import JSON_OPTION, emit
from kkt_emulator.errors import CloudError, ConfigError, TransportError
from kkt_emulator.net import client_tls

if TYPE_CHECKING:
    from kkt_emulator.slip import Receipt

__all__ = ["app", "fetch_receipt"]

app = typer.Typer(
    help="Receipts as printed: the slip of a fiscalised document.", no_args_is_help=True
)


def fetch_receipt(
    base_url: str, doc_id: str, token: str | None = None, point_id: str | None = None
) -> Receipt:
    """The receipt of ``doc_id`` from the cloud at ``base_url``.

    Raises:
        TransportError: the cloud did not answer.
        CloudError: the cloud refused (404: unknown or not fiscalised yet; 401: the token).
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"retailPointId": point_id} if point_id else {}
    url = f"{base_url.rstrip('/')}/cabinet/receipt/{quote(doc_id, safe='')}.json"
    try:
        response = httpx.get(url, headers=headers, params=params, timeout=10.0, verify=client_tls())
    except httpx.HTTPError as exc:
        raise TransportError(f"cloud at {base_url} unreachable: {exc}") from exc
    raise_for_error(response)
    from kkt_emulator.slip import Receipt  # noqa: PLC0415 - Pillow and segno only when drawing

    try:
        return Receipt.from_json(response.json())
    except (KeyError, TypeError, ValueError) as exc:
        raise CloudError(502, f"the cloud's receipt is not readable: {exc}") from exc


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from exc


@app.command("show")
def show(
    doc_id: str = typer.Argument(help="The document id the shop sent."),
    png: Path | None = typer.Option(None, "--png", help="Write the slip as a PNG image here."),
    svg: Path | None = typer.Option(None, "--svg", help="Write the slip as an SVG image here."),
    retail_point: str | None = typer.Option(
        None, "--retail-point", help="The document's retail point, when several have the id."
    ),
    server: str | None = SERVER,
    token: str | None = TOKEN,
    ready_file: Path | None = READY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a fiscalised document's receipt as the till printed it; --png/--svg draw it."""
    base = cloud_url(server, ready_file)
    from kkt_emulator.slip import render_png, render_svg, render_text  # noqa: PLC0415 - as above

    receipt = fetch_receipt(base, doc_id, token, retail_point)
    if png is not None:
        _write(png, render_png(receipt))
    if svg is not None:
        _write(svg, render_svg(receipt).encode())
    if as_json:
        emit(receipt.to_json(), as_json=True, human=lambda _: None)
    elif png is None and svg is None:
        typer.echo(render_text(receipt), nl=False)
    else:
        written = ", ".join(str(p) for p in (png, svg) if p is not None)
        typer.echo(f"receipt ФД {receipt.fd} ФП {receipt.fp} written to {written}")
