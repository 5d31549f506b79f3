"""The FFD tag catalogue: coverage of the spec's tags, drive-formed sets, lookups."""

from __future__ import annotations

import dataclasses

import pytest

from kkt_emulator.errors import ValidationError
from kkt_emulator.fn.tags import (
    DOCUMENT_TAGS,
    DRIVE_FORMED,
    FFD_VERSIONS,
    TAGS,
    Tag,
    TagInfo,
    TagType,
    is_drive_formed,
    tag_info,
    tag_name,
)


def _numbers(text: str) -> list[int]:
    return [int(word) for word in text.split()]


# Every tag fn-protocol.md §10 names (§10.3–§10.8), the tags of the captures (§15.9, §15.10), the
# OFD ack, correction and the other tags the catalogue must know.
SPEC_TAGS = _numbers(
    """
    1000 1001 1002 1008 1009 1012 1013 1017 1018 1020 1021 1022 1023 1030 1031 1036 1037
    1038 1040 1041 1042 1043 1046 1048 1049 1050 1051 1052 1053 1054 1055 1056 1057 1058
    1059 1060 1061 1062 1068 1077 1078 1079 1081 1084 1085 1086 1097 1098 1101 1102 1103
    1104 1105 1106 1107 1108 1109 1110 1111 1116 1117 1118 1126 1129 1130 1131 1132 1133
    1134 1135 1136 1138 1139 1140 1141 1142 1143 1144 1145 1146 1157 1158 1162 1163 1173
    1174 1177 1178 1179 1183 1187 1188 1189 1190 1192 1193 1194 1197 1199 1200 1201 1203
    1205 1206 1207 1209 1212 1213 1214 1215 1216 1217 1218 1219 1220 1221 1222 1223 1224
    1225 1226 1232 1233 1290 2102 2104 2106 2108 2115 2116
"""
)

# fn-protocol.md §10.7, copied by hand.
FFD_11_LIST = _numbers(
    """
    1001 1002 1012 1017 1018 1020 1037 1038 1040 1041 1042 1050 1051 1052 1053 1054 1056
    1062 1077 1097 1098 1109 1110 1111 1116 1118 1126 1129 1130 1131 1132 1133 1134 1135
    1136 1138 1139 1140 1141 1142 1143 1144 1145 1146 1157 1158 1183 1190 1193 1194 1201
    1205 1206 1207 1209 1213 1218 1219 1220 1221 1232 1233
"""
)
FFD_12_LIST = sorted(
    (set(FFD_11_LIST) - {1109, 1110, 1126, 1193, 1207, 1221}) | {2106, 1290, 2116, 2104}
)
FFD_105_LIST = [1041, 1037, 1018, 1040, 1012, 1077, 1056, 1002, 1001, 1109, 1110, 1108, 1062]
FFD_105_LIST += [1101, 1020, 1054, 1038, 1042, 1050, 1051, 1052, 1053, 1097, 1098, 1111]
FFD_105_LIST += [1116, 1118]


def test_every_spec_tag_is_in_the_catalogue() -> None:
    missing = [tag for tag in SPEC_TAGS if tag not in TAGS]
    assert missing == []


def test_document_codes_are_stlvs() -> None:
    assert {1, 11, 2, 21, 3, 31, 4, 41, 5, 6, 7} <= DOCUMENT_TAGS
    for code in DOCUMENT_TAGS:
        assert TAGS[code].type is TagType.STLV
    assert TAGS[3].name == "Кассовый чек"
    assert TAGS[11].name == "Отчет об изменении параметров регистрации"


def test_drive_formed_sets_match_the_spec() -> None:
    assert sorted(DRIVE_FORMED["1.1"]) == sorted(FFD_11_LIST)
    assert sorted(DRIVE_FORMED["1.2"]) == FFD_12_LIST
    assert sorted(DRIVE_FORMED["1.05"]) == sorted(FFD_105_LIST)
    assert set(DRIVE_FORMED) == set(FFD_VERSIONS)


def test_drive_formed_tags_are_catalogued_and_consistent() -> None:
    for version, tags in DRIVE_FORMED.items():
        for tag in tags:
            info = TAGS[tag]
            assert version in info.drive_formed
            assert version in info.ffd, (tag, version)
    for info in TAGS.values():
        for version in info.drive_formed:
            assert info.number in DRIVE_FORMED[version]


@pytest.mark.parametrize(
    ("tag", "formed_in"),
    [
        (1012, {"1.05", "1.1", "1.2"}),
        (1017, {"1.1", "1.2"}),  # 1.05: the till sends ИНН ОФД (capture §15.9)
        (1101, {"1.05"}),  # from the reason byte of 03h
        (1108, {"1.05"}),  # not in the 1.1/1.2 lists of §10.7
        (1109, {"1.05", "1.1"}),
        (1207, {"1.1"}),
        (2104, {"1.2"}),
        (1290, {"1.2"}),
        (1008, set()),
        (1059, set()),
        (1209, {"1.1", "1.2"}),
    ],
)
def test_is_drive_formed(tag: int, formed_in: set[str]) -> None:
    for version in FFD_VERSIONS:
        assert is_drive_formed(tag, version) is (version in formed_in)
    assert TAGS[tag].drive_formed == frozenset(formed_in)


def test_is_drive_formed_unknown_tag_and_version() -> None:
    assert is_drive_formed(9999, "1.2") is False
    with pytest.raises(ValidationError, match="ffd_version"):
        is_drive_formed(1012, "1.0")


@pytest.mark.parametrize(
    ("tag", "kind", "max_len", "fixed_len"),
    [
        (1018, TagType.FIXED_STRING, 12, 12),
        (1017, TagType.FIXED_STRING, 12, 12),
        (1037, TagType.FIXED_STRING, 20, 20),
        (1041, TagType.FIXED_STRING, 16, 16),
        (1203, TagType.FIXED_STRING, 12, 12),
        (1077, TagType.BYTES, 6, 6),
        (1078, TagType.BYTES, 18, None),
        (1020, TagType.VLN, 6, None),
        (1023, TagType.FVLN, 8, None),
        (1012, TagType.UNIXTIME, 4, None),
        (1059, TagType.STLV, 1024, None),
        (1030, TagType.STRING, 128, None),
        (1008, TagType.STRING, 64, None),
        (1040, TagType.UINT32, 4, None),
        (1055, TagType.FLAGS, 1, None),
        (1290, TagType.FLAGS, 4, None),
        (1199, TagType.BYTE, 1, None),
        (1068, TagType.STLV, 9, None),
    ],
)
def test_types_and_lengths(tag: int, kind: TagType, max_len: int, fixed_len: int | None) -> None:
    info = TAGS[tag]
    assert (info.type, info.max_len, info.fixed_len) == (kind, max_len, fixed_len)


def test_catalogue_invariants() -> None:
    widths = {TagType.BYTE: 1, TagType.UINT16: 2, TagType.UINT32: 4, TagType.UNIXTIME: 4}
    for number, info in TAGS.items():
        assert info.number == number
        assert info.name
        assert info.max_len >= 1
        assert info.ffd
        if info.fixed_len is not None:
            assert info.fixed_len == info.max_len
            assert info.type in {TagType.FIXED_STRING, TagType.BYTES}
        if info.type is TagType.FIXED_STRING:
            assert info.fixed_len is not None
        if info.type in widths:
            assert info.max_len == widths[info.type], number


def test_versions_of_replaced_tags() -> None:
    assert TAGS[1162].ffd == frozenset({"1.05", "1.1"})
    assert TAGS[1163].ffd == frozenset({"1.2"})
    assert TAGS[1197].ffd == frozenset({"1.05", "1.1"})
    assert TAGS[2108].ffd == frozenset({"1.2"})
    assert "1.2" not in TAGS[1049].ffd


def test_lookups() -> None:
    info = tag_info(1059)
    assert isinstance(info, TagInfo)
    assert info.name == "предмет расчета"
    assert tag_info(9999) is None
    assert tag_name(1041) == "номер ФН"
    assert tag_name(9999) == "unknown tag 9999"


def test_tag_info_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TAGS[1012].max_len = 5  # type: ignore[misc]


def test_tag_type_values_are_strings() -> None:
    assert str(TagType.FVLN) == "fvln"
    assert TagType("stlv") is TagType.STLV


def test_every_tag_the_drive_names_is_in_the_catalogue() -> None:
    assert len(Tag) == 52
    missing = [tag for tag in Tag if tag not in TAGS]
    assert missing == []
    assert int(Tag.BUYER_CONTACT) == 1008
    assert TAGS[Tag.FPD].name == tag_name(1077)
