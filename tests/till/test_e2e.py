"""End to end over real sockets: shop → cloud → till → drive → OFD, and the till's error texts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request

from kkt_emulator.clock import RealClock
from kkt_emulator.fn.signing import parse_qr, validate_rnm, verify_document
from kkt_emulator.net import listen_socket
from kkt_emulator.testing.stack import StackHarness

FN = "Сообщение ФН об ошибке: "


@contextlib.asynccontextmanager
async def shop_site() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A shop's callback endpoint on a real port, recording what the cloud posts."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.api_route("/callback", methods=["GET", "POST"])
    async def callback(request: Request) -> dict[str, str]:
        # D42: GET with the document's parameters appended to responseURL by default.
        received.append({"method": request.method, "query": dict(request.query_params)})
        return {"ok": "yes"}

    sock = listen_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await RealClock().pace(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/callback", received
    finally:
        server.should_exit = True
        await task
        sock.close()


async def check_fiscal_info(kkt: StackHarness, info: dict[str, Any], total: float) -> None:
    till = kkt.till
    assert info["fnNumber"] == till.fn_serial
    assert info["kktNumber"] == till.kkt_serial
    assert info["sum"] == total
    assert info["checkType"] == "SALE"
    # РНМ with valid check digits for this till's INN and serial (FFD §16).
    assert validate_rnm(
        info["ecrRegistrationNumber"], till.profile.registration.inn, till.kkt_serial
    )
    # The QR string in the format of store-api D50, consistent with the other fields.
    qr = parse_qr(info["qr"])
    assert qr["fd_number"] == info["fnDocNumber"]
    assert qr["fpd"] == info["fnDocMark"]
    assert qr["total_kopecks"] == round(total * 100)
    assert qr["fn_serial"] == info["fnNumber"]
    assert f"&i={info['fnDocNumber']:010d}&" in info["qr"]
    # The fiscal sign recomputes from the drive's archive with the project's verify.
    assert till.drive is not None
    archived = till.drive.store.get_document(info["fnDocNumber"])
    assert archived is not None
    assert archived.fpd == info["fnDocMark"]
    assert verify_document(till.drive.secret, till.fn_serial, info["fnDocNumber"], archived.tlv)


async def wait_ofd(kkt: StackHarness, doc_id: str, seconds: float = 10.0) -> dict[str, Any]:
    deadline = kkt.clock.monotonic() + seconds
    while True:
        detail = await kkt.document_detail(doc_id)
        if detail["ofd"]["state"] == "acknowledged" or kkt.clock.monotonic() > deadline:
            return detail
        await kkt.clock.pace(0.05)


async def test_sale_completes_with_callback_and_ofd_acknowledgement(tmp_path: Path) -> None:
    async with shop_site() as (url, callbacks), StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(99.9, responseURL=url)
        assert (await kkt.post_document(doc))["status"] == "QUEUED"
        status = await kkt.wait_for_status(doc["id"], "COMPLETED")
        await check_fiscal_info(kkt, status["fiscalInfo"], 99.9)
        assert status["message"] == "Document successfully completed with callback"
        assert len(callbacks) == 1
        assert callbacks[0]["method"] == "GET"
        detail = await wait_ofd(kkt, doc["id"])
        assert detail["ofd"]["state"] == "acknowledged"
        assert kkt.stack.ofd is not None
        assert status["fiscalInfo"]["fnDocNumber"] in kkt.stack.ofd.acknowledged_fds(
            kkt.till.fn_serial
        )


async def test_drive_behind_a_real_pty(tmp_path: Path) -> None:
    link = tmp_path / "fn-link"
    async with StackHarness.running(tmp_path / "stack", tills=1) as kkt:
        # A second till whose drive sits on a pty, reached through pyserial.
        from kkt_emulator.till.till import Till, TillConfig  # noqa: PLC0415

        point = kkt.stack.points[0]
        config = TillConfig(
            profile=kkt.till.profile,
            state_dir=tmp_path / "pty-till",
            server=kkt.stack.base_url,
            login=point["service_login"],
            password=point["service_password"],
            retail_point_id=point["retail_point_id"],
            serial_link=link,
            settings={"poll_interval": 0.05},
        )
        await kkt.till.set_settings(power_saving=True)  # leave the documents to the pty till
        async with Till(config, kkt.clock) as pty_till:
            assert link.is_symlink()
            doc = kkt.sale(12.0)
            await kkt.post_document(doc)
            status = await kkt.wait_for_status(doc["id"], "COMPLETED")
            assert status["fiscalInfo"]["fnNumber"] == pty_till.fn_serial


@pytest.mark.parametrize(
    ("change", "message", "failure_type"),
    [
        ({"email": ""}, FN + "Телефон или эл. адрес покупателя", "NON_FN_FAILURE"),
        ({"email": "not-an-address"}, FN + "Телефон или эл. адрес покупателя", "NON_FN_FAILURE"),
        (
            {"taxMode": "PATENT"},
            FN + "СНО товара не была указана при регистрации ККТ",
            "FN_GENERIC_FAILURE",
        ),
        ({"agentInfo": {"types": ["another"]}}, FN + "Неправильный аргумент", "FN_GENERIC_FAILURE"),
    ],
    ids=["no-contact", "bad-contact", "tax-system", "agent"],
)
async def test_till_errors_have_the_exact_texts(
    tmp_path: Path, change: dict[str, Any], message: str, failure_type: str
) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(10.0, **change)
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"], "FAILED")
        assert status["failureInfo"] == {"type": failure_type, "message": message}
        assert status["message"] == message


async def test_negative_price_fails_with_negative(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        doc = kkt.sale(10.0)
        doc["inventPositions"].append(
            {"name": "Возврат тары", "price": -2.5, "quantity": 1, "vatTag": 1105}
        )
        doc["moneyPositions"][0]["sum"] = 7.5
        await kkt.post_document(doc)
        status = await kkt.wait_for_status(doc["id"], "FAILED")
        assert status["failureInfo"] == {"type": "NON_FN_FAILURE", "message": FN + "Negative"}
        detail = await kkt.document_detail(doc["id"])
        assert detail["errorDetail"]["detail"]["position"] == 1


async def test_storage_exhausted_after_thirty_days_without_the_ofd(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        assert kkt.stack.ofd is not None
        await kkt.stack.ofd.set_fault("ofd.down")
        first = kkt.sale(10.0)
        await kkt.post_document(first)
        await kkt.wait_for_status(first["id"], "COMPLETED")
        await kkt.advance("31d")
        blocked = kkt.sale(11.0)
        await kkt.post_document(blocked)
        status = await kkt.wait_for_status(blocked["id"], "FAILED")
        assert status["failureInfo"] == {
            "type": "FN_MEMORY_OVERFLOW",
            "message": FN + "Исчерпан ресурс хранения ФН",
        }


async def test_drive_expiry(tmp_path: Path) -> None:
    async with StackHarness.running(tmp_path) as kkt:
        first = kkt.sale(10.0)
        await kkt.post_document(first)
        await kkt.wait_for_status(first["id"], "COMPLETED")
        await wait_ofd(kkt, first["id"])
        await kkt.advance("1111d")
        late = kkt.sale(10.0)
        await kkt.post_document(late)
        status = await kkt.wait_for_status(late["id"], "FAILED")
        assert status["failureInfo"] == {"type": "FN_EXPIRED", "message": FN + "Исчерпан ресурс КС"}
