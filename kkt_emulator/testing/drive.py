"""A drive on a test bench for driver developers' tests (see :mod:`kkt_emulator.app.drivebench`)."""

from __future__ import annotations

from kkt_emulator.app.drivebench import DEFAULT_START, DriveBench, Item, item_tlv

__all__ = ["DEFAULT_START", "DriveBench", "Item", "item_tlv"]
