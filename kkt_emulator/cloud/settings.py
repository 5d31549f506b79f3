"""Instance settings of the cloud stand-in (``store-api.md`` §14 test switches, D31, D42, D43)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

__all__ = [
    "MAX_BODY_BYTES",
    "CallbackMethod",
    "CloudSettings",
    "DuplicatePolicy",
    "FiscalDateFormat",
    "FnState",
    "PickupWindow",
]

# D8: request bodies over 1 MiB are refused with 413 before parsing.
MAX_BODY_BYTES: Final = 1024 * 1024


class FnState(StrEnum):
    """``fnState`` and ``/v1/status`` ``status`` (v2 doc §3.2, D40)."""

    ASSOCIATED = "ASSOCIATED"
    READY = "READY"
    DISABLED = "DISABLED"
    FAILED = "FAILED"


class PickupWindow(StrEnum):
    """Yandex.Kassa receipt-data mode of a retail point (D37): «За 3 дня» or «За 5 минут»."""

    THREE_DAYS = "3days"
    FIVE_MINUTES = "5min"


class DuplicatePolicy(StrEnum):
    """What a re-sent ``id`` with different receipt content gets (D32)."""

    REPLAY = "replay"
    CONFLICT = "conflict"


class CallbackMethod(StrEnum):
    """HTTP method of ``responseURL`` callbacks (D42)."""

    GET = "GET"
    POST = "POST"


class FiscalDateFormat(StrEnum):
    """Format of ``fiscalInfo.date`` (D10 default, §14 switch)."""

    ISO = "iso"  # 2019-09-04T07:14:00+00:00
    MILLIS = "millis"  # 2020-02-26T00:31:19.000+0000


@dataclass(frozen=True)
class CloudSettings:
    """Settings of one cloud instance.

    Attributes:
        callback_method: D42.
        callback_verify_tls: D43; verify HTTPS certificates of ``responseURL``.
        callback_timeout: D43; seconds per attempt (pacing, real time).
        callback_dispatch_delay: D31; hold fiscalised documents in PRINTED this long.
        fiscal_date_format: §14 switch for ``fiscalInfo.date``.
        fiscal_sum_as_string: §14 switch: ``fiscalInfo.sum`` as ``"57.00"``.
        duplicate_window: how close two integrations' documents with the same ``docNum`` and sum
            must be to raise a double-integration warning (``support-cases.md`` §6).
        password_iterations: PBKDF2 iterations for stored passwords.
        cabinet_token: if set, the cabinet API requires ``Authorization: Bearer <token>``.
        max_lease_wait: upper bound of a till's long poll, seconds (``till-protocol.md`` §1).
        demo_mode: D4; an internal virtual till fiscalises every document, ``fnState`` is READY.
        demo_latency: D4; how long after acceptance the virtual till fiscalises a document.
        timer_retry_seconds: after a timer pass failed (logged with its traceback), how long
            (pacing time) the timer task waits before the next pass, unless a write wakes it.
    """

    callback_method: CallbackMethod = CallbackMethod.GET
    callback_verify_tls: bool = True
    callback_timeout: float = 30.0
    callback_dispatch_delay: timedelta = timedelta(0)
    fiscal_date_format: FiscalDateFormat = FiscalDateFormat.ISO
    fiscal_sum_as_string: bool = False
    duplicate_window: timedelta = timedelta(minutes=10)
    password_iterations: int = 100_000
    cabinet_token: str | None = None
    max_lease_wait: float = 30.0
    demo_mode: bool = False
    demo_latency: timedelta = timedelta(0)
    timer_retry_seconds: float = 1.0
