"""`kkt-emulator fn decode`: golden frames in, names and fields out; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kkt_emulator.cli.main import main
from kkt_emulator.fnio.archive import SqliteStore
from kkt_emulator.testing.drive import DriveBench


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_request_human(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fn", "decode", "04 0C 00 16 18 03 05 0E 07 01 39 30 00 00 00 F4 F8")
    assert code == 0
    assert "request 16h Сформировать чек" in out
    assert "total: 12345" in out
    assert "CRC F8F4 ok" in out


def test_answer_json_with_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "fn",
        "decode",
        "04 0B 00 00 05 00 2A 00 00 00 41 75 10 AA 94 F8",
        "--answer-to",
        "16h",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["kind"] == "answer"
    assert data["fields"] == {"receipt_number": 5, "fd": 42, "fpd": 2853205313}


def test_status_answer_fields(capsys: pytest.CaptureFixture[str]) -> None:
    frame = (
        "04 1F 00 00 03 00 00 01 00 18 03 05 0E 07 39 39 39 39 30 37 38 39 30 30 30 31 32 33 34 35"
        " 2A 00 00 00 4B 4D"
    )
    code, out, _ = run(capsys, "fn", "decode", frame, "--answer-to", "30", "--json")
    assert code == 0
    fields = json.loads(out)["fields"]
    assert fields["serial"] == "9999078900012345"
    assert fields["last_fd"] == 42


def test_warning_answer_and_error_tag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fn", "decode", "04 01 00 82 66 4A", "--json")
    data = json.loads(out)
    assert (code, data["result"], data["warning"]) == (0, "02h", True)
    assert data["name"] == "Другое состояние ФН"


def test_crc_mismatch_is_shown_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fn", "decode", "04 01 00 30 FF CE", "--json")
    assert code == 1
    assert json.loads(out)["crc"] == {"carried": "CEFF", "computed": "CDFF", "ok": False}


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ("zz", "not hex"),
        ("04 05 00 30", "at least 6 bytes"),
        ("05 01 00 30 FF CD", "starts with 04h"),
        ("04 09 00 30 FF CD", "length field says 9"),
    ],
)
def test_malformed_input_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], frame: str, message: str
) -> None:
    code, out, err = run(capsys, "fn", "decode", frame)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert message in err


def test_profiles_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profiles", "list", "--json")
    assert code == 0
    names = {p["name"] for p in json.loads(out)}
    assert {"modulkassa-ffd105", "modulkassa-ffd12"} <= names


def test_unknown_profile_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "profiles", "show", "nope")
    assert code == 2
    assert "unknown firmware profile" in err


def test_fn_archive_lists_and_decodes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench = DriveBench("modulkassa-ffd12", store=SqliteStore(tmp_path / "drive.sqlite3"))
    bench.register()
    bench.open_shift()
    receipt = bench.sale()
    bench.drive.store.close()  # type: ignore[attr-defined]
    code, out, _ = run(capsys, "fn", "archive", str(tmp_path), "--json")
    assert code == 0
    assert [row["document"] for row in json.loads(out)] == ["REGISTRATION", "OPEN_SHIFT", "RECEIPT"]
    code, out, _ = run(
        capsys, "fn", "archive", str(tmp_path / "drive.sqlite3"), "--fd", str(receipt.fd), "--json"
    )
    assert code == 0
    tags = {node["tag"]: node for node in json.loads(out)["tlvs"]}
    assert tags[1040]["value"] == receipt.fd
    assert tags[1020]["value"] == 4550  # the total the drive formed from 16h
    assert tags[1077]["fiscal_sign"] == receipt.fpd  # the ФПД as printed, the raw bytes kept
    assert tags[1077]["value"] == ("2104" + f"{receipt.fpd:08x}")
    code, out, _ = run(capsys, "fn", "archive", str(tmp_path), "--fd", str(receipt.fd))
    assert code == 0
    assert f"1077 ФПД: {receipt.fpd} (2104{receipt.fpd:08x})" in out
    code, _, err = run(capsys, "fn", "archive", str(tmp_path), "--fd", "99")
    assert (code, err.count("\n")) == (2, 1)
    code, _, err = run(capsys, "fn", "archive", str(tmp_path / "missing"))
    assert code == 2
    assert "no drive archive" in err
