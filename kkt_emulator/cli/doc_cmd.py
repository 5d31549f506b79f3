"""``kkt-emulator doc``: post shop documents to a running installation and read their status."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import typer

from kkt_emulator.app.stack import EXAMPLE_SALE
from kkt_emulator.cli.cloud_target import raise_for_error
from kkt_emulator.cli.output import JSON_OPTION, console, emit
from kkt_emulator.cli.ready import READY_OPTION, load_ready
from kkt_emulator.clock import RealClock
from kkt_emulator.cloud.texts import status_text
from kkt_emulator.errors import ConfigError, TransportError
from kkt_emulator.net import client_tls

app = typer.Typer(help="Shop documents: send one, read its status.", no_args_is_help=True)

FINAL = ("COMPLETED", "FAILED")


class Example(StrEnum):
    """Ready-made documents, one per common outcome."""

    SALE = "sale"
    RETURN = "return"
    NEGATIVE = "negative"
    NO_CONTACT = "no-contact"


def example(name: Example) -> dict[str, Any]:
    """Build a ready-made document with a fresh id."""
    doc = copy.deepcopy(EXAMPLE_SALE)
    doc["id"] = str(uuid.uuid4())
    if name == Example.RETURN:
        doc["docType"] = "RETURN"
    elif name == Example.NEGATIVE:
        doc["inventPositions"].append(
            {"name": "Скидка", "price": -5.5, "quantity": 1, "vatTag": 1105}
        )
        doc["moneyPositions"][0]["sum"] = 40.0
    elif name == Example.NO_CONTACT:
        doc["email"] = ""
    return doc


def _human(status: dict[str, Any]) -> None:
    # The store API carries the codes only; the cabinet's Russian name goes beside (D83).
    line = (
        f"[bold]{status.get('id', '')}[/bold] {status['status']} «{status_text(status['status'])}»"
    )
    if status.get("failureInfo"):
        line += f" — {status['failureInfo']['type']}: {status['failureInfo']['message']}"
    console.print(line)
    info = status.get("fiscalInfo")
    if info:
        console.print(
            f"  ФД {info['fnDocNumber']}, ФПД {info['fnDocMark']}, shift {info['shiftNumber']}, "
            f"receipt {info['checkNumber']}, sum {info['sum']}"
        )
        console.print(f"  QR {info['qr']}")


async def _request(
    ready: dict[str, Any], method: str, path: str, body: Any = None
) -> dict[str, Any]:
    auth = (ready["login"], ready["password"])
    try:
        async with httpx.AsyncClient(
            base_url=ready["store_api"], auth=auth, timeout=10.0, verify=client_tls()
        ) as http:
            response = await http.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise TransportError(f"cloud at {ready['store_api']} unreachable: {exc}") from exc
    raise_for_error(response)
    data: dict[str, Any] = response.json()
    return data


async def _wait(ready: dict[str, Any], doc_id: str, seconds: float) -> dict[str, Any]:
    clock = RealClock()
    deadline = clock.monotonic() + seconds
    while True:
        status = await _request(ready, "GET", f"/v1/doc/{doc_id}/status")
        if status["status"] in FINAL or clock.monotonic() >= deadline:
            return status
        await clock.pace(0.2)


@app.command("send")
def send(
    file: Path | None = typer.Argument(None, help="A JSON document (the store API's Document)."),
    example_name: Example | None = typer.Option(
        None, "--example", help="Send a ready-made document."
    ),
    wait: float = typer.Option(
        15.0, "--wait", min=0.0, help="Seconds to wait for COMPLETED or FAILED (0: do not wait)."
    ),
    ready_file: Path | None = READY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Post a document to the store API (POST /v2/doc) and show where it ends up.

    Exits 1 when the document ends FAILED, 0 otherwise.
    """
    if (file is None) == (example_name is None):
        raise typer.BadParameter("give either FILE or --example")
    if file is not None:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {file}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{file}: a document is a JSON object")
        if doc.get("id") in (None, "", "<uuid>"):
            doc["id"] = str(uuid.uuid4())
    else:
        assert example_name is not None
        doc = example(example_name)
    ready = load_ready(ready_file)

    async def run() -> dict[str, Any]:
        status = await _request(ready, "POST", "/v2/doc", doc)
        if wait > 0:
            status = await _wait(ready, doc["id"], wait)
        return {"id": doc["id"], **status}

    result = asyncio.run(run())
    emit(result, as_json, _human)
    if result["status"] == "FAILED":
        raise typer.Exit(1)


@app.command("status")
def status(
    doc_id: str = typer.Argument(help="The document id the shop sent."),
    ready_file: Path | None = READY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a document's status (GET /v1/doc/ID/status)."""
    ready = load_ready(ready_file)
    result = {"id": doc_id, **asyncio.run(_request(ready, "GET", f"/v1/doc/{doc_id}/status"))}
    emit(result, as_json, _human)
