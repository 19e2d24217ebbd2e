"""The command line's words: one message catalogue (gettext), Simplified Chinese and English.

Rules:
- Every message, help text and line of human output the CLI prints goes through ``_()`` (or
  ``ngettext``). The message ids are English; the Chinese catalogue is
  ``custody/locale/zh_CN/LC_MESSAGES/custody.po``, compiled to ``custody.mo`` next to it with
  Babel (``pybabel compile -d custody/locale -D custody``). At run time only the standard
  library's ``gettext`` reads the ``.mo`` file: nothing heavy is imported.
- The language comes from the locale, as POSIX programs choose it: the first of
  ``LC_ALL``, ``LC_MESSAGES`` and ``LANG`` that is set decides. ``zh...`` (``zh_CN.UTF-8``)
  gives Chinese; anything else (``C.UTF-8``, ``POSIX``, ``en_GB.UTF-8``) gives English. With
  none of them set the product speaks Chinese, its users' language (Chinese first).
  ``CUSTODY_LANG`` (``zh`` or ``en``) overrides the locale for custody alone.
- A refusal (``CustodyError``) carries its message as an English template and parameters
  (``N_()`` in ``crypto.errors``); ``error_text`` gives it in a language: the CLI's (the locale)
  or the one an HTTP request asks for (``negotiate`` reads ``Accept-Language``).
- Times are stored and exchanged in UTC (RFC 3339); people read them in the authority's time
  zone, named (``Asia/Shanghai`` unless the home's ``custody.json`` names another).
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crypto.errors import CustodyError, Said

DOMAIN = "custody"
LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT_TIME_ZONE = "Asia/Shanghai"
LANG_ENV = "CUSTODY_LANG"


def language(environ: dict[str, str] | None = None) -> str:
    """``zh`` or ``en``, from CUSTODY_LANG, else the locale (unset: ``zh``)."""
    env = os.environ if environ is None else environ
    forced = env.get(LANG_ENV, "").strip().lower()
    if forced:
        return "zh" if forced.startswith("zh") else "en"
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "").strip()
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "zh"


@lru_cache(maxsize=2)
def _catalogue(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()  # the message ids are the English text
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=["zh_CN"], fallback=True)


def _(message: str) -> str:
    """``message`` in the user's language."""
    return _catalogue(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the user's language."""
    return _catalogue(language()).ngettext(singular, plural, n)


def gettext_for(lang: str) -> Callable[[str], str]:
    """The catalogue lookup of ``lang`` (``zh`` or ``en``)."""
    return _catalogue("en" if lang == "en" else "zh").gettext


def said_in(said: Said, lang: str | None = None) -> str:
    """A sentence the service wrote (an incident's detail, a finding) in ``lang`` (default:
    the locale's language)."""
    return said.render(gettext_for(language() if lang is None else lang))


def error_text(error: CustodyError, lang: str | None = None) -> tuple[str, str | None]:
    """A refusal's (message, hint) in ``lang`` (default: the locale's language)."""
    return error.render(gettext_for(language() if lang is None else lang))


def error_body(error: CustodyError, lang: str) -> dict[str, str]:
    """The error's JSON body: ``error`` (the stable code), ``message`` and ``hint``? in English
    (as logged; unchanged for every client), and for a Chinese reader (``lang`` ``zh``) also
    ``message_zh`` and ``hint_zh``? (docs/formats.md, "Errors")."""
    body = error.as_dict()
    if lang == "zh":
        message, hint = error_text(error, "zh")
        body["message_zh"] = message
        if hint:
            body["hint_zh"] = hint
    return body


def negotiate(accept_language: str | None) -> str:
    """``zh`` or ``en`` for an HTTP ``Accept-Language`` header (RFC 9110 section 12.5.4).

    The supported language with the highest weight wins (a tie goes to the one listed first);
    without the header, or when it names neither (``*``, ``fr``), Chinese: the users' language.
    """
    best, best_q = "zh", -1.0
    for part in (accept_language or "").split(","):
        tag, _sep, rest = part.strip().partition(";")
        tag = tag.strip().lower()
        lang = "zh" if tag == "zh" or tag.startswith("zh-") else None
        if tag == "en" or tag.startswith("en-"):
            lang = "en"
        if lang is None:
            continue
        q = 1.0
        for param in rest.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q and q > 0:
            best, best_q = lang, q
    return best


@lru_cache(maxsize=8)
def time_zone(name: str = DEFAULT_TIME_ZONE) -> tzinfo:
    """The zone named ``name`` (IANA); Asia/Shanghai is UTC+8 even without a zone database."""
    try:
        from zoneinfo import ZoneInfo  # noqa: PLC0415 - only when a time is shown

        return ZoneInfo(name)
    except (ValueError, OSError, KeyError) as e:  # ZoneInfoNotFoundError is a KeyError
        if name == DEFAULT_TIME_ZONE:
            return timezone(timedelta(hours=8), "CST")
        raise ValueError(f"unknown time zone {name!r}") from e


def show_time(moment: datetime | None, zone: str = DEFAULT_TIME_ZONE) -> str:
    """A stored UTC time as people read it: in the authority's zone, with the zone's name."""
    if moment is None:
        return "-"
    try:
        local = moment.astimezone(time_zone(zone))
    except OverflowError:  # past the calendar's ends in that zone (a period "to 9999"): UTC
        return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}"
