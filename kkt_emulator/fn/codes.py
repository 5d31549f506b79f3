"""Wire codes of the drive protocol: commands, result codes, phases, document codes, warning flags.

Official Russian texts are kept byte-for-byte: ``ResultCode.text_2016`` (ФН-2016) and
``ResultCode.text_12`` (ФН-1.2.06) where the two spec versions differ (fn-protocol.md §7).
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
    "WarningFlag",
]


class Command(IntEnum):
    """Drive command codes (fn-protocol.md §6.1); ``title`` gives the official name."""

    START_REGISTRATION = 0x02
    FINISH_REGISTRATION = 0x03
    START_CLOSE_FN = 0x04
    CLOSE_FN = 0x05
    CANCEL_DOCUMENT = 0x06
    SEND_DOCUMENT_DATA = 0x07
    SHIFT_PARAMS = 0x10
    START_OPEN_SHIFT = 0x11
    OPEN_SHIFT = 0x12
    START_CLOSE_SHIFT = 0x13
    CLOSE_SHIFT = 0x14
    START_RECEIPT = 0x15
    FINISH_RECEIPT = 0x16
    START_CORRECTION = 0x17
    START_SETTLEMENT_REPORT = 0x18
    FINISH_SETTLEMENT_REPORT = 0x19
    OFD_STATUS = 0x20
    OFD_TRANSPORT = 0x21
    OFD_START_READ = 0x22
    OFD_READ_BLOCK = 0x23
    OFD_CANCEL_READ = 0x24
    OFD_FINISH_READ = 0x25
    OFD_RECEIPT = 0x26
    STATUS = 0x30
    SERIAL = 0x31
    EXPIRY = 0x32
    VERSION = 0x33
    LAST_ERRORS = 0x35
    FORMAT = 0x3A
    DAYS_LEFT = 0x3B
    FREE_RESOURCES = 0x3D
    FIND_DOCUMENT = 0x40
    OFD_ACK_BY_NUMBER = 0x41
    UNCONFIRMED_COUNT = 0x42
    REGISTRATION_RESULTS = 0x43
    REGISTRATION_PARAMETER = 0x44
    READ_DOCUMENT_TLV = 0x45
    READ_DOCUMENT_TLV_NEXT = 0x46
    READ_REGISTRATION_TLV_NEXT = 0x47
    RESET = 0x60
    START_REGISTRATION_12 = 0xA2
    FINISH_REGISTRATION_12 = 0xA3

    @property
    def title(self) -> str:
        """The official Russian name of the command."""
        return _COMMAND_TITLES[self.value]


_COMMAND_TITLES: dict[int, str] = {
    0x02: "Начать отчет о регистрации/перерегистрации",
    0x03: "Сформировать отчет о регистрации/перерегистрации",
    0x04: "Начать закрытие ФН",
    0x05: "Закрыть ФН",
    0x06: "Отменить документ",
    0x07: "Передать данные документа",
    0x10: "Запрос параметров текущей смены",
    0x11: "Начать открытие смены",
    0x12: "Открыть смену",
    0x13: "Начать закрытие смены",
    0x14: "Закрыть смену",
    0x15: "Начать формирование чека (БСО)",
    0x16: "Сформировать чек",
    0x17: "Начать формирование чека коррекции (БСО)",
    0x18: "Начать формирование отчета о состоянии расчетов",
    0x19: "Сформировать отчет о состоянии расчетов",
    0x20: "Получить статус информационного обмена",
    0x21: "Передать статус транспортного соединения с Сервером ОФД",
    0x22: "Начать чтение Сообщения для Сервера ОФД",
    0x23: "Прочитать блок сообщения для Сервера ОФД",
    0x24: "Отменить чтение Сообщения для Сервера ОФД",
    0x25: "Завершить чтение Сообщения для Сервера ОФД",
    0x26: "Передать Квитанцию от Сервера ОФД",
    0x30: "Запрос статуса ФН",
    0x31: "Запрос номера ФН",
    0x32: "Запрос срока действия ФН",
    0x33: "Запрос версии ФН",
    0x35: "Запрос последних ошибок ФН",
    0x3A: "Запрос формата ФН",
    0x3B: "Запрос оставшегося срока действия ФН",
    0x3D: "Запрос ресурса свободной памяти в ФН",
    0x40: "Найти фискальный документ по номеру",
    0x41: "Запрос квитанции о получении ФД в ОФД по номеру документа",
    0x42: "Запрос количества ФД, на которые нет квитанции",
    0x43: "Запрос итогов фискализации ФН",
    0x44: "Запрос параметра фискализации ФН",
    0x45: "Запрос фискального документа в TLV формате",
    0x46: "Чтение TLV фискального документа",
    0x47: "Чтение TLV параметров фискализации",
    0x60: "Сброс состояния ФН",
    0xA2: "Начать отчет о регистрации/перерегистрации (ФФД 1.1/1.2)",
    0xA3: "Сформировать отчет о регистрации/перерегистрации (ФФД 1.1/1.2)",
}


class ResultCode(IntEnum):
    """Drive answer codes (fn-protocol.md §7); ``text()`` gives the official text of either spec version."""

    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    WRONG_STATE = 0x02
    FN_FAILURE = 0x03
    CRYPTO_FAILURE = 0x04
    LIFETIME = 0x05
    ARCHIVE_FULL = 0x06
    BAD_DATETIME = 0x07
    NO_DATA = 0x08
    BAD_PARAMETERS = 0x09
    BAD_COMMAND = 0x0A
    FORBIDDEN_TAG = 0x0B
    DUPLICATE_DATA = 0x0C
    MISSING_ACCOUNTING_DATA = 0x0D
    TOO_MANY_ITEMS = 0x0E
    TLV_TOO_LARGE = 0x10
    NO_TRANSPORT = 0x11
    RESOURCE_EXHAUSTED = 0x12
    STORAGE_EXHAUSTED = 0x14
    OFD_WAIT_EXHAUSTED = 0x15
    SHIFT_TOO_LONG = 0x16
    BAD_TIME_DIFFERENCE = 0x17
    BAD_TAG = 0x18
    TAG_NOT_REGISTERED = 0x19
    OFD_MESSAGE_REJECTED = 0x20
    KEY_UPDATE_NEGATIVE = 0x23
    KEY_UPDATE_UNKNOWN = 0x24
    KEY_UPDATE_REPEAT = 0x30
    MARKING_FORBIDDEN = 0x32
    MARKING_SEQUENCE = 0x33
    MARKING_BLOCKED = 0x34
    MARKING_TABLE_FULL = 0x35
    KEY_UPDATE_OVERDUE = 0x36
    MISSING_TAGS = 0x3C
    UNCHECKED_MARKING_CODE = 0x3E

    @property
    def text_2016(self) -> str:
        """The ФН-2016 text ("" where that version has no such code)."""
        return _RESULT_TEXTS[self.value][0]

    @property
    def text_12(self) -> str:
        """The ФН-1.2.06 text ("" where that version has no such code)."""
        return _RESULT_TEXTS[self.value][1]

    def text(self, protocol: str = "fn-1.2") -> str:
        """The official text for ``protocol`` (``fn-2016`` or ``fn-1.2``), falling back to the other."""
        first, second = _RESULT_TEXTS[self.value]
        if protocol != "fn-2016":
            first, second = second, first
        return first or second


# Official texts: (ФН-2016, ФН-1.2.06), byte for byte (fn-protocol.md §7).
_RESULT_TEXTS: dict[int, tuple[str, str]] = {
    0x00: (
        "Успешное выполнение",
        "Успешное выполнение",
    ),
    0x01: (
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
        "Неизвестная команда, неверный формат посылки или неизвестные параметры",
    ),
    0x02: (
        "Неверное состояние ФН",
        "Другое состояние ФН",
    ),
    0x03: (
        "Ошибка ФН",
        "Отказ ФН",
    ),
    0x04: (
        "Ошибка КС",
        "Отказ КС",
    ),
    0x05: (
        "Закончен срок эксплуатации ФН",
        "Параметры команды не соответствуют сроку жизни ФН",
    ),
    0x06: (
        "Архив ФН переполнен",
        "",
    ),
    0x07: (
        "Неверные дата и/или время",
        "Некорректная дата и/или время",
    ),
    0x08: (
        "Нет запрошенных данных",
        "Нет запрошенных данных",
    ),
    0x09: (
        "Некорректное значение параметров команды",
        "Некорректное значение параметров команды",
    ),
    0x0A: (
        "",
        "Некорректная команда",
    ),
    0x0B: (
        "",
        "Неразрешенные реквизиты",
    ),
    0x0C: (
        "",
        "Дублирование данных",
    ),
    0x0D: (
        "",
        "Отсутствуют данные, необходимые для корректного учета в ФН",
    ),
    0x0E: (
        "",
        "Количество позиций в документе превысило допустимый предел",
    ),
    0x10: (
        "Превышение размеров TLV данных",
        "Превышение размеров TLV данных",
    ),
    0x11: (
        "Нет транспортного соединения",
        "Нет транспортного соединения",
    ),
    0x12: (
        "Исчерпан ресурс КС (криптографического сопроцессора)",
        "Исчерпан ресурс ФН",
    ),
    0x14: (
        "Исчерпан ресурс хранения",
        "Ограничение ресурса ФН",
    ),
    0x15: (
        "Исчерпан ресурс ожидания передачи сообщения",
        "",
    ),
    0x16: (
        "Продолжительность смены более 24 часов",
        "Продолжительность смены превышена",
    ),
    0x17: (
        "Неверная разница во времени между 2 операциями",
        "Некорректные данные о промежутке времени между ФД",
    ),
    0x18: (
        "",
        "Некорректный реквизит, переданный ККТ в ФН",
    ),
    0x19: (
        "",
        "Реквизит не соответствует установкам при регистрации",
    ),
    0x20: (
        "Сообщение от ОФД не может быть принято",
        "Код обработки ответа в ФН: некорректный ответ",
    ),
    0x23: (
        "",
        "Отрицательный ответ сервиса обновления ключей проверки КМ",
    ),
    0x24: (
        "",
        "Неизвестный ответ сервиса обновления ключей",
    ),
    0x30: (
        "",
        "Требуется повтор процедуры обновления ключей проверки КМ",
    ),
    0x32: (
        "",
        "Запрещена работа с маркированными товарами",
    ),
    0x33: (
        "",
        "Неверная последовательность команд группы Bxh",
    ),
    0x34: (
        "",
        "Работа с маркированными товарами временно заблокирована",
    ),
    0x35: (
        "",
        "Переполнена таблица проверки КМ",
    ),
    0x36: (
        "",
        "Превышен период 90 дней со времени последнего обновления ключей проверки",
    ),
    0x3C: (
        "",
        "В блоке TLV отсутствуют необходимые реквизиты",
    ),
    0x3E: (
        "",
        "В реквизите 2007 содержится КМ, который ранее не проверялся в ФН",
    ),
}


class Phase(IntEnum):
    """Drive life phase, the first byte of the 30h answer (fn-protocol.md §4.1)."""

    SETUP = 0x00
    READY = 0x01
    FISCAL = 0x03
    POST_FISCAL = 0x07
    ARCHIVE = 0x0F


class CurrentDocument(IntEnum):
    """The open-document status code of the 30h answer (byte 1), not an FFD code (fn-protocol.md §5)."""

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
    """FFD document codes: the root STLV tag and the 40h type byte (fn-protocol.md §10.3)."""

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


class WarningFlag(IntFlag):
    """Warning flags, byte 4 of the 30h answer (fn-protocol.md §5)."""

    URGENT_REPLACEMENT = 0x01
    RESOURCE_EXHAUSTION = 0x02
    MEMORY_OVERFLOW = 0x04
    OFD_TIMEOUT = 0x08
    FLC_REJECTED = 0x10
    SETUP_REQUIRED = 0x20
    OFD_CANCELLED = 0x40
    CRITICAL = 0x80


class OfdRejectReason(IntEnum):
    """Reject reasons of 26h, the data byte after answer 20h (fn-protocol.md §6.6)."""

    BAD_FISCAL_SIGN = 1
    BAD_FORMAT = 2
    BAD_FD_NUMBER = 3
    BAD_FN_NUMBER = 4
    BAD_CRC = 5
    BAD_OFD_INN = 6
