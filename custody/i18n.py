"""Placeholder for the message catalogue: ``_`` returns its English message unchanged.

The real module (gettext catalogue in zh-CN and en, chosen by the locale) replaces this one;
every human-facing string is written as ``_("English text")`` so it is found there.
"""

from __future__ import annotations


def _(message: str) -> str:
    return message
