"""The CJK font that ships with the package (WenQuanYi Micro Hei, GBK subset, Apache-2.0).

Labels and reports print with it by default, so they need no system font; see README.md here
for its licence and how the subset was made. This module only names the file: it reads nothing.
"""

from __future__ import annotations

from pathlib import Path

CJK_FONT = Path(__file__).with_name("wqy-microhei-gbk.ttf")
CJK_FONT_FAMILY = "WenQuanYi Micro Hei"
