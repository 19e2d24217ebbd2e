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
- Times are stored and exchanged in UTC (RFC 3339); people read them in the authority's time
  zone, named (``Asia/Shanghai`` unless the home's ``custody.json`` names another).
"""

from __future__ import annotations

import gettext
import os
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from pathlib import Path

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
    local = moment.astimezone(time_zone(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} {zone}"
