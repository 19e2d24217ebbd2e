"""One package label as PNG or SVG (edge): the QR code and the facts a person reads.

Rules:
- The human-readable text is derived from the same verified manifest the QR code carries, never
  from unsigned data, so what a courier reads matches what the scanner verifies.
- Every caption is Chinese with its English beside it (包号 Package, ...). Times are shown in
  Beijing time (UTC+8), the time the exam rules use.
- Chinese renders with a CJK TrueType font that the caller passes in (the edge chooses; the
  default is the one that ships with the package, ``labels.fonts.CJK_FONT``, so no system font
  is needed): PNG rasterises it, the PDF sheet embeds a subset; SVG names the font family (and
  falls back to the viewer's CJK fonts). Nothing here reads the environment.
- The QR code keeps its 4-module quiet zone and is printed ``QR_MM`` millimetres wide.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from crypto.errors import N_, NotFoundError
from labels.fonts import CJK_FONT, CJK_FONT_FAMILY
from labels.manifest import Manifest
from labels.qr import QUIET_ZONE, QrSymbol

BEIJING = timezone(timedelta(hours=8), "CST")
LABEL_MM = (100.0, 56.0)
QR_MM = 46.0
MAX_SEALS_SHOWN = 6


def checked_font(path: Path) -> Path:
    """``path`` if it is a font file (TrueType .ttf, or a .ttc whose first face is used)."""
    if not path.is_file():
        raise NotFoundError(
            N_("CJK font {path} not found: labels need it to print Chinese"),
            hint=N_("name a TrueType .ttf/.ttc file, or leave the option out to use {name}"),
            path=path,
            name=CJK_FONT.name,
        )
    return path


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class LabelFacts:
    """The lines printed beside the QR code: (caption, value) pairs plus a title."""

    title: str
    lines: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, m: Manifest) -> LabelFacts:
        seals = list(m.seal_serials[:MAX_SEALS_SHOWN])
        if len(m.seal_serials) > MAX_SEALS_SHOWN:
            seals.append(f"+{len(m.seal_serials) - MAX_SEALS_SHOWN}")
        bags = len(m.seal_serials)
        closes = m.closes_at.astimezone(BEIJING).strftime("%H:%M")
        if m.closes_at.astimezone(BEIJING).date() != m.opens_at.astimezone(BEIJING).date():
            closes = _beijing(m.closes_at)
        return cls(
            title=f"{m.classification.label}  试卷袋 Sealed package",
            lines=(
                ("包号 Package", m.package_id),
                ("考试 Exam", f"{m.exam_id} · {m.session} · {m.position}"),
                ("送达 To", f"{m.site} {m.room}"),
                ("份数 Copies", f"{m.copy_count} ({bags} 袋 bags)"),
                ("封条 Seals", ", ".join(seals)),
                ("启封 Window", f"{_beijing(m.opens_at)}–{closes} 北京时间"),
            ),
        )


@lru_cache(maxsize=16)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(checked_font(path)), size, index=0)


def qr_image(symbol: QrSymbol, module_px: int) -> Image.Image:
    """The QR code with its quiet zone, ``module_px`` pixels per module, black on white."""
    dark = np.frombuffer(b"".join(symbol.rows), dtype=np.uint8).reshape(symbol.size, symbol.size)
    padded = np.pad(dark, QUIET_ZONE)
    pixels = np.kron(padded, np.ones((module_px, module_px), dtype=np.uint8))
    return Image.fromarray(((1 - pixels) * 255).astype(np.uint8), mode="L")


def render_png(m: Manifest, symbol: QrSymbol, *, dpi: int = 300, font: Path = CJK_FONT) -> bytes:
    """A label as a grayscale PNG, ``LABEL_MM`` at ``dpi`` (the QR code ~``QR_MM`` wide), its
    text set in the TrueType ``font``."""
    px_per_mm = dpi / 25.4
    width, height = (round(v * px_per_mm) for v in LABEL_MM)
    module_px = max(2, round(QR_MM * px_per_mm / (symbol.size + 2 * QUIET_ZONE)))
    image = Image.new("L", (width, height), 255)
    qr = qr_image(symbol, module_px)
    top = max(0, (height - qr.height) // 2)
    image.paste(qr, (0, top))
    draw = ImageDraw.Draw(image)
    facts = LabelFacts.of(m)
    x = qr.width + round(1 * px_per_mm)
    size = max(8, round(2.6 * px_per_mm))
    small = max(7, round(2.0 * px_per_mm))
    y = round(3 * px_per_mm)
    draw.text((x, y), facts.title, font=_font(font, size), fill=0)
    y += round(size * 1.6)
    for caption, value in facts.lines:
        draw.text((x, y), caption, font=_font(font, small), fill=90)
        y += round(small * 1.15)
        for part in _wrap(value, 26):
            draw.text((x, y), part, font=_font(font, size), fill=0)
            y += round(size * 1.15)
        y += round(small * 0.3)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    """Split long values on ', ' (seal lists) so they stay inside the label."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    current = ""
    for part in text.split(", "):
        candidate = f"{current}, {part}" if current else part
        if len(candidate) > width and current:
            lines.append(current + ",")
            current = part
        else:
            current = candidate
    lines.append(current)
    return lines


def qr_svg_path(symbol: QrSymbol, x0: float, y0: float, module: float) -> str:
    """One SVG path drawing every dark run (compact and crisp at any scale)."""
    parts = []
    for y, x, n in symbol.runs():
        parts.append(
            f"M{x0 + (x + QUIET_ZONE) * module:.3f} {y0 + (y + QUIET_ZONE) * module:.3f}"
            f"h{n * module:.3f}v{module:.3f}h{-n * module:.3f}z"
        )
    return "".join(parts)


def render_svg(m: Manifest, symbol: QrSymbol) -> bytes:
    """A label as SVG in millimetres (viewBox units are mm)."""
    w, h = LABEL_MM
    module = QR_MM / (symbol.size + 2 * QUIET_ZONE)
    top = (h - QR_MM) / 2
    facts = LabelFacts.of(m)
    font = f'font-family="{CJK_FONT_FAMILY}, Noto Sans CJK SC, sans-serif"'
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" '
        f'viewBox="0 0 {w} {h}">',
        f'<rect width="{w}" height="{h}" fill="#fff"/>',
        f'<path fill="#000" d="{qr_svg_path(symbol, 0, top, module)}"/>',
    ]
    x = QR_MM + 1
    y = 5.0
    out.append(f'<text x="{x}" y="{y}" font-size="2.8" {font}>{escape(facts.title)}</text>')
    y += 4.2
    for caption, value in facts.lines:
        out.append(
            f'<text x="{x}" y="{y}" font-size="2.0" fill="#555" {font}>{escape(caption)}</text>'
        )
        y += 3.0
        for part in _wrap(value, 26):
            out.append(f'<text x="{x}" y="{y}" font-size="2.6" {font}>{escape(part)}</text>')
            y += 3.0
        y += 0.6
    out.append("</svg>")
    return ("\n".join(out) + "\n").encode("utf-8")
