"""The CJK font ships with the package, is TrueType (reportlab embeds it), covers the text
labels and reports print, and a font the caller names that is not there is a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from reportlab.pdfbase.ttfonts import TTFontFile

from crypto.errors import NotFoundError
from custody.demo.season import AUTHORITY_NAME, PEOPLE
from labels.fonts import CJK_FONT
from labels.render import LabelFacts, render_png
from labels.sheet import write_sheets
from tests.conftest import T0
from tests.labels.fixtures import typical_manifest


def test_font_ships_inside_the_package_with_its_licence() -> None:
    assert CJK_FONT.is_file()
    assert CJK_FONT.parent.name == "fonts"
    assert (CJK_FONT.parent / "LICENSE-Apache-2.0.txt").is_file()
    assert "Apache-2.0" in (CJK_FONT.parent / "COPYRIGHT-wqy-microhei.txt").read_text()


def test_font_covers_what_labels_and_the_demo_print() -> None:
    cmap = TTFontFile(str(CJK_FONT)).charToGlyph  # raises unless TrueType outlines
    facts = LabelFacts.of(typical_manifest(T0))
    text = facts.title + "".join(c + v for c, v in facts.lines) + AUTHORITY_NAME
    text += "".join(name + org for _, name, org, _, _ in PEOPLE)
    text += "喆堃昇犇淼"  # GBK hanzi outside GB 2312, common in names
    missing = sorted({ch for ch in text if not ch.isspace() and ord(ch) not in cmap})
    assert missing == []


def test_a_missing_font_is_refused_clearly(tmp_path: Path) -> None:
    from labels.qr import encode_qr

    symbol = encode_qr("HC1:TEST")
    with pytest.raises(NotFoundError):
        render_png(typical_manifest(T0), symbol, font=tmp_path / "none.ttf")
    with pytest.raises(NotFoundError):
        write_sheets(
            iter([(typical_manifest(T0), symbol)]),
            tmp_path / "x.pdf",
            total=1,
            font=tmp_path / "none.ttf",
        )
    assert not (tmp_path / "x.pdf").exists()
