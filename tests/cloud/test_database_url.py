"""``--db`` (D74): which database a value names, and the one-line refusals of the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.app.stack import Stack, StackOptions
from kkt_emulator.cli.main import main
from kkt_emulator.clock import ManualClock
from kkt_emulator.cloud.db import DatabaseTarget, parse_target
from kkt_emulator.cloud.storage import Storage, StorageError
from kkt_emulator.errors import ConfigError
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.testing.stack import StackHarness, settle

if TYPE_CHECKING:
    from pg_server import PgServer


@pytest.mark.parametrize(
    ("value", "kind", "location"),
    [
        ("cloud.db", "sqlite", "cloud.db"),
        ("/var/lib/kkt/cloud.db", "sqlite", "/var/lib/kkt/cloud.db"),
        ("./a:b/cloud.db", "sqlite", "./a:b/cloud.db"),
        ("C:\\kkt\\cloud.db", "sqlite", "C:\\kkt\\cloud.db"),
        (":memory:", "sqlite", ":memory:"),
        ("sqlite:///cloud.db", "sqlite", "cloud.db"),
        ("sqlite:////var/lib/cloud.db", "sqlite", "/var/lib/cloud.db"),
        ("postgresql://kkt@db:5432/cloud", "postgresql", "postgresql://kkt@db:5432/cloud"),
        ("postgres://kkt@db/cloud", "postgresql", "postgres://kkt@db/cloud"),
        ("PostgreSQL://kkt@db/cloud?sslmode=require", "postgresql", None),
    ],
)
def test_what_a_db_value_names(value: str, kind: str, location: str | None) -> None:
    target = parse_target(value)
    assert target.kind == kind
    assert target.location == (value if location is None else location)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("mysql://root@db/cloud", "unsupported database URL scheme 'mysql'"),
        ("postgresql:cloud", "must be followed by //"),
        ("postgres:/x", "must be followed by //"),
        ("sqlite:cloud.db", "must be followed by //"),
        ("sqlite:///", "needs a file path"),
        ("postgresql:///cloud", "needs a host"),
        ("postgresql://db:5432/", "needs a database name"),
        ("postgresql://db:99999/cloud", "not a valid PostgreSQL URL"),
        ("", "empty database path"),
    ],
)
def test_values_naming_no_database_are_refused(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        parse_target(value)
    assert "\n" not in str(info.value)


@given(st.from_regex(r"[a-z][a-z0-9+.-]{1,10}", fullmatch=True), st.text(max_size=20))
def test_every_other_scheme_is_refused(scheme: str, rest: str) -> None:
    if scheme in {"postgresql", "postgres", "sqlite"}:
        return
    with pytest.raises(ConfigError):
        parse_target(f"{scheme}://{rest}")


def test_a_password_is_never_shown() -> None:
    target = parse_target("postgresql://kkt:s3cret@db:5432/cloud")
    assert str(target) == "postgresql://kkt:***@db:5432/cloud"
    assert "s3cret" not in repr(DatabaseTarget("sqlite", "x")) + str(target)


def test_an_unreachable_server_is_one_line() -> None:
    with pytest.raises(StorageError, match=r"cannot connect to PostgreSQL") as info:
        Storage("postgresql://kkt:pw@127.0.0.1:1/cloud")
    assert "\n" not in str(info.value)
    assert "pw@" not in str(info.value)


@pytest.mark.parametrize("value", ["mysql://x", "postgresql:cloud", "postgresql://127.0.0.1/"])
@pytest.mark.parametrize("command", [["cloud", "serve", "--port", "0"], ["up", "--tills", "0"]])
def test_the_command_line_refuses_before_anything_starts(
    value: str,
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    extra = ["--state-dir", str(state), "--mqtt", "none"] if command[0] == "up" else []
    assert main([*command, *extra, "--db", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --db: ")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no "postgresql:" folder, no state directory


def test_serve_on_an_unreachable_server_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "postgresql://kkt@127.0.0.1:1/cloud"
    assert main(["cloud", "serve", "--port", "0", "--db", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot connect to PostgreSQL postgresql://kkt@127.0.0.1:1/cloud")
    assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


async def test_up_keeps_its_cloud_in_postgresql(pg: PgServer, tmp_path: Path) -> None:
    url = pg.cloud_database()
    options = StackOptions(
        profile=load_profile(DEFAULT_PROFILE),
        state_dir=tmp_path,
        cloud_db=parse_target(url),
        till_settings={"poll_interval": 0.05},
    )
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    async with Stack(options, clock) as stack:
        kkt = StackHarness(stack, clock)
        try:
            doc = kkt.sale()
            await kkt.post_document(doc)
            await kkt.wait_for_status(doc["id"], "COMPLETED")
        finally:
            await kkt.http.aclose()
            await settle(stack)
    assert not (tmp_path / "cloud.sqlite3").exists()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT doc_id, status FROM documents").fetchall()
    assert rows == [(doc["id"], "COMPLETED")]
