"""Payloads of the control plane, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kkt_emulator.control import topics
from kkt_emulator.control.topics import Args, CommandError, CommandRequest, ErrorCode


def test_topic_names() -> None:
    assert topics.status_topic("d1") == "kkt/d1/status"
    assert topics.state_topic("d1") == "kkt/d1/state"
    assert topics.events_topic("d1") == "kkt/d1/events"
    assert topics.cmd_topic("d1") == "kkt/d1/cmd"
    assert topics.reply_topic("c1") == "kkt-reply/c1"
    assert topics.device_of("kkt/d1/state") == "d1"
    assert topics.device_of("kkt-reply/c1") is None
    assert topics.device_of("kkt/d1/state/x") is None
    for bad in ("", "a/b", "+", "#"):
        with pytest.raises(ValueError, match="not a device id"):
            topics.cmd_topic(bad)


def test_request_round_trip() -> None:
    request = CommandRequest("fault.inject", {"name": "fn.slow", "params": {"delay_ms": 5}})
    assert CommandRequest.decode(request.encode()) == request
    assert CommandRequest.decode(b'{"command": "status"}') == CommandRequest("status", {})


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"args": {}}',
        b'{"command": ""}',
        b'{"command": 5}',
        b'{"command": "status", "args": [1]}',
        b'{"command": "status", "extra": 1}',
    ],
)
def test_malformed_requests_are_bad_request(payload: bytes) -> None:
    with pytest.raises(CommandError) as caught:
        CommandRequest.decode(payload)
    assert caught.value.code == ErrorCode.BAD_REQUEST


def test_answers() -> None:
    assert topics.parse_answer(topics.ok_answer({"a": 1})) == {"a": 1}
    with pytest.raises(CommandError) as caught:
        topics.parse_answer(topics.error_answer(ErrorCode.BAD_ARGS, "no"), "dev")
    assert (caught.value.code, caught.value.message, caught.value.device_id) == (
        "bad_args",
        "no",
        "dev",
    )
    assert str(caught.value) == "till dev: no"
    with pytest.raises(CommandError, match="malformed answer"):
        topics.parse_answer(b'{"result": 1}')


def test_json_encodes_dates() -> None:
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    event = json.loads(topics.event_payload("shift.opened", {"at": when}, "d1", when))
    assert event == {
        "event": "shift.opened",
        "deviceId": "d1",
        "at": "2026-01-02T03:04:00+00:00",
        "data": {"at": "2026-01-02T03:04:00+00:00"},
    }


def test_args_accessors() -> None:
    args = Args("x", {"n": 2.0, "f": 1, "s": "t", "m": {}, "b": True})
    assert args.integer("n") == 2
    assert args.number("f") == 1.0
    assert args.text("s") == "t"
    assert args.mapping("m") == {}
    assert args.rest() == {"b": True}
    args.done()
    with pytest.raises(CommandError, match="x: b must be an integer"):
        Args("x", {"b": True}).integer("b")
    with pytest.raises(CommandError, match="x: q is required"):
        Args("x", {}).text("q", required=True)
    with pytest.raises(CommandError, match=r"unknown argument\(s\) zz"):
        Args("x", {"zz": 1}).done()
    with pytest.raises(CommandError, match="must be a number"):
        Args("x", {"v": float("nan")}).number("v")


def test_process_topics_and_till_status() -> None:
    assert topics.process_status_topic("h-1-ab") == "kkt/proc/h-1-ab/status"
    assert topics.process_of("kkt/proc/h-1-ab/status") == "h-1-ab"
    assert topics.process_of("kkt/d1/status") is None
    assert topics.device_of("kkt/proc/h-1-ab/status") is None  # never taken for a till
    for bad in ("", "a/b", "a b", "+"):
        with pytest.raises(ValueError, match="not a process id"):
            topics.process_status_topic(bad)
    assert topics.online_payload(None) == "online"
    assert topics.online_payload("p1") == "online p1"
    assert topics.parse_status(b"online p1") == (True, "p1")
    assert topics.parse_status(b"online") == (True, None)
    for offline in (b"offline", b"", b"online a b", b"onl"):
        assert topics.parse_status(offline) == (False, None)
    processes = {"p1": True, "p2": False}
    assert topics.till_online(b"online p1", processes)
    assert not topics.till_online(b"online p2", processes)  # its process died
    assert not topics.till_online(b"online p3", processes)  # its process is unknown
    assert topics.till_online(b"online", processes)  # a till on its own link
    assert not topics.till_online(b"offline", processes)
