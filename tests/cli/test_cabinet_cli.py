"""`kkt-emulator cabinet …` against a cloud served by uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from kkt_emulator.cli import output
from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.app import Cloud
from kkt_emulator.cloud.settings import CloudSettings
from kkt_emulator.logging import configure_logging
from kkt_emulator.net import listen_socket

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    configure_logging("console", "warning")  # keep the server's info logs off captured stdout
    sock = listen_socket("127.0.0.1", 0, backlog=64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    holder: dict[str, uvicorn.Server] = {}
    ready = threading.Event()

    async def run() -> None:
        clock = ManualClock(datetime(2024, 5, 1, 9, 0, tzinfo=UTC))
        cloud = Cloud(tmp_path / "cloud.db", clock, CloudSettings(password_iterations=1000))
        config = uvicorn.Config(cloud.app, lifespan="on", log_level="warning", access_log=False)
        holder["server"] = uvicorn.Server(config)
        task = asyncio.create_task(holder["server"].serve(sockets=[sock]))
        for _ in range(3000):
            if holder["server"].started:
                break
            await clock.pace(0.01)
        ready.set()
        await task

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(timeout=30)
    try:
        yield url
    finally:
        holder["server"].should_exit = True
        thread.join(timeout=30)
        sock.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], server: str, *args: str) -> Any:
    code, out, err = run(capsys, "cabinet", *args, "--server", server, "--json")
    assert code == 0, err
    return json.loads(out)


def shop_post(server: str, point_id: str, doc: dict[str, Any], creds: dict[str, str]) -> None:
    with httpx.Client(base_url=server) as http:
        assoc = http.post(
            f"/api/fn/v1/associate/{point_id}", auth=(creds["login"], creds["password"])
        ).json()
        response = http.post(
            "/api/fn/v2/doc", json=doc, auth=(assoc["userName"], assoc["password"])
        )
        assert response.status_code == 200, response.text


def doc(**changes: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "docNum": "1001",
        "docType": "SALE",
        "checkoutDateTime": "2024-05-01T12:00:00+03:00",
        "email": "buyer@example.com",
        "inventPositions": [{"name": "Товар", "price": 100, "quantity": 1, "vatTag": 1105}],
        "moneyPositions": [{"paymentType": "CARD", "sum": 100}],
        **changes,
    }


def test_points_credentials_and_flags(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    point = run_json(
        capsys,
        server,
        "points",
        "create",
        "--name",
        "Shop",
        "--inn",
        "7727401209",
        "--pickup-window",
        "5min",
    )
    assert point["pickupWindow"] == "5min"
    assert point["fnState"] == "ASSOCIATED"
    listed = run_json(capsys, server, "points", "list")
    assert [p["id"] for p in listed] == [point["id"]]
    changed = run_json(
        capsys,
        server,
        "points",
        "set",
        point["id"],
        "--internet-docs",
        "off",
        "--stop-on-errors",
        "on",
    )
    assert changed["internetDocsEnabled"] is False
    assert changed["stopOnErrors"] is True
    assert changed["fnState"] == "DISABLED"
    creds = run_json(capsys, server, "credentials", point["id"])
    assert creds["login"].startswith("svc-")
    assert len(creds["password"]) == 16
    code, out, _ = run(capsys, "cabinet", "points", "list", "--server", server)
    assert code == 0
    assert "Shop" in out


def test_documents_redrive_and_mark_done(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    point = run_json(capsys, server, "points", "create", "--name", "S", "--pickup-window", "5min")
    creds = run_json(capsys, server, "credentials", point["id"])
    first, second = doc(docNum="A"), doc(id="order/2", docNum="B")
    shop_post(server, point["id"], first, creds)
    shop_post(server, point["id"], second, creds)
    moved = run_json(capsys, server, "clock", "advance", "235s")
    assert moved["now"] == "2024-05-01T09:03:55+00:00"
    failed = run_json(capsys, server, "documents", "list", "--status", "FAILED")
    assert {d["id"] for d in failed} == {first["id"], "order/2"}
    shown = run_json(capsys, server, "documents", "show", "order/2")
    assert shown["failureInfo"]["message"] == "POS doesn't connect for document within 235 seconds"
    assert [h["status"] for h in shown["history"]] == ["QUEUED", "FAILED"]
    redriven = run_json(capsys, server, "redrive", first["id"], "--retail-point", point["id"])
    assert redriven["status"] == "REQUEUED"
    done = run_json(capsys, server, "mark-done", "order/2")
    assert done["status"] == "COMPLETED"
    code, out, _ = run(capsys, "cabinet", "documents", "show", "order/2", "--server", server)
    assert code == 0
    assert "COMPLETED" in out
    assert run_json(capsys, server, "heartbeats") == []
    assert run_json(capsys, server, "warnings") == []
    shown_clock = run_json(capsys, server, "clock", "show")
    assert shown_clock["mode"] == "manual"


def test_errors_are_one_line_and_exit_2(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cabinet", "documents", "show", "nope", "--server", server)
    assert code == 2
    assert err.strip() == "error: HTTP 404: Document not found: nope"
    code, _, err = run(capsys, "cabinet", "redrive", "x", "--retail-point", "y", "--server", server)
    assert code == 2
    assert err.strip().startswith("error: HTTP 404")


def test_unreachable_server_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = run(capsys, "cabinet", "points", "list", "--server", f"http://127.0.0.1:{port}")
    assert code == 2
    assert err.startswith(f"error: cannot reach the cloud at http://127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


def test_documents_show_statuses_in_russian_and_the_cabinet_error_line(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """D83: «Ошибка» beside FAILED, the deck's «… в документе: » line; the store view as is."""
    monkeypatch.setattr(output.console, "width", 400)  # one table row per line
    point = run_json(capsys, server, "points", "create", "--name", "S", "--pickup-window", "5min")
    creds = run_json(capsys, server, "credentials", point["id"])
    queued = doc(docNum="Q")
    shop_post(server, point["id"], queued, creds)
    [listed] = run_json(capsys, server, "documents", "list")
    assert (listed["status"], listed["statusText"]) == ("QUEUED", "В очереди")
    assert listed["failureText"] is None
    run_json(capsys, server, "clock", "advance", "235s")
    shown = run_json(capsys, server, "documents", "show", queued["id"])
    assert (shown["status"], shown["statusText"]) == ("FAILED", "Ошибка")
    assert shown["failureText"] == (
        "Сообщение ФН об ошибке в документе: POS doesn't connect for document within 235 seconds"
    )
    assert [h["statusText"] for h in shown["history"]] == ["В очереди", "Ошибка"]
    # The store API's view inside the detail keeps the vendor's fields and bare text (D37).
    store = shown["storeStatus"]
    assert "statusText" not in store
    assert "failureText" not in store
    assert store["failureInfo"]["message"] == "POS doesn't connect for document within 235 seconds"
    code, out, _ = run(capsys, "cabinet", "documents", "list", "--server", server)
    assert code == 0
    [row] = [line for line in out.splitlines() if queued["id"] in line]
    assert "FAILED «Ошибка»" in row
    assert "Сообщение ФН об ошибке в документе: POS doesn't connect" in row
    code, out, _ = run(capsys, "cabinet", "documents", "show", queued["id"], "--server", server)
    assert code == 0
    assert "(FAILED «Ошибка»)" in out
    assert (
        "error: NON_FN_FAILURE: Сообщение ФН об ошибке в документе: POS doesn't connect for"
        " document within 235 seconds"
    ) in out
    assert "QUEUED «В очереди»" in out
    redriven = run_json(capsys, server, "redrive", queued["id"])
    assert (redriven["status"], redriven["statusText"]) == ("REQUEUED", "Повторно в очереди")
    assert redriven["failureText"] is None


def test_doc_status_shows_the_russian_status_beside_the_code(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """D83: ``doc status`` reads the store API (codes only) and names the status in Russian."""
    point = run_json(capsys, server, "points", "create", "--name", "S", "--pickup-window", "5min")
    creds = run_json(capsys, server, "credentials", point["id"])
    with httpx.Client(base_url=server) as http:
        assoc = http.post(
            f"/api/fn/v1/associate/{point['id']}", auth=(creds["login"], creds["password"])
        ).json()
    ready = tmp_path / "ready.json"
    ready.write_text(
        json.dumps(
            {
                "store_api": f"{server}/api/fn",
                "login": assoc["userName"],
                "password": assoc["password"],
            }
        ),
        encoding="utf-8",
    )
    queued = doc()
    with httpx.Client(base_url=server) as http:
        answer = http.post(
            "/api/fn/v2/doc", json=queued, auth=(assoc["userName"], assoc["password"])
        )
        assert answer.status_code == 200, answer.text
    code, out, err = run(capsys, "doc", "status", queued["id"], "--ready-file", str(ready))
    assert code == 0, err
    assert f"{queued['id']} QUEUED «В очереди»" in out
    code, out, _ = run(capsys, "doc", "status", queued["id"], "--ready-file", str(ready), "--json")
    assert code == 0
    assert "statusText" not in json.loads(out)  # the store API's JSON is the vendor's
    run_json(capsys, server, "clock", "advance", "235s")
    code, out, _ = run(capsys, "doc", "status", queued["id"], "--ready-file", str(ready))
    assert code == 0
    assert (
        f"{queued['id']} FAILED «Ошибка» — NON_FN_FAILURE: POS doesn't connect for document"
        " within 235 seconds"
    ) in out


def test_service_credentials_of_orders(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``cabinet credentials POINT --service orders``: an account pair the orders auth accepts."""
    point = run_json(capsys, server, "points", "create", "--name", "Courier shop")
    first = run_json(capsys, server, "credentials", point["id"], "--service", "orders")
    assert first["service"] == "orders"
    assert first["title"] == "Заказы (выдача/доставка)"
    assert "@" in first["login"]
    second = run_json(capsys, server, "credentials", point["id"], "--service", "orders")
    assert second["login"] != first["login"]
    code, out, _ = run(
        capsys, "cabinet", "credentials", point["id"], "--service", "elba", "--server", server
    )
    assert code == 0
    assert "Контур.Эльба" in out
    code, _, err = run(
        capsys, "cabinet", "credentials", point["id"], "--service", "kassa", "--server", server
    )
    assert code == 2
    assert "kassa" in err


def test_integrations_and_feeds_from_the_command_line(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    point = run_json(capsys, server, "points", "create", "--name", "Склад", "--inn", "7727401209")
    listed = run_json(capsys, server, "integrations", "list", point["id"])
    assert [(i["name"], i["enabled"]) for i in listed] == [
        ("moysklad", False),
        ("onec", False),
        ("moedelo", False),
        ("elba", False),
    ]
    row = run_json(
        capsys,
        server,
        "integrations",
        "set",
        point["id"],
        "moedelo",
        "--on",
        "--url",
        "http://accounting.test/hook",
    )
    assert row["enabled"] is True
    assert row["webhookUrl"] == "http://accounting.test/hook"
    row = run_json(capsys, server, "integrations", "set", point["id"], "moedelo", "--no-url")
    assert row["webhookUrl"] is None
    assert row["enabled"] is True
    page = run_json(capsys, server, "feeds", "list", point["id"])
    assert page == {"data": [], "pos": 0, "total_count": 0}
    # 1С is off: the export is refused with one line and a non-zero exit.
    code, _, err = run(
        capsys,
        "cabinet",
        "feeds",
        "export",
        point["id"],
        "--from",
        "2024-05-01T00:00:00+03:00",
        "--to",
        "2024-05-02T00:00:00+03:00",
        "--server",
        server,
    )
    assert code != 0
    assert "Обмен с 1С" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "cabinet", "integrations", "set", point["id"], "sbis", "--on")
    assert code == 2
    code, _, err = run(
        capsys, "cabinet", "integrations", "set", point["id"], "elba", "--server", server
    )
    assert code == 2
    assert "nothing to change" in err


def test_cabinet_commands_find_the_installation_through_its_ready_file(
    server: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D106: without --server the cabinet talks to the installation its ready-file names."""
    monkeypatch.delenv("KKT_CLOUD_URL", raising=False)
    monkeypatch.delenv("KKT_READY_FILE", raising=False)
    monkeypatch.setenv("KKT_STATE_DIR", str(tmp_path / "state"))
    point = run_json(capsys, server, "points", "create", "--name", "Через ready-file")
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"base_url": server, "pid": os.getpid()}), encoding="utf-8")

    code, out, err = run(capsys, "cabinet", "points", "list", "--ready-file", str(ready), "--json")
    assert code == 0, err
    assert [p["id"] for p in json.loads(out)] == [point["id"]]
    code, out, err = run(
        capsys, "cabinet", "feeds", "list", point["id"], "--ready-file", str(ready), "--json"
    )
    assert code == 0, err

    monkeypatch.setenv("KKT_READY_FILE", str(ready))
    code, out, err = run(capsys, "cabinet", "points", "show", point["id"], "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "Через ready-file"
    monkeypatch.delenv("KKT_READY_FILE")

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ready.json").write_text(ready.read_text(), encoding="utf-8")
    code, out, err = run(capsys, "cabinet", "points", "list", "--json")  # the default state dir's
    assert code == 0, err
    assert [p["id"] for p in json.loads(out)] == [point["id"]]


def test_a_named_ready_file_that_is_missing_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KKT_CLOUD_URL", raising=False)
    missing = tmp_path / "none.json"
    code, _, err = run(capsys, "cabinet", "points", "list", "--ready-file", str(missing))
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: no running installation: {missing} not found (start one with `kkt-emulator up`)"
    ]


def test_without_a_ready_file_the_default_server_is_used(tmp_path: Path) -> None:
    from kkt_emulator.cli.cloud_target import cloud_url  # noqa: PLC0415 - the unit under test
    from kkt_emulator.cloud.cabinet_client import DEFAULT_SERVER  # noqa: PLC0415 - as above

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KKT_STATE_DIR", str(tmp_path))
        assert cloud_url(None, None) == DEFAULT_SERVER
        assert cloud_url("http://elsewhere:1", None) == "http://elsewhere:1"
        gone = tmp_path / "ready.json"
        gone.write_text(json.dumps({"base_url": "http://x:1", "pid": 2**22 + 12345}), "utf-8")
        assert cloud_url(None, None) == DEFAULT_SERVER  # a stale default ready-file
        gone.write_text(json.dumps({"base_url": "http://x:1"}), "utf-8")
        assert cloud_url(None, None) == "http://x:1"


def test_the_daily_1c_time_from_the_command_line(
    server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """B23: ``integrations set onec --daily-at HH:MM`` and ``--per-shift``; a bad time is one line."""
    point = run_json(capsys, server, "points", "create", "--name", "1С", "--inn", "7727401209")
    row = run_json(
        capsys, server, "integrations", "set", point["id"], "onec", "--on", "--daily-at", "21:00"
    )
    assert (row["enabled"], row["dailyAt"]) == (True, "21:00")
    assert row["nextDailyAt"] == "2024-05-01T18:00:00+00:00"
    code, out, err = run(capsys, "cabinet", "integrations", "list", point["id"], "--server", server)
    assert code == 0, err
    assert "21:00" in out  # the table wraps "daily 21:00 UTC+3" in a narrow terminal
    assert "per shift" in out
    listed = run_json(capsys, server, "integrations", "list", point["id"])
    assert [i["dailyAt"] for i in listed] == [None, "21:00", None, None]
    for name, value in (("onec", "25:00"), ("moedelo", "21:00")):
        code, _, err = run(
            capsys,
            "cabinet",
            "integrations",
            "set",
            point["id"],
            name,
            "--daily-at",
            value,
            "--server",
            server,
        )
        assert code != 0
        assert "dailyAt" in err
        assert len(err.strip().splitlines()) == 1
    row = run_json(capsys, server, "integrations", "set", point["id"], "onec", "--per-shift")
    assert row["dailyAt"] is None
    code, _, err = run(
        capsys,
        "cabinet",
        "integrations",
        "set",
        point["id"],
        "onec",
        "--daily-at",
        "09:00",
        "--per-shift",
    )
    assert code == 2
    assert "not both" in err
