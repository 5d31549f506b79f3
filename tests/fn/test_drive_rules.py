"""Each limit of fn-protocol.md §7–§9 that the drive enforces, one test per rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from kkt_emulator.errors import DriveError
from kkt_emulator.fn import commands as cmd
from kkt_emulator.fn.codes import Command, CurrentDocument, Phase, ResultCode, WarningFlag
from kkt_emulator.fn.drive import DriveConfig, FiscalDrive
from kkt_emulator.fn.tlv import encode_tlv, tlv_byte, tlv_string, tlv_u32, tlv_vln
from kkt_emulator.testing.drive import DriveBench, Item, item_tlv


def refused(expected: int, fn: object, /, *args: object, **kwargs: object) -> DriveError:
    with pytest.raises(DriveError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    got = info.value.code
    assert got == expected, f"expected {expected:02X}h, got {got:02X}h"
    return info.value


@pytest.fixture(params=["modulkassa-ffd12", "modulkassa-ffd105"])
def bench(request: pytest.FixtureRequest) -> DriveBench:
    b = DriveBench(request.param)
    b.register()
    b.open_shift()
    return b


def tag_of(err: DriveError) -> int:
    return int.from_bytes(err.data[:2], "little")


def test_time_never_goes_backwards(bench: DriveBench) -> None:
    bench.sale()
    bench.advance(minutes=-10)
    refused(ResultCode.BAD_DATETIME, bench.call, Command.START_RECEIPT, when=bench.local)


def test_date_far_from_the_drive_timer_is_refused(bench: DriveBench) -> None:
    later = bench.local + timedelta(hours=2)
    refused(ResultCode.BAD_TIME_DIFFERENCE, bench.call, Command.START_RECEIPT, when=later)


def test_one_open_document_at_a_time(bench: DriveBench) -> None:
    bench.call(Command.START_RECEIPT, when=bench.local)
    assert bench.status().current_document == CurrentDocument.RECEIPT
    refused(ResultCode.WRONG_STATE, bench.call, Command.START_RECEIPT, when=bench.local)
    bench.call(Command.CANCEL_DOCUMENT)
    assert bench.status().current_document == CurrentDocument.NONE


def test_07h_without_open_document(bench: DriveBench) -> None:
    refused(ResultCode.WRONG_STATE, bench.call, Command.SEND_DOCUMENT_DATA, data=tlv_byte(1055, 1))


def test_drive_formed_tag_is_refused_with_the_tag(bench: DriveBench) -> None:
    err = refused(ResultCode.FORBIDDEN_TAG, bench.sale, extra=tlv_vln(1020, 4550))
    assert tag_of(err) == 1020
    err = refused(ResultCode.FORBIDDEN_TAG, bench.sale, extra=tlv_u32(1040, 7))
    assert tag_of(err) == 1040


def test_duplicate_tag(bench: DriveBench) -> None:
    err = refused(ResultCode.DUPLICATE_DATA, bench.sale, extra=tlv_string(1021, "Второй кассир"))
    assert tag_of(err) == 1021


def test_too_many_items() -> None:
    bench = DriveBench("modulkassa-ffd12", max_items=3)
    bench.register()
    bench.open_shift()
    bench.sale(items=[Item()] * 3)
    refused(ResultCode.TOO_MANY_ITEMS, bench.sale, items=[Item()] * 4)


def test_tlv_volume_limit() -> None:
    bench = DriveBench(
        "modulkassa-ffd12", tlv_limits={**DriveBench().config.tlv_limits, "receipt": 300}
    )
    bench.register()
    bench.open_shift()
    refused(ResultCode.TLV_TOO_LARGE, bench.sale, items=[Item(name="Товар " * 10)] * 5)


def test_bad_value_length_is_18h(bench: DriveBench) -> None:
    err = refused(ResultCode.BAD_TAG, bench.sale, extra=encode_tlv(1192, b"x" * 40))
    assert tag_of(err) == 1192


def test_tax_system_not_registered_is_19h_with_1055(bench: DriveBench) -> None:
    # Both profiles register ОСН + УСН доход (mask 03h); патент (20h) is not registered.
    err = refused(ResultCode.TAG_NOT_REGISTERED, bench.sale, tax_system=0x20)
    assert tag_of(err) == 1055
    bench.sale(tax_system=0x02)


def test_agent_data_without_agent_flag_is_19h(bench: DriveBench) -> None:
    err = refused(ResultCode.TAG_NOT_REGISTERED, bench.sale, extra=tlv_byte(1057, 0x40))
    assert tag_of(err) == 1057
    err = refused(
        ResultCode.TAG_NOT_REGISTERED,
        bench.sale,
        item_extra=[tlv_byte(1222, 0x40), tlv_string(1226, "7702203276")],
    )
    assert tag_of(err) == 1222


def test_agent_data_with_agent_flag_is_accepted() -> None:
    bench = DriveBench("modulkassa-ffd105")
    bench.register(agent=True)
    bench.open_shift()
    bench.sale(extra=tlv_byte(1057, 0x40))


def test_excise_goods_need_the_excise_flag() -> None:
    for excise in (False, True):
        bench = DriveBench("modulkassa-ffd12")
        bench.register(excise=excise)
        bench.open_shift()
        if excise:
            bench.sale(items=[Item(subject=2)])
        else:
            err = refused(ResultCode.TAG_NOT_REGISTERED, bench.sale, items=[Item(subject=2)])
            assert tag_of(err) == 1212


def test_internet_mode_requires_buyer_contact(bench: DriveBench) -> None:
    err = refused(ResultCode.MISSING_TAGS, bench.sale, contact=None)
    assert tag_of(err) == 1008


def test_without_internet_mode_contact_is_optional() -> None:
    bench = DriveBench("modulkassa-ffd12")
    bench.register(internet=False)
    bench.open_shift()
    bench.sale(contact=None)


def test_ffd12_needs_all_five_payment_sums() -> None:
    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    bench.open_shift()
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(
        Command.SEND_DOCUMENT_DATA,
        data=tlv_byte(1055, 1) + tlv_string(1008, "a@b.ru") + tlv_vln(1081, 4550),
    )
    bench.call(Command.SEND_DOCUMENT_DATA, data=item_tlv(Item()))
    err = refused(
        ResultCode.MISSING_ACCOUNTING_DATA,
        bench.call,
        Command.FINISH_RECEIPT,
        when=bench.local,
        operation=1,
        total=4550,
    )
    assert err.data == bytes((0b00010,))


def test_payments_must_equal_total(bench: DriveBench) -> None:
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(100))
    bench.call(Command.SEND_DOCUMENT_DATA, data=item_tlv(Item()))
    refused(
        ResultCode.BAD_PARAMETERS,
        bench.call,
        Command.FINISH_RECEIPT,
        when=bench.local,
        operation=1,
        total=4550,
    )


def test_receipt_needs_an_item(bench: DriveBench) -> None:
    bench.call(Command.START_RECEIPT, when=bench.local)
    bench.call(Command.SEND_DOCUMENT_DATA, data=bench.receipt_tlv(0))
    err = refused(
        ResultCode.MISSING_TAGS,
        bench.call,
        Command.FINISH_RECEIPT,
        when=bench.local,
        operation=1,
        total=0,
    )
    assert tag_of(err) == 1059


def test_operation_type_must_be_1_to_4(bench: DriveBench) -> None:
    bench.call(Command.START_RECEIPT, when=bench.local)
    refused(
        ResultCode.BAD_PARAMETERS,
        bench.call,
        Command.FINISH_RECEIPT,
        when=bench.local,
        operation=5,
        total=0,
    )


def test_receipt_outside_a_shift(bench: DriveBench) -> None:
    bench.close_shift()
    refused(ResultCode.WRONG_STATE, bench.sale)


def test_archive_capacity_and_memory_warning() -> None:
    bench = DriveBench("modulkassa-ffd105", capacity=20)  # 90 % threshold on this profile
    bench.register()
    bench.open_shift()
    while bench.drive.state.last_fd < 17:
        bench.sale()
        assert not bench.status().warnings & WarningFlag.MEMORY_OVERFLOW
    bench.sale()  # document 18 of 20 = 90 %
    assert bench.status().warnings & WarningFlag.MEMORY_OVERFLOW
    assert bench.raw(Command.STATUS).warning
    bench.sale()
    bench.sale()
    refused(ResultCode.ARCHIVE_FULL, bench.sale)
    assert bench.call(Command.FREE_RESOURCES).documents_left == 0


def test_ofd_storage_exhausted() -> None:
    bench = DriveBench("modulkassa-ffd12", ofd_storage_bytes=2048)
    bench.register()
    bench.open_shift()
    codes = set()
    for _ in range(50):
        try:
            bench.sale()
        except DriveError as exc:
            codes.add(exc.code)
            break
    assert codes == {ResultCode.STORAGE_EXHAUSTED}
    assert not bench.status().warnings & WarningFlag.OFD_TIMEOUT
    bench.drain_ofd()
    bench.sale()


def test_correction_receipt(bench: DriveBench) -> None:
    answer = bench.sale(correction=True)
    document = bench.drive.store.get_document(answer.fd)
    assert document is not None
    assert document.doc_code == 31


def test_settlement_report(bench: DriveBench) -> None:
    bench.sale()
    bench.call(Command.START_SETTLEMENT_REPORT, when=bench.local)
    report = bench.call(Command.FINISH_SETTLEMENT_REPORT)
    assert report.unconfirmed == bench.drive.state.last_fd - 1
    assert bench.call(Command.FIND_DOCUMENT, fd=report.fd).doc_type == 21


def test_reregistration_changes_tax_systems() -> None:
    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    answer = bench.register(report_type=2, tax_systems=0x21, reason=4)
    assert bench.call(Command.FIND_DOCUMENT, fd=answer.fd).doc_type == 11
    assert bench.call(Command.REGISTRATION_RESULTS).tax_systems == 0x21
    assert bench.call(Command.EXPIRY).registrations_done == 2
    bench.open_shift()
    bench.sale(tax_system=0x20)


def test_registration_parameters_by_tag_and_in_sequence(bench: DriveBench) -> None:
    one = bench.call(Command.REGISTRATION_PARAMETER, tag=1048)
    assert one.tlv[:2] == (1048).to_bytes(2, "little")
    bench.call(Command.REGISTRATION_PARAMETER, tag=0xFFFF)
    seen = []
    while (answer := bench.raw(Command.READ_REGISTRATION_TLV_NEXT)).result == 0:
        seen.append(int.from_bytes(answer.data[:2], "little"))
    assert answer.result == ResultCode.NO_DATA
    assert seen[:5] == [1041, 1037, 1018, 1040, 1012]
    assert 1048 in seen


def test_ofd_exchange_rules(bench: DriveBench) -> None:
    refused(ResultCode.NO_TRANSPORT, bench.call, Command.OFD_START_READ)
    bench.call(Command.OFD_TRANSPORT, connected=1)
    refused(ResultCode.WRONG_STATE, bench.call, Command.OFD_READ_BLOCK, offset=0, length=10)
    length = bench.call(Command.OFD_START_READ).length
    refused(
        ResultCode.UNKNOWN_COMMAND, bench.call, Command.OFD_READ_BLOCK, offset=length + 1, length=10
    )
    assert bench.call(Command.OFD_STATUS).reading == 1


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda ack: ack[:10] + bytes((ack[10] ^ 1,)) + ack[11:], 5),  # CRC broken
        (lambda _ack: b"\x00" * 10, 2),  # not a container
    ],
)
def test_bad_acknowledgements_are_rejected(
    bench: DriveBench, mutate: Callable[[bytes], bytes], reason: int
) -> None:
    from kkt_emulator.ofd.ack import build_ack  # noqa: PLC0415

    bench.read_message()
    ack = build_ack(bench.serial, 1, bench.profile.registration.ofd_inn, bench.now)
    err = refused(
        ResultCode.OFD_MESSAGE_REJECTED, bench.call, Command.OFD_RECEIPT, data=mutate(ack)
    )
    assert err.data == bytes((reason,))
    assert bench.call(Command.UNCONFIRMED_COUNT).count == bench.drive.state.last_fd


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [({"fd_number": 2}, 3), ({"fn_serial": "9999000000000001"}, 4), ({"ofd_inn": "7707083893"}, 6)],
)
def test_acknowledgement_for_another_document_drive_or_operator(
    bench: DriveBench, kwargs: dict[str, object], reason: int
) -> None:
    from kkt_emulator.ofd.ack import build_ack  # noqa: PLC0415

    bench.read_message()
    values: dict[str, object] = {
        "fn_serial": bench.serial,
        "fd_number": 1,
        "ofd_inn": bench.profile.registration.ofd_inn,
        "when": bench.now,
    }
    values.update(kwargs)
    ack = build_ack(**values)  # type: ignore[arg-type]
    err = refused(ResultCode.OFD_MESSAGE_REJECTED, bench.call, Command.OFD_RECEIPT, data=ack)
    assert err.data == bytes((reason,))


def test_debug_reset_wipes_the_archive() -> None:
    bench = DriveBench("modulkassa-ffd12")
    bench.register()
    bench.call(Command.RESET, code=0x16)
    status = bench.status()
    assert (status.phase, status.last_fd) == (Phase.READY, 0)


def test_serial_drive_refuses_reset() -> None:
    bench = DriveBench("modulkassa-ffd12", debug_firmware=False)
    refused(ResultCode.UNKNOWN_COMMAND, bench.call, Command.RESET, code=0x16)


def test_ffd2016_drive_has_no_a2h() -> None:
    bench = DriveBench("modulkassa-ffd105")
    refused(
        ResultCode.UNKNOWN_COMMAND, bench.call, Command.START_REGISTRATION_12, report_type=0, ffd=4
    )
    assert bench.call(Command.FORMAT).ffd_max == 1


def test_ffd12_registration_refuses_03h_and_bad_ffd() -> None:
    bench = DriveBench("modulkassa-ffd12")
    refused(ResultCode.BAD_COMMAND, bench.call, Command.START_REGISTRATION_12, report_type=0, ffd=2)
    bench.call(Command.START_REGISTRATION_12, report_type=0, ffd=4)
    reg = bench.profile.registration
    refused(
        ResultCode.BAD_COMMAND,
        bench.call,
        Command.FINISH_REGISTRATION,
        when=bench.local,
        inn=reg.inn,
        rnm="1",
        tax_systems=1,
        mode=0,
    )


def test_quantity_decimal_item_total_rounding(bench: DriveBench) -> None:
    item = Item(price=9990, quantity=Decimal("0.355"))
    assert item.total == 3546
    bench.sale(items=[item])


def test_a_refused_command_changes_nothing(bench: DriveBench) -> None:
    bench.sale()
    store = bench.drive.store
    before = bench.drive.state.to_json()
    commits = store.commits  # type: ignore[attr-defined]
    refused(
        ResultCode.TAG_NOT_REGISTERED, bench.sale, tax_system=0x20
    )  # sale cancels after refusal
    bench.drive.state.last_errors = before["last_errors"]
    assert bench.drive.state.to_json() == before
    # 15h and 06h committed; the refused 07h did not.
    assert store.commits == commits + 2  # type: ignore[attr-defined]


def test_config_rejects_bad_serial() -> None:
    with pytest.raises(Exception, match="16 digits"):
        DriveConfig(serial="123")


def test_naive_time_is_refused() -> None:
    drive = FiscalDrive(DriveConfig(serial="9999078902000009"))
    with pytest.raises(ValueError, match="timezone-aware"):
        drive.execute(DriveBench().now.replace(tzinfo=None), Command.STATUS)
    assert (
        cmd.parse_answer(Command.STATUS, drive.execute(DriveBench().now, Command.STATUS)).phase == 1
    )
