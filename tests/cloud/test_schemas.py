"""Lists the cloud spells out more than once stay equal to their one source."""

from __future__ import annotations

from typing import get_args

from kkt_emulator.cloud import schemas, settings, validation
from kkt_emulator.taxes import TAX_SYSTEMS


def test_tax_mode_literal_is_the_tax_system_list() -> None:
    # The Literal stays so that /openapi.json shows a plain string enum.
    assert get_args(schemas.TaxMode) == TAX_SYSTEMS
    assert validation.TAX_MODES == TAX_SYSTEMS


def test_request_models_use_the_settings_enums() -> None:
    fields = schemas.RetailPointCreate.model_fields
    assert fields["pickupWindow"].annotation is settings.PickupWindow
    assert fields["duplicatePolicy"].annotation is settings.DuplicatePolicy
