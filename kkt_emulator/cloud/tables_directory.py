"""The cloud database's directory tables: who may call and from where.

Accounts, master credentials, retail points, associations and devices (with their heartbeats).

Every store-API and till-API request reads its association or device, its retail point and the
point's last heartbeat, so those rows are cached in memory (D59): filled by a read, dropped or
rewritten by the write that changes them (both under the connection's lock), and emptied whenever
a transaction fails. Only rows that exist are kept (an unknown login or token is looked up every
time). With SQLite this process is the file's only writer, so the caches are right by
construction. With PostgreSQL other cloud processes write too: every write that changes a cached
row announces it from its transaction, and :meth:`DirectoryTables._forget` drops what the other
processes cached of it when their listener hears it (D76).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.records import (
    Account,
    Association,
    Device,
    MasterCredential,
    RetailPoint,
    association_from_row,
    device_from_row,
    dumps,
    from_db_time,
    loads,
    point_from_row,
    to_db_time,
)

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from kkt_emulator.cloud.db import DatabaseTarget, Row

__all__ = ["DirectoryTables"]


def _account_from_row(row: Row) -> Account:
    return Account(row["id"], row["name"], from_db_time(row["created_at"]))


class DirectoryTables(Database):
    """Who may call: accounts, credentials, retail points, associations, tills."""

    def __init__(self, target: str | Path | DatabaseTarget) -> None:
        super().__init__(target)
        self._points: dict[str, RetailPoint] = self._cache()
        self._associations: dict[str, Association] = self._cache()
        self._devices: dict[str, Device] = self._cache()  # by token hash
        # device id -> the token hash it is cached under, so that a heartbeat or a re-bind touches
        # its one entry: scanning every cached till per heartbeat made a fleet's start quadratic.
        self._device_tokens: dict[str, str] = self._cache()
        self._heartbeats: dict[str, tuple[datetime, bool] | None] = self._cache()  # by point

    def _forget(self, kind: str, key: str) -> None:
        """Drop what the caches hold of a row another process changed (D76)."""
        super()._forget(kind, key)
        if kind == "point":
            self._points.pop(key, None)
            self._heartbeats.pop(key, None)
        elif kind == "association":
            self._associations.pop(key, None)
        elif kind == "devices":
            self._devices.clear()
            self._device_tokens.clear()
            self._heartbeats.clear()
        elif kind == "heartbeat":
            self._heartbeats.clear()
            token_hash = self._device_tokens.pop(key, None)
            if token_hash is not None:
                self._devices.pop(token_hash, None)

    # -- accounts and master credentials -----------------------------------------------------------

    def insert_account(self, account: Account) -> None:
        """Store a new account."""
        self._execute(
            "INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)",
            (account.id, account.name, to_db_time(account.created_at)),
        )

    def get_account(self, account_id: str) -> Account | None:
        """The account with this id, if any."""
        row = self._one("SELECT * FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else _account_from_row(row)

    def list_accounts(self) -> list[Account]:
        """Every account, oldest first."""
        rows = self._all("SELECT * FROM accounts ORDER BY rowid")
        return [_account_from_row(r) for r in rows]

    def upsert_master_credential(self, cred: MasterCredential, now: datetime) -> None:
        """Store a master login, replacing the password of an existing one."""
        self._execute(
            "INSERT INTO master_credentials"
            " (login, account_id, retail_point_id, kind, salt, hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (login) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,"
            " account_id = excluded.account_id, retail_point_id = excluded.retail_point_id",
            (
                cred.login,
                cred.account_id,
                cred.retail_point_id,
                cred.kind,
                cred.salt,
                cred.hash,
                to_db_time(now),
            ),
        )

    def get_master_credential(self, login: str) -> MasterCredential | None:
        """The master login with this name, if any."""
        row = self._one("SELECT * FROM master_credentials WHERE login = ?", (login,))
        if row is None:
            return None
        return MasterCredential(
            row["login"],
            row["account_id"],
            row["retail_point_id"],
            row["kind"],
            row["salt"],
            row["hash"],
        )

    # -- retail points -----------------------------------------------------------------------------

    def insert_point(self, point: RetailPoint) -> None:
        """Store a new retail point."""
        with self._lock:
            self._execute(
                "INSERT INTO retail_points (id, account_id, name, address, inn, internet_docs_enabled,"
                " stop_on_errors, pickup_window, default_tax_mode, duplicate_policy, deleted, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    point.id,
                    point.account_id,
                    point.name,
                    point.address,
                    point.inn,
                    int(point.internet_docs_enabled),
                    int(point.stop_on_errors),
                    point.pickup_window.value,
                    point.default_tax_mode.value,
                    point.duplicate_policy.value,
                    int(point.deleted),
                    to_db_time(point.created_at),
                ),
            )
            self._points.pop(point.id, None)
            self._announce("point", point.id)

    def update_point(self, point: RetailPoint) -> None:
        """Write every setting of an existing retail point."""
        with self._lock:
            self._execute(
                "UPDATE retail_points SET account_id = ?, name = ?, address = ?, inn = ?,"
                " internet_docs_enabled = ?, stop_on_errors = ?, pickup_window = ?,"
                " default_tax_mode = ?, duplicate_policy = ?, deleted = ? WHERE id = ?",
                (
                    point.account_id,
                    point.name,
                    point.address,
                    point.inn,
                    int(point.internet_docs_enabled),
                    int(point.stop_on_errors),
                    point.pickup_window.value,
                    point.default_tax_mode.value,
                    point.duplicate_policy.value,
                    int(point.deleted),
                    point.id,
                ),
            )
            self._points.pop(point.id, None)
            self._announce("point", point.id)
            self._announce("change", point.id)  # a point turned on may have documents to lease

    def lock_point(self, point_id: str) -> None:
        """Hold the point's row until the transaction ends (PostgreSQL; D75).

        A transaction that looks for a row of the point and then creates it (an association of a
        ``clientId``, a till's binding), or changes the point itself, takes this first, so two
        cloud processes doing the same for one point do it one after the other and the second
        finds what the first made.
        """
        if self._for_update():
            with self._lock:
                self._execute("SELECT id FROM retail_points WHERE id = ? FOR UPDATE", (point_id,))
                self._points.pop(point_id, None)  # read it again, as it is now that it is held

    def get_point(self, point_id: str) -> RetailPoint | None:
        """The retail point with this id (deleted ones included), if any."""
        point = self._points.get(point_id)
        if point is not None:
            return point
        with self._lock:  # read and fill at once, so that no write falls in between
            row = self._one("SELECT * FROM retail_points WHERE id = ?", (point_id,))
            if row is None:
                return None
            point = self._points[point_id] = point_from_row(row)
            return point

    def list_points(self) -> list[RetailPoint]:
        """Every retail point, oldest first."""
        rows = self._all("SELECT * FROM retail_points ORDER BY rowid")
        return [point_from_row(r) for r in rows]

    # -- associations ------------------------------------------------------------------------------

    def get_association(self, user_name: str) -> Association | None:
        """The association with this ``userName``, if any."""
        assoc = self._associations.get(user_name)
        if assoc is not None:
            return assoc
        with self._lock:
            row = self._one("SELECT * FROM associations WHERE user_name = ?", (user_name,))
            if row is None:
                return None
            assoc = self._associations[user_name] = association_from_row(row)
            return assoc

    def get_association_for(self, point_id: str, client_id: str) -> Association | None:
        """The association of ``(retailPointId, clientId)``, if any."""
        row = self._one(
            "SELECT * FROM associations WHERE retail_point_id = ? AND client_id = ?",
            (point_id, client_id),
        )
        return None if row is None else association_from_row(row)

    def upsert_association(self, assoc: Association) -> None:
        """Store an association, or rotate the password of an existing one."""
        with self._lock:
            self._execute(
                "INSERT INTO associations (user_name, retail_point_id, client_id, account_id, salt,"
                " hash, created_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (user_name) DO UPDATE SET salt = excluded.salt, hash = excluded.hash,"
                " account_id = excluded.account_id, rotated_at = excluded.rotated_at",
                (
                    assoc.user_name,
                    assoc.retail_point_id,
                    assoc.client_id,
                    assoc.account_id,
                    assoc.salt,
                    assoc.hash,
                    to_db_time(assoc.created_at),
                    to_db_time(assoc.rotated_at),
                ),
            )
            self._associations.pop(assoc.user_name, None)
            self._announce("association", assoc.user_name)

    def delete_association(self, user_name: str) -> None:
        """Remove an association; its documents stay (D6)."""
        with self._lock:
            self._execute("DELETE FROM associations WHERE user_name = ?", (user_name,))
            self._associations.pop(user_name, None)
            self._announce("association", user_name)

    # -- devices -----------------------------------------------------------------------------------

    def get_device_by_serial(self, till_serial: str) -> Device | None:
        """The device bound with this till serial, if any."""
        row = self._one("SELECT * FROM devices WHERE till_serial = ?", (till_serial,))
        return None if row is None else device_from_row(row)

    def get_device_by_token(self, token_hash: str) -> Device | None:
        """The device whose bearer token hashes to ``token_hash``, if any."""
        device = self._devices.get(token_hash)
        if device is not None:
            return device
        with self._lock:
            row = self._one("SELECT * FROM devices WHERE token_hash = ?", (token_hash,))
            if row is None:
                return None
            device = self._devices[token_hash] = device_from_row(row)
            self._device_tokens[device.device_id] = token_hash
            return device

    def get_device(self, device_id: str) -> Device | None:
        """The device with this id, if any."""
        row = self._one("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else device_from_row(row)

    def upsert_device(self, device: Device) -> None:
        """Store a device binding (a repeated bind replaces the token and the till's details)."""
        with self._lock:
            self._execute(
                "INSERT INTO devices (device_id, till_serial, retail_point_id, fn_serial, model,"
                " firmware_profile, token_hash, bound_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (device_id) DO UPDATE SET retail_point_id = excluded.retail_point_id,"
                " fn_serial = excluded.fn_serial, model = excluded.model,"
                " firmware_profile = excluded.firmware_profile, token_hash = excluded.token_hash,"
                " bound_at = excluded.bound_at",
                (
                    device.device_id,
                    device.till_serial,
                    device.retail_point_id,
                    device.fn_serial,
                    device.model,
                    device.firmware_profile,
                    device.token_hash,
                    to_db_time(device.bound_at),
                ),
            )
            # The old token of a re-bound till must stop working.
            old_token = self._device_tokens.pop(device.device_id, None)
            if old_token is not None:
                self._devices.pop(old_token, None)
            self._heartbeats.clear()  # and the till may have moved to another point
            self._announce("devices")

    def record_heartbeat(
        self, device_id: str, at: datetime, *, fn_ok: bool, body: dict[str, Any], fn_serial: str
    ) -> None:
        """Store a device's latest heartbeat."""
        stored_at, text = to_db_time(at), dumps(body)
        with self._lock:
            self._execute(
                "UPDATE devices SET last_heartbeat_at = ?, fn_ok = ?, heartbeat = ?,"
                " fn_serial = CASE WHEN ? = '' THEN fn_serial ELSE ? END WHERE device_id = ?",
                (stored_at, int(fn_ok), text, fn_serial, fn_serial, device_id),
            )
            self._heartbeats.clear()
            self._announce("heartbeat", device_id)
            token_hash = self._device_tokens.get(device_id)
            device = None if token_hash is None else self._devices.get(token_hash)
            if token_hash is not None and device is not None:
                # As a read of the new row would give it.
                self._devices[token_hash] = dataclasses.replace(
                    device,
                    last_heartbeat_at=from_db_time(stored_at),
                    fn_ok=fn_ok,
                    heartbeat=loads(text),
                    fn_serial=fn_serial or device.fn_serial,
                )

    def list_devices(self, point_id: str | None = None) -> list[Device]:
        """Every bound device, optionally of one retail point."""
        if point_id is None:
            rows = self._all("SELECT * FROM devices ORDER BY bound_at, device_id")
        else:
            rows = self._all(
                "SELECT * FROM devices WHERE retail_point_id = ? ORDER BY bound_at, device_id",
                (point_id,),
            )
        return [device_from_row(r) for r in rows]

    def last_heartbeat(self, point_id: str) -> tuple[datetime, bool] | None:
        """Time and ФН state of the most recent heartbeat of the point's tills (D40)."""
        if point_id in self._heartbeats:
            return self._heartbeats[point_id]
        with self._lock:
            row = self._one(
                "SELECT last_heartbeat_at, fn_ok FROM devices WHERE retail_point_id = ?"
                " AND last_heartbeat_at IS NOT NULL ORDER BY last_heartbeat_at DESC LIMIT 1",
                (point_id,),
            )
            found = None
            if row is not None:
                found = from_db_time(row["last_heartbeat_at"]), bool(row["fn_ok"])
            if self.get_point(point_id) is not None:  # only real points: the cache stays small
                self._heartbeats[point_id] = found
            return found
