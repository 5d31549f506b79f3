"""Topic names and payloads of the MQTT control plane (``till-protocol.md`` §3).

Every till of an installation lives under ``kkt/<deviceId>/``:

=====================  =========  ========  ===============================================
Topic                  Direction  Retained  Payload
=====================  =========  ========  ===============================================
``kkt/<id>/status``    till →     yes       ``online <processId>`` / ``offline``
``kkt/<id>/state``     till →     yes       JSON snapshot (:meth:`Till.snapshot_state`)
``kkt/<id>/events``    till →     no        JSON ``{"event", "deviceId", "at", "data"}``
``kkt/<id>/cmd``       → till     no        JSON ``{"command": NAME, "args": {...}}``
``kkt/proc/<p>/status``  process  yes       ``online`` / ``offline`` (the last will)
=====================  =========  ========  ===============================================

All tills of one process share one broker connection (``till-protocol.md`` §3, D70), so the last
will cannot be per till: it is the process's ``kkt/proc/<processId>/status`` = ``offline``, and a
till's ``online`` names the process serving it. A till is online when its status says ``online``
and its process's status does too (:func:`till_online`); a bare ``online`` (a till on a
connection of its own, whose will is its own ``offline``) needs no process.

A command carries the MQTT 5 response topic and correlation data; the till answers on that topic
with ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code", "message"}}``. Answers go
to ``kkt-reply/<clientId>``, outside the ``kkt/`` tree so that ``kkt/#`` watchers see only tills.

There is no ``kkt/all/cmd``: one request has one answer, so a command for every till is sent to
each till's own topic (the command line finds the tills through their retained statuses).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kkt_emulator.errors import EmulatorError

__all__ = [
    "ALL_COMMANDS",
    "ALL_PROCESSES",
    "ALL_STATE",
    "ALL_STATUS",
    "COMMANDS",
    "DEADLINES",
    "OFFLINE",
    "ONLINE",
    "PREFIX",
    "REPLY_PREFIX",
    "Args",
    "CommandError",
    "CommandRequest",
    "ErrorCode",
    "cmd_topic",
    "decode_json",
    "device_of",
    "encode_json",
    "error_answer",
    "event_payload",
    "events_topic",
    "ok_answer",
    "online_payload",
    "parse_answer",
    "parse_status",
    "process_of",
    "process_status_topic",
    "reply_topic",
    "state_topic",
    "status_topic",
    "till_online",
]

PREFIX = "kkt"
REPLY_PREFIX = "kkt-reply"
ONLINE = "online"
OFFLINE = "offline"
ALL_STATUS = f"{PREFIX}/+/status"
ALL_STATE = f"{PREFIX}/+/state"
ALL_COMMANDS = f"{PREFIX}/+/cmd"
PROCESS_LEVEL = "proc"
ALL_PROCESSES = f"{PREFIX}/{PROCESS_LEVEL}/+/status"

#: Every command a till answers (``till-protocol.md`` §3).
COMMANDS = (
    "status",
    "set",
    "fault.inject",
    "fault.clear",
    "fault.list",
    "clock.advance",
    "clock.show",
    "shift.close",
    "sell",
    "sell.items",
    "correction",
    "fn.replace",
    "snapshot",
    "restore",
    "order.list",
    "order.pay",
)

#: The named deadlines ``clock.advance`` can jump to (``Till.deadlines``).
DEADLINES = ("shift.expires", "ofd.block", "fn.expires", "fn.warning")


def _check_id(device_id: str) -> str:
    if not device_id or any(c in device_id for c in "/+#"):
        raise ValueError(f"not a device id: {device_id!r}")
    return device_id


def status_topic(device_id: str) -> str:
    """``kkt/<id>/status``: retained ``online``/``offline``."""
    return f"{PREFIX}/{_check_id(device_id)}/status"


def state_topic(device_id: str) -> str:
    """``kkt/<id>/state``: the retained JSON snapshot."""
    return f"{PREFIX}/{_check_id(device_id)}/state"


def events_topic(device_id: str) -> str:
    """``kkt/<id>/events``: JSON events, not retained."""
    return f"{PREFIX}/{_check_id(device_id)}/events"


def cmd_topic(device_id: str) -> str:
    """``kkt/<id>/cmd``: command requests."""
    return f"{PREFIX}/{_check_id(device_id)}/cmd"


def process_status_topic(process_id: str) -> str:
    """``kkt/proc/<processId>/status``: retained ``online``/``offline``, the process's last will."""
    if not process_id or any(c in process_id for c in "/+# "):
        raise ValueError(f"not a process id: {process_id!r}")
    return f"{PREFIX}/{PROCESS_LEVEL}/{process_id}/status"


def process_of(topic: str) -> str | None:
    """The process id in ``kkt/proc/<processId>/status``, or ``None`` for any other topic."""
    parts = topic.split("/")
    if (
        len(parts) == 4
        and parts[0] == PREFIX
        and parts[1] == PROCESS_LEVEL
        and parts[3] == "status"
    ):
        return parts[2] or None
    return None


def online_payload(process_id: str | None) -> str:
    """A till's ``online`` status: ``online <processId>``, or bare ``online`` on its own link."""
    return ONLINE if process_id is None else f"{ONLINE} {process_id}"


def parse_status(payload: bytes) -> tuple[bool, str | None]:
    """A till's status payload as ``(says online, process id or None)``.

    Anything but ``online`` or ``online <processId>`` (``offline``, an empty or unknown text) is
    offline.
    """
    words = payload.decode(errors="replace").split()
    if not words or words[0] != ONLINE or len(words) > 2:
        return False, None
    return True, words[1] if len(words) == 2 else None


def till_online(payload: bytes, processes: dict[str, bool]) -> bool:
    """Whether a till is online: its status says so and, if it names a process, that process too.

    ``processes`` maps the process ids seen on ``kkt/proc/+/status`` to whether each is online; a
    named process with no status there (its process status was lost) counts as offline.
    """
    online, process = parse_status(payload)
    if not online:
        return False
    return process is None or processes.get(process, False)


def reply_topic(client_id: str) -> str:
    """Where a client receives the answers to its commands."""
    return f"{REPLY_PREFIX}/{_check_id(client_id)}"


def device_of(topic: str) -> str | None:
    """The device id in ``kkt/<id>/…``, or ``None`` for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == PREFIX and parts[1]:
        return parts[1]
    return None


def encode_json(data: Any) -> bytes:
    """UTF-8 JSON as every control-plane payload is written (dates as ISO text)."""
    return json.dumps(data, ensure_ascii=False, default=_default, separators=(",", ":")).encode()


def _default(value: Any) -> Any:
    iso = getattr(value, "isoformat", None)
    if callable(iso):
        return iso()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def decode_json(payload: bytes) -> Any:
    """Parse a JSON payload.

    Raises:
        CommandError: the payload is not UTF-8 JSON (code ``bad_request``).
    """
    try:
        return json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError(ErrorCode.BAD_REQUEST, f"payload is not JSON: {exc}") from exc


class ErrorCode(StrEnum):
    """The ``error.code`` of a refused command."""

    BAD_REQUEST = "bad_request"
    """The payload is not ``{"command": NAME, "args": {...}}``."""
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"
    """A missing, unknown or malformed argument, or a value the till refuses (``ConfigError``)."""
    CLOCK_NOT_MANUAL = "clock_not_manual"
    """``clock.advance`` needs the manual clock."""
    NO_DEADLINE = "no_deadline"
    """``clock.advance --to`` a deadline the till does not have now (no open shift …)."""
    DRIVE_ERROR = "drive_error"
    """The fiscal drive refused; the message carries its result code."""
    TRANSPORT_ERROR = "transport_error"
    CLOUD_ERROR = "cloud_error"
    FAILED = "failed"
    """Any other emulator error."""
    INTERNAL = "internal"
    """A bug in the till: logged with its traceback where the till runs."""
    TIMEOUT = "timeout"
    """No answer in time (set by the requesting side, never sent by a till)."""


class CommandError(EmulatorError):
    """A command was refused, by the till (an error answer) or before it was sent.

    Attributes:
        code: an :class:`ErrorCode` value (kept as text: a newer till may send new codes).
        message: the till's explanation.
        device_id: the till that answered, if known.
    """

    def __init__(self, code: str, message: str, device_id: str | None = None) -> None:
        self.code = str(code)
        self.message = message
        self.device_id = device_id
        super().__init__(f"till {device_id}: {message}" if device_id else message)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """``{"command": NAME, "args": {...}}`` on ``kkt/<id>/cmd``."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The request payload."""
        return encode_json({"command": self.command, "args": self.args})

    @classmethod
    def decode(cls, payload: bytes) -> CommandRequest:
        """Parse and check the shape of a request (not the arguments: that is the command's job).

        Raises:
            CommandError: ``bad_request`` for a malformed payload.
        """
        data = decode_json(payload)
        if not isinstance(data, dict):
            raise CommandError(ErrorCode.BAD_REQUEST, "a request is a JSON object")
        command = data.get("command")
        args = data.get("args", {})
        if not isinstance(command, str) or not command:
            raise CommandError(ErrorCode.BAD_REQUEST, "'command' must be a non-empty string")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise CommandError(ErrorCode.BAD_REQUEST, "'args' must be a JSON object")
        extra = set(data) - {"command", "args"}
        if extra:
            raise CommandError(
                ErrorCode.BAD_REQUEST, f"unknown request field(s): {', '.join(sorted(extra))}"
            )
        return cls(command, args)


def ok_answer(result: Any) -> bytes:
    """``{"ok": true, "result": ...}``."""
    return encode_json({"ok": True, "result": result})


def error_answer(code: str, message: str) -> bytes:
    """``{"ok": false, "error": {"code", "message"}}``."""
    return encode_json({"ok": False, "error": {"code": str(code), "message": message}})


def parse_answer(payload: bytes, device_id: str | None = None) -> Any:
    """The ``result`` of an answer.

    Raises:
        CommandError: the till refused (its code and message), or the answer is malformed.
    """
    data = decode_json(payload)
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise CommandError(ErrorCode.BAD_REQUEST, "malformed answer", device_id)
    if data["ok"]:
        return data.get("result")
    error = data.get("error")
    if not isinstance(error, dict):
        raise CommandError(ErrorCode.BAD_REQUEST, "malformed error answer", device_id)
    raise CommandError(
        str(error.get("code", ErrorCode.FAILED)), str(error.get("message", "")), device_id
    )


def event_payload(event: str, data: dict[str, Any], device_id: str, at: Any) -> bytes:
    """An event on ``kkt/<id>/events``: ``{"event", "deviceId", "at", "data"}``."""
    return encode_json({"event": event, "deviceId": device_id, "at": at, "data": data})


class Args:
    """Typed access to a command's ``args``; :meth:`done` refuses anything left unread.

    Every accessor raises :class:`CommandError` (``bad_args``) naming the command and argument.
    """

    def __init__(self, command: str, raw: dict[str, Any]) -> None:
        self.command = command
        self._raw = dict(raw)
        self._seen: set[str] = set()

    def _fail(self, name: str, why: str) -> CommandError:
        return CommandError(ErrorCode.BAD_ARGS, f"{self.command}: {name} {why}")

    def _get(self, name: str, required: bool) -> Any:
        self._seen.add(name)
        value = self._raw.get(name)
        if value is None and required:
            raise self._fail(name, "is required")
        return value

    def has(self, name: str) -> bool:
        """Whether ``name`` was given (and is not null)."""
        return self._raw.get(name) is not None

    def text(self, name: str, *, required: bool = False) -> str | None:
        """A string argument."""
        value = self._get(name, required)
        if value is not None and not isinstance(value, str):
            raise self._fail(name, "must be a string")
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        """An integer argument (JSON numbers with a zero fraction are accepted)."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, "must be an integer")
        return value

    def number(self, name: str, *, required: bool = False) -> float | None:
        """A finite number."""
        value = self._get(name, required)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self._fail(name, "must be a number")
        return float(value)

    def strings(self, name: str, *, required: bool = False) -> list[str] | None:
        """A list of strings (``sell.items``'s ``CODE*QTY`` items)."""
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(name, "must be a list of strings")
        if required and not value:
            raise self._fail(name, "must not be empty")
        return list(value)

    def mapping(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        """A JSON object argument."""
        value = self._get(name, required)
        if value is not None and not isinstance(value, dict):
            raise self._fail(name, "must be an object")
        return value

    def rest(self) -> dict[str, Any]:
        """Every argument not read yet (for pass-through commands such as ``set``)."""
        left = {k: v for k, v in self._raw.items() if k not in self._seen}
        self._seen.update(left)
        return left

    def done(self) -> None:
        """Refuse arguments the command does not take."""
        extra = set(self._raw) - self._seen
        if extra:
            raise CommandError(
                ErrorCode.BAD_ARGS,
                f"{self.command}: unknown argument(s) {', '.join(sorted(extra))}",
            )
