"""``kkt-emulator fn``: decode drive frames; serve one drive on a virtual serial port."""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import construct as cs
import typer
from rich.table import Table

from kkt_emulator.cli.output import JSON_OPTION, console, emit, parse_hex
from kkt_emulator.cli.run_options import PROFILE_SEE_LIST_OPTION
from kkt_emulator.errors import ConfigError, DriveError, FramingError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, ResultCode
from kkt_emulator.fn.crc import crc16_ccitt
from kkt_emulator.fn.frame import MSG_START, WARNING_BIT

app = typer.Typer(
    help="The fiscal drive's wire protocol: decode frames, serve a drive on a serial port.",
    no_args_is_help=True,
)


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


def _trace_fields(decoded: dict[str, Any]) -> str:
    fields = decoded.get("fields")
    if fields:
        return " " + json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str)
    if decoded.get("data"):
        return f" data={decoded['data'].replace(' ', '')}"
    return ""


def trace_line(request: bytes | None, answer: bytes, when: datetime) -> str:
    """One ``fn serve --trace`` line: ``time → command, fields ← answer code, name, fields``.

    ``request`` is ``None`` for an ENQ (the drive repeated its last answer).
    """
    command: int | None = None
    if request is None:
        left = "ENQ (repeat the last answer)"
    else:
        req = decode(request, Kind.REQUEST)
        if not req["crc"]["ok"]:
            left = f"bad frame (CRC {req['crc']['carried']}, computed {req['crc']['computed']}) {request.hex()}"
        else:
            command = request[3]
            left = f"{req['command']} {req['name']}{_trace_fields(req)}"
            if "error" in req:
                left += f" [{req['error']}]"
    ans = decode(answer, Kind.ANSWER, command if answer[3] & 0x7F == 0 else None)
    warning = " +warning" if ans["warning"] else ""
    return f"{when:%Y-%m-%d %H:%M:%S} → {left} ← {ans['result']} {ans['name']}{warning}{_trace_fields(ans)}"


@app.command("serve")
def serve_command(
    serial_link: Path = typer.Option(
        ..., "--serial-link", help="Where to publish the port: a symlink to the pty (/dev/pts/N)."
    ),
    profile: str = PROFILE_SEE_LIST_OPTION,
    state_dir: Path | None = typer.Option(
        None,
        "--state-dir",
        help="Holds the drive archive (drive.sqlite3); a fresh drive when empty "
        "(default: <state dir>/fn-serve).",
    ),
    trace: bool = typer.Option(
        False,  # noqa: FBT003 - typer default
        "--trace",
        help="Print every exchange decoded: command and fields, answer code and fields.",
    ),
    clock_spec: str = typer.Option("real", "--clock", help="real, manual, or scaled:N."),
) -> None:
    """Serve one fiscal drive on a virtual serial port, for driver code that speaks the drive protocol.

    Open the link at any baud rate (115200 8N1 as a real drive). Clients may connect and disconnect
    at will; bytes that are not frames are skipped. Stops on Ctrl-C or SIGTERM, removing the link.
    """
    import asyncio  # noqa: PLC0415 - only this command runs an event loop
    import signal  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from kkt_emulator import eventloop  # noqa: PLC0415 - only this command runs an event loop
    from kkt_emulator.app.stack import default_state_dir  # noqa: PLC0415
    from kkt_emulator.clock import make_clock  # noqa: PLC0415
    from kkt_emulator.fnio.serve import SerialDrive  # noqa: PLC0415
    from kkt_emulator.profiles import load_profile  # noqa: PLC0415

    clock = make_clock(clock_spec)
    firmware = load_profile(profile)
    directory = state_dir or default_state_dir() / "fn-serve"

    def show(request: bytes | None, answer: bytes, when: datetime) -> None:
        sys.stdout.write(trace_line(request, answer, when) + "\n")
        sys.stdout.flush()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with SerialDrive(
            firmware, directory, serial_link, clock, trace=show if trace else None
        ) as drive:
            typer.echo(
                f"drive {drive.serial} ({firmware.name}) on {drive.path} -> {drive.port.tty_name}; "
                f"archive {directory / 'drive.sqlite3'}",
                err=True,
            )
            await drive.serve(stop)
        typer.echo("stopped", err=True)

    eventloop.run(run())


@app.command("archive")
def archive_command(
    path: Path = typer.Argument(
        help="A drive archive: <state dir>/tills/till-N/drive.sqlite3 (or a till's state dir)."
    ),
    fd: int | None = typer.Option(
        None, "--fd", min=1, help="Decode this fiscal document tag by tag."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the fiscal documents in a drive's archive, or show one tag by tag (read-only)."""
    from kkt_emulator.fn.codes import DocCode  # noqa: PLC0415
    from kkt_emulator.fn.tlv import decode_tree, tree_to_json  # noqa: PLC0415
    from kkt_emulator.fnio.archive import SqliteStore  # noqa: PLC0415 - only this command reads archives

    file = path / "drive.sqlite3" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"no drive archive at {file}")
    meta = SqliteStore.read_meta(file)
    store = SqliteStore(file, serial=meta.get("serial") or None)
    try:
        if fd is None:
            rows = [
                {
                    "fd": d.fd,
                    "document": DocCode(d.doc_code).name
                    if d.doc_code in DocCode._value2member_map_
                    else d.doc_code,
                    "time": d.when.isoformat(),
                    "fpd": d.fpd,
                    "acknowledged": store.get_ack(d.fd) is not None,
                }
                for d in store.documents()
            ]

            def human(data: list[dict[str, Any]]) -> None:
                table = Table("ФД", "document", "time (drive)", "ФПД", "OFD ack")
                for row in data:
                    table.add_row(
                        str(row["fd"]),
                        str(row["document"]),
                        row["time"],
                        str(row["fpd"]),
                        "yes" if row["acknowledged"] else "no",
                    )
                console.print(f"drive {meta.get('serial')} ({meta.get('profile')})")
                console.print(table)

            emit(rows, as_json, human)
            return
        document = store.get_document(fd)
        if document is None:
            raise ConfigError(f"the archive has no fiscal document {fd}")
        tree = tree_to_json(decode_tree(document.tlv))
        result = {"fd": fd, "doc_code": document.doc_code, "fpd": document.fpd, "tlvs": tree}

        def show(data: dict[str, Any]) -> None:
            console.print(
                f"[bold]ФД {fd}[/bold], document code {document.doc_code}, ФПД {document.fpd}"
            )
            for node in data["tlvs"]:
                children = node.get("children") or []
                value = f"({len(children)} tags)" if children else node.get("value")
                if "fiscal_sign" in node:
                    value = f"{node['fiscal_sign']} ({node['value']})"
                console.print(f"  {node['tag']} {node['name']}: {value}")
                for child in children:
                    console.print(f"      {child['tag']} {child['name']}: {child.get('value')}")

        emit(result, as_json, show)
    finally:
        store.close()
