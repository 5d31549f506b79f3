"""``kkt-emulator fn``: decode drive frames."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import construct as cs
import typer

from kkt_emulator.cli.output import JSON_OPTION, console, emit, parse_hex
from kkt_emulator.errors import DriveError, FramingError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.frame import MSG_START, WARNING_BIT

app = typer.Typer(help="The fiscal drive's wire protocol: decode frames.", no_args_is_help=True)


class Kind(StrEnum):
    """How to read a frame's code byte."""

    AUTO = "auto"
    REQUEST = "request"
    ANSWER = "answer"


def _jsonable(value: Any) -> Any:
    if isinstance(value, cs.Container):
        return {k: _jsonable(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | cs.ListContainer):
        return [_jsonable(v) for v in value]
    return value


def _command_name(code: int) -> str | None:
    try:
        return Command(code).title
    except ValueError:
        return None


def _result_name(code: int) -> str | None:
    try:
        return ResultCode(code).text()
    except ValueError:
        return None


def decode(raw: bytes, kind: Kind = Kind.AUTO, command: int | None = None) -> dict[str, Any]:
    """Decode one frame into a JSON-friendly dict (fields, CRC verdict, names).

    Raises:
        FramingError: the bytes are not one frame (start byte, length).
    """
    if len(raw) < 6:
        raise FramingError(f"a frame is at least 6 bytes, got {len(raw)}")
    if raw[0] != MSG_START:
        raise FramingError(f"a frame starts with 04h, got {raw[0]:02X}h")
    length = int.from_bytes(raw[1:3], "little")
    if length < 1 or len(raw) != length + 5:
        raise FramingError(
            f"length field says {length} (so {length + 5} bytes in all), got {len(raw)} bytes"
        )
    code = raw[3]
    data = raw[4 : 3 + length]
    carried = int.from_bytes(raw[-2:], "little")
    computed = crc16_ccitt(raw[1:-2])
    out: dict[str, Any] = {
        "length": length,
        "data": data.hex(" "),
        "crc": {
            "carried": f"{carried:04X}",
            "computed": f"{computed:04X}",
            "ok": carried == computed,
        },
    }
    if kind == Kind.AUTO:
        kind = Kind.REQUEST if code != 0 and _command_name(code) is not None else Kind.ANSWER
    if kind == Kind.REQUEST:
        name = _command_name(code)
        out.update(
            {"kind": "request", "command": f"{code:02X}h", "name": name or "unknown command"}
        )
        if name is not None:
            try:
                out["fields"] = _jsonable(cmd.parse_request(code, data))
            except DriveError as exc:
                out["error"] = exc.detail or str(exc)
        return out
    result = code & 0x7F
    out.update(
        {
            "kind": "answer",
            "result": f"{result:02X}h",
            "name": _result_name(result) or "unknown result code",
            "warning": bool(code & WARNING_BIT),
        }
    )
    if result != 0:
        out["fields"] = _jsonable(cmd.error_answer_fields(result, data))
    elif command is not None:
        try:
            out["answer_to"] = f"{command:02X}h"
            out["fields"] = _jsonable(cmd.parse_answer(command, data))
        except DriveError as exc:
            out["error"] = exc.detail or str(exc)
    return out


def _human(result: dict[str, Any]) -> None:
    crc = result["crc"]
    verdict = (
        "[green]ok[/green]" if crc["ok"] else f"[red]mismatch, computed {crc['computed']}[/red]"
    )
    if result["kind"] == "request":
        console.print(f"[bold]request {result['command']}[/bold] {result['name']}")
    else:
        warning = " [yellow](warning bit set: read 30h)[/yellow]" if result["warning"] else ""
        console.print(f"[bold]answer {result['result']}[/bold] {result['name']}{warning}")
    console.print(f"  length {result['length']}, CRC {crc['carried']} {verdict}")
    if "answer_to" in result:
        console.print(f"  answer to {result['answer_to']}")
    for key, value in (result.get("fields") or {}).items():
        console.print(f"  {key}: {value}")
    if "error" in result:
        console.print(f"  [red]{result['error']}[/red]")
    if result["data"] and not result.get("fields"):
        console.print(f"  data: {result['data']}")


def _hex_byte(text: str) -> int:
    try:
        value = int(text.lower().removesuffix("h").removeprefix("0x"), 16)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a hex byte such as 30 or 16h") from exc
    if not 0 <= value <= 0xFF:
        raise typer.BadParameter(f"{text!r} is not a byte")
    return value


@app.command("decode")
def decode_command(
    frame: str = typer.Argument(help="The frame in hex, spaces allowed: '04 01 00 30 FF CD'."),
    kind: Kind = typer.Option(
        Kind.AUTO, "--as", help="Read the code byte as a request command or an answer result."
    ),
    answer_to: str | None = typer.Option(
        None,
        "--answer-to",
        help="For an answer: the command it answers (hex), to decode its fields.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Decode a drive frame: command or result name, fields, CRC verdict.

    A frame whose CRC does not match is still decoded and the mismatch is shown; bytes that are not
    a frame at all (wrong start byte or length) are an error (exit code 2).
    """
    raw = parse_hex(frame)
    command = _hex_byte(answer_to) if answer_to is not None else None
    result = decode(raw, kind, command)
    emit(result, as_json, _human)
    if not result["crc"]["ok"]:
        raise typer.Exit(1)
