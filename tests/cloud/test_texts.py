"""The cabinet's Russian status names and error line (D83) against the support deck."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kkt_emulator.cloud.lifecycle import Status
from kkt_emulator.cloud.texts import (
    PENDING_TIMEOUT_TEXT,
    PICKUP_TIMEOUT_TEXT,
    STATUS_TEXTS,
    failure_text,
    status_text,
)

# support-cases.md §2, from the deck's «Статусы чеков ИМ».
DECK = {
    "QUEUED": "В очереди",
    "PENDING": "В обработке",
    "FAILED": "Ошибка",
    "PRINTED": "Фискализирован",
    "WAIT_FOR_CALLBACK": "Доставка ответа на сайт",
    "COMPLETED": "Выполнен",
}


def test_every_status_has_a_russian_name() -> None:
    assert set(STATUS_TEXTS) == {s.value for s in Status}
    assert all(STATUS_TEXTS.values())


@pytest.mark.parametrize(("code", "text"), sorted(DECK.items()))
def test_the_deck_names(code: str, text: str) -> None:
    assert status_text(code) == text


def test_requeued_and_an_unknown_code() -> None:
    assert status_text("REQUEUED") == "Повторно в очереди"
    assert status_text("SOMETHING") == "SOMETHING"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            PICKUP_TIMEOUT_TEXT,
            (
                "Сообщение ФН об ошибке в документе: POS doesn't connect for document within 235"
                " seconds"
            ),
        ),
        # The till's texts carry their prefix already; the 15-minute text is shown as it is.
        (
            "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН",
            "Сообщение ФН об ошибке: Исчерпан ресурс хранения ФН",
        ),
        ("Сообщение ФН об ошибке: Negative", "Сообщение ФН об ошибке: Negative"),
        (PENDING_TIMEOUT_TEXT, "Касса не подтвердила фискализацию документа в течение 15 минут"),
    ],
)
def test_the_cabinet_error_line(message: str, shown: str) -> None:
    assert failure_text(message) == shown


@given(st.text())
def test_only_the_235_second_text_gets_the_document_prefix(message: str) -> None:
    assume(message != PICKUP_TIMEOUT_TEXT)
    assert failure_text(message) == message
