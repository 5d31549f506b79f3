"""What one receipt costs the cloud's database, and that the cheaper writes store the same rows.

A receipt (accepted, leased, fiscalised, dispatched, acknowledged by the OFD, called back) is
counted statement by statement on SQLite's trace callback: the success report stores its row once
(D125), and a write names only the columns it changes (D126). The equivalence tests write the same
lifecycle through a full and a partial ``UPDATE`` and compare the rows column by column.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from cloud_helpers import T0, FakeTill, Point, minimal_doc, post_doc
from hypothesis import given
from hypothesis import strategies as st

from kkt_emulator.cloud import lifecycle as lc
from kkt_emulator.cloud import validation
from kkt_emulator.cloud.records import build, from_db_time, to_db_time
from kkt_emulator.cloud.settings import DuplicatePolicy, PickupWindow
from kkt_emulator.cloud.storage import Account, DocumentRecord, RetailPoint, Storage
from kkt_emulator.errors import ValidationError
from kkt_emulator.taxes import TaxSystem

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    import httpx

    from kkt_emulator.cloud.app import Cloud

POINT_ID = "3769574b-d082-4fe2-8cf0-dee21f9a7e0f"


class Statements:
    """The statements the cloud's SQLite connection runs while it is recording."""

    def __init__(self, cloud: Cloud) -> None:
        self.seen: list[str] = []
        connection: sqlite3.Connection = cloud.storage._conn._conn  # type: ignore[attr-defined]
        connection.set_trace_callback(self.seen.append)

    def take(self) -> list[str]:
        taken, self.seen[:] = list(self.seen), []
        return taken


def kinds(statements: list[str]) -> Counter[str]:
    """Statements by their first words (``UPDATE documents``, ``INSERT INTO history``...)."""
    counted: Counter[str] = Counter()
    for sql in statements:
        words = sql.split()
        counted[" ".join(words[:3] if words[0] == "INSERT" else words[:2])] += 1
    return counted


def assigned(update: str) -> list[str]:
    """The columns an ``UPDATE documents SET ... WHERE`` statement writes."""
    match = re.match(r"UPDATE documents SET (.*) WHERE seq", update, re.DOTALL)
    assert match is not None, update
    return [part.split("=")[0].strip() for part in match.group(1).split(", ")]


@pytest.fixture
async def statements(cloud: Cloud) -> Statements:
    return Statements(cloud)


async def test_a_receipt_writes_each_row_once(
    http: httpx.AsyncClient,
    cloud: Cloud,
    point: Point,
    till: FakeTill,
    statements: Statements,
) -> None:
    doc = minimal_doc(responseURL="https://shop.test/done")
    assert (await post_doc(http, point, doc)).status_code == 200
    await cloud.wait_idle()
    statements.take()

    leased = (await till.lease())[0]
    lease = kinds(statements.take())
    assert lease["UPDATE documents"] == 1
    assert lease["INSERT INTO history"] == 1

    info = till.fiscal_info()
    result = {
        "docId": leased["docId"],
        "leaseId": leased["leaseId"],
        "outcome": "fiscalized",
        "fiscalInfo": info,
    }
    answer = await http.post(
        "/api/device/v1/outbox", headers=till.headers, json={"results": [result]}
    )
    assert answer.json()["results"][0]["status"] == "WAIT_FOR_CALLBACK"
    report = statements.take()
    # D125: success and dispatch are two history lines and one write of the row.
    assert kinds(report)["UPDATE documents"] == 1
    assert kinds(report)["INSERT INTO history"] == 2
    # D126: the lease's own columns (the device, the lease count) are not written again.
    written = assigned(next(s for s in report if s.startswith("UPDATE documents")))
    assert "lease_device_id" not in written
    assert "leases" not in written
    assert {"status", "fiscal_info", "fn_number", "fn_doc_number", "callback_next_at"} <= set(
        written
    )

    ack = {"acks": [{"fnDocNumber": info["fnDocNumber"], "state": "acknowledged"}]}
    answer = await http.post("/api/device/v1/outbox", headers=till.headers, json=ack)
    assert answer.json()["ofd"] == {"updated": 1, "unknown": []}
    acked = [s for s in statements.take() if s.startswith("UPDATE documents")]
    assert len(acked) == 1
    assert assigned(acked[0]) == ["ofd_state", "ofd_changed_at"]

    await cloud.wait_idle()  # the success callback is delivered
    callback = [s for s in statements.take() if s.startswith("UPDATE documents")]
    assert len(callback) == 1
    assert "fiscal_info" not in assigned(callback[0])
    status = await http.get(f"/api/fn/v1/doc/{doc['id']}/status", auth=point.assoc)
    assert status.json()["status"] == "COMPLETED"


# -- a partial write stores what a full write stores ---------------------------------------------


def _point() -> RetailPoint:
    return RetailPoint(
        id=POINT_ID,
        account_id="acc",
        name="Shop",
        address="Moscow",
        inn="7727401209",
        internet_docs_enabled=True,
        stop_on_errors=True,
        pickup_window=PickupWindow.FIVE_MINUTES,
        default_tax_mode=TaxSystem.COMMON,
        duplicate_policy=DuplicatePolicy.REPLAY,
        deleted=False,
        created_at=T0,
    )


def _record(doc_id: str) -> DocumentRecord:
    return DocumentRecord(
        seq=0,
        retail_point_id=POINT_ID,
        doc_id=doc_id,
        client_id="",
        route="v2",
        document={"id": doc_id},
        content_key="{}",
        doc_num="1",
        total="100.00",
        response_url="https://shop.test/done",
        created_at=T0,
        state=lc.new_document(T0, has_callback=True, pickup_window=lc.PICKUP_WINDOW_5MIN),
    )


_INFO = {"fnNumber": "9999078900000001", "fnDocNumber": 7, "qr": "t=1"}
_FAILURE = lc.FailureInfo(lc.FailureType.FN_MEMORY_OVERFLOW, "Исчерпан ресурс")


def _step(event: lc.Event, minutes: float, **changes: Any) -> Callable[[DocumentRecord], Any]:
    def apply(record: DocumentRecord) -> DocumentRecord:
        state = lc.step(record.state, event, T0 + timedelta(minutes=minutes))
        return dataclasses.replace(record, state=state, **changes)

    return apply


def _facts(**changes: Any) -> Callable[[DocumentRecord], DocumentRecord]:
    return lambda record: dataclasses.replace(record, **changes)


LIVES: dict[str, list[Callable[[DocumentRecord], DocumentRecord]]] = {
    "sale": [
        _step(lc.Lease("l1"), 1, lease_device_id="till-1"),
        _step(
            lc.Success("l1"), 2, fiscal_info=_INFO, fn_number="9999078900000001", fn_doc_number=7
        ),
        _step(lc.Dispatch(), 2),
        _facts(ofd_state="acknowledged", ofd_changed_at=T0 + timedelta(minutes=3)),
        _step(lc.CallbackResult(delivered=False), 3, callback_last_error="HTTP 500"),
        _step(lc.CallbackResult(delivered=True), 4, callback_last_error=None),
    ],
    "failure, re-queue, late success": [
        _step(lc.Lease("l1"), 1, lease_device_id="till-1"),
        _step(lc.Failure("l1", _FAILURE, stop_on_errors=True), 2, failure_detail={"leaseId": "l1"}),
        _step(lc.CallbackResult(delivered=True), 2),
        _step(lc.LiftBlock(), 3),
        _step(lc.Requeue(lc.PICKUP_WINDOW_5MIN), 4),
        _step(lc.Lease("l2"), 5, lease_device_id="till-2"),
        _step(
            lc.Success("l1"), 6, fiscal_info=_INFO, fn_number="9999078900000001", fn_doc_number=7
        ),
        _facts(warnings=("double fiscalisation",), possible_duplicate_of="other"),
    ],
    "timeouts and done": [
        _step(lc.PickupTimeout(), 5),
        _step(lc.MarkDone(), 6),
        _facts(failure_detail=None, warnings=()),
    ],
}


def _rows(storage: Storage) -> list[tuple[Any, ...]]:
    rows: list[sqlite3.Row] = storage._all("SELECT * FROM documents ORDER BY seq")  # type: ignore[assignment]
    return [tuple(row) for row in rows]


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[Storage, Storage]]:
    stores = (Storage(tmp_path / "full.db"), Storage(tmp_path / "partial.db"))
    for storage in stores:
        with storage.transaction():
            storage.insert_account(Account("acc", "Account", T0))
            storage.insert_point(_point())
    yield stores
    for storage in stores:
        storage.close()


@pytest.mark.parametrize("life", sorted(LIVES))
def test_a_partial_write_stores_the_row_a_full_write_stores(
    two_stores: tuple[Storage, Storage], life: str
) -> None:
    full, partial = two_stores
    seqs = [storage.insert_document(_record("doc-1")) for storage in two_stores]
    assert seqs[0] is not None
    assert seqs[0] == seqs[1]
    record = dataclasses.replace(_record("doc-1"), seq=seqs[0])
    for change in LIVES[life]:
        updated = change(record)
        with full.transaction():
            full.update_document(updated)
        with partial.transaction():
            partial.update_document(updated, record)
        assert _rows(partial) == _rows(full)
        read = partial.get_document_by_seq(record.seq)
        assert read == updated
        assert read is not None
        assert vars(read) == vars(updated)  # D127: the row's record, built without __init__
        assert vars(read.state) == vars(updated.state)
        record = updated


def test_a_write_that_changes_nothing_runs_no_statement(
    two_stores: tuple[Storage, Storage],
) -> None:
    _, storage = two_stores
    seq = storage.insert_document(_record("doc-1"))
    assert seq is not None
    record = storage.get_document_by_seq(seq)
    assert record is not None
    seen: list[str] = []
    storage._conn._conn.set_trace_callback(seen.append)  # type: ignore[attr-defined]
    storage.update_document(record, record)
    assert seen == []
    storage.update_document(dataclasses.replace(record, callback_last_error="x"), record)
    assert [assigned(s) for s in seen] == [["callback_last_error"]]


# -- the records' replace (D127) -------------------------------------------------------------------

_STATES = [
    lc.new_document(T0, has_callback=True, pickup_window=lc.PICKUP_WINDOW_5MIN),
    lc.step(lc.new_document(T0, has_callback=True), lc.Lease("l1"), T0),
    lc.step(
        lc.step(lc.new_document(T0, has_callback=False), lc.Lease("l1"), T0),
        lc.Failure("l1", _FAILURE, stop_on_errors=True),
        T0 + timedelta(minutes=1),
    ),
]
_RECORDS = [
    _record("doc-1"),
    dataclasses.replace(
        _record("doc-2"),
        seq=5,
        state=_STATES[1],
        fiscal_info=_INFO,
        warnings=("w",),
        ofd_state="sent",
        ofd_changed_at=T0,
    ),
]


@given(st.data())
def test_replace_makes_what_dataclasses_replace_makes(data: st.DataObject) -> None:
    pool: list[Any] = data.draw(st.sampled_from([_STATES, _RECORDS]))
    base = data.draw(st.sampled_from(pool))
    before = dict(vars(base))
    donor = data.draw(st.sampled_from(pool))
    names = [f.name for f in dataclasses.fields(base) if f.init]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True))
    changes = {name: getattr(donor, name) for name in chosen}
    fast = lc.replace(base, **changes)
    slow = dataclasses.replace(base, **changes)
    assert type(fast) is type(slow)
    assert fast == slow
    assert vars(fast) == vars(slow)
    assert hash(fast.state if isinstance(fast, DocumentRecord) else fast) == hash(
        slow.state if isinstance(slow, DocumentRecord) else slow
    )
    assert vars(base) == before  # the original is left as it was


def test_replace_refuses_a_name_that_is_no_field() -> None:
    with pytest.raises(TypeError, match="no init fields"):
        lc.replace(_STATES[0], stauts=lc.Status.FAILED)
    with pytest.raises(AttributeError):
        lc.replace(_STATES[0]).status = lc.Status.FAILED  # type: ignore[misc]  # still frozen


# -- remembered time texts (D128) ------------------------------------------------------------------

_EARLIEST = datetime(1970, 1, 2)  # noqa: DTZ001 - hypothesis takes naive bounds for its times
_LATEST = datetime(2999, 12, 30)  # noqa: DTZ001 - as above


@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=_EARLIEST, max_value=_LATEST),
            st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-7))]),
            st.sampled_from([None, UTC, ZoneInfo("Europe/Moscow"), ZoneInfo("America/New_York")]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_a_remembered_time_text_is_the_text_of_its_instant(
    moments: list[tuple[datetime, tzinfo, tzinfo | None]],
) -> None:
    for naive, zone, seen_in in moments:
        value = naive.replace(tzinfo=zone)
        shown = value if seen_in is None else value.astimezone(seen_in)
        expected = shown.astimezone(UTC).isoformat(timespec="microseconds")
        assert to_db_time(shown) == expected
        assert to_db_time(value) == expected  # the same instant in another zone
        assert from_db_time(to_db_time(shown)) == value


# -- the string check runs only where an escape could make a bad string (D55) ---------------------

_TEXTS = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udfff", "\\", "u", "0", "d", "D", "8", "é", "Ж"]),
        st.characters(),
    ),
    max_size=12,
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _TEXTS),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_TEXTS, inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(body: bytes) -> dict[str, Any] | str:
    try:
        return validation.parse_json_object(body)
    except ValidationError as exc:
        return str(exc)


def _walked(body: bytes) -> dict[str, Any] | str:
    """What parse_json_object answers when every string is walked, as before the shortcut."""
    shortcut = validation._ESCAPED_BAD
    validation._ESCAPED_BAD = re.compile("")  # type: ignore[misc]
    try:
        return _outcome(body)
    finally:
        validation._ESCAPED_BAD = shortcut  # type: ignore[misc]


@given(
    st.dictionaries(_TEXTS, _JSON, max_size=5),
    st.booleans(),
    st.sampled_from(["lower", "upper", "raw"]),
)
def test_the_string_check_is_skipped_only_where_it_finds_nothing(
    value: dict[str, Any], ascii_only: bool, escapes: str
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if escapes == "upper":  # \uD800 is the same JSON as \ud800
        text = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), text)
    body = text.encode("utf-8", "surrogatepass")  # a raw surrogate becomes bytes UTF-8 refuses
    assert _outcome(body) == _walked(body)


def test_build_refuses_a_missing_or_unknown_field() -> None:
    fields = dict(vars(_STATES[0]))
    assert vars(build(lc.DocState, **fields)) == vars(_STATES[0])
    del fields["leases"]
    with pytest.raises(TypeError, match=r"missing fields \['leases'\]"):
        build(lc.DocState, **fields)
    with pytest.raises(TypeError, match=r"unknown fields \['leased'\]"):
        build(lc.DocState, **fields, leases=0, leased=1)
