"""``kkt-emulator tlv decode``: human and JSON output, layered input, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kkt_emulator.cli.main import main

ITEM_HEX = (
    "23 04 2A 00 06 04 04 00 95 AB A5 A1 37 04 02 00 C6 11 FF 03 03 00 03 E8 03\n"
    "13 04 02 00 C6 11 AF 04 01 00 01 BC 04 01 00 01 BE 04 01 00 04"
)
CAPTURE = Path(__file__).parents[1] / "golden" / "ofd-registration-change-fn1.bin"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_decode_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", ITEM_HEX]) == 0
    out = capsys.readouterr().out
    assert "1059 предмет расчета (42 bytes)" in out
    assert '1030 наименование предмета расчета: "Хлеб"' in out
    assert "1023 количество предмета расчета: 1.000" in out
    assert "1214 признак способа расчета: 4" in out


def test_decode_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--json", ITEM_HEX]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["tag"], item["name"], item["type"], item["length"]) == (
        1059,
        "предмет расчета",
        "stlv",
        42,
    )
    assert [(c["tag"], c["value"]) for c in item["children"]] == [
        (1030, "Хлеб"),
        (1079, 4550),
        (1023, "1.000"),
        (1043, 4550),
        (1199, 1),
        (1212, 1),
        (1214, 4),
    ]


def test_decode_file_with_session_header(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--json", "--file", str(CAPTURE)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["session"]["fn_serial"] == "9999078900005488"
    assert result["session"]["body_length"] == 436
    assert result["container"]["crc"] == 0x7825
    assert result["container"]["doc_code"] == 11
    assert result["container"]["trailer"] == "8106a55ae10c4d750000"
    (root,) = result["tlvs"]
    assert root["tag"] == 11
    assert len(root["children"]) == 29
    assert root["children"][25]["value"] == "111141 г.Москва, ул. Кусковская\r\nд.20А офис В-202"


def test_decode_file_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--file", str(CAPTURE)]) == 0
    out = capsys.readouterr().out
    assert "session: " in out
    assert "crc 7825h" in out
    assert "11 Отчет об изменении параметров регистрации (390 bytes)" in out
    assert "1012 дата, время: 2017-03-03T11:38:00+00:00" in out


def test_decode_bare_container_hex(capsys: pytest.CaptureFixture[str]) -> None:
    container_hex = CAPTURE.read_bytes()[30:].hex(" ")
    assert main(["tlv", "decode", "--json", container_hex]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "session" not in result
    assert result["container"]["fd_number"] == 1
    assert result["tlvs"][0]["tag"] == 11


def test_bad_values_are_shown_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--json", "F4 03 03 00 01 02 03"]) == 0
    (node,) = json.loads(capsys.readouterr().out)
    assert node["value"] == "010203"
    assert node["error"] == "expected 4 bytes, got 3"


def test_malformed_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "23 04 zz"]) == 2
    assert "not hex" in _one_error_line(capsys)


def test_truncated_tlv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "23 04 2A 00 06 04"]) == 2
    line = _one_error_line(capsys)
    assert line == (
        "error: tag 1059 at offset 0: length 42 runs past the end of the data (2 byte(s) left)"
    )


def test_truncated_header(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--json", "AF 04 01 00 01 BC"]) == 2
    assert "offset 5" in _one_error_line(capsys)


def test_corrupt_container_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = bytearray(CAPTURE.read_bytes())
    corrupt[100] ^= 0xFF
    path = tmp_path / "corrupt.bin"
    path.write_bytes(bytes(corrupt))
    assert main(["tlv", "decode", "--file", str(path)]) == 2
    assert "CRC mismatch: stored 7825h" in _one_error_line(capsys)


def test_session_body_length_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(CAPTURE.read_bytes()[:-1])
    assert main(["tlv", "decode", "--file", str(path)]) == 2
    assert "body is 436 bytes, got 435" in _one_error_line(capsys)


@pytest.mark.parametrize(
    "args",
    [
        ["tlv", "decode"],
        ["tlv", "decode", "AF04010001", "--file", "x.bin"],
        ["tlv", "decode", "--file", "/nonexistent/capture.bin"],
    ],
)
def test_input_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    _one_error_line(capsys)


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.bin"
    path.touch()
    assert main(["tlv", "decode", "--file", str(path)]) == 2
    assert "no bytes" in _one_error_line(capsys)


def test_capture_copy_is_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "capture with spaces.bin"
    shutil.copyfile(CAPTURE, copy)
    assert main(["tlv", "decode", "--file", str(copy)]) == 0
    assert "1077 ФПД: 2853205313 (2104aa107541)" in capsys.readouterr().out


def _fiscal_sign_node(nodes: list[dict[str, object]]) -> dict[str, object]:
    (node,) = [n for n in nodes if n["tag"] == 1077]
    return node


def test_fiscal_sign_as_printed_in_the_real_capture(capsys: pytest.CaptureFixture[str]) -> None:
    """Tag 1077 of the yandex/ofd capture: printed ФПД 2853205313, the six bytes kept."""
    assert main(["tlv", "decode", "--file", str(CAPTURE)]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "1077" in line]
    assert line.endswith("1077 ФПД: 2853205313 (2104aa107541)")
    assert main(["tlv", "decode", "--json", "--file", str(CAPTURE)]) == 0
    (root,) = json.loads(capsys.readouterr().out)["tlvs"]
    node = _fiscal_sign_node(root["children"])
    assert (node["fiscal_sign"], node["value"], node["length"]) == (2853205313, "2104aa107541", 6)


@pytest.mark.parametrize(
    ("tlv_hex", "printed"),
    [("35 04 06 00 21 04 1C 6B 81 A4", 476807588), ("35 04 06 00 00 00 FF FF FF FF", 2**32 - 1)],
)
def test_fiscal_sign_of_a_bare_tag(
    tlv_hex: str, printed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tlv", "decode", "--json", tlv_hex]) == 0
    node = _fiscal_sign_node(json.loads(capsys.readouterr().out))
    assert node["fiscal_sign"] == printed
    assert node["value"] == bytes.fromhex(tlv_hex)[4:].hex()


def test_a_short_fiscal_sign_is_not_read_as_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tlv", "decode", "--json", "35 04 04 00 21 04 AA 10"]) == 0
    node = _fiscal_sign_node(json.loads(capsys.readouterr().out))
    assert "fiscal_sign" not in node
    assert node["value"] == "2104aa10"
    assert main(["tlv", "decode", "35 04 04 00 21 04 AA 10"]) == 0
    assert "1077 ФПД: 2104aa10" in capsys.readouterr().out
