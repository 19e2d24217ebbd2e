"""Notifications leave the machine over TLS only: webhooks to https (http on loopback for
tests), e-mail over STARTTLS or implicit TLS (clear text to a loopback relay only when told).

Through the operator's path: ``incidents.json`` in the home, ``custody incident public-report``
opens an incident, ``custody incident deliver`` sends to real receivers on loopback.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from custody.cli import main
from custody.demo import Season
from custody.errors import FormatError, UsageError
from custody.incidents.config import policy_from_json
from custody.incidents.endpoints import check_webhook_url, is_loopback_host
from custody.incidents.outbox import Mailer, deliver_outbox, outbox_rows
from custody.incidents.policy import Policy, Target
from custody.service import ServiceSecrets, open_writer
from tests.conftest import PASS
from tests.custody.incidents.servers import SmtpServer, WebhookReceiver, free_port

EMAIL = {"name": "city", "channel": "email", "address": "city@secrecy.example"}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("::2", False),
        ("localhost.example.org", False),
        ("127.0.0.1.nip.io", False),
        ("mail.example.org", False),
        ("", False),
    ],
    ids=repr,
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.org/custody",
        "https://10.0.0.1:8443/h",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:8080/hook",
    ],
)
def test_webhook_urls_allowed(url: str) -> None:
    assert check_webhook_url(url, what="test") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.org/custody",
        "http://10.0.0.1/h",
        "http://127.0.0.1.nip.io/h",
        "ftp://127.0.0.1/h",
        "file:///etc/passwd",
        "https:///no-host",
        "hooks.example.org/custody",
        "http://127.0.0.1:notaport/h",
        "http://[::1/h",
    ],
)
def test_webhook_urls_refused(url: str) -> None:
    with pytest.raises(FormatError):
        check_webhook_url(url, what="test")


def cli(season: Season, *args: str, at: datetime | None = None) -> tuple[int, dict[str, Any]]:
    """Run the CLI in-process with --json at the season's time (or ``at``)."""
    now = (at or season.now).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--home", str(season.home.path), "--json", "--now", now, *args])
    text = out.getvalue()
    return code, json.loads(text) if text.strip() else {}


def write_policy(season: Season, *recipients: dict[str, str]) -> None:
    body = {"recipients": {"custodian": list(recipients)}}
    (season.home.path / "incidents.json").write_text(json.dumps(body))


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUSTODY_PASSPHRASE", PASS)


def open_public_report(season: Season) -> None:
    code, out = cli(season, "incident", "public-report", "答案已泄露")
    assert code == 0, out


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.org/custody", "http://192.0.2.1:8080/h", "gopher://127.0.0.1/h"],
)
def test_policy_with_plain_http_webhook_is_refused_when_read(season: Season, url: str) -> None:
    write_policy(season, {"name": "province", "channel": "webhook", "address": url})
    code, out = cli(season, "incident", "public-report", "答案已泄露")
    assert code == FormatError.exit_code
    assert out["error"] == FormatError.code
    officer = next(season.home.people_dir().glob("secrecy-chen-*.key"))
    code, listed = cli(season, "incident", "list", "--key", str(officer))
    assert code == 0 and listed["incidents"] == []


@pytest.mark.parametrize(
    "recipients",
    [
        ["https://hooks.example.org/custody"],
        [{"name": "x", "channel": "webhook"}],
        [{"name": "x", "channel": "webhook", "address": 7}],
    ],
    ids=["not an object", "no address", "address not a string"],
)
def test_policy_recipient_shape(recipients: list[Any]) -> None:
    with pytest.raises(FormatError):
        policy_from_json(json.dumps({"recipients": {"custodian": recipients}}).encode())


def test_policy_with_loopback_http_webhook_delivers(season: Season) -> None:
    hook = WebhookReceiver()
    try:
        write_policy(season, {"name": "site", "channel": "webhook", "address": hook.url})
        open_public_report(season)
        code, report = cli(season, "incident", "deliver")
        assert code == 0 and len(report["sent"]) == 1
    finally:
        hook.stop()
    assert len(hook.got.requests) == 1


def test_plain_http_row_is_never_sent(season: Season) -> None:
    """Defence in depth: a row whose URL the transport rules refuse (written by a policy
    made in code, or by an older version) is dead at once, without a request."""
    policy = Policy(
        places=policy_from_json(None).places,
        recipients={"custodian": (Target("far", "webhook", "http://192.0.2.1:9/hook"),)},
    )
    secrets = ServiceSecrets(log=season.passphrase, system=season.passphrase)
    log = open_writer(season.home, secrets, policy=policy)
    log.report_public("答案已泄露", season.now)
    report = deliver_outbox(log.engine, season.now)
    assert report.sent == [] and report.failed == [] and len(report.dead) == 1
    (row,) = outbox_rows(log.engine)
    assert row["status"] == "dead" and row["attempts"] == 1


@pytest.fixture
def starttls(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path, tls="none")
    yield server
    server.stop()


def test_deliver_uses_starttls_verified_by_default_trust(
    season: Season, starttls: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's mailer checks the relay's certificate with the default trust store; the test
    # relay's self-signed certificate is made that store here.
    monkeypatch.setenv("SSL_CERT_FILE", str(starttls.cert))
    write_policy(season, EMAIL)
    open_public_report(season)
    code, report = cli(season, "incident", "deliver", "--smtp", f"127.0.0.1:{starttls.port}")
    assert code == 0 and len(report["sent"]) == 1, report
    assert [tls for tls, *_ in starttls.messages] == [True]


def test_deliver_refuses_an_untrusted_certificate(season: Season, starttls: SmtpServer) -> None:
    write_policy(season, EMAIL)
    open_public_report(season)
    code, report = cli(season, "incident", "deliver", "--smtp", f"127.0.0.1:{starttls.port}")
    assert code == 0 and report["sent"] == [] and len(report["failed"]) == 1
    assert starttls.messages == []


def test_deliver_sends_nothing_in_clear_unless_told(season: Season, plain: SmtpServer) -> None:
    write_policy(season, EMAIL)
    open_public_report(season)
    relay = f"127.0.0.1:{plain.port}"
    code, report = cli(season, "incident", "deliver", "--smtp", relay)
    assert code == 0 and report["sent"] == [] and len(report["failed"]) == 1
    assert plain.messages == []
    (row,) = outbox_rows(season.home.engine)
    assert row["status"] == "pending"
    # A rehearsal on one machine: clear text to the loopback relay, said explicitly.
    later = season.now + timedelta(hours=1)
    code, report = cli(
        season, "incident", "deliver", "--smtp", relay, "--smtp-plain-loopback", at=later
    )
    assert code == 0 and len(report["sent"]) == 1
    assert [tls for tls, *_ in plain.messages] == [False]


@pytest.mark.parametrize(
    "relay", ["mail.example.org:25", "10.0.0.5:2525", "127.0.0.1.nip.io:25", "[::2]:25"]
)
def test_plain_smtp_to_a_remote_relay_is_a_usage_error(season: Season, relay: str) -> None:
    write_policy(season, EMAIL)
    open_public_report(season)
    code, out = cli(season, "incident", "deliver", "--smtp", relay, "--smtp-plain-loopback")
    assert code == UsageError.exit_code and out["error"] == UsageError.code
    (row,) = outbox_rows(season.home.engine)
    assert row["status"] == "pending" and row["attempts"] == 0  # nothing was tried


def test_serve_refuses_plain_smtp_to_a_remote_relay(season: Season) -> None:
    code, out = cli(
        season, "serve", "--port", str(free_port()), "--smtp", "mail.example.org:25",
        "--smtp-plain-loopback",
    )  # fmt: skip
    assert code == UsageError.exit_code and out["error"] == UsageError.code


def test_tls_flags_need_a_relay(season: Season) -> None:
    code, out = cli(season, "incident", "deliver", "--smtp-plain-loopback")
    assert code == UsageError.exit_code and out["error"] == UsageError.code


def test_mailer_refuses_plain_to_a_remote_host() -> None:
    with pytest.raises(UsageError):
        Mailer("mail.example.org", 25, "custody@exam.example", allow_plain_loopback=True)
    Mailer("mail.example.org", 587, "custody@exam.example")  # TLS: fine
    Mailer("::1", 25, "custody@exam.example", allow_plain_loopback=True)


def test_implicit_tls(season: Season, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smtps = SmtpServer(tmp_path, tls="implicit")
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(smtps.cert))
        write_policy(season, EMAIL)
        open_public_report(season)
        code, report = cli(
            season, "incident", "deliver", "--smtp", f"127.0.0.1:{smtps.port}", "--smtps"
        )
        assert code == 0 and len(report["sent"]) == 1, report
    finally:
        smtps.stop()
    assert len(smtps.messages) == 1
