"""Credentials: salted password hashes, constant-time checks, tokens and HTTP auth headers.

Passwords are stored as PBKDF2-HMAC-SHA256 with a random 16-byte salt (D5). A store API client sends
its password on every request, so verdicts are remembered (D58): a password that matched is kept as
an HMAC of the password under a per-process key, bound to the stored hash, and so are refused pairs
and the unknown logins already paid for. A repeated request, right or wrong, is then checked in
constant time without re-deriving, and a rotated password (a new stored hash) matches nothing
remembered. A pair never judged costs one derivation whether the login exists or not, so timing
reveals no login; :meth:`PasswordHasher.averify` and :meth:`PasswordHasher.aburn` make it in one
worker thread, so a flood of wrong passwords waits its turn there and never stalls the event loop.
Bearer tokens of tills are random 256-bit values stored as SHA-256 digests. So are the secrets the
cloud generates itself (service credentials, associations: 16 random characters, about 95 bits), with
a salt that names the scheme (D110): a slow hash protects guessable passwords, and a generated one is
not guessable, so each new retail point costs microseconds instead of two PBKDF2 derivations.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import hashlib
import hmac
import secrets
import string
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CABINET_COOKIE",
    "BasicCredentials",
    "PasswordHasher",
    "cabinet_cookie_value",
    "generate_password",
    "hash_token",
    "new_token",
    "parse_basic",
    "parse_bearer",
]

CABINET_COOKIE: Final = "kkt_cabinet"
"""The web cabinet's cookie (D99): a digest of the cabinet token, never the token."""
_COOKIE_SALT: Final = b"kkt-emulator cabinet web v1:"


def cabinet_cookie_value(token: str) -> str:
    """What the cabinet cookie holds for ``token`` (D99)."""
    return hashlib.sha256(_COOKIE_SALT + token.encode()).hexdigest()


_ITERATIONS: Final = 100_000
_FAST: Final = b"sha256:"
"""The salt prefix of a generated secret's hash: one salted SHA-256 instead of PBKDF2 (D110)."""
_REMEMBERED: Final = 10_000  # verdicts kept per kind; the table starts afresh when full
_ALPHABET: Final = string.ascii_letters + string.digits


@dataclass(frozen=True)
class BasicCredentials:
    """A login and password from an ``Authorization: Basic`` header."""

    login: str
    password: str


def parse_basic(header: str | None) -> BasicCredentials | None:
    """Decode ``Authorization: Basic base64(login:password)``; ``None`` if missing or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    login, sep, password = decoded.partition(":")
    if not sep or not login:
        return None
    return BasicCredentials(login, password)


def parse_bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` if missing or malformed."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def generate_password(length: int = 16) -> str:
    """A random alphanumeric password (D6: 16 characters)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_token() -> str:
    """A random bearer token for a till."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a bearer token (tokens are random, so a plain digest suffices)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class PasswordHasher:
    """Hashes and checks passwords; remembers verdicts for speed (see the module doc).

    Thread-safe: the derivations of :meth:`averify` and :meth:`aburn` run in one worker thread.
    """

    def __init__(self, iterations: int = _ITERATIONS) -> None:
        self.iterations = iterations
        self._key = secrets.token_bytes(32)
        self._good: dict[bytes, bytes] = {}  # stored hash → tag of the password that matched it
        self._judged: set[bytes] = set()  # tags of refused pairs and of burnt unknown logins
        self._lock = threading.Lock()
        self._dummy_salt = secrets.token_bytes(16)
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None

    def hash(self, password: str) -> tuple[bytes, bytes]:
        """A new ``(salt, hash)`` pair for ``password`` (remembered as its right password)."""
        salt = secrets.token_bytes(16)
        stored = self._derive(password, salt)
        self._remember_good(stored, self._tag(password, stored))
        return salt, stored

    def hash_generated(self, secret: str) -> tuple[bytes, bytes]:
        """A new ``(salt, hash)`` pair for a secret the cloud generated (D110).

        Only for values of :func:`generate_password`: a salted SHA-256, whose salt says so, so
        :meth:`verify` checks it without PBKDF2.
        """
        salt = _FAST + secrets.token_bytes(16)
        stored = self._derive(secret, salt)
        self._remember_good(stored, self._tag(secret, stored))
        return salt, stored

    def _derive(self, password: str, salt: bytes) -> bytes:
        if salt.startswith(_FAST):
            return hashlib.sha256(salt + password.encode("utf-8")).digest()
        return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, self.iterations)

    def _tag(self, password: str, stored: bytes) -> bytes:
        secret = password.encode("utf-8")  # length-prefixed: no two pairs give the same input
        message = len(secret).to_bytes(4, "big") + secret + stored
        return hmac.digest(self._key, message, "sha256")

    def _remember_good(self, stored: bytes, tag: bytes) -> None:
        with self._lock:
            if len(self._good) >= _REMEMBERED:
                self._good.clear()
            self._good[stored] = tag

    def _remember_judged(self, tag: bytes) -> None:
        with self._lock:
            if len(self._judged) >= _REMEMBERED:
                self._judged.clear()
            self._judged.add(tag)

    def known(self, password: str, stored: bytes) -> bool | None:
        """The remembered verdict on ``password`` for ``stored``; ``None`` if it needs deriving."""
        tag = self._tag(password, stored)
        with self._lock:
            good = self._good.get(stored)
            refused = tag in self._judged
        if good is not None and hmac.compare_digest(good, tag):
            return True
        return False if refused else None

    def verify(self, password: str, salt: bytes, stored: bytes) -> bool:
        """Whether ``password`` matches the stored hash, compared in constant time."""
        verdict = self.known(password, stored)
        return self._judge(password, salt, stored) if verdict is None else verdict

    async def averify(self, password: str, salt: bytes, stored: bytes) -> bool:
        """:meth:`verify`, deriving (if it must) in the worker thread, off the event loop."""
        verdict = self.known(password, stored)
        if verdict is None:
            return await self._in_worker(functools.partial(self._judge, password, salt, stored))
        return verdict

    def _judge(self, password: str, salt: bytes, stored: bytes) -> bool:
        tag = self._tag(password, stored)
        if hmac.compare_digest(self._derive(password, salt), stored):
            self._remember_good(stored, tag)
            return True
        self._remember_judged(tag)
        return False

    def _burn_tag(self, login: str, password: str) -> bytes:
        return self._tag(password, b"unknown login:" + login.encode("utf-8"))

    def burnt(self, login: str, password: str) -> bool:
        """Whether an unknown ``login`` with this ``password`` has already been paid for."""
        tag = self._burn_tag(login, password)
        with self._lock:
            return tag in self._judged

    def burn(self, login: str, password: str) -> None:
        """Spend the time of one check for an unknown login, so timing does not reveal logins.

        A pair already burnt is remembered like a refused password and costs nothing again.
        """
        if not self.burnt(login, password):
            self._burn(login, password)

    async def aburn(self, login: str, password: str) -> None:
        """:meth:`burn` in the worker thread, off the event loop."""
        if not self.burnt(login, password):
            await self._in_worker(functools.partial(self._burn, login, password))

    def _burn(self, login: str, password: str) -> bool:
        self._derive(password, self._dummy_salt)
        self._remember_judged(self._burn_tag(login, password))
        return False

    async def _in_worker(self, job: Callable[[], bool]) -> bool:
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, "kkt-password")
        return await asyncio.get_running_loop().run_in_executor(self._worker, job)

    def close(self) -> None:
        """Stop the worker thread (idempotent); a later asynchronous check starts a new one."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)
