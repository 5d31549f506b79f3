"""The ``service_credentials`` table: an account's services, switched on or off, with their pairs.

One row per account and service (``orders-and-backoffice.md`` O11); its login is ``NULL`` until a
pair is generated. The operations and the Basic auth built on it are in
:mod:`~kkt_emulator.cloud.service_auth`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kkt_emulator.cloud.db import Database
from kkt_emulator.cloud.records import from_db_time, to_db_time

if TYPE_CHECKING:
    from datetime import datetime

    from kkt_emulator.cloud.db import Row

__all__ = ["ServiceCredential", "ServiceCredentialTables"]


@dataclass(frozen=True)
class ServiceCredential:
    """One account service: whether it is on, and its generated pair (if one was generated)."""

    account_id: str
    service: str
    enabled: bool
    login: str | None
    salt: bytes | None
    hash: bytes | None
    changed_at: datetime


def _credential_from_row(row: Row) -> ServiceCredential:
    salt, digest = row["salt"], row["hash"]
    return ServiceCredential(
        account_id=row["account_id"],
        service=row["service"],
        enabled=bool(row["enabled"]),
        login=row["login"],
        salt=None if salt is None else bytes(salt),
        hash=None if digest is None else bytes(digest),
        changed_at=from_db_time(row["changed_at"]),
    )


class ServiceCredentialTables(Database):
    """The ``service_credentials`` table."""

    TABLES = """
CREATE TABLE IF NOT EXISTS service_credentials (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    service TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    login TEXT UNIQUE,
    salt BLOB,
    hash BLOB,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (account_id, service)
);
"""

    def get_service_credential(self, login: str) -> ServiceCredential | None:
        """The service pair with this login, if any."""
        row = self._one("SELECT * FROM service_credentials WHERE login = ?", (login,))
        return None if row is None else _credential_from_row(row)

    def service_credential_of(self, account_id: str, service: str) -> ServiceCredential | None:
        """The row of one service of an account, if the service was ever touched."""
        row = self._one(
            "SELECT * FROM service_credentials WHERE account_id = ? AND service = ?",
            (account_id, service),
        )
        return None if row is None else _credential_from_row(row)

    def service_credentials_of(self, account_id: str) -> list[ServiceCredential]:
        """Every service row of an account."""
        rows = self._all(
            "SELECT * FROM service_credentials WHERE account_id = ? ORDER BY service",
            (account_id,),
        )
        return [_credential_from_row(r) for r in rows]

    def put_service_credential(self, cred: ServiceCredential) -> None:
        """Insert or replace the row of ``(account_id, service)`` (the old login goes with it)."""
        self._execute(
            "INSERT INTO service_credentials"
            " (account_id, service, enabled, login, salt, hash, changed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (account_id, service) DO UPDATE SET enabled = excluded.enabled,"
            " login = excluded.login, salt = excluded.salt, hash = excluded.hash,"
            " changed_at = excluded.changed_at",
            (
                cred.account_id,
                cred.service,
                int(cred.enabled),
                cred.login,
                cred.salt,
                cred.hash,
                to_db_time(cred.changed_at),
            ),
        )
