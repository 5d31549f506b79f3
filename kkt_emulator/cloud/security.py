"""Credentials: salted password hashes, constant-time checks, tokens and HTTP auth headers.

Passwords are stored as PBKDF2-HMAC-SHA256 with a random 16-byte salt (D5). A store API client sends
its password on every request, so a successful check is remembered as an HMAC of the password under
a per-process key, bound to the stored hash: a later request with the same password is checked in
constant time without re-deriving, and a rotated password invalidates the entry. Bearer tokens of
tills are random 256-bit values stored as SHA-256 digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import threading
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BasicCredentials",
    "PasswordHasher",
    "generate_password",
    "hash_token",
    "new_token",
    "parse_basic",
    "parse_bearer",
]

_ITERATIONS: Final = 100_000
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
    """Hashes and checks passwords; remembers successful checks for speed (see the module doc)."""

    def __init__(self, iterations: int = _ITERATIONS) -> None:
        self.iterations = iterations
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self._dummy_salt = secrets.token_bytes(16)

    def hash(self, password: str) -> tuple[bytes, bytes]:
        """A new ``(salt, hash)`` pair for ``password``."""
        salt = secrets.token_bytes(16)
        return salt, self._derive(password, salt)

    def _derive(self, password: str, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, self.iterations)

    def verify(self, password: str, salt: bytes, stored: bytes) -> bool:
        """Whether ``password`` matches the stored hash, compared in constant time."""
        tag = hmac.new(self._key, password.encode("utf-8") + b"\0" + stored, "sha256").digest()
        with self._lock:
            remembered = self._verified.get(stored)
        if remembered is not None and hmac.compare_digest(remembered, tag):
            return True
        if not hmac.compare_digest(self._derive(password, salt), stored):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[stored] = tag
        return True

    def burn(self, password: str) -> None:
        """Spend the time of one check for an unknown login, so timing does not reveal logins."""
        self._derive(password, self._dummy_salt)
