"""Rendering: PNG and SVG labels, and the printer path (PDF sheet -> 150 dpi raster -> verify)."""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from PIL import Image

from crypto.signing import SigningKey
from custody.demo import Season, start_season
from custody.packages import Manifest
from keys.trust import TrustStore
from labels.payload import seal_manifest, verify_label
from labels.qr import ENCODERS, encode_qr
from labels.render import LabelFacts, render_png, render_svg
from labels.scan import read_qr_texts, scan_label
from labels.sheet import COLUMNS, PER_PAGE, ROWS, write_sheets
from tests.conftest import PASS, T0, fast_kdf
from tests.labels.fixtures import typical_manifest


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Season:
    return start_season(
        tmp_path_factory.mktemp("render") / "season", now=T0, passphrase=PASS, kdf=fast_kdf()
    )


@pytest.fixture(scope="module")
def trust(shared: Season) -> TrustStore:
    return shared.trust()


def sealer(season: Season) -> SigningKey:
    return season.keys["print-qian"].signing


def numbered(n: int) -> Manifest:
    return typical_manifest(T0, package_id=f"SX27-INT-{n:04d}")


def test_every_encoder_gives_a_readable_symbol_of_the_same_version(shared: Season) -> None:
    text = seal_manifest(typical_manifest(T0), sealer(shared))
    versions = set()
    for name, encode in ENCODERS.items():
        symbol = encode(text)
        versions.add(symbol.version)
        assert symbol.size == 17 + 4 * symbol.version, name
        png = render_png(typical_manifest(T0), symbol)
        assert scan_label(png) == text, name
    assert len(versions) == 1


def test_typical_manifest_takes_version_17_q(shared: Season) -> None:
    """The documented size (docs/formats.md): a regression here changes printed labels."""
    symbol = encode_qr(seal_manifest(typical_manifest(T0), sealer(shared)))
    assert symbol.version <= 17
    assert symbol.designator == f"{symbol.version}-Q"


def test_png_label_decodes_and_verifies(shared: Season, trust: TrustStore) -> None:
    m = typical_manifest(T0)
    text = seal_manifest(m, sealer(shared))
    png = render_png(m, encode_qr(text))
    image = Image.open(io.BytesIO(png))
    assert image.info["dpi"][0] == pytest.approx(300, abs=0.01)
    assert image.size == (1181, 661)  # 100 x 56 mm at 300 dpi
    assert verify_label(scan_label(png), trust, now=T0).manifest == m


def test_label_text_is_bilingual_and_from_the_manifest() -> None:
    facts = LabelFacts.of(typical_manifest(T0))
    captions = [c for c, _ in facts.lines]
    assert captions == [
        "包号 Package",
        "考试 Exam",
        "送达 To",
        "份数 Copies",
        "封条 Seals",
        "启封 Window",
    ]
    values = dict(facts.lines)
    assert values["送达 To"] == "西安市第一考点 第3考场"
    assert values["封条 Seals"] == "S0012345, S0012346, S0012347"
    assert values["启封 Window"] == "2027-03-06 16:00–17:00 北京时间"  # 08:00 UTC = 16:00 CST
    assert "绝密" in facts.title


def test_chinese_glyphs_are_drawn_not_boxes() -> None:
    """The CJK font really renders: two different Chinese strings give different pixels."""
    from labels.fonts import CJK_FONT
    from labels.render import _font

    font = _font(CJK_FONT, 40)
    a, b = (font.getmask("西安考点"), font.getmask("第三考场"))
    assert a.getbbox() is not None
    assert bytes(a) != bytes(b)


def test_svg_label_is_valid_xml_with_chinese_text(shared: Season) -> None:
    m = typical_manifest(T0)
    svg = render_svg(m, encode_qr(seal_manifest(m, sealer(shared))))
    root = ElementTree.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "包号 Package" in texts
    assert "西安市第一考点 第3考场" in texts
    paths = list(root.iter(f"{ns}path"))
    assert len(paths) == 1
    assert paths[0].get("d", "").count("z") > 500  # every dark run of the QR code


def test_printer_path_pdf_to_150_dpi_raster_decodes_every_label(
    shared: Season, trust: TrustStore, tmp_path: Path
) -> None:
    """A full A4 sheet and a partial second page, rasterised as a print shop proof would be."""
    count = PER_PAGE + 3
    texts = {}
    pairs = []
    for n in range(count):
        m = numbered(n)
        text = seal_manifest(m, sealer(shared))
        texts[m.package_id] = text
        pairs.append((m, encode_qr(text)))
    pdf = tmp_path / "sheet.pdf"
    assert write_sheets(iter(pairs), pdf, total=count) == [pdf]
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    cjk = [line for line in fonts.stdout.splitlines() if "WenQuanYiMicroHei" in line]
    assert cjk
    assert all(line.split()[-5:-3] == ["yes", "yes"] for line in cjk)  # embedded, subset
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(pdf), str(tmp_path / "page")], check=True)
    seen = set()
    for page in sorted(tmp_path.glob("page-*.png")):
        image = Image.open(page).convert("L")
        width, height = image.size
        for row in range(ROWS):
            for col in range(COLUMNS):
                box = (
                    col * width // COLUMNS,
                    row * height // ROWS,
                    (col + 1) * width // COLUMNS,
                    (row + 1) * height // ROWS,
                )
                cell = image.crop(box)
                if not read_qr_texts(cell):
                    continue  # an empty cell on the last page
                verified = verify_label(scan_label(cell), trust, now=T0)
                seen.add(verified.manifest.package_id)
    assert seen == set(texts)


def test_large_batches_are_split_into_bounded_files(shared: Season, tmp_path: Path) -> None:
    text = seal_manifest(typical_manifest(T0), sealer(shared))
    symbol = encode_qr(text)
    count = 2 * PER_PAGE + 1
    pairs = ((typical_manifest(T0), symbol) for _ in range(count))
    advanced: list[int] = []
    files = write_sheets(
        pairs, tmp_path / "batch.pdf", total=count, pages_per_file=1, advance=advanced.append
    )
    assert [f.name for f in files] == ["batch.001.pdf", "batch.002.pdf", "batch.003.pdf"]
    assert sum(advanced) == count
    info = subprocess.run(["pdfinfo", str(files[0])], capture_output=True, text=True, check=True)
    assert re.search(r"^Pages:\s+1$", info.stdout, re.MULTILINE)


def test_long_seal_lists_wrap_and_are_elided() -> None:
    m = dataclasses.replace(
        typical_manifest(T0),
        copy_count=80,
        bag_size=10,
        seal_serials=tuple(f"S00123{i:02d}" for i in range(8)),
        closes_at=T0 + timedelta(days=6, hours=1),
    )
    values = dict(LabelFacts.of(m).lines)
    assert values["封条 Seals"].endswith("+2")
    assert values["启封 Window"].count("2027-") == 2  # the window spans two days
