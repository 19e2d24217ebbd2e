"""A scenario run for the closing note: every detector once, real receivers on loopback.

    python -m tests.custody.incidents.scenario OUT_DIR

Each detector's scenario runs in its own fresh season with the desk attached; notifications
go to a webhook receiver (http.server) and an SMTP server (aiosmtpd, STARTTLS) on loopback.
Then one incident climbs the ladder on a controlled clock, and the demo's three breaches
write their reports (text, JSON, PDF).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from crypto.dsse import parse_envelope
from custody.demo import start_season
from custody.demo.breaches import attach, play_breaches
from custody.incidents.config import policy_from_json
from custody.incidents.desk import get_incident, list_incidents
from custody.incidents.outbox import Mailer, deliver_outbox
from custody.incidents.policy import Policy, Target
from tests.conftest import PASS, T0, fast_kdf
from tests.custody.incidents.servers import SmtpServer, WebhookReceiver
from tests.custody.incidents.test_detect import SCENARIOS


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    hook = WebhookReceiver()
    smtp = SmtpServer(out)
    mailer = Mailer("127.0.0.1", smtp.port, "custody@exam.example", ssl_context=smtp.client_ctx)
    policy = Policy(
        places=policy_from_json(None).places,
        recipients={
            "custodian": (Target("site-hook", "webhook", hook.url),),
            "municipal": (Target("city-mail", "email", "city@secrecy.example"),),
            "provincial": (Target("province-mail", "email", "province@secrecy.example"),),
        },
    )
    print("| scenario | incident | kind | severity | containment | webhook | e-mail |")
    print("|---|---|---|---|---|---|---|")
    for scenario, kind in SCENARIOS:
        season = start_season(out / kind.value, now=T0, passphrase=PASS, kdf=fast_kdf())
        log = attach(season, policy)
        before_http, before_mail = len(hook.got.requests), len(smtp.messages)
        scenario(season)
        deliver_outbox(log.engine, season.now + timedelta(days=1), mailer=mailer)
        for inc in list_incidents(log.engine):
            if inc.kind != kind.value:
                continue
            c = inc.containment
            contained = (
                ", ".join(f"{k}={len(v)}" for k, v in c.items() if isinstance(v, list) and v) or "-"
            )
            print(
                f"| {scenario.__name__} | {inc.id} | {inc.kind} | {inc.severity} | {contained} "
                f"| {len(hook.got.requests) - before_http} | {len(smtp.messages) - before_mail} |"
            )
    # The ladder, on a controlled clock.
    season = start_season(out / "ladder", now=T0, passphrase=PASS, kdf=fast_kdf())
    log = attach(season, policy)
    SCENARIOS[5][0](season)  # off route
    (inc,) = list_incidents(log.engine)
    print(f"\nladder of {inc.id} ({inc.kind}):")
    for minutes in (0, 14, 16, 47, 120):
        at = season.now + timedelta(minutes=minutes)
        log.sweep(at)
        sent = deliver_outbox(log.engine, at, mailer=mailer).sent
        now_inc = get_incident(log.engine, inc.id)
        print(
            f"  t+{minutes:>3} min: level {now_inc.level} "
            f"({policy.ladder[now_inc.level].title}), deadline {now_inc.ack_deadline}, "
            f"notifications sent {len(sent)}"
        )
    # The demo's breaches and their reports.
    season = start_season(out / "breaches", now=T0, passphrase=PASS, kdf=fast_kdf())
    paths = play_breaches(season, out / "breaches-out")
    print("\nreports:")
    for p in paths:
        print(f"  {p}")
    print(
        f"\nwebhook requests received: {len(hook.got.requests)}, distinct idempotency keys: "
        f"{len(hook.got.effective)}"
    )
    first = parse_envelope(hook.got.requests[0][1])
    print(
        f"first webhook payload: {json.loads(first.payload)['incident']} "
        f"{json.loads(first.payload)['kind']} signed by {first.signatures[0].keyid[:16]}"
    )
    print(
        f"e-mails received (all over STARTTLS: {all(m[0] for m in smtp.messages)}): "
        f"{len(smtp.messages)}"
    )
    hook.stop()
    smtp.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
