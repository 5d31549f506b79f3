"""``kkt-emulator tlv``: decode FFD TLV documents, drive containers and OFD messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from rich.tree import Tree

from kkt_emulator.cli.output import JSON_OPTION, console, emit, parse_hex
from kkt_emulator.errors import FramingError, ValidationError
from kkt_emulator.fn.container import (
    CONTAINER_HEADER_SIZE,
    MESSAGE_TYPE,
    SESSION_HEADER_SIZE,
    SESSION_SIGNATURE,
    Container,
    SessionHeader,
)
from kkt_emulator.fn.tags import tag_name
from kkt_emulator.fn.tlv import HEADER_SIZE, decode_tree, tree_to_json

app = typer.Typer(help="Decode FFD TLV documents and OFD containers.", no_args_is_help=True)


def _read_input(hex_text: str | None, file: Path | None) -> bytes:
    if (hex_text is None) == (file is None):
        raise ValidationError("HEX", "give either HEX or --file PATH")
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ValidationError("--file", f"cannot read {file}: {exc.strerror}") from exc
    else:
        try:
            data = parse_hex(str(hex_text))
        except typer.BadParameter as exc:
            raise ValidationError("HEX", str(exc.message)) from exc
    if not data:
        raise ValidationError("input", "no bytes to decode")
    return data


def _looks_like_container(data: bytes) -> bool:
    return (
        len(data) >= CONTAINER_HEADER_SIZE + HEADER_SIZE
        and int.from_bytes(data[0:2], "little") == len(data)
        and data[4] == MESSAGE_TYPE
    )


def _session_json(header: SessionHeader) -> dict[str, Any]:
    return {
        "signature": header.signature.hex(),
        "s_version": header.s_version.hex(),
        "a_version": header.a_version.hex(),
        "fn_serial": header.fn_serial,
        "body_length": header.body_length,
        "flags": header.flags,
        "crc": header.crc,
    }


def _container_json(container: Container) -> dict[str, Any]:
    return {
        "length": container.length,
        "crc": container.crc,
        "msg_type": container.msg_type,
        "doc_code": container.doc_code,
        "document": tag_name(container.doc_code),
        "version": container.version,
        "svc1": container.svc1.hex(),
        "fn_serial": container.fn_serial,
        "fd_number": container.fd_number,
        "svc2": container.svc2.hex(),
        "trailer": container.trailer.hex(),
    }


def decode_layers(data: bytes) -> dict[str, Any]:
    """Decode a TLV list, a bare container, or a session header + container.

    Returns a dict with ``tlvs`` (:func:`tree_to_json`) and, when present, ``session`` and
    ``container``.

    Raises:
        FramingError: a session header or a container is malformed.
        TlvError: the TLV bytes are not a TLV list.
    """
    result: dict[str, Any] = {}
    body: bytes | None = None
    if len(data) >= SESSION_HEADER_SIZE and data[:4] == SESSION_SIGNATURE:
        header = SessionHeader.decode(data[:SESSION_HEADER_SIZE])
        result["session"] = _session_json(header)
        body = data[SESSION_HEADER_SIZE:]
        if header.body_length != len(body):
            raise FramingError(
                f"session header says the body is {header.body_length} bytes, got {len(body)}"
            )
    elif _looks_like_container(data):
        body = data
    tlv_bytes = data
    if body is not None:
        container = Container.parse(body)
        result["container"] = _container_json(container)
        tlv_bytes = container.body
    result["tlvs"] = tree_to_json(decode_tree(tlv_bytes))
    return result


_TEXT_TYPES = frozenset({"string", "fixed_string"})
_HEX_FIELDS = {"crc": 4, "flags": 4, "msg_type": 2}


def _label(node: dict[str, Any]) -> Text:
    text = Text()
    text.append(str(node["tag"]), style="bold")
    text.append(f" {node['name']}", style="cyan")
    if node["type"] == "stlv" and "error" not in node:
        text.append(f" ({node['length']} bytes)")
    elif "fiscal_sign" in node:
        # The ФПД as the receipt prints it, the six bytes of the tag beside it.
        text.append(f": {node['fiscal_sign']} ({node['value']})")
    else:
        value = node["value"]
        quoted = node["type"] in _TEXT_TYPES and "error" not in node
        shown = json.dumps(value, ensure_ascii=False) if quoted else str(value)
        text.append(f": {shown}")
    if "error" in node:
        text.append(f"  error: {node['error']}", style="red")
    return text


def _add_nodes(tree: Tree, nodes: list[dict[str, Any]]) -> None:
    for node in nodes:
        _add_nodes(tree.add(_label(node)), node["children"])


def _human(result: dict[str, Any]) -> None:
    for layer in ("session", "container"):
        if layer in result:
            fields = ", ".join(
                f"{key} {value:0{_HEX_FIELDS[key]}X}h" if key in _HEX_FIELDS else f"{key} {value}"
                for key, value in result[layer].items()
            )
            console.print(Text(f"{layer}: {fields}"))
    tree = Tree(Text("TLV", style="bold"))
    _add_nodes(tree, result["tlvs"])
    console.print(tree)


@app.command("decode")
def decode_command(
    hex_text: Annotated[
        str | None,
        typer.Argument(
            metavar="HEX", help="TLV bytes as hex; spaces, colons and newlines are ignored."
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Read binary bytes from a file (TLV list, container, or OFD message)."
        ),
    ] = None,
    as_json: bool = JSON_OPTION,
) -> None:
    """Decode FFD TLVs as a tree of tags, names and values.

    A 30-byte OFD session header and a drive container in front of the document are recognised
    and decoded too.
    """
    data = _read_input(hex_text, file)
    result = decode_layers(data)
    if as_json:
        # A bare TLV list prints as the tree itself; layered input prints every layer.
        emit(result if len(result) > 1 else result["tlvs"], as_json=True, human=_human)
    else:
        _human(result)
