"""Password checks (D5, D58): verdicts remembered, rotation honoured, derivation off the loop."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx
import pytest

from kkt_emulator.cloud.security import PasswordHasher

if TYPE_CHECKING:
    from cloud_helpers import Point

    from kkt_emulator.cloud.app import Cloud


class CountingHasher(PasswordHasher):
    """Counts derivations and remembers the threads they ran on."""

    def __init__(self) -> None:
        super().__init__(iterations=1000)
        self.threads: list[str] = []

    def _derive(self, password: str, salt: bytes) -> bytes:
        self.threads.append(threading.current_thread().name)
        return super()._derive(password, salt)


def test_right_and_wrong_passwords_are_derived_once_each() -> None:
    hasher = CountingHasher()
    salt, stored = hasher.hash("right")
    hasher.threads.clear()
    assert hasher.verify("right", salt, stored)  # remembered when it was hashed
    assert not hasher.verify("wrong", salt, stored)
    assert not hasher.verify("wrong", salt, stored)
    assert not hasher.verify("wrong", salt, stored)
    assert hasher.verify("right", salt, stored)
    assert len(hasher.threads) == 1


def test_a_rotated_password_matches_nothing_remembered() -> None:
    hasher = CountingHasher()
    salt, stored = hasher.hash("first")
    new_salt, new_stored = hasher.hash("second")
    assert hasher.verify("first", salt, stored)
    assert not hasher.verify("first", new_salt, new_stored)
    assert hasher.verify("second", new_salt, new_stored)


def test_a_fresh_process_derives_before_it_trusts() -> None:
    salt, stored = PasswordHasher(iterations=1000).hash("right")
    hasher = CountingHasher()  # another key, nothing remembered
    assert not hasher.verify("wrong", salt, stored)
    assert hasher.verify("right", salt, stored)
    assert hasher.verify("right", salt, stored)
    assert len(hasher.threads) == 2


def test_an_unknown_login_costs_one_derivation_per_password() -> None:
    hasher = CountingHasher()
    hasher.burn("nobody", "guess")
    hasher.burn("nobody", "guess")
    hasher.burn("nobody", "other guess")
    hasher.burn("somebody", "guess")
    assert len(hasher.threads) == 3


def test_a_generated_secret_is_one_salted_sha256_checked_by_any_process() -> None:
    """D110: the cloud's own random secrets skip PBKDF2; a person's password keeps it."""
    import hashlib  # noqa: PLC0415 - only this test recomputes a hash by hand

    salt, stored = PasswordHasher(iterations=1000).hash_generated("Zq3xYb7LmN0pQr2s")
    assert salt.startswith(b"sha256:")
    assert stored == hashlib.sha256(salt + b"Zq3xYb7LmN0pQr2s").digest()
    fresh = PasswordHasher(iterations=10**9)  # PBKDF2 this slow would never finish the test
    assert fresh.verify("Zq3xYb7LmN0pQr2s", salt, stored)
    assert not fresh.verify("Zq3xYb7LmN0pQr2S", salt, stored)
    person_salt, person_stored = PasswordHasher(iterations=1000).hash("Zq3xYb7LmN0pQr2s")
    assert not person_salt.startswith(b"sha256:")
    assert person_stored != hashlib.sha256(person_salt + b"Zq3xYb7LmN0pQr2s").digest()


async def test_asynchronous_checks_derive_in_the_worker_thread() -> None:
    salt, stored = PasswordHasher(iterations=1000).hash("right")
    hasher = CountingHasher()
    try:
        assert not await hasher.averify("wrong", salt, stored)
        assert await hasher.averify("right", salt, stored)
        await hasher.aburn("nobody", "guess")
        assert hasher.verify("right", salt, stored)  # judged already: nothing derived here
        hasher.burn("nobody", "guess")
    finally:
        hasher.close()
    main = threading.current_thread().name
    assert len(hasher.threads) == 3
    assert main not in hasher.threads


@pytest.mark.parametrize("password", ["wrong", ""])
async def test_a_wrong_password_is_refused_every_time(
    http: httpx.AsyncClient, point: Point, password: str
) -> None:
    for _ in range(3):
        response = await http.get("/api/fn/v1/status", auth=(point.assoc[0], password))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="fn"'
    assert (await http.get("/api/fn/v1/status", auth=point.assoc)).status_code == 200


async def test_the_store_api_never_derives_on_the_event_loop(
    cloud: Cloud, http: httpx.AsyncClient, point: Point
) -> None:
    hasher = CountingHasher()
    cloud.service.hasher = hasher  # as after a restart: nothing judged yet
    unknown = ("00000000-0000-4000-8000-000000000000", "x")
    for auth in (point.assoc, (point.assoc[0], "wrong"), unknown):
        for _ in range(2):
            await http.get("/api/fn/v1/status", auth=auth)
            await http.post("/api/fn/v2/doc", auth=auth, content=b"{}")
    hasher.close()
    assert len(hasher.threads) == 3
    assert threading.current_thread().name not in hasher.threads
