"""The receipt as printed: a fiscalised document's slip as a model, text, SVG and PNG.

Pure rendering, no I/O: :mod:`~kkt_emulator.slip.store` builds a
:class:`~kkt_emulator.slip.model.Receipt` from what the cloud stores of a fiscalised document,
:mod:`~kkt_emulator.slip.model` lays it out as the lines of a paper slip (and prints them as
text), :mod:`~kkt_emulator.slip.render` draws them as SVG and PNG with the QR code as an image.
"""

from __future__ import annotations

from kkt_emulator.slip.model import Receipt, Seller, render_text, slip_lines
from kkt_emulator.slip.render import render_png, render_svg
from kkt_emulator.slip.store import Registration, receipt_from_store

__all__ = [
    "Receipt",
    "Registration",
    "Seller",
    "receipt_from_store",
    "render_png",
    "render_svg",
    "render_text",
    "slip_lines",
]
