"""Deliver the incident outbox: webhooks (signed JSON over https) and e-mail (SMTP over TLS).

Rows are written by the incident desk in the same transaction as the incident change, so a
notification is never lost: if the process dies after the commit, the row is still pending.

Rules:
- At-least-once delivery, never blind duplicates: each row carries an idempotency key (one per
  incident statement and recipient), sent as the ``Idempotency-Key`` header (webhooks) and in
  ``Message-ID`` / ``X-Custody-Idempotency-Key`` (e-mail). A crash between sending and marking
  the row sent re-sends it with the same key; receivers drop a key they have seen.
- A row is leased (``lease_until``) before it is sent, so two deliverers never send it at once:
  the lease is taken under ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` serialises deliverers), so a row another deliverer is leasing is skipped,
  not read twice. A lease left by a dead deliverer expires and the row is taken again.
- A lease is checked when the row is marked: the update names the lease it took (its
  ``lease_until``, which only grows from one lease to the next), so a deliverer whose lease
  expired and was taken over changes nothing and reports the row as ``lost``.
- E-mail rows wait (they are not attempted, and no attempt is counted) while no SMTP relay is
  configured; they are reported as ``waiting``.
- A failure schedules the next attempt with exponential backoff (``base * 2^(attempt-1)``,
  capped at ``max_delay``); after ``max_attempts`` (about a day of retries by default) the row
  is ``dead`` and reported; ``requeue_dead`` puts dead rows back, due at once, with their
  attempts reset (``custody incident outbox requeue``).
- Webhook body: the DSSE envelope signed by the authority's system key (payload type
  ``application/vnd.custody.notification.v1+json``); a 2xx answer is a delivery, anything
  else (or no answer) a failure.
- Transport (``custody.incidents.endpoints``): a webhook goes to an ``https://`` URL, or
  ``http://`` on loopback only; a row whose URL breaks that rule is never sent (dead at once:
  the policy check when ``incidents.json`` is read is the first line, this the second).
  E-mail goes over STARTTLS (verified with the default trust store unless the mailer names a
  context) or implicit TLS; clear text only when the mailer allows it and the relay is
  loopback, and a mailer allowing it for any other host is refused when it is made.
- Time is an argument (``now``), as everywhere in the rules.
- No SQL here: the rows are leased, marked and listed through ``custody/store/outbox.py``.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx

from crypto.dsse import parse_envelope
from crypto.encoding import parse_time
from custody.errors import N_, FormatError, NotFoundError, Phrase
from custody.i18n import DEFAULT_TIME_ZONE, show_time
from custody.incidents.detect import KIND_NAMES
from custody.incidents.endpoints import check_plain_smtp, check_webhook_url, is_loopback_host
from custody.incidents.policy import SEVERITY_NAMES
from custody.store import outbox as store
from custody.store.handles import Database
from custody.store.outbox import Notification


@dataclass(frozen=True)
class Mailer:
    """An SMTP relay, spoken to over TLS.

    STARTTLS by default (a relay that does not offer it gets nothing), or implicit TLS
    (``implicit_tls``, SMTPS, usually port 465); the certificate is checked with
    ``ssl_context``, else the system's default trust store. ``allow_plain_loopback`` (tests and
    rehearsals only) lets a loopback relay that offers no STARTTLS receive in clear; set for
    any other host it is a ``UsageError`` here, before anything is sent.
    """

    host: str
    port: int
    sender: str
    _: KW_ONLY
    ssl_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    allow_plain_loopback: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        check_plain_smtp(self.host, allow_plain_loopback=self.allow_plain_loopback)

    def tls_context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    @property
    def may_send_plain(self) -> bool:
        return self.allow_plain_loopback and is_loopback_host(self.host)


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    waiting: int = 0  # e-mail rows due, held back: no SMTP relay configured
    lost: list[int] = field(default_factory=list)  # sent, but the lease had been taken over

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed": [list(f) for f in self.failed],
            "dead": self.dead,
            "waiting": self.waiting,
            "lost": self.lost,
        }


class DeliveryError(Exception):
    """One attempt failed (kept inside this module: a failure is a retry, not a refusal)."""


class UndeliverableError(DeliveryError):
    """The row can never be sent as it stands (a target the transport rules refuse): dead."""


def backoff(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    delay: timedelta = base * (2 ** max(attempts - 1, 0))
    return min(cap, delay)


def _send_webhook(row: Notification, timeout: float) -> None:
    try:
        url = check_webhook_url(row.address, what=f"recipient {row.target!r}")
    except FormatError as e:
        raise UndeliverableError(e.message) from e
    payload = row.payload
    env = parse_envelope(payload, what=Phrase("outbox payload"))
    key_ids = ",".join(s.keyid or "" for s in env.signatures)
    try:
        response = httpx.post(
            url,
            content=payload,
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": row.idempotency_key,
                "X-Custody-Key-Id": key_ids,
                "X-Custody-Incident": row.incident_id,
            },
            timeout=timeout,
        )
    except httpx.HTTPError as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"HTTP {response.status_code}")


def _named(code: object, names: Mapping[str, str]) -> str:
    """``封条编号不符 seal_mismatch``: the Chinese name, then the code."""
    zh = names.get(str(code))
    return f"{zh} {code}" if zh else str(code)


def email_text(note: Mapping[str, Any], zone: str = DEFAULT_TIME_ZONE) -> str:
    """The readable body of a notification e-mail: Chinese first, English second, the
    acknowledgement deadline in the authority's ``zone`` with its name (the signed attachment
    keeps UTC)."""
    deadline = note.get("ack_deadline")
    due = "-"
    if deadline:
        try:
            due = show_time(parse_time(deadline, what="ack_deadline"), zone)
        except ValueError:  # a zone the zone database lacks: the notice still goes, in UTC
            due = str(deadline)
    packages = ", ".join(note["scope"].get("packages", [])) or "-"
    frozen = ", ".join(note["containment"].get("frozen", [])) or "-"
    lines = [
        f"事件 Incident {note['incident']}: {_named(note['kind'], KIND_NAMES)}"
        f"（{_named(note['severity'], SEVERITY_NAMES)}），{note['action']}",
        f"上报级别 Level: {note['level_title']}; 确认期限 acknowledge by: {due}",
        f"详情：{note.get('detail_zh') or note['detail']}",
        f"Detail: {note['detail']}",
        f"涉及的试卷袋 Packages in scope: {packages}",
        f"冻结的试卷袋 Frozen: {frozen}",
        "",
        "附件 notification.dsse.json 由主管机构的系统密钥签名。",
        "The attached notification.dsse.json is signed by the authority's system key.",
    ]
    return "\n".join(lines) + "\n"


def _send_email(row: Notification, mailer: Mailer | None, zone: str) -> None:
    if mailer is None:
        raise DeliveryError("no SMTP relay configured")
    payload = row.payload
    env = parse_envelope(payload, what=Phrase("outbox payload"))
    note = json.loads(env.payload)
    msg = EmailMessage()
    msg["From"] = mailer.sender
    msg["To"] = row.address
    msg["Subject"] = row.subject
    ikey = row.idempotency_key
    msg["Message-ID"] = f"<{ikey}@custody.invalid>"
    msg["X-Custody-Idempotency-Key"] = ikey
    msg.set_content(email_text(note, zone))
    msg.add_attachment(
        payload, maintype="application", subtype="json", filename="notification.dsse.json"
    )
    try:
        with _connect(mailer) as smtp:
            if mailer.username and mailer.password:
                smtp.login(mailer.username, mailer.password)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"{type(e).__name__}: {e}") from e


def _connect(mailer: Mailer) -> smtplib.SMTP:
    """A session ready for the message: TLS up (or clear text on loopback, if allowed)."""
    smtp: smtplib.SMTP
    if mailer.implicit_tls:
        smtp = smtplib.SMTP_SSL(
            mailer.host, mailer.port, timeout=mailer.timeout, context=mailer.tls_context()
        )
    else:
        smtp = smtplib.SMTP(mailer.host, mailer.port, timeout=mailer.timeout)
    try:
        smtp.ehlo()
        if not mailer.implicit_tls:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=mailer.tls_context())
                smtp.ehlo()
            elif not mailer.may_send_plain:
                # Nothing of the message (not even the envelope) has gone out yet.
                raise DeliveryError(f"the SMTP relay {mailer.host} does not offer STARTTLS")
    except BaseException:
        smtp.close()
        raise
    return smtp


def deliver_outbox(
    engine: Database,
    now: datetime,
    *,
    mailer: Mailer | None = None,
    base_delay: timedelta = timedelta(seconds=30),
    max_delay: timedelta = timedelta(hours=1),
    max_attempts: int = 30,
    lease: timedelta = timedelta(minutes=5),
    limit: int = 100,
    http_timeout: float = 5.0,
    after_send: Callable[[int], None] | None = None,
    zone: str = DEFAULT_TIME_ZONE,
) -> DeliveryReport:
    """Send every due row once; mark each sent, retried later, or dead. An e-mail's readable
    body shows times in ``zone`` (the home's ``time_zone``).

    ``after_send`` is called between a successful send and the row being marked sent (tests
    kill the process there to prove a crash re-sends with the same idempotency key).
    """
    report = DeliveryReport()
    # E-mail waits for a relay: not leased, not attempted, not counted as a failure.
    leased = store.lease_due(engine, now, now + lease, limit=limit, email=mailer is not None)
    report.waiting = leased.waiting
    for row in leased.rows:
        try:
            if row.channel == "webhook":
                _send_webhook(row, http_timeout)
            else:
                _send_email(row, mailer, zone)
        except DeliveryError as e:
            attempts = row.attempts + 1
            dead = attempts >= max_attempts or isinstance(e, UndeliverableError)
            marked = store.mark_failed(
                engine,
                row,
                leased.until,
                dead=dead,
                next_attempt=now + backoff(attempts, base_delay, max_delay),
                error=str(e),
            )
            if not marked:
                report.lost.append(row.id)
            elif dead:
                report.dead.append(row.id)
            else:
                report.failed.append((row.id, str(e)))
            continue
        if after_send is not None:
            after_send(row.id)
        marked = store.mark_sent(engine, row, leased.until, now)
        (report.sent if marked else report.lost).append(row.id)
    return report


def requeue_dead(engine: Database, now: datetime, ids: Sequence[int] | None = None) -> list[int]:
    """Put dead rows back (``ids``, or every dead row): pending, due at ``now``, attempts
    reset; the last error is kept until the next attempt. Returns the ids requeued."""
    found, unknown = store.requeue_dead(engine, now, ids)
    if unknown:
        raise NotFoundError(
            N_("no dead notification with id {ids}"),
            hint=N_("`custody incident outbox list --status dead` lists them"),
            ids=", ".join(map(str, unknown)),
        )
    return found


def outbox_rows(
    engine: Database, incident_id: str | None = None, status: str | None = None
) -> list[dict[str, object]]:
    """The notification rows (of one incident, in one status, if given) as plain values."""
    return [asdict(e) for e in store.entries(engine, incident_id, status)]
