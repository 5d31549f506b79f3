"""The ``orders`` table: orders of the orders API with their internal state and callback.

One row per order (``orders-and-backoffice.md`` §2.7): the Order as answered (JSON), the internal
state (O5), the till that claimed it, the point-wide revision of its last change that tills sync
by (O7, O14), the first receipt's fiscal data and the ``responseURL`` callback's bookkeeping
(O9, as D41–D44). Document numbers are unique among the live orders of a point by a partial
unique index, so two cloud processes cannot both create one (PostgreSQL, D75); every write
announces the point (D76), so other processes wake their tills' long polls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.records import dumps, from_db_time, loads, opt_time, to_db_time

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kkt_emulator.cloud.db import Row

__all__ = ["ORDER_CLAIM_BASE", "OrderRecord", "OrderTables"]

ORDER_CLAIM_BASE = 1 << 30
"""Callback claims of orders are taken at ``ORDER_CLAIM_BASE + seq`` (documents use their seq)."""

_COLUMNS = (
    "id, retail_point_id, document_number, body, prepaid, state, rev, claimed_by, source,"
    " created_at, changed_at, receipt, fiscalized_at, callback_first_at, callback_attempts,"
    " callback_next_at, callback_last_error"
)


@dataclass(frozen=True)
class OrderRecord:
    """One stored order."""

    seq: int
    id: str
    retail_point_id: str
    document_number: str
    body: dict[str, Any]
    prepaid: bool
    state: str  # NEW, ON_TILL, IN_PAYMENT, FISCALIZED, DELETED (O5)
    rev: int
    claimed_by: str | None
    source: str  # "v2" (the orders API) or "external" (the v1 façade, O10)
    created_at: datetime
    changed_at: datetime
    receipt: dict[str, Any] | None = None
    fiscalized_at: datetime | None = None
    callback_first_at: datetime | None = None
    callback_attempts: int = 0
    callback_next_at: datetime | None = None
    callback_last_error: str | None = None

    @property
    def live(self) -> bool:
        """Whether the order is not deleted."""
        return self.state != "DELETED"

    def replace(self, **changes: Any) -> OrderRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


def _from_row(row: Row) -> OrderRecord:
    return OrderRecord(
        seq=int(row["seq"]),
        id=row["id"],
        retail_point_id=row["retail_point_id"],
        document_number=row["document_number"],
        body=loads(row["body"]),
        prepaid=bool(row["prepaid"]),
        state=row["state"],
        rev=int(row["rev"]),
        claimed_by=row["claimed_by"],
        source=row["source"],
        created_at=from_db_time(row["created_at"]),
        changed_at=from_db_time(row["changed_at"]),
        receipt=loads(row["receipt"]),
        fiscalized_at=opt_time(row["fiscalized_at"]),
        callback_first_at=opt_time(row["callback_first_at"]),
        callback_attempts=int(row["callback_attempts"]),
        callback_next_at=opt_time(row["callback_next_at"]),
        callback_last_error=row["callback_last_error"],
    )


def _values(order: OrderRecord) -> tuple[object, ...]:
    return (
        order.id,
        order.retail_point_id,
        order.document_number,
        dumps(order.body),
        int(order.prepaid),
        order.state,
        order.rev,
        order.claimed_by,
        order.source,
        to_db_time(order.created_at),
        to_db_time(order.changed_at),
        None if order.receipt is None else dumps(order.receipt),
        None if order.fiscalized_at is None else to_db_time(order.fiscalized_at),
        None if order.callback_first_at is None else to_db_time(order.callback_first_at),
        order.callback_attempts,
        None if order.callback_next_at is None else to_db_time(order.callback_next_at),
        order.callback_last_error,
    )


class OrderTables(Database):
    """Orders."""

    TABLES = """
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    retail_point_id TEXT NOT NULL,
    document_number TEXT NOT NULL,
    body TEXT NOT NULL,
    prepaid INTEGER NOT NULL,
    state TEXT NOT NULL,
    rev INTEGER NOT NULL,
    claimed_by TEXT,
    source TEXT NOT NULL,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    receipt TEXT,
    fiscalized_at TEXT,
    callback_first_at TEXT,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_next_at TEXT,
    callback_last_error TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_number
    ON orders (retail_point_id, document_number) WHERE state <> 'DELETED';
CREATE INDEX IF NOT EXISTS orders_rev ON orders (retail_point_id, rev);
CREATE INDEX IF NOT EXISTS orders_callback ON orders (callback_next_at)
    WHERE callback_next_at IS NOT NULL;
"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._order_claims: set[int] = set()

    def insert_order(self, order: OrderRecord) -> OrderRecord:
        """Store a new order; its ``seq`` comes back."""
        row = self._one(
            f"INSERT INTO orders ({_COLUMNS}) VALUES"  # noqa: S608 - column names only
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            _values(order),
        )
        assert row is not None
        self._announce("change", order.retail_point_id)
        return order.replace(seq=int(row["seq"]))

    def update_order(self, order: OrderRecord) -> None:
        """Write every column of a stored order."""
        sets = ", ".join(f"{c.strip()} = ?" for c in _COLUMNS.split(","))
        self._execute(
            f"UPDATE orders SET {sets} WHERE seq = ?",  # noqa: S608 - column names only
            (*_values(order), order.seq),
        )
        self._announce("change", order.retail_point_id)

    def get_order(self, order_id: str) -> OrderRecord | None:
        """The order with this id (deleted ones included), locked in a transaction (PostgreSQL)."""
        row = self._one(
            f"SELECT * FROM orders WHERE id = ?{self._for_update()}",  # noqa: S608
            (order_id,),
        )
        return None if row is None else _from_row(row)

    def live_order_by_number(self, point_id: str, number: str) -> OrderRecord | None:
        """The live order of the point with this ``documentNumber``, if any."""
        row = self._one(
            "SELECT * FROM orders WHERE retail_point_id = ? AND document_number = ?"
            " AND state <> 'DELETED'",
            (point_id, number),
        )
        return None if row is None else _from_row(row)

    def live_orders(
        self, point_id: str, start: int = 0, count: int = 1000, source: str | None = None
    ) -> tuple[list[OrderRecord], int]:
        """Live orders of the point, oldest first, from ``start``: a page and the total."""
        where = "retail_point_id = ? AND state <> 'DELETED'"
        params: list[object] = [point_id]
        if source is not None:
            where += " AND source = ?"
            params.append(source)
        total = self._one(f"SELECT COUNT(*) AS n FROM orders WHERE {where}", params)  # noqa: S608
        rows = self._all(
            f"SELECT * FROM orders WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",  # noqa: S608
            (*params, count, start),
        )
        return [_from_row(r) for r in rows], 0 if total is None else int(total["n"])

    def orders_changed_since(self, point_id: str, rev: int) -> list[OrderRecord]:
        """Orders of the point changed after revision ``rev`` (deleted ones included), by rev."""
        rows = self._all(
            "SELECT * FROM orders WHERE retail_point_id = ? AND rev > ? ORDER BY rev",
            (point_id, rev),
        )
        return [_from_row(r) for r in rows]

    def orders_rev(self, point_id: str) -> int:
        """The point's latest order revision (0 without orders)."""
        row = self._one(
            "SELECT COALESCE(MAX(rev), 0) AS rev FROM orders WHERE retail_point_id = ?",
            (point_id,),
        )
        return 0 if row is None else int(row["rev"])

    def max_numeric_order_number(self, point_id: str) -> int:
        """The largest all-digit ``documentNumber`` of the point's orders (0 if none, O10)."""
        rows = self._all(
            "SELECT document_number FROM orders WHERE retail_point_id = ?", (point_id,)
        )
        numbers = [int(r["document_number"]) for r in rows if r["document_number"].isdigit()]
        return max(numbers, default=0)

    # -- callbacks (O9) ----------------------------------------------------------------------------

    def due_order_callbacks(
        self, now: datetime, exclude: Sequence[int] = (), limit: int = 100
    ) -> list[OrderRecord]:
        """Orders whose next callback attempt is due, claimed for this process (as documents')."""
        marks = ", ".join("?" for _ in exclude) or "-1"
        at = to_db_time(now)
        with self._lock:
            rows = self._all(
                "SELECT seq FROM orders WHERE callback_next_at IS NOT NULL"  # noqa: S608
                f" AND callback_next_at <= ? AND seq NOT IN ({marks})"
                " ORDER BY callback_next_at LIMIT ?",
                (at, *exclude, limit),
            )
            claimed: list[OrderRecord] = []
            for row in rows:
                seq = int(row["seq"])
                if seq not in self._order_claims:
                    if not self._conn.try_claim(ORDER_CLAIM_BASE + seq):
                        continue  # another process makes this attempt
                    self._order_claims.add(seq)
                fresh = self._one(
                    "SELECT * FROM orders WHERE seq = ? AND callback_next_at IS NOT NULL"
                    " AND callback_next_at <= ?",
                    (seq, at),
                )
                if fresh is None:
                    self.release_order_callback(seq)
                    continue
                claimed.append(_from_row(fresh))
            return claimed

    def release_order_callback(self, seq: int) -> None:
        """Give back the claim :meth:`due_order_callbacks` took."""
        with self._lock:
            if seq in self._order_claims:
                self._order_claims.discard(seq)
                self._conn.release(ORDER_CLAIM_BASE + seq)

    def next_order_callback(self, exclude: Sequence[int] = ()) -> datetime | None:
        """When the earliest order callback attempt not in flight is due."""
        marks = ", ".join("?" for _ in exclude) or "-1"
        row = self._one(
            "SELECT MIN(callback_next_at) AS t FROM orders"  # noqa: S608 - placeholders only
            f" WHERE callback_next_at IS NOT NULL AND seq NOT IN ({marks})",
            tuple(exclude),
        )
        return None if row is None or row["t"] is None else from_db_time(row["t"])

    def get_order_by_seq(self, seq: int) -> OrderRecord | None:
        """The order stored at ``seq``."""
        row = self._one(f"SELECT * FROM orders WHERE seq = ?{self._for_update()}", (seq,))  # noqa: S608
        return None if row is None else _from_row(row)
