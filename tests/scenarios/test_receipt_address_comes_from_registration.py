"""Support case §6: one site in the integration, but its receipts show several addresses.

The address (1009) and place of settlement (1187) on a receipt come from the till's registration,
never from the shop: changing the retail point's address in the cabinet changes nothing on the
receipts. A till registered with two addresses (a profile with two ``[[registration.addresses]]``)
prints them in turn — receipt 1 the first, receipt 2 the second, receipt 3 the first again —
whether the receipt is a shop document or a counter sale; the turn moves on only when the drive
signs a receipt, so a refused document does not skip an address.
"""

from __future__ import annotations

from pathlib import Path

from scenario_helpers import drive_receipts, run_case

from kkt_emulator.fn.tlv import decode_string, parse_tlvs
from kkt_emulator.profiles import BUILTIN_DIR
from kkt_emulator.testing.stack import StackHarness

FIRST = ("111141, г. Москва, ул. Кусковская, д. 20А", "https://romashka.example")
SECOND = ("190000, г. Санкт-Петербург, Невский пр., д. 1", "https://spb.romashka.example")


def two_address_profile(tmp_path: Path) -> Path:
    """``modulkassa-ffd12`` under another name, registered with a second address."""
    text = (BUILTIN_DIR / "modulkassa-ffd12.toml").read_text(encoding="utf-8")
    text = text.replace('name = "modulkassa-ffd12"', 'name = "modulkassa-ffd12-two-addresses"')
    second = f'[[registration.addresses]]\naddress = "{SECOND[0]}"\nplace = "{SECOND[1]}"\n\n'
    text = text.replace("[quirks]", second + "[quirks]")
    path = tmp_path / "two-addresses.toml"
    path.write_text(text, encoding="utf-8")
    return path


def printed_address(kkt: StackHarness, fd: int) -> tuple[str, str]:
    assert kkt.till.drive is not None
    archived = kkt.till.drive.store.get_document(fd)
    assert archived is not None
    tags = {tlv.tag: tlv.value for tlv in parse_tlvs(archived.tlv)}
    return decode_string(tags[1009]), decode_string(tags[1187])


async def test_receipt_address_comes_from_registration(tmp_path: Path) -> None:
    profile = two_address_profile(tmp_path)
    async with StackHarness.running(tmp_path / "stack", profile=str(profile)) as kkt:
        assert len(kkt.till.profile.registration.addresses) == 2
        # The case moves the cabinet's address elsewhere, posts a sale, a refused one, a sale, and
        # sells at the counter; no receipt prints the cabinet's address.
        run = await run_case(kkt, "receipt_address_comes_from_registration")
        fds = drive_receipts(kkt)
        assert len(fds) == 3
        assert [printed_address(kkt, fd) for fd in fds] == [FIRST, SECOND, FIRST]
        assert run.facts["printed"] == [FIRST, SECOND, FIRST]
