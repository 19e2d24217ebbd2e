"""Deliver the incident outbox: webhooks (signed JSON) and e-mail (SMTP, STARTTLS if offered).

Rows are written by the incident desk in the same transaction as the incident change, so a
notification is never lost: if the process dies after the commit, the row is still pending.

Rules:
- At-least-once delivery, never blind duplicates: each row carries an idempotency key (one per
  incident statement and recipient), sent as the ``Idempotency-Key`` header (webhooks) and in
  ``Message-ID`` / ``X-Custody-Idempotency-Key`` (e-mail). A crash between sending and marking
  the row sent re-sends it with the same key; receivers drop a key they have seen.
- A row is leased (``lease_until``) before it is sent, so two deliverers never send it at once;
  a lease left by a dead deliverer expires and the row is taken again.
- A failure schedules the next attempt with exponential backoff (``base * 2^(attempt-1)``,
  capped at ``max_delay``); after ``max_attempts`` the row is ``dead`` and reported.
- Webhook body: the DSSE envelope signed by the authority's system key (payload type
  ``application/vnd.custody.notification.v1+json``); a 2xx answer is a delivery, anything
  else (or no answer) a failure.
- Time is an argument (``now``), as everywhere in the rules.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine, or_, select, update

from crypto.dsse import parse_envelope
from crypto.encoding import format_time
from custody.store.incident_tables import OutboxRow

OUTBOX = OutboxRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Mailer:
    """An SMTP relay. STARTTLS is used whenever the server offers it (``require_tls``: refuse
    to send in clear when it does not)."""

    host: str
    port: int
    sender: str
    ssl_context: ssl.SSLContext | None = None
    require_tls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "failed": [list(f) for f in self.failed], "dead": self.dead}


class DeliveryError(Exception):
    """One attempt failed (kept inside this module: a failure is a retry, not a refusal)."""


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    delay: timedelta = base * (2 ** max(attempts - 1, 0))
    return min(cap, delay)


def _send_webhook(row: object, timeout: float) -> None:
    payload = bytes(row.payload)  # type: ignore[attr-defined]
    env = parse_envelope(payload, what="outbox payload")
    key_ids = ",".join(s.keyid or "" for s in env.signatures)
    try:
        response = httpx.post(
            row.address,  # type: ignore[attr-defined]
            content=payload,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": row.idempotency_key,  # type: ignore[attr-defined]
                "X-Custody-Key-Id": key_ids,
                "X-Custody-Incident": row.incident_id,  # type: ignore[attr-defined]
            },
            timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}")


def _send_email(row: object, mailer: Mailer | None) -> None:
    if mailer is None:
        raise DeliveryError("no SMTP relay configured")
    payload = bytes(row.payload)  # type: ignore[attr-defined]
    env = parse_envelope(payload, what="outbox payload")
    note = json.loads(env.payload)
    msg = EmailMessage()
    msg["From"] = mailer.sender
    msg["To"] = row.address  # type: ignore[attr-defined]
    msg["Subject"] = row.subject  # type: ignore[attr-defined]
    ikey = row.idempotency_key  # type: ignore[attr-defined]
    msg["Message-ID"] = f"<{ikey}@custody.invalid>"
    msg["X-Custody-Idempotency-Key"] = ikey
    lines = [
        f"Incident {note['incident']}: {note['kind']} ({note['severity']}), {note['action']}",
        f"Level: {note['level_title']}; acknowledge by {note['ack_deadline']}",
        f"Detail: {note['detail']}",
        f"Packages in scope: {', '.join(note['scope'].get('packages', [])) or '-'}",
        f"Frozen: {', '.join(note['containment'].get('frozen', [])) or '-'}",
        "",
        "The attached notification.dsse.json is signed by the authority's system key.",
    ]
    msg.set_content("\n".join(lines))
    msg.add_attachment(
        payload, maintype="application", subtype="json", filename="notification.dsse.json"
    )
    try:
        with smtplib.SMTP(mailer.host, mailer.port, timeout=mailer.timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=mailer.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            elif mailer.require_tls:
                raise DeliveryError("the SMTP server does not offer STARTTLS")
            if mailer.username and mailer.password:
                smtp.login(mailer.username, mailer.password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e


def deliver_outbox(
    engine: Engine,
    now: datetime,
    *,
    mailer: Mailer | None = None,
    base_delay: timedelta = timedelta(seconds=30),
    max_delay: timedelta = timedelta(hours=1),
    max_attempts: int = 10,
    lease: timedelta = timedelta(minutes=5),
    limit: int = 100,
    http_timeout: float = 5.0,
    after_send: Callable[[int], None] | None = None,
) -> DeliveryReport:
    """Send every due row once; mark each sent, retried later, or dead.

    ``after_send`` is called between a successful send and the row being marked sent (tests
    kill the process there to prove a crash re-sends with the same idempotency key).
    """
    stamp = format_time(now)
    report = DeliveryReport()
    with engine.begin() as conn:
        rows = list(
            conn.execute(
                select(OUTBOX)
                .where(
                    OUTBOX.c.status == "pending",
                    OUTBOX.c.next_attempt_at <= stamp,
                    or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until <= stamp),
                )
                .order_by(OUTBOX.c.id)
                .limit(limit)
            )
        )
        if rows:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id.in_([r.id for r in rows]))
                .values(lease_until=format_time(now + lease))
            )
    for row in rows:
        try:
            if row.channel == "webhook":
                _send_webhook(row, http_timeout)
            else:
                _send_email(row, mailer)
        except DeliveryError as e:
            attempts = row.attempts + 1
            dead = attempts >= max_attempts
            with engine.begin() as conn:
                conn.execute(
                    update(OUTBOX)
                    .where(OUTBOX.c.id == row.id)
                    .values(
                        attempts=attempts,
                        status="dead" if dead else "pending",
                        next_attempt_at=format_time(now + backoff(attempts, base_delay, max_delay)),
                        lease_until=None,
                        last_error=str(e)[:500],
                    )
                )
            (report.dead.append(row.id) if dead else report.failed.append((row.id, str(e))))
            continue
        if after_send is not None:
            after_send(row.id)
        with engine.begin() as conn:
            conn.execute(
                update(OUTBOX)
                .where(OUTBOX.c.id == row.id)
                .values(
                    attempts=row.attempts + 1,
                    status="sent",
                    sent_at=stamp,
                    lease_until=None,
                    last_error=None,
                )
            )
        report.sent.append(row.id)
    return report


def outbox_rows(engine: Engine, incident_id: str | None = None) -> list[dict[str, object]]:
    with engine.connect() as conn:
        q = select(
            OUTBOX.c.id,
            OUTBOX.c.incident_id,
            OUTBOX.c.channel,
            OUTBOX.c.target,
            OUTBOX.c.status,
            OUTBOX.c.attempts,
            OUTBOX.c.next_attempt_at,
            OUTBOX.c.idempotency_key,
            OUTBOX.c.last_error,
        ).order_by(OUTBOX.c.id)
        if incident_id is not None:
            q = q.where(OUTBOX.c.incident_id == incident_id)
        return [dict(r._mapping) for r in conn.execute(q)]
