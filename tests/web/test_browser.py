"""The web cabinet in a real browser, against a running installation (cloud, till, drive, OFD).

Headless Chromium (one for the session) opens the cabinet the installation serves. The first test
sees a failed document's Russian text, presses «ПРОВЕСТИ ПОВТОРНО» and sees «Выполнен» arrive by
the event stream, without a reload; the second flips «Использовать для документов
интернет-магазина» off and sees a posted document stay «В очереди», then on and sees it done.
Screenshots go to the artifacts folder the summary names.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from kkt_emulator.testing.stack import StackHarness

if TYPE_CHECKING:
    from pathlib import Path

    from .browser import Page

pytestmark = pytest.mark.slow

DISCONNECTED = "Сообщение ФН об ошибке: Сетевой поток не инициализирован"
TAX_SYSTEM = "Сообщение ФН об ошибке: СНО товара не была указана при регистрации ККТ"


def _row(doc_id: str) -> str:
    return f'tr[data-doc-id="{doc_id}"]'


async def _live(page: Page, seconds: float = 10.0) -> None:
    """Wait until the page's event stream is open (the «обновления» mark turns on)."""
    await page.wait_text("#live", "обновления", seconds)
    for _ in range(int(seconds / 0.05)):
        if await page.js("return document.getElementById('live').classList.contains('on')"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the page's event stream did not open")


async def test_redrive_of_a_failed_document_shows_done_live(tmp_path: Path, page: Page) -> None:
    async with StackHarness.running(tmp_path, drive_timeout=0.3) as kkt:
        cabinet = kkt.info["cabinet_web"]
        assert cabinet == f"{kkt.stack.base_url}/cabinet/"
        kkt.till.inject_fault("fn.disconnected")
        doc = kkt.sale(10.0)
        await kkt.post_document(doc)
        await kkt.wait_for_status(doc["id"], "FAILED")

        await page.open(f"{cabinet}tills")
        await page.wait_text(".faults", "fn.disconnected")  # the fault in force, as heartbeated
        await page.screenshot("tills-with-a-fault")

        await page.open(f"{cabinet}documents")
        await page.wait_text(f"{_row(doc['id'])} .badge", "Ошибка")
        assert await page.text(f"{_row(doc['id'])} .failure") == DISCONNECTED
        await page.screenshot("documents-with-a-failure")

        await page.click(f"{_row(doc['id'])} a")
        await page.wait_text("#status", "Ошибка")
        assert await page.text("#failure") == DISCONNECTED  # exactly as the till reported it
        await _live(page)
        await page.js("window.kktMarker = 'the same page'")
        await page.screenshot("failed-document")

        # The drive is back; the till stays offline a moment, so the re-queued state shows first
        # and «Выполнен» can only come by the event stream.
        kkt.till.clear_faults("fn.disconnected")
        kkt.till.inject_fault("till.offline")
        await page.click("#redrive")
        await page.wait_text("#status", "Повторно в очереди")
        assert await page.text("#redrive") is None  # no button for a document in the queue
        kkt.till.clear_faults("till.offline")
        await page.wait_text("#status", "Выполнен", seconds=20)
        assert await page.js("return window.kktMarker") == "the same page"  # never reloaded
        assert await page.text("#failure") is None
        assert await page.js("return document.getElementById('receipt').getAttribute('src')") == (
            f"/cabinet/receipt/{doc['id']}.svg"
        )
        await page.screenshot("done-live")
        assert (await kkt.status(doc["id"]))["status"] == "COMPLETED"


async def test_the_internet_shop_checkbox_holds_the_queue(tmp_path: Path, page: Page) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        cabinet, point = kkt.info["cabinet_web"], kkt.retail_point_id
        done, refused = kkt.sale(45.5), kkt.sale(12.0, tax_mode="PATENT")
        for doc in (done, refused):
            await kkt.post_document(doc)
        await kkt.wait_for_status(done["id"], "COMPLETED")
        await kkt.wait_for_status(refused["id"], "FAILED")

        await page.open(f"{cabinet}points/{point}")
        assert await page.checked("#internetDocsEnabled")
        await page.click("#internetDocsEnabled")
        await page.click("#apply")
        for _ in range(200):
            view = await kkt.cabinet("GET", f"/retail-points/{point}")
            if not view["internetDocsEnabled"]:
                break
            await asyncio.sleep(0.02)
        assert view["internetDocsEnabled"] is False
        assert view["fnState"] == "DISABLED"
        await page.wait_text("#fn-state", "DISABLED")
        await page.screenshot("internet-shop-off")

        held = kkt.sale(99.0)
        await page.open(f"{cabinet}documents")
        await _live(page)
        await kkt.post_document(held)
        await page.wait_text(f"{_row(held['id'])} .badge", "В очереди")  # arrived live
        await asyncio.sleep(1.0)  # twenty poll intervals of the till: it takes nothing
        assert (await kkt.status(held["id"]))["status"] == "QUEUED"
        assert await page.text(f"{_row(held['id'])} .badge") == "В очереди"
        assert await page.text(f"{_row(done['id'])} .badge") == "Выполнен"
        assert await page.text(f"{_row(refused['id'])} .failure") == TAX_SYSTEM
        await page.screenshot("documents-queue-held")

        await page.open(f"{cabinet}points/{point}")
        await page.click("#internetDocsEnabled")
        await page.click("#apply")
        await kkt.wait_for_status(held["id"], "COMPLETED")
        await page.open(f"{cabinet}documents")
        await page.wait_text(f"{_row(held['id'])} .badge", "Выполнен")
