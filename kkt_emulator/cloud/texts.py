"""User-visible texts of the cloud stand-in, byte for byte as clients and support scripts match.

Sources: ``store-api.md`` §7.2 (D29), §7.4 (D35, D37), D83 and ``support-cases.md`` §2, §5.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "DOCUMENT_ERROR_PREFIX",
    "MESSAGE_COMPLETED_WITH_CALLBACK",
    "MESSAGE_QUEUED",
    "PENDING_TIMEOUT_TEXT",
    "PICKUP_SHOP_TEXT",
    "PICKUP_TIMEOUT_TEXT",
    "STATUS_TEXTS",
    "failure_text",
    "status_text",
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

# support-cases.md §2 / D83: the cabinet's Russian name of each status, as the support deck shows
# them. REQUEUED is not in the deck (it is newer than it); the name follows the v2 doc's meaning
# «документ повторно поставлен в очередь».
STATUS_TEXTS: Final = MappingProxyType(
    {
        "QUEUED": "В очереди",
        "PENDING": "В обработке",
        "PRINTED": "Фискализирован",
        "WAIT_FOR_CALLBACK": "Доставка ответа на сайт",
        "COMPLETED": "Выполнен",
        "FAILED": "Ошибка",
        "REQUEUED": "Повторно в очереди",
    }
)

# D83: the prefix the cabinet's document card puts before the 235-second text (the support deck:
# «Сообщение ФН об ошибке в документе: POS doesn't connect for document within 235 seconds»). A
# till's own texts carry «Сообщение ФН об ошибке: » already (till/failures.py composes it).
DOCUMENT_ERROR_PREFIX: Final = "Сообщение ФН об ошибке в документе: "


def status_text(status: str) -> str:
    """The cabinet's Russian name of a status code (D83); an unknown code is shown as it is."""
    return STATUS_TEXTS.get(status, status)


def failure_text(message: str) -> str:
    """The error line the cabinet's document card shows for a ``failureInfo.message`` (D83).

    A till's texts already carry «Сообщение ФН об ошибке: »; the 235-second rule's vendor text gets
    «Сообщение ФН об ошибке в документе: » before it, as the support deck shows it. Every other
    server text (the 15-minute rule) is shown as it is, as ``support-cases.md`` §5 row 8 gives it.
    The store API's ``failureInfo.message`` keeps the bare vendor text (D37).
    """
    if message == PICKUP_TIMEOUT_TEXT:
        return DOCUMENT_ERROR_PREFIX + message
    return message
