"""Where notifications may go: the transport rules for webhook URLs and SMTP relays.

Rules (pure: strings in, a value or a ``FormatError``/``UsageError`` out; nothing resolved):
- A loopback host is ``localhost`` or a literal address in 127.0.0.0/8 or ``::1``. Names are
  never resolved: a name that happens to resolve to loopback is not loopback here.
- A webhook URL is ``https://HOST...``; ``http://`` only when HOST is loopback (tests and
  rehearsals with a receiver on the same machine). Any other scheme, or no host, is refused.
- An SMTP relay may be spoken to in clear only when the operator said so explicitly and the
  relay is loopback; everywhere else the client uses TLS (STARTTLS or implicit TLS).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from custody.errors import N_, FormatError, UsageError


def is_loopback_host(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1`` (brackets allowed), written literally."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, *, what: str) -> str:
    """Return ``url`` if a notification may be posted to it, else raise ``FormatError``.

    ``what`` names the recipient in the message (e.g. ``incidents.json recipient 'site'``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as e:
        raise FormatError(N_("{what}: {url!r} is not a URL"), what=what, url=url) from e
    if not host:
        raise FormatError(N_("{what}: webhook URL {url!r} names no host"), what=what, url=url)
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    if parts.scheme == "http":
        raise FormatError(
            N_(
                "{what}: webhook URL {url!r} is plain http to a host that is "
                "not loopback; notifications leave the machine over https "
                "only"
            ),
            what=what,
            url=url,
        )
    raise FormatError(N_("{what}: webhook URL {url!r} must be https://"), what=what, url=url)


def check_plain_smtp(host: str, *, allow_plain_loopback: bool) -> None:
    """Refuse a relay configured for clear text (``UsageError``) unless it is loopback."""
    if allow_plain_loopback and not is_loopback_host(host):
        raise UsageError(
            N_("SMTP relay {host!r} is not a loopback address: e-mail to it goes over TLS only"),
            hint=N_("plain SMTP is for tests and rehearsals with a relay on 127.0.0.1 or ::1"),
            host=host,
        )


__all__ = ["check_plain_smtp", "check_webhook_url", "is_loopback_host"]
