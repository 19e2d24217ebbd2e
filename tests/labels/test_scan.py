"""Scanning camera-like photos of labels, and refusing images that hold no single label."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
import segno
from PIL import Image, ImageFilter

from crypto.signing import SigningKey
from custody.errors import CustodyError, FormatError
from labels.payload import seal_manifest
from labels.qr import encode_qr
from labels.render import render_png
from labels.scan import ScanError, open_image, scan_label
from tests.conftest import T0
from tests.labels.fixtures import typical_manifest

KEY = SigningKey(bytes(range(32)))  # a fixed key: these tests are about pixels, not trust


@pytest.fixture(scope="module")
def text() -> str:
    return seal_manifest(typical_manifest(T0), KEY)


@pytest.fixture(scope="module")
def label(text: str) -> Image.Image:
    """A label printed at 200 dpi: a phone photo of a 46 mm code sees about this much."""
    png = render_png(typical_manifest(T0), encode_qr(text), dpi=200)
    return Image.open(io.BytesIO(png)).convert("L")


def _on_desk(image: Image.Image) -> Image.Image:
    """The label on a grey desk, with room to rotate."""
    desk = Image.new("L", (image.width + 300, image.height + 300), 150)
    desk.paste(image, (150, 150))
    return desk


def rotate(deg: float) -> Callable[[Image.Image], Image.Image]:
    def f(img: Image.Image) -> Image.Image:
        return _on_desk(img).rotate(
            deg, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=150
        )

    return f


def perspective(img: Image.Image) -> Image.Image:
    """A phone held at an angle: the far edge shorter than the near one (keystone)."""
    desk = _on_desk(img)
    w, h = desk.size
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(w * 0.12, h * 0.05), (w * 0.9, 0), (w, h), (0, h * 0.92)]
    coeffs = _perspective_coeffs(dst, src)
    return desk.transform(
        (w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=150
    )


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, dtype=float)
    b = np.array([c for pair in dst for c in pair], dtype=float)
    return [float(c) for c in np.linalg.solve(a, b)]


def blur(img: Image.Image, radius: float = 1.6) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius=radius))


def noise(img: Image.Image, sigma: float = 28) -> Image.Image:
    rng = np.random.default_rng(7)
    pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, sigma, (img.height, img.width))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def jpeg60(img: Image.Image) -> Image.Image:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=60)
    return Image.open(io.BytesIO(out.getvalue())).convert("L")


def uneven_light(img: Image.Image) -> Image.Image:
    """A lamp on one side: brightness falls from 100% to 35% across the label."""
    pixels = np.asarray(img, dtype=np.float64)
    ramp = np.linspace(1.0, 0.35, img.width)[None, :]
    shade = np.linspace(1.0, 0.8, img.height)[:, None]
    return Image.fromarray((pixels * ramp * shade).astype(np.uint8))


def chain(*steps: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def f(img: Image.Image) -> Image.Image:
        for step in steps:
            img = step(img)
        return img

    return f


DISTORTIONS = [
    ("rotated 15 degrees", rotate(15)),
    ("rotated 30 degrees", rotate(30)),
    ("rotated 90 degrees", rotate(90)),
    ("rotated -22 degrees", rotate(-22)),
    ("perspective", perspective),
    ("gaussian blur", blur),
    ("noise", noise),
    ("jpeg q60", jpeg60),
    ("uneven lighting", uneven_light),
    (
        "photo: tilt, milder blur and noise, light, jpeg",
        chain(
            rotate(20),
            perspective,
            lambda i: blur(i, 1.0),
            lambda i: noise(i, 15),
            uneven_light,
            jpeg60,
        ),
    ),
]


@pytest.mark.parametrize("distort", [pytest.param(f, id=n) for n, f in DISTORTIONS])
def test_distorted_photos_still_decode(
    label: Image.Image, text: str, distort: Callable[[Image.Image], Image.Image]
) -> None:
    assert scan_label(distort(label)) == text


def test_scans_from_file_bytes(label: Image.Image, text: str) -> None:
    out = io.BytesIO()
    jpeg60(rotate(15)(label)).save(out, format="JPEG", quality=60)
    assert scan_label(out.getvalue()) == text


def _two_labels(label: Image.Image) -> Image.Image:
    both = Image.new("L", (label.width, label.height * 2 + 40), 255)
    both.paste(label, (0, 0))
    both.paste(label, (0, label.height + 40))
    return both


def _qr_of(content: str) -> Image.Image:
    out = io.BytesIO()
    segno.make_qr(content, error="m").save(out, kind="png", scale=6)
    return Image.open(io.BytesIO(out.getvalue()))


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


REFUSALS = [
    ("blank image", lambda lab: Image.new("L", (800, 600), 255), ScanError),
    (
        "no QR, only text",
        lambda lab: lab.crop((lab.width // 2, 0, lab.width, lab.height)),
        ScanError,
    ),
    ("several QR codes", _two_labels, ScanError),
    ("QR of a web address", lambda lab: _qr_of("https://example.com/ticket/42"), FormatError),
    ("QR of another version", lambda lab: _qr_of("CP9:0000"), FormatError),
    ("not an image", lambda lab: b"%PDF-1.4 not an image", FormatError),
    ("truncated PNG", lambda lab: _png(lab)[:200], FormatError),
]


@pytest.mark.parametrize(("make", "error"), [pytest.param(m, e, id=n) for n, m, e in REFUSALS])
def test_scan_refusals(
    label: Image.Image,
    make: Callable[[Image.Image], Image.Image | bytes],
    error: type[CustodyError],
) -> None:
    subject = make(label)
    with pytest.raises(error) as caught:
        scan_label(subject)  # the scanner itself refuses: foreign content never reaches trust
    assert caught.type is error


def test_decompression_bomb_image_is_refused() -> None:
    """A tiny PNG that declares a gigantic canvas is refused before it is decoded."""
    big = Image.new("1", (20000, 20000))
    out = io.BytesIO()
    big.save(out, format="PNG", optimize=True)
    with pytest.raises(FormatError):
        open_image(out.getvalue())
