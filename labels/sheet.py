"""Printable A4 sheets of package labels (edge): a 2 x 5 grid per page, streamed.

Rules:
- Each label shows its QR code (vector, ``QR_MM`` wide) and the facts of ``LabelFacts`` in an
  embedded subset of the CJK TrueType font, so the PDF prints the same on any machine.
- Memory stays bounded whatever the batch: labels are consumed from an iterator one at a time,
  and a PDF file is closed every ``pages_per_file`` pages (reportlab keeps a document's pages in
  memory until it is saved). A batch larger than one file is written as ``NAME.001.pdf``,
  ``NAME.002.pdf``...
- A label's QR code is built from the label text by the caller-supplied symbols; nothing here
  parses or trusts label content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from crypto.errors import N_, StorageError
from labels.fonts import CJK_FONT
from labels.manifest import Manifest
from labels.qr import QUIET_ZONE, QrSymbol
from labels.render import QR_MM, LabelFacts, _wrap, checked_font

FONT_NAME = "CustodyCJK"
COLUMNS, ROWS = 2, 5
PER_PAGE = COLUMNS * ROWS
DEFAULT_PAGES_PER_FILE = 50
CELL_W = A4[0] / COLUMNS
CELL_H = A4[1] / ROWS


@lru_cache(maxsize=8)
def _register_font(path: Path) -> str:
    """reportlab's name for the TrueType font at ``path`` (registered once per file)."""
    name = f"{FONT_NAME}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    pdfmetrics.registerFont(TTFont(name, str(checked_font(path)), subfontIndex=0))
    return name


def _draw_label(c: Canvas, m: Manifest, symbol: QrSymbol, x0: float, y0: float, font: str) -> None:
    """One label in the cell whose lower-left corner is (x0, y0), in points."""
    module = QR_MM * mm / (symbol.size + 2 * QUIET_ZONE)
    qr_left = x0 + 3 * mm
    qr_top = y0 + (CELL_H + QR_MM * mm) / 2
    c.saveState()
    c.translate(qr_left, qr_top)
    c.scale(module, -module)  # one unit per module, y growing down like the matrix rows
    # Integer rectangles written straight into the content stream: reportlab's path objects
    # format every coordinate in pure Python (rl_accel absent), 5x slower for ~1,300 runs.
    ops = " ".join(f"{x + QUIET_ZONE} {y + QUIET_ZONE} {n} 1 re" for y, x, n in symbol.runs())
    c._code.append(ops + " f")  # documented PDF operators, see above
    c.restoreState()
    facts = LabelFacts.of(m)
    tx = qr_left + QR_MM * mm + 1.5 * mm
    ty = y0 + CELL_H - 6 * mm
    c.setFont(font, 8)
    c.drawString(tx, ty, facts.title)
    ty -= 4.6 * mm
    for caption, value in facts.lines:
        c.setFont(font, 5.5)
        c.setFillGray(0.35)
        c.drawString(tx, ty, caption)
        c.setFillGray(0)
        ty -= 2.7 * mm
        c.setFont(font, 7.5)
        for part in _wrap(value, 26):
            c.drawString(tx, ty, part)
            ty -= 3.0 * mm
        ty -= 0.5 * mm
    # cut marks: a hairline frame per cell
    c.setLineWidth(0.2)
    c.setStrokeGray(0.75)
    c.rect(x0, y0, CELL_W, CELL_H, stroke=1, fill=0)
    c.setStrokeGray(0)


def _write_file(
    path: Path,
    labels: Iterator[tuple[Manifest, QrSymbol]],
    pages: int,
    advance: Callable[[int], None],
    font: str,
) -> int:
    """Write up to ``pages`` pages; returns how many labels were drawn."""
    c = Canvas(str(path), pagesize=A4, pageCompression=1, invariant=True)
    c.setTitle("custody package labels")
    drawn = 0
    for _page in range(pages):
        batch = list(islice(labels, PER_PAGE))
        if not batch:
            break
        for i, (m, symbol) in enumerate(batch):
            col, row = i % COLUMNS, i // COLUMNS
            _draw_label(c, m, symbol, col * CELL_W, A4[1] - (row + 1) * CELL_H, font)
        c.showPage()
        drawn += len(batch)
        advance(len(batch))
    if drawn:
        try:
            c.save()
        except OSError as e:
            raise StorageError(
                N_("cannot write {path}: {strerror}"), path=path, strerror=e.strerror
            ) from e
    return drawn


def write_sheets(
    labels: Iterable[tuple[Manifest, QrSymbol]],
    out: Path,
    *,
    total: int,
    pages_per_file: int = DEFAULT_PAGES_PER_FILE,
    advance: Callable[[int], None] = lambda _n: None,
    font: Path = CJK_FONT,
) -> list[Path]:
    """Write labels to A4 PDF sheets, their text in the TrueType ``font`` (a subset embedded);
    ``total`` decides whether one file suffices."""
    name = _register_font(font)
    per_file = pages_per_file * PER_PAGE
    stream = iter(labels)
    if total <= per_file:
        _write_file(out, stream, pages_per_file, advance, name)
        return [out]
    written: list[Path] = []
    part = 1
    while True:
        path = out.with_name(f"{out.stem}.{part:03d}{out.suffix or '.pdf'}")
        if not _write_file(path, stream, pages_per_file, advance, name):
            break
        written.append(path)
        part += 1
    return written
