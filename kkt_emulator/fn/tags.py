"""The FFD tag catalogue («реквизиты» of ФФД 1.05/1.1/1.2): number, official name, type, lengths.

Tag numbers, types and lengths follow fn-protocol.md §10.5 (itself from ФФД table 4). Where the spec
gives no name or type, the value comes from the ФФД tag tables and is marked ``# ФФД, not in the
spec`` in a comment beside the entry. Lengths are value lengths in bytes: for strings that is the
CP866 length.

The drive-formed sets (fn-protocol.md §10.7) say which tags the fiscal drive (ФН) writes itself in each FFD
version; a till that sends one of them gets answer 0Bh.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from kkt_emulator.errors import ValidationError

__all__ = [
    "DOCUMENT_TAGS",
    "DRIVE_FORMED",
    "DRIVE_FORMED_FFD_11",
    "DRIVE_FORMED_FFD_12",
    "DRIVE_FORMED_FFD_105",
    "FFD_VERSIONS",
    "TAGS",
    "Tag",
    "TagInfo",
    "TagType",
    "is_drive_formed",
    "tag_info",
    "tag_name",
]

FFD_VERSIONS: tuple[str, ...] = ("1.05", "1.1", "1.2")
"""The FFD versions the emulator knows, in the spelling used by firmware profiles."""

_ALL = frozenset(FFD_VERSIONS)
_UP_TO_11 = frozenset({"1.05", "1.1"})
_FROM_11 = frozenset({"1.1", "1.2"})
_ONLY_12 = frozenset({"1.2"})
_ONLY_105 = frozenset({"1.05"})
# FFD 1.0 tags that still turn up in old captures (fn-protocol.md §15.10); none of our versions has them.
_ONLY_10 = frozenset({"1.0"})


class TagType(StrEnum):
    """The value type of a tag (fn-protocol.md §10.2, ФФД table 1)."""

    BYTE = "byte"
    UINT16 = "uint16"
    UINT32 = "uint32"
    VLN = "vln"
    FVLN = "fvln"
    UNIXTIME = "unixtime"
    STRING = "string"
    FIXED_STRING = "fixed_string"
    STLV = "stlv"
    BYTES = "bytes"
    FLAGS = "flags"


class Tag(IntEnum):
    """The tags the drive reads or writes by number (fn-protocol.md §10.5), by what they mean."""

    AUTOMATIC = 1001
    AUTONOMOUS = 1002
    BUYER_CONTACT = 1008
    DATETIME = 1012
    OFD_INN = 1017
    USER_INN = 1018
    TOTAL = 1020
    OFD_CODE = 1022
    CASH = 1031
    RNM = 1037
    SHIFT = 1038
    FD = 1040
    FN = 1041
    RECEIPT_NO = 1042
    RESOURCE = 1050
    URGENT = 1051
    MEMORY = 1052
    OFD_TIMEOUT = 1053
    OPERATION = 1054
    TAX_SYSTEM = 1055
    ENCRYPTION = 1056
    AGENT = 1057
    ITEM = 1059
    TAX_SYSTEMS = 1062
    OFD_MESSAGE = 1068
    FPD = 1077
    OPERATOR_SIGN = 1078
    CARD = 1081
    UNSENT_COUNT = 1097
    UNSENT_DATE = 1098
    REREG_REASON = 1101
    INTERNET = 1108
    SERVICES = 1109
    BSO = 1110
    FDS_IN_SHIFT = 1111
    FIRST_UNSENT = 1116
    RECEIPTS_IN_SHIFT = 1118
    FFD_FN = 1190
    REASON_CODES = 1205
    OPERATOR_FLAGS = 1206
    EXCISE_FLAG = 1207
    FFD = 1209
    SUBJECT = 1212
    KEY_RESOURCE = 1213
    PREPAID = 1215
    POSTPAID = 1216
    COUNTER = 1217
    ITEM_AGENT = 1222
    AGENT_DATA = 1223
    SUPPLIER_DATA = 1224
    SUPPLIER_INN = 1226
    CONDITIONS = 1290


@dataclass(frozen=True, slots=True)
class TagInfo:
    """One catalogue entry: a tag («реквизит») of the FFD.

    Attributes:
        number: the tag number (decimal; on the wire Uint16 LE).
        name: the official Russian name from ФФД.
        type: the value type.
        max_len: the largest value length in bytes.
        fixed_len: the exact length of fixed-length values (space-padded strings, byte arrays).
        drive_formed: the FFD versions in which the drive writes this tag itself, so that a till
            must not send it (fn-protocol.md §10.7).
        ffd: the FFD versions in which the tag exists.
    """

    number: int
    name: str
    type: TagType
    max_len: int
    fixed_len: int | None
    drive_formed: frozenset[str]
    ffd: frozenset[str]


def _span(first: int, last: int) -> set[int]:
    return set(range(first, last + 1))


# fn-protocol.md §10.7, FFD 1.1 list [ФН-1.2.06 §5.3], copied as written.
DRIVE_FORMED_FFD_11: frozenset[int] = frozenset(
    {1001, 1002, 1012, 1017, 1018, 1020, 1037, 1038, 1040, 1041, 1042}
    | _span(1050, 1054)
    | {1056, 1062, 1077, 1097, 1098, 1109, 1110, 1111, 1116, 1118, 1126}
    | _span(1129, 1136)
    | _span(1138, 1146)
    | {1157, 1158, 1183, 1190, 1193, 1194, 1201, 1205, 1206, 1207, 1209, 1213}
    | _span(1218, 1221)
    | {1232, 1233}
)
"""Tags the drive forms itself in FFD 1.1 mode (fn-protocol.md §10.7)."""

# fn-protocol.md §10.7, FFD 1.2 [ФН-1.2.06 §5.4]: the 1.1 list minus the flags that moved into 1290,
# plus the marking counters and 1290 itself.
DRIVE_FORMED_FFD_12: frozenset[int] = (
    DRIVE_FORMED_FFD_11 - {1109, 1110, 1126, 1193, 1207, 1221}
) | {2106, 1290, 2116, 2104}
"""Tags the drive forms itself in FFD 1.2 mode (fn-protocol.md §10.7)."""

# FFD 1.05 (ФН-1 protocol): ФН-1.2.06 gives no list. The capture of fn-protocol.md §11.3 shows the block
# the drive writes before the till's TLVs: 1041, 1037, 1018, 1040, 1012, 1077, 1056, 1002, 1001,
# 1109, 1110, 1108, 1062, 1101. All of them are drive-formed: 1041/1040/1012/1077 are the
# drive's own data; 1018, 1037 and 1062 come from the ИНН, РНМ and tax-system fields of 03h;
# 1056, 1002, 1001, 1109, 1110 and 1108 from its mode byte (fn-protocol.md §6.3 table); and 1101 from
# its «код причины перерегистрации» byte, so the till cannot send 1101 either. 1017, 1209 and
# 1189 come from the till in that capture and stay out. Added: the tags the drive derives from
# other command parameters or its own counters (16h total and type, shift and receipt numbers,
# warnings, unsent-document data).
DRIVE_FORMED_FFD_105: frozenset[int] = frozenset(
    {1041, 1037, 1018, 1040, 1012, 1077, 1056, 1002, 1001, 1109, 1110, 1108, 1062, 1101}
    | {1020, 1054, 1038, 1042}
    | _span(1050, 1053)
    | {1097, 1098, 1111, 1116, 1118}
)
"""Tags the drive forms itself in FFD 1.05 mode (decision explained in the module source)."""

DRIVE_FORMED: dict[str, frozenset[int]] = {
    "1.05": DRIVE_FORMED_FFD_105,
    "1.1": DRIVE_FORMED_FFD_11,
    "1.2": DRIVE_FORMED_FFD_12,
}
"""Drive-formed tag sets by FFD version."""

_B = TagType.BYTE
_U16 = TagType.UINT16
_U32 = TagType.UINT32
_VLN = TagType.VLN
_FVLN = TagType.FVLN
_TIME = TagType.UNIXTIME
_STR = TagType.STRING
_FIX = TagType.FIXED_STRING
_STLV = TagType.STLV
_BYTES = TagType.BYTES
_FLAGS = TagType.FLAGS


# (number, name, type, max_len, fixed_len, ffd). Money tags are VLN ≤ 6 bytes in kopecks.
_ENTRIES: list[tuple[int, str, TagType, int, int | None, frozenset[str]]] = [
    # Document codes: the root STLV of every fiscal document (fn-protocol.md §10.3). The size limits are
    # the ФФД table 11 maxima (ФФД, not in the spec).
    (1, "Отчет о регистрации", _STLV, 6144, None, _ALL),
    (2, "Отчет об открытии смены", _STLV, 4096, None, _ALL),
    (3, "Кассовый чек", _STLV, 32768, None, _ALL),
    (4, "Бланк строгой отчетности", _STLV, 32768, None, _ALL),
    (5, "Отчет о закрытии смены", _STLV, 4096, None, _ALL),
    (6, "Отчет о закрытии фискального накопителя", _STLV, 4096, None, _ALL),
    (7, "Подтверждение оператора", _STLV, 512, None, _ALL),
    (11, "Отчет об изменении параметров регистрации", _STLV, 6144, None, _ALL),
    (21, "Отчет о текущем состоянии расчетов", _STLV, 32768, None, _ALL),
    (31, "Кассовый чек коррекции", _STLV, 32768, None, _ALL),
    (41, "Бланк строгой отчетности коррекции", _STLV, 32768, None, _ALL),
    (81, "Запрос о коде маркировки", _STLV, 4096, None, _ONLY_12),
    (82, "Уведомление о реализации маркированного товара", _STLV, 32768, None, _ONLY_12),
    (83, "Ответ на запрос", _STLV, 512, None, _ONLY_12),
    (84, "Квитанция на уведомление", _STLV, 512, None, _ONLY_12),
    # Tags.
    (1000, "наименование документа", _STR, 256, None, _ALL),  # max_len: ФФД, not in the spec
    (1001, "автоматический режим", _B, 1, None, _ALL),
    (1002, "автономный режим", _B, 1, None, _ALL),
    (1008, "телефон или электронный адрес покупателя", _STR, 64, None, _ALL),
    (1009, "адрес расчетов", _STR, 256, None, _ALL),
    (1012, "дата, время", _TIME, 4, None, _ALL),
    (1013, "заводской номер ККТ", _STR, 20, None, _ALL),
    (1017, "ИНН ОФД", _FIX, 12, 12, _ALL),
    (1018, "ИНН пользователя", _FIX, 12, 12, _ALL),
    (1020, "сумма расчета, указанного в чеке (БСО)", _VLN, 6, None, _ALL),
    (1021, "кассир", _STR, 64, None, _ALL),
    (1022, "код ответа ОФД", _B, 1, None, _ALL),
    (1023, "количество предмета расчета", _FVLN, 8, None, _ALL),
    (1030, "наименование предмета расчета", _STR, 128, None, _ALL),
    (1031, "сумма по чеку (БСО) наличными", _VLN, 6, None, _ALL),
    (1036, "номер автомата", _STR, 20, None, _ALL),
    (1037, "регистрационный номер ККТ", _FIX, 20, 20, _ALL),
    (1038, "номер смены", _U32, 4, None, _ALL),
    (1040, "номер ФД", _U32, 4, None, _ALL),
    (1041, "номер ФН", _FIX, 16, 16, _ALL),
    (1042, "номер чека за смену", _U32, 4, None, _ALL),
    (1043, "стоимость предмета расчета с учетом скидок и наценок", _VLN, 6, None, _ALL),
    (1046, "наименование ОФД", _STR, 256, None, _ALL),
    (1048, "наименование пользователя", _STR, 256, None, _ALL),
    (1049, "почтовый индекс", _STR, 6, None, _ONLY_10),  # ФФД 1.0, not in the spec
    (1050, "признак исчерпания ресурса ФН", _B, 1, None, _ALL),
    (1051, "признак необходимости срочной замены ФН", _B, 1, None, _ALL),
    (1052, "признак переполнения памяти ФН", _B, 1, None, _ALL),
    (1053, "признак превышения времени ожидания ответа ОФД", _B, 1, None, _ALL),
    (1054, "признак расчета", _B, 1, None, _ALL),
    (1055, "применяемая система налогообложения", _FLAGS, 1, None, _ALL),
    (1056, "признак шифрования", _B, 1, None, _ALL),
    (1057, "признак агента", _FLAGS, 1, None, _ALL),
    (1058, "признак банковского агента", _B, 1, None, _ONLY_10),  # ФФД 1.0, not in the spec
    (1059, "предмет расчета", _STLV, 1024, None, _ALL),
    (1060, "адрес сайта ФНС", _STR, 256, None, _ALL),
    (1061, "адрес сайта ОФД", _STR, 64, None, _ONLY_10),  # ФФД 1.0, not in the spec
    (1062, "системы налогообложения", _FLAGS, 1, None, _ALL),
    (1068, "сообщение оператора для ФН", _STLV, 9, None, _ALL),
    (1077, "ФПД", _BYTES, 6, 6, _ALL),
    # ФФД says ≤ 16, the drive archives of ФН-2016/ФН-1.2.06 keep 18 (fn-protocol.md §10.5): accept 18.
    (1078, "ФПО", _BYTES, 18, None, _ALL),
    (1079, "цена за единицу предмета расчета с учетом скидок и наценок", _VLN, 6, None, _ALL),
    (1081, "сумма по чеку (БСО) безналичными", _VLN, 6, None, _ALL),
    # 1084–1086: type and lengths from ФФД, not in the spec.
    (1084, "дополнительный реквизит пользователя", _STLV, 320, None, _ALL),
    (1085, "наименование дополнительного реквизита пользователя", _STR, 64, None, _ALL),
    (1086, "значение дополнительного реквизита пользователя", _STR, 256, None, _ALL),
    (1097, "количество непереданных ФД", _U32, 4, None, _ALL),
    (1098, "дата первого из непереданных ФД", _TIME, 4, None, _ALL),
    (1101, "код причины перерегистрации", _B, 1, None, _ONLY_105),
    # 1102–1107: max length 6 from ФФД (money), not in the spec.
    (1102, "сумма НДС чека по ставке 20%", _VLN, 6, None, _ALL),
    (1103, "сумма НДС чека по ставке 10%", _VLN, 6, None, _ALL),
    (1104, "сумма расчета по чеку с НДС по ставке 0%", _VLN, 6, None, _ALL),
    (1105, "сумма расчета по чеку без НДС", _VLN, 6, None, _ALL),
    (1106, "сумма НДС чека по расч. ставке 20/120", _VLN, 6, None, _ALL),
    (1107, "сумма НДС чека по расч. ставке 10/110", _VLN, 6, None, _ALL),
    (1108, "признак ККТ для расчетов только в Интернет", _B, 1, None, _ALL),
    (1109, "признак расчетов за услуги", _B, 1, None, _ALL),
    (1110, "признак АС БСО", _B, 1, None, _ALL),
    (1111, "общее количество ФД за смену", _U32, 4, None, _ALL),
    (1116, "номер первого непереданного документа", _U32, 4, None, _ALL),
    (1117, "адрес электронной почты отправителя чека", _STR, 64, None, _ALL),
    (1118, "количество кассовых чеков (БСО) за смену", _U32, 4, None, _ALL),
    (1126, "признак проведения лотереи", _B, 1, None, _ALL),  # type: ФФД, not in the spec
    # 1129–1146 and 1157/1158/1194/1232/1233: the counters of 21 and 5 (ФФД, not in the spec).
    # There is no tag 1137 in ФФД: the spec's list skips it too.
    (1129, "счетчики операций «приход»", _STLV, 116, None, _ALL),
    (1130, "счетчики операций «возврат прихода»", _STLV, 116, None, _ALL),
    (1131, "счетчики операций «расход»", _STLV, 116, None, _ALL),
    (1132, "счетчики операций «возврат расхода»", _STLV, 116, None, _ALL),
    (1133, "счетчики операций по чекам коррекции (БСО коррекции)", _STLV, 216, None, _ALL),
    (
        1134,
        "количество чеков (БСО) и чеков коррекции (БСО коррекции) со всеми признаками расчетов",
        _U32,
        4,
        None,
        _ALL,
    ),
    (1135, "количество чеков (БСО) по признаку расчетов", _U32, 4, None, _ALL),
    (1136, "итоговая сумма в чеках (БСО) наличными денежными средствами", _VLN, 6, None, _ALL),
    (1138, "итоговая сумма в чеках (БСО) безналичными", _VLN, 6, None, _ALL),
    (1139, "сумма НДС по ставке 20%", _VLN, 6, None, _ALL),
    (1140, "сумма НДС по ставке 10%", _VLN, 6, None, _ALL),
    (1141, "сумма НДС по расч. ставке 20/120", _VLN, 6, None, _ALL),
    (1142, "сумма НДС по расч. ставке 10/110", _VLN, 6, None, _ALL),
    (1143, "сумма расчетов с НДС по ставке 0%", _VLN, 6, None, _ALL),
    (
        1144,
        (
            "количество чеков коррекции (БСО коррекции) или непереданных чеков (БСО) "
            "и чеков коррекции (БСО коррекции)"
        ),
        _U32,
        4,
        None,
        _ALL,
    ),
    (1145, "счетчики по признаку «приход»", _STLV, 32, None, _ALL),
    (1146, "счетчики по признаку «расход»", _STLV, 32, None, _ALL),
    (1157, "счетчики итогов ФН", _STLV, 708, None, _ALL),
    (1158, "счетчики итогов непереданных ФД", _STLV, 708, None, _ALL),
    (1162, "код товара", _BYTES, 32, None, _UP_TO_11),
    (1163, "код товара", _STLV, 256, None, _ONLY_12),  # max_len: ФФД, not in the spec
    (1173, "тип коррекции", _B, 1, None, _ALL),
    (1174, "основание для коррекции", _STLV, 292, None, _ALL),
    # 1177–1179: names, types and lengths from ФФД, not in the spec. 1177 left the FFD in 1.2.
    (1177, "описание коррекции", _STR, 256, None, _UP_TO_11),
    (1178, "дата совершения корректируемого расчета", _TIME, 4, None, _ALL),
    (1179, "номер предписания налогового органа", _STR, 32, None, _ALL),
    (1183, "сумма расчетов без НДС", _VLN, 6, None, _ALL),  # ФФД, not in the spec
    (1187, "место расчетов", _STR, 256, None, _ALL),
    (1188, "версия ККТ", _STR, 8, None, _ALL),
    (1189, "версия ФФД ККТ", _B, 1, None, _ALL),
    (1190, "версия ФФД ФН", _B, 1, None, _ALL),
    (1192, "дополнительный реквизит чека (БСО)", _STR, 16, None, _ALL),
    (1193, "признак проведения азартных игр", _B, 1, None, _ALL),  # ФФД, not in the spec
    (1194, "счетчики итогов смены", _STLV, 708, None, _ALL),
    (1197, "единица измерения предмета расчета", _STR, 16, None, _UP_TO_11),
    (1199, "ставка НДС", _B, 1, None, _ALL),
    (1200, "сумма НДС за предмет расчета", _VLN, 6, None, _ALL),
    (1201, "общая итоговая сумма в чеках (БСО)", _VLN, 6, None, _ALL),  # ФФД, not in the spec
    (1203, "ИНН кассира", _FIX, 12, 12, _ALL),
    (1205, "коды причин изменения сведений о ККТ", _FLAGS, 4, None, _FROM_11),
    (1206, "сообщение оператора", _FLAGS, 1, None, _ALL),
    (1207, "признак торговли подакцизными товарами", _B, 1, None, _ALL),
    (1209, "номер версии ФФД", _B, 1, None, _ALL),
    (1212, "признак предмета расчета", _B, 1, None, _ALL),
    # The spec's table says UInt32 (days), which the drive writes; ФФД table 4 gives UInt16 of
    # length 2. Kept as the spec says until the spec settles it.
    (1213, "ресурс ключей ФП", _U32, 4, None, _ALL),
    (1214, "признак способа расчета", _B, 1, None, _ALL),
    (
        1215,
        "сумма по чеку (БСО) предоплатой (зачетом аванса и (или) предыдущих платежей)",
        _VLN,
        6,
        None,
        _ALL,
    ),
    (1216, "сумма по чеку (БСО) постоплатой (в кредит)", _VLN, 6, None, _ALL),
    (1217, "сумма по чеку (БСО) встречным предоставлением", _VLN, 6, None, _ALL),
    # 1218–1221, 1225: ФФД, not in the spec.
    (1218, "итоговая сумма в чеках (БСО) предоплатами (авансами)", _VLN, 6, None, _ALL),
    (1219, "итоговая сумма в чеках (БСО) постоплатами (кредитами)", _VLN, 6, None, _ALL),
    (1220, "итоговая сумма в чеках (БСО) встречными предоставлениями", _VLN, 6, None, _ALL),
    (1221, "признак установки принтера в автомате", _B, 1, None, _ALL),
    (1222, "признак агента по предмету расчета", _FLAGS, 1, None, _ALL),
    (1223, "данные агента", _STLV, 512, None, _ALL),
    (1224, "данные поставщика", _STLV, 512, None, _ALL),
    (1225, "наименование поставщика", _STR, 256, None, _ALL),
    (1226, "ИНН поставщика", _FIX, 12, 12, _ALL),
    (1232, "счетчики по признаку «возврат прихода»", _STLV, 32, None, _ALL),
    (1233, "счетчики по признаку «возврат расхода»", _STLV, 32, None, _ALL),
    (1290, "признаки условий применения ККТ", _FLAGS, 4, None, _ONLY_12),
    # 2102, 2104, 2106, 2115, 2116: marking (FFD 1.2); ФФД, not in the spec.
    (2102, "режим обработки кода маркировки", _B, 1, None, _ONLY_12),
    (2104, "количество непереданных уведомлений", _U32, 4, None, _ONLY_12),
    (2106, "результат проверки сведений о товаре", _FLAGS, 1, None, _ONLY_12),
    (2108, "мера количества предмета расчета", _B, 1, None, _ONLY_12),
    (2115, "контрольный код КМ", _FIX, 4, 4, _ONLY_12),
    (2116, "вид операции", _B, 1, None, _ONLY_12),
]


def _build() -> dict[int, TagInfo]:
    catalogue: dict[int, TagInfo] = {}
    for number, name, kind, max_len, fixed_len, ffd in _ENTRIES:
        if number in catalogue:  # pragma: no cover - guards the table above
            msg = f"tag {number} is listed twice"
            raise AssertionError(msg)
        formed = frozenset(v for v, tags in DRIVE_FORMED.items() if number in tags)
        catalogue[number] = TagInfo(number, name, kind, max_len, fixed_len, formed, ffd)
    return catalogue


TAGS: dict[int, TagInfo] = _build()
"""The catalogue, by tag number."""

DOCUMENT_TAGS: frozenset[int] = frozenset({1, 11, 2, 21, 3, 31, 4, 41, 5, 6, 7, 81, 82, 83, 84})
"""Document codes, which are also the root STLV tags of documents (fn-protocol.md §10.3)."""


def tag_info(tag: int) -> TagInfo | None:
    """Return the catalogue entry of ``tag``, or ``None`` for a tag the catalogue does not know."""
    return TAGS.get(tag)


def tag_name(tag: int) -> str:
    """Return the official name of ``tag``, or ``"unknown tag N"``."""
    info = TAGS.get(tag)
    return info.name if info is not None else f"unknown tag {tag}"


def is_drive_formed(tag: int, ffd_version: str) -> bool:
    """Whether the drive forms ``tag`` itself in ``ffd_version`` mode, so a till must not send it.

    Raises:
        ValidationError: ``ffd_version`` is not one of ``FFD_VERSIONS``.
    """
    try:
        formed = DRIVE_FORMED[ffd_version]
    except KeyError:
        raise ValidationError(
            "ffd_version", f"unknown FFD version {ffd_version!r}, expected one of {FFD_VERSIONS}"
        ) from None
    return tag in formed
