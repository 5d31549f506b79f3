"""`kkt-emulator receipt show ID`: the slip of a fiscalised document of a running installation."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from kkt_emulator.cli import output
from kkt_emulator.cli.main import main
from kkt_emulator.slip import Receipt
from kkt_emulator.slip.render import layout

if TYPE_CHECKING:
    from pathlib import Path

    from kkt_emulator.testing.plugin import Documents, SyncKktStack


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    output.console.file = None  # type: ignore[assignment]  # rich: back to the captured stdout
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_receipt_show_prints_writes_and_refuses(
    kkt_stack_sync: SyncKktStack,
    kkt_documents: Documents,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps(kkt_stack_sync.info()), encoding="utf-8")
    doc = kkt_documents.sale(total=45.50, email="buyer@example.com")
    kkt_stack_sync.post_document(doc)
    status = kkt_stack_sync.wait_for_status(doc["id"], "COMPLETED")
    info = status["fiscalInfo"]

    code, out, err = run(capsys, "receipt", "show", doc["id"], "--ready-file", str(ready))
    assert code == 0, err
    assert "КАССОВЫЙ ЧЕК" in out
    assert "ПРИХОД" in out
    assert "=45.50" in out
    assert f"ФП{info['fnDocMark']:>40}" in out
    assert f"QR: {info['qr']}" in out

    png, svg = tmp_path / "r.png", tmp_path / "r.svg"
    code, out, err = run(
        capsys, "receipt", "show", doc["id"], "--ready-file", str(ready),
        "--png", str(png), "--svg", str(svg), "--json",
    )  # fmt: skip
    assert code == 0, err
    receipt = Receipt.from_json(json.loads(out))
    assert (receipt.fd, receipt.fp, receipt.qr) == (
        info["fnDocNumber"],
        info["fnDocMark"],
        info["qr"],
    )
    with Image.open(io.BytesIO(png.read_bytes())) as image:
        assert image.size == (layout(receipt).width, layout(receipt).height)
    root = ET.fromstring(svg.read_bytes())  # noqa: S314 - the project's own SVG
    assert root.tag.endswith("svg")

    code, out, err = run(capsys, "receipt", "show", "no-such-id", "--ready-file", str(ready))
    assert code == 2
    assert err.strip().splitlines() == ["error: HTTP 404: Document not found: no-such-id"]


def test_no_installation_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "receipt", "show", "x", "--ready-file", str(tmp_path / "none.json"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no running installation" in err
