"""QR symbols for label text (edge): one matrix type, three interchangeable encoders.

Rules:
- Error correction is Q (25% of codewords recoverable), never boosted silently, so the version
  printed on a label is the one documented for its payload size.
- Every encoder returns the same ``QrSymbol`` (a square matrix of dark/light modules without the
  quiet zone); renderers add the 4-module quiet zone QR requires.
- The default encoder is the fastest one in ``bench/bench_labels.py`` that produced a symbol the
  scanner decodes back to the same text (see docs/benchmarks.md, "Labels").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import qrcode
import qrcode.constants
import segno
import zxingcpp

from crypto.errors import N_, FormatError

QUIET_ZONE = 4
Backend = Literal["zxing", "segno", "qrcode"]
DEFAULT_BACKEND: Backend = "zxing"


@dataclass(frozen=True)
class QrSymbol:
    """A QR code's modules: ``rows[y][x]`` is 1 for dark. No quiet zone."""

    version: int
    rows: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def designator(self) -> str:
        return f"{self.version}-Q"

    def runs(self) -> list[tuple[int, int, int]]:
        """Horizontal runs of dark modules as (row, start column, length): fewer shapes to draw."""
        dark = np.frombuffer(b"".join(self.rows), dtype=np.int8).reshape(self.size, self.size)
        edges = np.diff(np.pad(dark, ((0, 0), (1, 1))), axis=1)
        starts = np.argwhere(edges == 1)
        ends = np.argwhere(edges == -1)
        # row-major order pairs each run's start with its end
        return [(int(y), int(x), int(e - x)) for (y, x), e in zip(starts, ends[:, 1], strict=True)]


def _from_matrix(rows: list[bytes]) -> QrSymbol:
    size = len(rows)
    return QrSymbol((size - 17) // 4, tuple(rows))


def _segno(text: str) -> QrSymbol:
    qr = segno.make_qr(text, error="q", boost_error=False)
    return QrSymbol(int(qr.version), tuple(bytes(r) for r in qr.matrix))


def _qrcode(text: str) -> QrSymbol:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, border=0)
    qr.add_data(text)
    qr.make(fit=True)
    return _from_matrix([bytes(1 if m else 0 for m in row) for row in qr.get_matrix()])


def _zxing(text: str) -> QrSymbol:
    barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="Q")
    image = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=1, add_quiet_zones=False))
    dark = (image < 128).astype(np.uint8)
    return _from_matrix([row.tobytes() for row in dark])


ENCODERS: dict[Backend, Callable[[str], QrSymbol]] = {
    "zxing": _zxing,
    "segno": _segno,
    "qrcode": _qrcode,
}


def encode_qr(text: str, backend: Backend = DEFAULT_BACKEND) -> QrSymbol:
    """The QR symbol (error correction Q) for a label's text."""
    try:
        return ENCODERS[backend](text)
    except (ValueError, RuntimeError) as e:
        raise FormatError(
            N_("cannot encode {n_text} characters as a QR code: {e}"), n_text=len(text), e=e
        ) from e
