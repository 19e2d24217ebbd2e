"""Where notifications may go: the transport rules for SMTP relays.

Rules (pure: strings in, a value or a ``FormatError``/``UsageError`` out; nothing resolved):
- A loopback host is ``localhost`` or a literal address in 127.0.0.0/8 or ``::1``. Names are
  never resolved: a name that happens to resolve to loopback is not loopback here.
- An SMTP relay may be spoken to in clear only when the operator said so explicitly and the
  relay is loopback; everywhere else the client uses TLS (STARTTLS or implicit TLS).
"""

from __future__ import annotations

import ipaddress

from custody.errors import UsageError


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


def check_plain_smtp(host: str, *, allow_plain_loopback: bool) -> None:
    """Refuse a relay configured for clear text (``UsageError``) unless it is loopback."""
    if allow_plain_loopback and not is_loopback_host(host):
        raise UsageError(
            f"SMTP relay {host!r} is not a loopback address: e-mail to it goes over TLS only",
            hint="plain SMTP is for tests and rehearsals with a relay on 127.0.0.1 or ::1",
        )


__all__ = ["check_plain_smtp", "is_loopback_host"]
