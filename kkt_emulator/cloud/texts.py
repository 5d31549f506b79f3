"""User-visible texts of the cloud stand-in, byte for byte as clients and support scripts match.

Sources: ``store-api.md`` §7.2 (D29), §7.4 (D35, D37) and ``support-cases.md`` §5.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MESSAGE_COMPLETED_WITH_CALLBACK",
    "MESSAGE_QUEUED",
    "PENDING_TIMEOUT_TEXT",
    "PICKUP_SHOP_TEXT",
    "PICKUP_TIMEOUT_TEXT",
]

# store-api.md §7.2, D29: the two vendor strings.
MESSAGE_QUEUED: Final = "Document queued for printing"
MESSAGE_COMPLETED_WITH_CALLBACK: Final = "Document successfully completed with callback"

# store-api.md D35 / support-cases.md §5 row 8: «PENDING» for 15 minutes without a till result.
PENDING_TIMEOUT_TEXT: Final = "Касса не подтвердила фискализацию документа в течение 15 минут"

# store-api.md D37 / support-cases.md §5 row 3: the exact vendor text of the 235-second rule.
PICKUP_TIMEOUT_TEXT: Final = "POS doesn't connect for document within 235 seconds"

# support-cases.md §5 row 3: what the shop sees on the payment side (Yandex.Kassa, «За 5 минут»)
# when the 235-second rule failed its document; the cabinet's document detail shows it.
PICKUP_SHOP_TEXT: Final = "Касса не ответила на запрос в течение 5 минут"
