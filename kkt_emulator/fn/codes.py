"""Wire codes of the drive protocol: commands, result codes, phases, document codes, warning flags.

Official Russian texts are kept byte-for-byte: ``ResultCode.text_2016`` (ФН-2016) and
``ResultCode.text_12`` (ФН-1.2.06) where the two spec versions differ (FN spec §7).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "Command",
    "CurrentDocument",
    "DocCode",
    "OfdRejectReason",
    "Phase",
    "ResultCode",
    "Warning",
]


class Command(IntEnum):
    """Drive command codes (FN spec §6.1) with their official names in ``title``."""

    title: str

    def __new__(cls, value: int, title: str) -> Command:
        member = int.__new__(cls, value)
        member._value_ = value
        member.title = title
        return member

    START_REGISTRATION = 0x02, "Начать отчет о регистрации/перерегистрации"
    FINISH_REGISTRATION = 0x03, "Сформировать отчет о регистрации/перерегистрации"
    START_CLOSE_FN = 0x04, "Начать закрытие ФН"
    CLOSE_FN = 0x05, "Закрыть ФН"
    CANCEL_DOCUMENT = 0x06, "Отменить документ"
    SEND_DOCUMENT_DATA = 0x07, "Передать данные документа"
    SHIFT_PARAMS = 0x10, "Запрос параметров текущей смены"
    START_OPEN_SHIFT = 0x11, "Начать открытие смены"
    OPEN_SHIFT = 0x12, "Открыть смену"
    START_CLOSE_SHIFT = 0x13, "Начать закрытие смены"
    CLOSE_SHIFT = 0x14, "Закрыть смену"
    START_RECEIPT = 0x15, "Начать формирование чека (БСО)"
    FINISH_RECEIPT = 0x16, "Сформировать чек"
    START_CORRECTION = 0x17, "Начать формирование чека коррекции (БСО)"
    START_SETTLEMENT_REPORT = 0x18, "Начать формирование отчета о состоянии расчетов"
    FINISH_SETTLEMENT_REPORT = 0x19, "Сформировать отчет о состоянии расчетов"
    OFD_STATUS = 0x20, "Получить статус информационного обмена"
    OFD_TRANSPORT = 0x21, "Передать статус транспортного соединения с Сервером ОФД"
    OFD_START_READ = 0x22, "Начать чтение Сообщения для Сервера ОФД"
    OFD_READ_BLOCK = 0x23, "Прочитать блок сообщения для Сервера ОФД"
    OFD_CANCEL_READ = 0x24, "Отменить чтение Сообщения для Сервера ОФД"
    OFD_FINISH_READ = 0x25, "Завершить чтение Сообщения для Сервера ОФД"
    OFD_RECEIPT = 0x26, "Передать Квитанцию от Сервера ОФД"
    STATUS = 0x30, "Запрос статуса ФН"
    SERIAL = 0x31, "Запрос номера ФН"
    EXPIRY = 0x32, "Запрос срока действия ФН"
    VERSION = 0x33, "Запрос версии ФН"
    LAST_ERRORS = 0x35, "Запрос последних ошибок ФН"
    FORMAT = 0x3A, "Запрос формата ФН"
    DAYS_LEFT = 0x3B, "Запрос оставшегося срока действия ФН"
    FREE_RESOURCES = 0x3D, "Запрос ресурса свободной памяти в ФН"
    FIND_DOCUMENT = 0x40, "Найти фискальный документ по номеру"
    OFD_ACK_BY_NUMBER = 0x41, "Запрос квитанции о получении ФД в ОФД по номеру документа"
    UNCONFIRMED_COUNT = 0x42, "Запрос количества ФД, на которые нет квитанции"
    REGISTRATION_RESULTS = 0x43, "Запрос итогов фискализации ФН"
    REGISTRATION_PARAMETER = 0x44, "Запрос параметра фискализации ФН"
    READ_DOCUMENT_TLV = 0x45, "Запрос фискального документа в TLV формате"
    READ_DOCUMENT_TLV_NEXT = 0x46, "Чтение TLV фискального документа"
    READ_REGISTRATION_TLV_NEXT = 0x47, "Чтение TLV параметров фискализации"
    RESET = 0x60, "Сброс состояния ФН"
    START_REGISTRATION_12 = 0xA2, "Начать отчет о регистрации/перерегистрации (ФФД 1.1/1.2)"
    FINISH_REGISTRATION_12 = 0xA3, "Сформировать отчет о регистрации/перерегистрации (ФФД 1.1/1.2)"


class ResultCode(IntEnum):
    """Drive answer codes (FN spec §7) with the official texts of both spec versions."""

    text_2016: str
    text_12: str

    def __new__(cls, value: int, text_2016: str, text_12: str) -> ResultCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.text_2016 = text_2016
        member.text_12 = text_12
        return member

    def text(self, protocol: str = "fn-1.2") -> str:
        """The official text for ``protocol`` (``fn-2016`` or ``fn-1.2``), falling back to the other."""
        primary, other = (
            (self.text_2016, self.text_12) if protocol == "fn-2016" else (self.text_12, self.text_2016)
        )
        return primary or other

    OK = 0x00, "Успешное выполнение", "Успешное выполнение"
    UNKNOWN_COMMAND = (
        0x01,
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
    )
    WRONG_STATE = 0x02, "Неверное состояние ФН", "Другое состояние ФН"
    FN_FAILURE = 0x03, "Ошибка ФН", "Отказ ФН"
    CRYPTO_FAILURE = 0x04, "Ошибка КС", "Отказ КС"
    LIFETIME = (
        0x05,
        "Закончен срок эксплуатации ФН",
        "Параметры команды не соответствуют сроку жизни ФН",
    )
    ARCHIVE_FULL = 0x06, "Архив ФН переполнен", ""
    BAD_DATETIME = 0x07, "Неверные дата и/или время", "Некорректная дата и/или время"
    NO_DATA = 0x08, "Нет запрошенных данных", "Нет запрошенных данных"
    BAD_PARAMETERS = (
        0x09,
        "Некорректное значение параметров команды",
        "Некорректное значение параметров команды",
    )
    BAD_COMMAND = 0x0A, "", "Некорректная команда"
    FORBIDDEN_TAG = 0x0B, "", "Неразрешенные реквизиты"
    DUPLICATE_DATA = 0x0C, "", "Дублирование данных"
    MISSING_ACCOUNTING_DATA = (
        0x0D,
        "",
        "Отсутствуют данные, необходимые для корректного учета в ФН",
    )
    TOO_MANY_ITEMS = 0x0E, "", "Количество позиций в документе превысило допустимый предел"
    TLV_TOO_LARGE = 0x10, "Превышение размеров TLV данных", "Превышение размеров TLV данных"
    NO_TRANSPORT = 0x11, "Нет транспортного соединения", "Нет транспортного соединения"
    RESOURCE_EXHAUSTED = (
        0x12,
        "Исчерпан ресурс КС (криптографического сопроцессора)",
        "Исчерпан ресурс ФН",
    )
    STORAGE_EXHAUSTED = 0x14, "Исчерпан ресурс хранения", "Ограничение ресурса ФН"
    OFD_WAIT_EXHAUSTED = 0x15, "Исчерпан ресурс ожидания передачи сообщения", ""
    SHIFT_TOO_LONG = (
        0x16,
        "Продолжительность смены более 24 часов",
        "Продолжительность смены превышена",
    )
    BAD_TIME_DIFFERENCE = (
        0x17,
        "Неверная разница во времени между 2 операциями",
        "Некорректные данные о промежутке времени между ФД",
    )
    BAD_TAG = 0x18, "", "Некорректный реквизит, переданный ККТ в ФН"
    TAG_NOT_REGISTERED = 0x19, "", "Реквизит не соответствует установкам при регистрации"
    OFD_MESSAGE_REJECTED = (
        0x20,
        "Сообщение от ОФД не может быть принято",
        "Код обработки ответа в ФН: некорректный ответ",
    )
    MISSING_TAGS = 0x3C, "", "В блоке TLV отсутствуют необходимые реквизиты"


class Phase(IntEnum):
    """Drive life phase, the first byte of the 30h answer (FN spec §4.1)."""

    SETUP = 0x00
    READY = 0x01
    FISCAL = 0x03
    POST_FISCAL = 0x07
    ARCHIVE = 0x0F


class CurrentDocument(IntEnum):
    """The open-document status code of the 30h answer (byte 1), not an FFD code (FN spec §5)."""

    NONE = 0x00
    REGISTRATION = 0x01
    OPEN_SHIFT = 0x02
    RECEIPT = 0x04
    CLOSE_SHIFT = 0x08
    CLOSE_FN = 0x10
    BSO = 0x11
    REREGISTRATION_FN_CHANGE = 0x12
    REREGISTRATION = 0x13
    CORRECTION = 0x14
    CORRECTION_BSO = 0x15
    SETTLEMENT_REPORT = 0x17


class DocCode(IntEnum):
    """FFD document codes: the root STLV tag and the 40h type byte (FN spec §10.3)."""

    REGISTRATION = 1
    REREGISTRATION = 11
    OPEN_SHIFT = 2
    SETTLEMENT_REPORT = 21
    RECEIPT = 3
    CORRECTION = 31
    BSO = 4
    CORRECTION_BSO = 41
    CLOSE_SHIFT = 5
    CLOSE_FN = 6
    OPERATOR_ACK = 7


class Warning(IntFlag):  # noqa: A001 - the protocol's own name for byte 4 of 30h
    """Warning flags, byte 4 of the 30h answer (FN spec §5)."""

    URGENT_REPLACEMENT = 0x01
    RESOURCE_EXHAUSTION = 0x02
    MEMORY_OVERFLOW = 0x04
    OFD_TIMEOUT = 0x08
    FLC_REJECTED = 0x10
    SETUP_REQUIRED = 0x20
    OFD_CANCELLED = 0x40
    CRITICAL = 0x80


class OfdRejectReason(IntEnum):
    """Reject reasons of 26h, the data byte after answer 20h (FN spec §6.6)."""

    BAD_FISCAL_SIGN = 1
    BAD_FORMAT = 2
    BAD_FD_NUMBER = 3
    BAD_FN_NUMBER = 4
    BAD_CRC = 5
    BAD_OFD_INN = 6
