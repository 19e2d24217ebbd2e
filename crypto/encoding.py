"""Byte-level encodings shared by every format: strict base64, canonical JSON, RFC 3339 times.

Rules:
- Base64 is the standard alphabet with padding; anything else is refused (no silent repair).
- Canonical JSON: UTF-8, keys sorted, no insignificant whitespace, no NaN. Signed JSON payloads
  are produced this way so that an independent verifier can re-derive the same bytes.
- Times are UTC, whole seconds, written ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

from crypto.errors import N_, FormatError

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes, *, what: str = "base64 field") -> bytes:
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if len(raw) % 4:
        raise FormatError(N_("{what} is not standard padded base64"), what=what)
    try:
        # validate=True refuses anything outside the alphabet (no silent skipping).
        out = base64.b64decode(raw, validate=True)
    except binascii.Error as e:
        raise FormatError(N_("{what} is not valid base64"), what=what) from e
    # Non-zero padding bits decode to the same bytes: refuse them so that one value has
    # exactly one encoding and no byte of a signed document can change unnoticed.
    if base64.b64encode(out) != raw:
        raise FormatError(N_("{what} is not canonical base64"), what=what)
    return out


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(N_("duplicate JSON key {key!r}"), key=key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    # JSON has no NaN or Infinity: Python's parser accepts them unless told not to.
    raise FormatError(N_("{name} is not a JSON number"), name=name)


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def parse_json(data: bytes | str, *, what: str) -> Any:
    """Parse untrusted JSON of any shape; duplicate keys are refused."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return _DECODER.decode(text)
    except FormatError as e:
        raise FormatError(N_("{what}: {error}"), what=what, error=e) from e
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise FormatError(N_("{what} is not valid JSON"), what=what) from e


def parse_json_object(data: bytes | str, *, what: str) -> dict[str, Any]:
    """Parse untrusted JSON that must be an object; duplicate keys are refused."""
    value = parse_json(data, what=what)
    if not isinstance(value, dict):
        raise FormatError(N_("{what} must be a JSON object"), what=what)
    return value


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, what: str = "time") -> datetime:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise FormatError(N_("{what} must be a UTC time written YYYY-MM-DDTHH:MM:SSZ"), what=what)
    try:
        # The regex fixed the shape; fromisoformat is the fast, strict date check, and reads
        # the final Z as UTC itself (a ``replace(tzinfo=UTC)`` would cost it seven times over).
        return datetime.fromisoformat(text)
    except ValueError as e:
        raise FormatError(
            N_("{what} is not a real date and time: {text!r}"), what=what, text=text
        ) from e


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class Fields:
    """Typed access to a parsed JSON object; each failure names the field and the document."""

    def __init__(self, obj: dict[str, Any], *, what: str) -> None:
        self.obj = obj
        self.what = what

    def _get(self, name: str) -> Any:
        if name not in self.obj:
            raise FormatError(N_("{what}: missing field {name!r}"), what=self.what, name=name)
        return self.obj[name]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise FormatError(
                N_("{what}: field {name!r} must be a string"), what=self.what, name=name
            )
        return value

    def opt_text(self, name: str) -> str | None:
        if self.obj.get(name) is None:
            return None
        return self.text(name)

    def integer(self, name: str) -> int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FormatError(
                N_("{what}: field {name!r} must be an integer"), what=self.what, name=name
            )
        return value

    def blob(self, name: str) -> bytes:
        return b64decode(self.text(name), what=f"{self.what}: field {name!r}")

    def time(self, name: str) -> datetime:
        return parse_time(self._get(name), what=f"{self.what}: field {name!r}")

    def opt_time(self, name: str) -> datetime | None:
        if self.obj.get(name) is None:
            return None
        return self.time(name)

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FormatError(
                N_("{what}: field {name!r} must be a list of strings"), what=self.what, name=name
            )
        return tuple(value)

    def items(self, name: str) -> list[Any]:
        value = self._get(name)
        if not isinstance(value, list):
            raise FormatError(
                N_("{what}: field {name!r} must be a list"), what=self.what, name=name
            )
        return value

    def sub(self, name: str) -> Fields:
        value = self._get(name)
        if not isinstance(value, dict):
            raise FormatError(
                N_("{what}: field {name!r} must be an object"), what=self.what, name=name
            )
        return Fields(value, what=f"{self.what}.{name}")

    def expect(self, name: str, expected: str) -> None:
        if self._get(name) != expected:
            raise FormatError(
                N_("{what}: field {name!r} must be {expected!r}"),
                what=self.what,
                name=name,
                expected=expected,
            )


def distinct_prefixes(a: str, b: str, *, least: int = 16) -> tuple[str, str]:
    """Prefixes of two ids (hex digests) long enough to tell them apart in a message: ``least``
    characters, or more up to the first character where they differ (whole if equal)."""
    n = least
    while n < max(len(a), len(b)) and a[:n] == b[:n]:
        n += 1
    return a[:n], b[:n]
