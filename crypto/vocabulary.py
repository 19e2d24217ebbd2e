"""One vocabulary for every parser, the API and the CLI: ids, secrecy levels, time windows.

It lives on the ground floor (beside ``crypto.errors``) so that labels, keys, the custody core
and the edges all say the same thing the same way.

Rules:
- An id (package, paper, exam, position, session, person, seal serial) is 1-64 characters,
  each a letter or a digit of any script, or one of ``.``, ``_``, ``-``: ``面试01`` is an id
  everywhere (proposition, manifest, event, API path) or nowhere. No whitespace, no control
  character, no markup.
- Three secrecy levels (秘密 / 机密 / 绝密): one spelling in text and on the command line
  (``secret``, ``confidential``, ``top-secret``), one integer in QR payloads (1, 2, 3).
- A window is [start, end] in UTC with end after start; an instant inside it may equal
  either end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from crypto.errors import N_, FormatError

MAX_ID = 64
ID_PUNCTUATION = frozenset("._-")


def is_id(value: object) -> bool:
    # str.isalnum() is every character's isalnum() (and at least one character): with the
    # three punctuation marks stood in for by a letter, one C call checks the whole id.
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID
        and value.replace(".", "a").replace("_", "a").replace("-", "a").isalnum()
    )


def check_id(value: object, what: str) -> str:
    """``value`` if it is an id, else a ``FormatError`` naming ``what``."""
    if not is_id(value):
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise FormatError(
            N_("{what} {shown} must be 1-{max_id} letters or digits (any script), '.', '_' or '-'"),
            what=what,
            shown=shown,
            max_id=MAX_ID,
        )
    assert isinstance(value, str)
    return value


class Classification(IntEnum):
    """China's three secrecy levels; the integer is what a QR payload carries."""

    SECRET = 1  # 秘密 mimi
    CONFIDENTIAL = 2  # 机密 jimi
    TOP_SECRET = 3  # 绝密 juemi

    @property
    def slug(self) -> str:
        """The one spelling in text: ``secret``, ``confidential``, ``top-secret``."""
        return self.name.lower().replace("_", "-")

    @property
    def label(self) -> str:
        return {1: "秘密 Secret", 2: "机密 Confidential", 3: "绝密 Top secret"}[self.value]

    @classmethod
    def from_slug(cls, text: object) -> Classification:
        for level in cls:
            if level.slug == text:
                return level
        spellings = ", ".join(c.slug for c in cls)
        raise FormatError(
            N_("classification {text!r} is not one of {spellings}"), text=text, spellings=spellings
        )


@dataclass(frozen=True)
class Window:
    """A time window in UTC (opening, distribution)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise FormatError(N_("a window's start and end are UTC times"))
        if self.end <= self.start:
            raise FormatError(N_("a window ends after it starts"))

    def contains(self, at: datetime) -> bool:
        return self.start <= at <= self.end
