"""The registration's TLVs, with the profile's part encoded once per profile, are those of each till."""

from __future__ import annotations

import pytest

from kkt_emulator.fn.tlv import parse_tlvs
from kkt_emulator.profiles import DEFAULT_PROFILE, load_profile
from kkt_emulator.till.registration import _profile_tlvs, registration_plan


@pytest.mark.parametrize("profile_name", [DEFAULT_PROFILE, "modulkassa-ffd105"])
@pytest.mark.parametrize(("agent", "excise"), [(False, False), (True, True)])
def test_each_till_gets_its_own_serial_in_the_profile_tlvs(
    profile_name: str, agent: bool, excise: bool
) -> None:
    profile = load_profile(profile_name)
    plans = [
        registration_plan(profile, serial, agent=agent, excise=excise)
        for serial in ("000100000001", "000100000002")
    ]
    serials = [
        [t.value.decode("cp866") for t in parse_tlvs(plan.tlv) if t.tag == 1013] for plan in plans
    ]
    assert serials == [["000100000001"], ["000100000002"]]
    tags = [[t.tag for t in parse_tlvs(plan.tlv)] for plan in plans]
    assert tags[0] == tags[1]
    assert tags[0][:4] == [1048, 1009, 1187, 1013]
    assert (1057 in tags[0]) is agent
    assert (1207 in tags[0]) is (excise and profile.ffd_version != "1.2")
    assert _profile_tlvs.cache_info().hits >= 1
