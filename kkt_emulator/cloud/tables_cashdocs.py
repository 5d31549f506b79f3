"""The cloud's cash documents and cashier shifts: what tills upload through their queue (B7).

Tables (both backends; SQLite's dialect, translated for PostgreSQL by ``db_postgres``):

* ``cash_documents`` — every cash document a till uploaded (``orders-and-backoffice.md`` §3.3,
  B7, B9), one row per document ``id`` (the upload is idempotent per id), with the columns the
  back-office filters need (B3) and the document itself as JSON;
* ``cash_shifts`` — one row per cashier shift of a till (B4): opened by the first document naming
  it, completed when its ``SHIFT_CLOSE`` document arrives (B10);
* ``cash_uploads`` — per till, when it last uploaded (``lastUploadAt`` in the cabinet).

Listeners (B12): :meth:`CashDocTables.on_cashdoc_stored` and :meth:`CashDocTables.on_shift_completed`
register callables that :meth:`CashDocTables.store_cashdoc` calls **inside the transaction that
stores the document**, once per newly stored document (a repeated upload of the same ``id`` calls
nothing). What a listener writes commits or rolls back with the document: a crash can neither lose
nor double it. A listener that raises rolls the whole upload back; the till keeps the document at
the head of its queue and sends it again (B9), so nothing is lost either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from kkt_emulator.cashdocs import SHIFT_CLOSE, SHIFT_DOC_TYPES, SHIFT_OPEN
from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.records import dumps, from_db_time, loads, opt_time, to_db_time

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from kkt_emulator.cloud.db import DatabaseTarget, Row

__all__ = [
    "CashDocListener",
    "CashDocQuery",
    "CashDocRecord",
    "CashDocTables",
    "CashShiftRecord",
    "ShiftListener",
    "StoreOutcome",
]

CASHDOC_TABLES: Final = """
CREATE TABLE IF NOT EXISTS cash_documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL UNIQUE,
    retail_point_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    doc_num TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    status TEXT NOT NULL,
    begin_at TEXT NOT NULL,
    shift_id TEXT,
    linked_doc_id TEXT,
    search TEXT NOT NULL,
    document TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cash_documents_point ON cash_documents (retail_point_id, begin_at);
CREATE INDEX IF NOT EXISTS cash_documents_shift ON cash_documents (shift_id, seq);
CREATE INDEX IF NOT EXISTS cash_documents_linked ON cash_documents (linked_doc_id)
    WHERE linked_doc_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS cash_shifts (
    id TEXT PRIMARY KEY,
    retail_point_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    shift_num INTEGER NOT NULL,
    open_at TEXT NOT NULL,
    close_at TEXT,
    complete INTEGER NOT NULL DEFAULT 0,
    kkm_info TEXT,
    cashier TEXT,
    last_check_num INTEGER NOT NULL DEFAULT 0,
    last_money_check_num INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cash_shifts_point ON cash_shifts (retail_point_id, open_at);
CREATE TABLE IF NOT EXISTS cash_uploads (
    device_id TEXT PRIMARY KEY,
    last_upload_at TEXT NOT NULL,
    documents INTEGER NOT NULL DEFAULT 0
);
"""

_ALL: Final = 2**62  # LIMIT for "every row" on both backends
_SORT_COLUMNS: Final = {"beginDateTime": "begin_at", "docNum": "doc_num", "id": "doc_id"}


@dataclass(frozen=True)
class CashDocRecord:
    """One stored cash document.

    ``document`` is the document as the till uploaded it (the v1 cash document of §3.2 of
    ``orders-and-backoffice.md``); the other fields are its indexed columns.
    """

    seq: int
    doc_id: str
    retail_point_id: str
    device_id: str
    doc_num: str
    doc_type: str
    status: str
    begin_at: datetime
    shift_id: str | None
    linked_doc_id: str | None
    document: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class CashShiftRecord:
    """One cashier shift of a till (B4), as stored; its totals are computed from its documents."""

    id: str
    retail_point_id: str
    device_id: str
    shift_num: int
    open_at: datetime
    close_at: datetime | None
    complete: bool
    kkm_info: dict[str, Any] | None
    cashier: dict[str, Any] | None
    last_check_num: int
    last_money_check_num: int
    updated_at: datetime


@dataclass(frozen=True)
class CashDocQuery:
    """Which cash documents of a retail point to list (B3); every field narrows the list.

    ``doc_types`` ``None`` means every type but the shift documents (B10); name them to see them.
    ``begin_from`` is inclusive (``=ge=``), ``begin_to`` exclusive (``=lt=``). ``quick_search`` is
    a case-insensitive substring of ``docNum``, ``description`` and the position names.
    ``sort_field`` is ``beginDateTime``, ``docNum`` or ``id``. ``count`` ``None``: all.
    """

    retail_point_id: str
    doc_id: str | None = None
    doc_num: str | None = None
    doc_types: tuple[str, ...] | None = None
    status: str | None = None
    linked_doc_id: str | None = None
    shift_id: str | None = None
    begin_from: datetime | None = None
    begin_to: datetime | None = None
    quick_search: str | None = None
    sort_field: str = "beginDateTime"
    descending: bool = False
    start: int = 0
    count: int | None = 100


@dataclass(frozen=True)
class StoreOutcome:
    """What :meth:`CashDocTables.store_cashdoc` did: stored anew, or a repeat of a stored id."""

    record: CashDocRecord
    stored: bool
    shift_completed: CashShiftRecord | None = None


CashDocListener = Callable[[CashDocRecord], None]
"""Called with a newly stored cash document, inside the transaction that stored it (B12)."""
ShiftListener = Callable[[CashShiftRecord], None]
"""Called with a shift whose close document was just stored, inside that transaction (B12)."""


def search_text(document: dict[str, Any]) -> str:
    """What ``:quickSearch`` looks in: ``docNum``, ``description``, position names, lower case."""
    parts = [str(document.get("docNum") or ""), str(document.get("description") or "")]
    parts += [str(p.get("name") or "") for p in document.get("inventPositions") or ()]
    return "\n".join(parts).lower()


def _cashdoc_from_row(row: Row) -> CashDocRecord:
    return CashDocRecord(
        seq=int(row["seq"]),
        doc_id=row["doc_id"],
        retail_point_id=row["retail_point_id"],
        device_id=row["device_id"],
        doc_num=row["doc_num"],
        doc_type=row["doc_type"],
        status=row["status"],
        begin_at=from_db_time(row["begin_at"]),
        shift_id=row["shift_id"],
        linked_doc_id=row["linked_doc_id"],
        document=loads(row["document"]),
        received_at=from_db_time(row["received_at"]),
    )


def _shift_from_row(row: Row) -> CashShiftRecord:
    return CashShiftRecord(
        id=row["id"],
        retail_point_id=row["retail_point_id"],
        device_id=row["device_id"],
        shift_num=int(row["shift_num"]),
        open_at=from_db_time(row["open_at"]),
        close_at=opt_time(row["close_at"]),
        complete=bool(row["complete"]),
        kkm_info=loads(row["kkm_info"]),
        cashier=loads(row["cashier"]),
        last_check_num=int(row["last_check_num"]),
        last_money_check_num=int(row["last_money_check_num"]),
        updated_at=from_db_time(row["updated_at"]),
    )


class CashDocTables(Database):
    """Cash documents, cashier shifts and upload marks, with the two listener lists (B12)."""

    TABLES = CASHDOC_TABLES

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        super().__init__(target)
        self._cashdoc_listeners: list[CashDocListener] = []
        self._shift_listeners: list[ShiftListener] = []

    # -- listeners (B12) ---------------------------------------------------------------------------

    def on_cashdoc_stored(self, listener: CashDocListener) -> None:
        """Call ``listener(record)`` for each newly stored cash document, in its transaction."""
        self._cashdoc_listeners.append(listener)

    def on_shift_completed(self, listener: ShiftListener) -> None:
        """Call ``listener(shift)`` when a shift's close document is stored, in that transaction."""
        self._shift_listeners.append(listener)

    # -- writing -----------------------------------------------------------------------------------

    def store_cashdoc(
        self,
        *,
        retail_point_id: str,
        device_id: str,
        document: dict[str, Any],
        begin_at: datetime,
        received_at: datetime,
    ) -> StoreOutcome:
        """Store one uploaded cash document and update its shift; idempotent per ``id`` (B9).

        Runs in a transaction of its own (or joins the caller's), and calls the listeners inside
        it (B12): first "cash document stored", then, for a ``SHIFT_CLOSE``, "shift completed".
        """
        doc_id = str(document["id"])
        doc_type = str(document["docType"])
        shift = document.get("shift") or {}
        shift_id = str(shift["id"]) if shift.get("id") else None
        linked = document.get("linkedDocId")
        with self.transaction():
            row = self._one(
                "INSERT INTO cash_documents (doc_id, retail_point_id, device_id, doc_num, doc_type,"
                " status, begin_at, shift_id, linked_doc_id, search, document, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (doc_id) DO NOTHING"
                " RETURNING seq",
                (
                    doc_id,
                    retail_point_id,
                    device_id,
                    str(document.get("docNum") or ""),
                    doc_type,
                    str(document.get("status") or "CLOSED"),
                    to_db_time(begin_at),
                    shift_id,
                    None if linked in (None, "") else str(linked),
                    search_text(document),
                    dumps(document),
                    to_db_time(received_at),
                ),
            )
            self._execute(
                "INSERT INTO cash_uploads (device_id, last_upload_at, documents) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET last_upload_at = excluded.last_upload_at,"
                " documents = cash_uploads.documents + excluded.documents",
                (device_id, to_db_time(received_at), 0 if row is None else 1),
            )
            if row is None:
                existing = self.get_cashdoc(doc_id)
                assert existing is not None  # the conflict was on this id
                return StoreOutcome(existing, stored=False)
            record = self.get_cashdoc(doc_id)
            assert record is not None
            completed = None
            if shift_id is not None:
                completed = self._update_shift(record, int(shift.get("shiftNum") or 0), received_at)
            for listener in list(self._cashdoc_listeners):
                listener(record)
            if completed is not None:
                for shift_listener in list(self._shift_listeners):
                    shift_listener(completed)
            return StoreOutcome(record, stored=True, shift_completed=completed)

    def _update_shift(
        self, record: CashDocRecord, shift_num: int, now: datetime
    ) -> CashShiftRecord | None:
        """Open the document's shift if it is new, move its counters; the shift if it completed."""
        document = record.document
        shift_id = record.shift_id
        assert shift_id is not None
        kkm = document.get("kkmInfo")
        cashier = document.get("cashier")
        self._execute(
            "INSERT INTO cash_shifts (id, retail_point_id, device_id, shift_num, open_at,"
            " kkm_info, cashier, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (
                shift_id,
                record.retail_point_id,
                record.device_id,
                shift_num,
                to_db_time(record.begin_at),
                None if kkm is None else dumps(kkm),
                None if cashier is None else dumps(cashier),
                to_db_time(now),
            ),
        )
        sets = ["updated_at = ?"]
        params: list[object] = [to_db_time(now)]
        if record.doc_type == SHIFT_OPEN:
            sets.append("open_at = ?")
            params.append(to_db_time(record.begin_at))
        if kkm is not None:
            sets.append("kkm_info = ?")
            params.append(dumps(kkm))
        if record.doc_type not in SHIFT_DOC_TYPES and str(record.doc_num).isdigit():
            column = (
                "last_money_check_num"
                if record.doc_type in ("CASH_IN", "CASH_OUT")
                else "last_check_num"
            )
            sets.append(f"{column} = CASE WHEN {column} < ? THEN ? ELSE {column} END")
            params += [int(record.doc_num), int(record.doc_num)]
        completes = record.doc_type == SHIFT_CLOSE
        if completes:
            end = document.get("endDateTime")
            sets += ["complete = 1", "close_at = ?"]
            params.append(to_db_time(record.begin_at if not end else _parse_time(end, record)))
        self._execute(
            f"UPDATE cash_shifts SET {', '.join(sets)} WHERE id = ?",  # noqa: S608 - constant column names
            (*params, shift_id),
        )
        return self.get_shift(shift_id) if completes else None

    # -- reading -----------------------------------------------------------------------------------

    def get_cashdoc(self, doc_id: str) -> CashDocRecord | None:
        """The cash document ``doc_id``, if any."""
        row = self._one("SELECT * FROM cash_documents WHERE doc_id = ?", (doc_id,))
        return None if row is None else _cashdoc_from_row(row)

    def list_cashdocs(self, query: CashDocQuery) -> tuple[list[CashDocRecord], int]:
        """The documents of ``query`` in its order and page, and how many match in all (B3)."""
        where = ["retail_point_id = ?"]
        params: list[object] = [query.retail_point_id]
        for column, value in (
            ("doc_id", query.doc_id),
            ("doc_num", query.doc_num),
            ("status", query.status),
            ("linked_doc_id", query.linked_doc_id),
            ("shift_id", query.shift_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.doc_types is None:
            where.append(f"doc_type NOT IN ({', '.join('?' for _ in SHIFT_DOC_TYPES)})")
            params += sorted(SHIFT_DOC_TYPES)
        elif query.doc_types:
            where.append(f"doc_type IN ({', '.join('?' for _ in query.doc_types)})")
            params += list(query.doc_types)
        else:
            return [], 0
        if query.begin_from is not None:
            where.append("begin_at >= ?")
            params.append(to_db_time(query.begin_from))
        if query.begin_to is not None:
            where.append("begin_at < ?")
            params.append(to_db_time(query.begin_to))
        if query.quick_search:
            where.append("search LIKE ? ESCAPE '\\'")
            text = query.quick_search.lower()
            for char in ("\\", "%", "_"):
                text = text.replace(char, "\\" + char)
            params.append(f"%{text}%")
        clause = " AND ".join(where)
        total_row = self._one(f"SELECT COUNT(*) AS n FROM cash_documents WHERE {clause}", params)  # noqa: S608 - built from constants
        total = int(total_row["n"]) if total_row is not None else 0
        column = _SORT_COLUMNS.get(query.sort_field, "begin_at")
        direction = "DESC" if query.descending else "ASC"
        sql = f"SELECT * FROM cash_documents WHERE {clause} ORDER BY {column} {direction}, seq {direction}"  # noqa: S608 - built from constants
        sql += " LIMIT ? OFFSET ?"
        limit = query.count if query.count is not None else _ALL
        rows = self._all(sql, [*params, limit, query.start])
        return [_cashdoc_from_row(r) for r in rows], total

    def shift_documents(self, shift_id: str) -> list[CashDocRecord]:
        """Every document of a shift, shift documents included, in upload (FIFO) order."""
        rows = self._all(
            "SELECT * FROM cash_documents WHERE shift_id = ? ORDER BY seq", (shift_id,)
        )
        return [_cashdoc_from_row(r) for r in rows]

    def get_shift(self, shift_id: str) -> CashShiftRecord | None:
        """The cashier shift ``shift_id``, if any document named it."""
        row = self._one("SELECT * FROM cash_shifts WHERE id = ?", (shift_id,))
        return None if row is None else _shift_from_row(row)

    def list_shifts(
        self,
        retail_point_id: str,
        *,
        opened_since: datetime | None = None,
        include_open: bool = True,
        device_id: str | None = None,
    ) -> list[CashShiftRecord]:
        """The point's shifts, newest first: opened since ``opened_since`` (all if ``None``).

        ``include_open`` adds every shift not yet completed whenever it opened (B3's
        ``get-recent-shifts``: "plus any still open").
        """
        where = "retail_point_id = ?"
        params: list[object] = [retail_point_id]
        if device_id is not None:
            where += " AND device_id = ?"
            params.append(device_id)
        if opened_since is not None:
            where += " AND (open_at >= ?" + (" OR complete = 0)" if include_open else ")")
            params.append(to_db_time(opened_since))
        rows = self._all(
            f"SELECT * FROM cash_shifts WHERE {where} ORDER BY open_at DESC, id",  # noqa: S608 - built from constants
            params,
        )
        return [_shift_from_row(r) for r in rows]

    def last_upload(self, device_id: str) -> tuple[datetime, int] | None:
        """When the till last uploaded and how many documents it stored in all, if ever."""
        row = self._one(
            "SELECT last_upload_at, documents FROM cash_uploads WHERE device_id = ?", (device_id,)
        )
        return None if row is None else (from_db_time(row["last_upload_at"]), int(row["documents"]))

    def devices_with_uploads(self, device_ids: Sequence[str]) -> dict[str, tuple[datetime, int]]:
        """:meth:`last_upload` of several tills at once (the cabinet's till list)."""
        if not device_ids:
            return {}
        rows = self._all(
            "SELECT device_id, last_upload_at, documents FROM cash_uploads"  # noqa: S608 - placeholders only
            f" WHERE device_id IN ({', '.join('?' for _ in device_ids)})",
            list(device_ids),
        )
        return {
            r["device_id"]: (from_db_time(r["last_upload_at"]), int(r["documents"])) for r in rows
        }


def _parse_time(value: Any, record: CashDocRecord) -> datetime:
    """``endDateTime`` of a document (validated at the edge), or its begin time if unreadable."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return record.begin_at
    return parsed if parsed.tzinfo is not None else record.begin_at
