"""Reading label text from images (edge): zxing-cpp restricted to QR codes.

Rules:
- Exactly one QR code per image: none, or several, is a ``ScanError`` (the person re-aims the
  camera); a QR code whose content is not a custody label is a ``FormatError`` from the codec.
- Images are opened with Pillow's decompression-bomb guard on; an unreadable file is a
  ``FormatError``. Before any pixel is decoded, the header alone must say PNG or JPEG and at
  most ``max_pixels`` pixels (``ImageTooLargeError`` otherwise): a small file that inflates
  to a huge bitmap is refused for the cost of reading its header.
- The scanner searches rotations and inverted codes and uses the local-average binariser, which
  copes with uneven light; this module returns text only and trusts none of it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError

from crypto.errors import N_, FormatError, ImageTooLargeError
from labels.payload import PREFIX


class ScanError(FormatError):
    """No QR code, or more than one, in the image: scan again (nothing was read)."""

    code = "scan"


FORMATS = ("PNG", "JPEG")
MAX_PIXELS = 24_000_000  # a 6000 x 4000 photo; a label needs far less


def open_image(data: bytes | Path, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open untrusted image bytes or a file as a grayscale PIL image (PNG or JPEG, at most
    ``max_pixels`` decoded pixels, checked from the header before decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            source = io.BytesIO(data) if isinstance(data, bytes) else data
            with Image.open(source, formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageTooLargeError(
                        N_("image of {width} x {height} pixels; at most {max_pixels} are decoded"),
                        hint=N_("send a smaller photo of the label"),
                        width=width,
                        height=height,
                        max_pixels=max_pixels,
                    )
                image.load()
                return image.convert("L")
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
        SyntaxError,
    ) as e:
        raise FormatError(N_("not a readable image (PNG or JPEG)")) from e


def _read(image: Image.Image, binarizer: zxingcpp.Binarizer) -> list[str]:
    found = zxingcpp.read_barcodes(
        image,
        formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        try_rotate=True,
        try_downscale=True,
        try_invert=True,
        binarizer=binarizer,
    )
    return [b.text for b in found if b.valid]


def read_qr_texts(image: Image.Image) -> list[str]:
    """Every QR code zxing-cpp finds in the image, as text.

    Passes, until one finds a code: the local-average binariser (uneven light); the global
    histogram (small modules on a clean print: a 46 mm version-17 code at 150 dpi is under
    3 pixels a module); the image upscaled twice.
    """
    texts = _read(image, zxingcpp.Binarizer.LocalAverage)
    if not texts:
        texts = _read(image, zxingcpp.Binarizer.GlobalHistogram)
    if not texts and max(image.size) <= 4000:
        bigger = image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
        texts = _read(bigger, zxingcpp.Binarizer.LocalAverage)
    return texts


def scan_label(image: Image.Image | bytes | Path, *, max_pixels: int = MAX_PIXELS) -> str:
    """The label text of the one QR code in the image; refuses none, several, or foreign."""
    picture = image if isinstance(image, Image.Image) else open_image(image, max_pixels=max_pixels)
    texts = read_qr_texts(picture)
    if not texts:
        raise ScanError(
            N_("no QR code found in the image"), hint=N_("hold the label flat, in good light")
        )
    if len(texts) > 1:
        raise ScanError(
            N_("{n_texts} QR codes in the image; scan one label at a time"),
            hint=N_("cover or crop the other labels"),
            n_texts=len(texts),
        )
    text = texts[0]
    if not text.startswith(PREFIX):
        raise FormatError(
            N_("the QR code does not hold a custody label (no {prefix} prefix)"), prefix=PREFIX
        )
    return text
