"""The slip drawn: SVG (text and vector QR code) and PNG (Pillow, the bundled DejaVu Sans Mono).

Both drawings come from one :func:`layout`, so the PNG and the SVG have the same size and place
every line and every QR module at the same spot. The QR code is ``segno``'s matrix of the
receipt's QR string (error correction M), drawn module by module. The font is DejaVu Sans Mono (regular and
bold), shipped in ``fonts/`` with its licence, so a PNG looks the same on every machine and prints
Cyrillic (Pillow's built-in font has no Cyrillic glyphs).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cache
from html import escape
from pathlib import Path
from typing import Final

import segno
from PIL import Image, ImageDraw, ImageFont

from kkt_emulator.slip.model import WIDTH, LineKind, Receipt, slip_lines

__all__ = [
    "BOLD_FONT_PATH",
    "FONT_PATH",
    "Layout",
    "layout",
    "qr_matrix",
    "render_png",
    "render_svg",
]

FONT_PATH: Final = Path(__file__).parent / "fonts" / "DejaVuSansMono.ttf"
BOLD_FONT_PATH: Final = Path(__file__).parent / "fonts" / "DejaVuSansMono-Bold.ttf"
FONT_SIZE: Final = 15
_ADVANCE: Final = 1233 / 2048  # DejaVu Sans Mono's advance width per em
LINE_HEIGHT: Final = 20
MARGIN: Final = 18
MODULE: Final = 4
"""Pixels per QR module."""
QR_BORDER: Final = 2
"""Quiet zone around the QR code, in modules."""
TOOTH: Final = 8
"""Width and twice the height of one tooth of the torn edge."""
PAPER: Final = "#fffef8"
INK: Final = "#1b1b1b"


@dataclass(frozen=True, slots=True)
class Text:
    """A piece of text: baseline position, anchor (``start``, ``middle``, ``end``), weight."""

    x: float
    y: float
    text: str
    anchor: str
    bold: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """A dashed line across the slip at height ``y``."""

    x1: float
    x2: float
    y: float


@dataclass(frozen=True, slots=True)
class QrCode:
    """The QR code: top-left corner, module size, the matrix (rows of 0/1) and its text."""

    x: int
    y: int
    module: int
    matrix: tuple[tuple[int, ...], ...]
    text: str


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything goes on a slip of ``width`` × ``height`` pixels."""

    width: int
    height: int
    texts: tuple[Text, ...]
    rules: tuple[Rule, ...]
    qr: QrCode | None


@cache
def qr_matrix(text: str) -> tuple[tuple[int, ...], ...]:
    """The QR code of ``text`` (error correction M) as rows of 1 (dark) and 0, no quiet zone."""
    code = segno.make_qr(text, error="m", boost_error=False)
    return tuple(tuple(int(bool(cell)) for cell in row) for row in code.matrix)


def layout(receipt: Receipt) -> Layout:
    """Lay the slip's lines out on paper."""
    columns = WIDTH
    text_width = math.ceil(columns * _ADVANCE * FONT_SIZE)
    width = 2 * MARGIN + text_width
    left, right, middle = MARGIN, MARGIN + text_width, width / 2
    y = TOOTH + MARGIN
    texts: list[Text] = []
    rules: list[Rule] = []
    qr: QrCode | None = None
    for line in slip_lines(receipt, columns):
        if line.kind is LineKind.RULE:
            rules.append(Rule(left, right, y + LINE_HEIGHT / 2))
            y += LINE_HEIGHT
            continue
        if line.kind is LineKind.QR:
            matrix = qr_matrix(line.left)
            size = (len(matrix) + 2 * QR_BORDER) * MODULE
            y += LINE_HEIGHT // 2
            qr = QrCode(
                int(middle - size / 2) + QR_BORDER * MODULE,
                y + QR_BORDER * MODULE,
                MODULE,
                matrix,
                line.left,
            )
            y += size
            continue
        baseline = y + FONT_SIZE
        if line.kind in (LineKind.CENTER, LineKind.TITLE):
            texts.append(Text(middle, baseline, line.left, "middle", line.bold))
        else:
            if line.left:
                texts.append(Text(left, baseline, line.left, "start", line.bold))
            if line.right:
                texts.append(Text(right, baseline, line.right, "end", line.bold))
        y += LINE_HEIGHT
    height = y + MARGIN + TOOTH
    return Layout(width, height, tuple(texts), tuple(rules), qr)


def _edge(width: int, height: int) -> list[tuple[float, float]]:
    """The paper's outline with torn (zig-zag) top and bottom edges."""
    half = TOOTH / 2
    teeth = max(1, width // TOOTH)
    step = width / teeth
    top: list[tuple[float, float]] = []
    for i in range(teeth + 1):
        top.append((i * step, half))
        if i < teeth:
            top.append((i * step + step / 2, 0.0))
    bottom = [(x, height - y) for x, y in reversed(top)]
    return top + bottom


def _svg_number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def render_svg(receipt: Receipt) -> str:
    """The slip as a standalone SVG document (UTF-8 text)."""
    lay = layout(receipt)
    outline = " ".join(
        f"{_svg_number(x)},{_svg_number(y)}" for x, y in _edge(lay.width, lay.height)
    )
    label = escape(f"{receipt.title} {receipt.operation_name}")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}"'
            f' viewBox="0 0 {lay.width} {lay.height}" role="img" aria-label="{label}">'
        ),
        f"<title>{escape(receipt.title, quote=False)} ФД {receipt.fd} ФП {receipt.fp}</title>",
        f'<polygon points="{outline}" fill="{PAPER}" stroke="#d8d4c4" stroke-width="1"/>',
        (
            '<g font-family="DejaVu Sans Mono, Menlo, Consolas, monospace"'
            f' font-size="{FONT_SIZE}" fill="{INK}" xml:space="preserve">'
        ),
    ]
    for text in lay.texts:
        weight = ' font-weight="bold"' if text.bold else ""
        out.append(
            f'<text x="{_svg_number(text.x)}" y="{_svg_number(text.y)}"'
            f' text-anchor="{text.anchor}"{weight}>{escape(text.text, quote=False)}</text>'
        )
    out.append("</g>")
    out.extend(
        f'<line x1="{_svg_number(rule.x1)}" y1="{_svg_number(rule.y)}"'
        f' x2="{_svg_number(rule.x2)}" y2="{_svg_number(rule.y)}"'
        f' stroke="{INK}" stroke-width="1" stroke-dasharray="4 3"/>'
        for rule in lay.rules
    )
    if lay.qr is not None:
        qr = lay.qr
        path = []
        for row, cells in enumerate(qr.matrix):
            for col, dark in enumerate(cells):
                if dark:
                    path.append(
                        f"M{qr.x + col * qr.module} {qr.y + row * qr.module}h{qr.module}v{qr.module}h-{qr.module}z"
                    )
        out.append(
            f'<g id="qr" data-qr="{escape(qr.text)}"><path d="{"".join(path)}" fill="#000"/></g>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


@cache
def _font(bold: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BOLD_FONT_PATH if bold else FONT_PATH), FONT_SIZE)


def render_png(receipt: Receipt) -> bytes:
    """The slip as a PNG image (RGB), the same size as its SVG."""
    lay = layout(receipt)
    image = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon(_edge(lay.width, lay.height), fill=PAPER, outline="#d8d4c4")
    anchors = {"start": "ls", "middle": "ms", "end": "rs"}
    for text in lay.texts:
        draw.text(
            (text.x, text.y),
            text.text,
            fill=INK,
            font=_font(text.bold),
            anchor=anchors[text.anchor],
        )
    for rule in lay.rules:
        x = rule.x1
        while x < rule.x2:
            draw.line([(x, rule.y), (min(x + 4, rule.x2), rule.y)], fill=INK, width=1)
            x += 7
    if lay.qr is not None:
        qr = lay.qr
        for row, cells in enumerate(qr.matrix):
            for col, dark in enumerate(cells):
                if dark:
                    x0, y0 = qr.x + col * qr.module, qr.y + row * qr.module
                    draw.rectangle([x0, y0, x0 + qr.module - 1, y0 + qr.module - 1], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
