"""A till's events: a listener that raises is logged with the event, and the others still hear."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from kkt_emulator.clock import ManualClock
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.context import TillConfig, TillContext


def test_a_failing_listener_is_logged_and_the_others_still_hear(tmp_path: Path) -> None:
    config = TillConfig(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        server="http://127.0.0.1:9",
        login="l",
        password="p",  # noqa: S106 - a test till that never binds
    )
    ctx = TillContext(config, ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC)))
    heard: list[tuple[str, dict[str, Any]]] = []

    def broken(event: str, data: dict[str, Any]) -> None:
        raise RuntimeError(f"cannot take {event} {data}")

    ctx.listeners += [broken, lambda event, data: heard.append((event, data))]
    with capture_logs() as logs:
        ctx.emit("state.changed", {"reason": "test"})
    assert heard == [("state.changed", {"reason": "test"})]
    failed = [e for e in logs if e["event"] == "till_listener_failed"]
    assert len(failed) == 1
    assert failed[0]["event_name"] == "state.changed"
    assert failed[0]["exc_info"] is True
