"""``kkt-emulator bench`` (the suite): its JSON shape, its verdicts, its load generator's HTTP.

Speed is never asserted here: the figures are the report's business. The one run of the real
command is ``--quick`` and only the cheap parts (a few seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kkt_emulator.app import loadgen
from kkt_emulator.app.bench_suite import (
    BenchStartError,
    _Child,
    _cpu_split,
    _judge_all,
    _tree_cpu,
    _wait_file,
)
from kkt_emulator.cli.main import main
from kkt_emulator.net import listen_socket


def test_quick_run_of_the_cheap_parts_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "kkt_emulator", "bench", "--quick"]
    argv += ["--only", "bare,status,drive,startup", "--json-out", str(out)]
    proc = subprocess.run(  # noqa: S603 - our own interpreter and constant arguments
        argv, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert json.loads(out.read_text(encoding="utf-8")) == result
    assert "status: GET /api/fn/v1/status" in proc.stderr  # progress goes to stderr

    machine = result["machine"]
    assert machine["cores"] >= 1
    assert machine["event_loop"] in ("uvloop", "asyncio")
    assert machine["http_parser"] in ("httptools", "h11")
    assert set(result) >= {"bare", "status", "drive", "startup", "summary", "ok"}
    assert "e2e" not in result
    assert "plugin" not in result
    assert result["bare"]["requests_per_second"] > 0
    assert result["status"]["requests_per_second"] > 0
    assert result["status"]["non_2xx" if machine["wrk"] else "errors"] == 0
    assert result["status"]["status_ratio"] > 0
    assert result["drive"]["line_rate_ratio"] > 0
    assert result["startup"]["seconds"] > 0

    figures = {(row["part"], row["figure"]) for row in result["summary"]}
    assert figures == {
        ("bare", "requests_per_second"),
        ("status", "requests_per_second"),
        ("status", "status_ratio"),
        ("drive", "line_rate_ratio"),
        ("startup", "seconds"),
    }
    for row in result["summary"]:
        assert row["goal"].split()[0] in (">", ">=", "<=")
        assert isinstance(row["ok"], bool)
    assert result["ok"] == all(result[p]["ok"] for p in ("bare", "status", "drive", "startup"))


def _measured(**parts: Any) -> dict[str, Any]:
    return {"benchmark": "suite", "machine": {}, **parts}


def test_verdicts_compare_each_figure_with_its_goal() -> None:
    result = _judge_all(
        _measured(
            bare={"requests_per_second": 1000.0},
            status={"requests_per_second": 800.0},
            drive={"line_rate_ratio": 49.9},
            startup={"seconds": 1.5},
        )
    )
    assert result["status"]["status_ratio"] == 0.8
    assert result["status"]["ok"] is True
    assert result["drive"]["ok"] is False  # 49.9 misses >= 50
    assert result["startup"]["ok"] is True  # 1.5 meets <= 1.5
    assert result["ok"] is False


def test_a_ratio_without_its_reference_is_unjudged_but_a_failed_measurement_fails() -> None:
    alone = _judge_all(_measured(status={"requests_per_second": 800.0}))
    assert alone["status"]["status_ratio"] is None
    assert alone["status"]["ok"] is True  # the rate is there; the ratio had no bare to divide by
    assert alone["ok"] is True

    broken = _judge_all(
        _measured(
            bare={"requests_per_second": 1000.0},
            status={"requests_per_second": None, "error": "wrk: connection refused"},
        )
    )
    assert broken["status"]["ok"] is False
    assert broken["ok"] is False


def test_e2e_fails_unless_every_document_completed() -> None:
    e2e = {
        "documents": 10,
        "statuses": {"COMPLETED": 9, "WAIT_FOR_CALLBACK": 1},
        "receipts_per_second": 900.0,
    }
    result = _judge_all(
        _measured(
            status={"requests_per_second": 1000.0},
            e2e=e2e,
            cpu={"cpu_ms_per_receipt": 1.0},
        )
    )
    assert result["e2e"]["all_completed"] is False
    assert result["e2e"]["e2e_ratio"] == 0.9
    assert result["e2e"]["ok"] is False
    assert result["cpu"]["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--only", "bare,warp"], "use bare, status"),
        (["bench", "--quick", "fn"], "suite options do not apply"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


async def test_loadgen_connection_reads_length_chunked_and_close() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
    ]
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            for answer in answers:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    sock = listen_socket("127.0.0.1", 0)
    server = await asyncio.start_server(serve, sock=sock)
    target = loadgen.Target.parse(f"http://127.0.0.1:{sock.getsockname()[1]}/api")
    conn = loadgen.Connection(target)
    raw = target.request("GET", "/api/x", loadgen.basic_auth("a", "b"))
    assert b"Authorization: Basic YTpi\r\n" in raw
    assert await conn.request(raw) == (200, b"hello")
    assert await conn.request(raw) == (201, b"abcde")
    assert await conn.request(raw) == (404, b"no")
    assert await conn.request(raw) == (200, b"hello")  # reopened after Connection: close
    assert connections == 2
    conn.close()
    server.close()
    await server.wait_closed()


def test_loadgen_refuses_what_it_cannot_load() -> None:
    with pytest.raises(ValueError, match="only http://"):
        loadgen.Target.parse("https://example.com/api")


async def test_a_part_whose_process_dies_at_start_says_so_in_one_error(tmp_path: Path) -> None:
    script = "import sys; print('cannot bind: address in use'); sys.exit(3)"
    child = _Child("up", [sys.executable, "-c", script], tmp_path)
    await child.start()
    with pytest.raises(BenchStartError, match=r"up exited with 3 .*cannot bind: address in use"):
        await _wait_file(tmp_path / "ready.json", child, 30.0)


def test_cpu_is_split_into_the_root_and_its_descendants() -> None:
    before = {10: 1.0, 11: 2.0}
    after = {10: 1.5, 11: 2.25, 12: 0.5}  # 12 started meanwhile: all of its time counts
    assert _cpu_split(before, after, 10) == {"up": 0.5, "workers": 0.75}
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sum(range(10**7)); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while (seen := _tree_cpu(os.getpid())).get(child.pid, 0.0) < 0.05:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert next(iter(seen)) == os.getpid()  # the root's own first
        assert seen[child.pid] > 0
    finally:
        child.communicate(b"")
