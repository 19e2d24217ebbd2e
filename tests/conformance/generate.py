"""Write the conformance vectors of docs/vectors/ (docs/formats.md, "Conformance vectors").

    PYTHONPATH=$PWD python -m tests.conformance.generate [--out docs/vectors] [--check]

Everything is deterministic: keys come from fixed seeds (SHA-256 of a label), times from one
fixed receive clock, Ed25519 and the label codec are deterministic, so the same code writes the
same bytes. ``--check`` compares with the committed files instead of writing them (a test runs
it). The expected outcome of every case is written here by hand, from the document: the
project's own runner and the independent verifier must both reach it.

Isolation: each case has its own people and its own packages (ids prefixed with the case's
code), so the cases of every file run one after another against one fresh log, as they do
against a live service whose incident desk blocks the keys a refusal suspects.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import base45
import cbor2
import nacl.bindings
import nacl.public
import nacl.pwhash

from crypto.dsse import Envelope, parse_envelope, sign_envelope
from crypto.encoding import canonical_json, format_time, utc
from crypto.merkle import MemoryTree
from crypto.note import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    cosign,
    sign_checkpoint,
    sign_note,
    signature_line,
)
from crypto.sealing import KdfParams
from crypto.signing import SigningKey
from crypto.vocabulary import Classification
from custody.events import EVENT_TYPE, leaf_bytes
from custody.packages import Manifest, RouteStep, seal_event_body
from keys.model import (
    Authority,
    Certificate,
    Revocation,
    RevocationReason,
    Role,
)
from keys.trust import issue_authority, issue_certificate, issue_revocation
from labels.payload import (
    PREFIX,
    encode_cose,
    kid_of,
    manifest_to_cbor,
    protected_header,
    seal_manifest,
    sig_structure,
)

FORMAT = "custody-vectors/v1"
SEASON_FORMAT = "custody-vector-season/v1"
RECEIVED = utc(2027, 3, 3, 9, 0)  # the fixed receive clock of every case
SETUP = RECEIVED - timedelta(minutes=4)  # setup statements start here, one second apart
# The earlier receive clock of cases whose input was captured offline long before it arrived:
# their setup (seal, dispatch: made online) is received then, their input at RECEIVED.
EARLY = RECEIVED - timedelta(hours=30)
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CERT_FROM = utc(2027, 1, 1)
CERT_TO = utc(2027, 12, 31)
EXAM = "SX-2027-INT"  # its policy on the log: no supervising witness
EXAM_WITNESS = "SX-2027-WIT"  # its policy on the log: a supervising witness for every handover
RETAIN = utc(2028, 3, 1)
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "vectors"

# The role of each cast member a case may call on (created only when first used).
CAST: Mapping[str, Role] = {
    "sealer": Role.PROPOSER,
    "printer": Role.PRINTER,
    "courier1": Role.COURIER,
    "courier2": Role.COURIER,
    "courier3": Role.COURIER,
    "custodian1": Role.CUSTODIAN,
    "custodian2": Role.CUSTODIAN,
    "examiner": Role.CHIEF_EXAMINER,
    "supervisor": Role.SUPERVISOR,
    "supervisor2": Role.SUPERVISOR,
    "examiner2": Role.CHIEF_EXAMINER,
    "custodian3": Role.CUSTODIAN,
    "officer": Role.DESTRUCTION_OFFICER,
    "secrecy": Role.SECRECY_OFFICER,
    "reader": Role.SECRECY_OFFICER,  # a second secrecy officer (reads sealed words)
    "auditor": Role.AUDITOR,
}


def _with_padding_bit(stream: bytes) -> bytes:
    """``stream`` (zlib) with one bit set after its deflate data's end, in the last byte: it
    inflates to the same bytes, under the same checksum."""
    inflated = zlib.decompress(stream)
    at = len(stream) - 5  # the deflate data's last byte, before the Adler-32 checksum
    for bit in range(7, -1, -1):
        if stream[at] >> bit & 1:
            continue
        padded = stream[:at] + bytes([stream[at] | 1 << bit]) + stream[at + 1 :]
        try:
            if zlib.decompress(padded) == inflated:
                return padded
        except zlib.error:
            continue
    raise ValueError("this stream ends on a byte boundary: no padding bit to set")


def seed(label: str) -> bytes:
    return hashlib.sha256(b"custody conformance vectors v1 " + label.encode()).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Season:
    """The vectors' authority and every person any case enrols (one trust document)."""

    def __init__(self) -> None:
        self.root = SigningKey(seed("root"))
        self.log = SigningKey(seed("log"))
        self.system = SigningKey(seed("system"))
        self.authority = Authority(
            name="一致性测试 Conformance vectors",
            root_key=self.root.verify_key,
            log_key=self.log.verify_key,
            system_key=self.system.verify_key,
            log_origin=f"custody/{self.root.key_id[:16]}",
            created_at=CERT_FROM,
        )
        self.authority_envelope = issue_authority(self.authority, self.root)
        self.certificates: list[Envelope] = []
        self.revocations: list[Envelope] = []
        self.keys: dict[str, SigningKey] = {}

    def enrol(
        self,
        subject: str,
        roles: Sequence[Role],
        *,
        recusals: Sequence[str] = (),
        not_before: datetime = CERT_FROM,
        not_after: datetime = CERT_TO,
        key_label: str | None = None,
    ) -> SigningKey:
        label = key_label or subject
        key = SigningKey(seed(f"person {label}"))
        enc = nacl.public.PrivateKey(seed(f"x25519 {label}")).public_key.encode()
        cert = Certificate(
            authority_id=self.authority.id,
            subject=subject,
            name=subject,
            organisation="conformance",
            roles=frozenset(roles),
            signing_key=key.verify_key,
            encryption_key=enc,
            not_before=not_before,
            not_after=not_after,
            issued_at=not_before,
            recusals=frozenset(recusals),
        )
        self.certificates.append(issue_certificate(cert, self.root))
        self.keys.setdefault(subject, key)
        return key

    def revoke(
        self, key: SigningKey, reason: RevocationReason, *, effective: datetime, issued: datetime
    ) -> None:
        rev = Revocation(self.authority.id, key.key_id, effective, reason, issued, "vector")
        self.revocations.append(issue_revocation(rev, self.root))

    def document(self) -> dict[str, Any]:
        return {
            "format": SEASON_FORMAT,
            "received": format_time(RECEIVED),
            "seeds": {
                "root": self.root_seed_hex(),
                "log": seed("log").hex(),
                "system": seed("system").hex(),
            },
            "setup_received": format_time(EARLY),
            "setup": self.setup(),
            "trust": {
                "authority": self.authority_envelope.to_json_obj(),
                "certificates": [e.to_json_obj() for e in self.certificates],
                "revocations": [e.to_json_obj() for e in self.revocations],
            },
        }

    def setup(self) -> list[Any]:
        """What every run submits first, at the earliest clock: the exams' policies."""
        out = []
        for i, (exam, witness) in enumerate(((EXAM, False), (EXAM_WITNESS, True))):
            payload = {
                "type": "custody.event.v1",
                "kind": "exam_policy",
                "authority": self.authority.id,
                "time": format_time(EARLY - timedelta(minutes=2) + i * SEC),
                "place": "",
                "packages": {},
                "actors": {"system": self.authority.id},
                "body": {
                    "exam": exam,
                    "handover_witness": witness,
                    "retention_until": format_time(RETAIN),
                },
                "corrects": None,
            }
            out.append(sign_raw(canonical_json(payload), [self.system]))
        return out

    @staticmethod
    def root_seed_hex() -> str:
        return seed("root").hex()


def env_obj(env: Envelope) -> dict[str, Any]:
    return env.to_json_obj()


def sign_raw(payload: bytes, keys: Sequence[SigningKey], payload_type: str = EVENT_TYPE) -> Any:
    return env_obj(sign_envelope(payload_type, payload, keys))


@dataclass
class Case:
    season: Season
    code: str
    name: str
    note: str = ""
    setup: list[Any] = field(default_factory=list)
    input: Any = None
    expect: str = ""
    findings: list[str] = field(default_factory=list)
    people: dict[str, str] = field(default_factory=dict)  # cast name -> subject
    last: dict[str, str | None] = field(default_factory=dict)  # package -> last statement id
    clock: datetime = SETUP
    policy: dict[str, bool] = field(default_factory=dict)  # package -> handover witness
    setup_received: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)  # label SHA-256 -> label text

    def early(self) -> Case:
        """Receive this case's setup at the earlier clock (EARLY), its input at RECEIVED."""
        self.setup_received = EARLY
        self.clock = EARLY - timedelta(minutes=4)
        return self

    # -- people and packages -----------------------------------------------------------------

    def who(self, role_name: str, **enrol: Any) -> str:
        """The subject of a cast member (enrolled on first use)."""
        if role_name not in self.people:
            subject = f"{self.code}.{role_name}"
            roles = enrol.pop("roles", (CAST[role_name],))
            self.season.enrol(subject, roles, **enrol)
            self.people[role_name] = subject
        return self.people[role_name]

    def key(self, role_name: str) -> SigningKey:
        return self.season.keys[self.who(role_name)]

    def sealed(self, field: str, text: str, to: str = "secrecy") -> dict[str, Any]:
        """A person's words as a statement's body carries them (``custody.sealed_text``):
        ``{<field>_sealed: ...}`` sealed to the case's person of role ``to`` (a secrecy
        officer, unless a case says otherwise), reproducibly."""
        from crypto.signing import X25519, key_id
        from custody.incidents.acts import Recipient, seal_note

        subject = self.who(to)
        enc = nacl.public.PrivateKey(seed(f"x25519 {subject}")).public_key.encode()
        note = seal_note(
            text,
            [Recipient(subject, key_id(X25519, enc), enc)],
            seed=seed(f"sealed {self.code} {field} {text}"),
        )
        assert note is not None
        return {f"{field}_sealed": note.as_json()}

    def pkg(self, n: int = 1) -> str:
        return f"{self.code}.PK{n}"

    def tick(self) -> datetime:
        self.clock += SEC
        return self.clock

    # -- events --------------------------------------------------------------------------------

    def payload(
        self,
        kind: str,
        packages: Sequence[str] | Mapping[str, str | None],
        actors: Mapping[str, str],
        body: Mapping[str, Any],
        *,
        time: datetime | None = None,
        place: str = "",
        corrects: str | None = None,
    ) -> dict[str, Any]:
        links = (
            dict(packages)
            if isinstance(packages, Mapping)
            else {p: self.last.get(p) for p in packages}
        )
        return {
            "type": "custody.event.v1",
            "kind": kind,
            "authority": self.season.authority.id,
            "time": format_time(time if time is not None else self.tick()),
            "place": place,
            "packages": links,
            "actors": dict(actors),
            "body": dict(body),
            "corrects": corrects,
        }

    def sign(self, payload: Mapping[str, Any], signers: Sequence[str]) -> Any:
        keys = [
            self.season.keys[self.who(s)] if s in CAST else self.season.keys[s] for s in signers
        ]
        return sign_raw(canonical_json(payload), keys)

    def event(
        self,
        kind: str,
        packages: Sequence[str] | Mapping[str, str | None],
        actors: Mapping[str, str],
        body: Mapping[str, Any],
        signers: Sequence[str],
        **kw: Any,
    ) -> Any:
        return self.sign(self.payload(kind, packages, actors, body, **kw), signers)

    def step(self, env: Any) -> Any:
        """A setup statement (expected to be accepted): the chain moves on."""
        self.setup.append(env)
        payload = json.loads(base64.b64decode(env["payload"]))
        sid = hashlib.sha256(base64.b64decode(env["payload"])).hexdigest()
        for package in payload["packages"]:
            self.last[package] = sid
        return env

    def last_id(self, package: str) -> str:
        sid = self.last.get(package)
        assert sid is not None
        return sid

    # -- the lifecycle, one helper per kind ----------------------------------------------------

    def seal_env(
        self,
        n: int = 1,
        *,
        witness: bool = False,
        exam: str | None = None,
        opens: datetime | None = None,
        closes: datetime | None = None,
        sealer: str = "sealer",
        route: Sequence[str] = ("courier1", "courier2", "custodian1"),
        copies: int = 30,
        body: Mapping[str, Any] | None = None,
        actors: Mapping[str, str] | None = None,
        signers: Sequence[str] | None = None,
        time: datetime | None = None,
        packages: Mapping[str, str | None] | None = None,
    ) -> Any:
        package = self.pkg(n)
        at = time if time is not None else self.tick()
        serials = [f"{self.code}-S{n}{i}" for i in range(1, -(-copies // 10) + 1)]
        manifest = Manifest(
            package_id=package,
            exam_id=exam or (EXAM_WITNESS if witness else EXAM),
            session="AM",
            position="P014",
            paper_id=f"{self.code}.PAPER",
            paper_commitment=hashlib.sha256(f"paper {self.code}".encode()).digest(),
            copy_count=copies,
            bag_size=10,
            seal_serials=tuple(serials),
            site="西安市第一考点",
            room="第3考场",
            opens_at=opens or at,
            closes_at=closes or RECEIVED + 3 * HOUR,
            route=(
                RouteStep(self.who(sealer), "PRT-01"),
                *(RouteStep(self.who(r), f"PLACE-{i}") for i, r in enumerate(route, 1)),
            ),
            classification=Classification.TOP_SECRET,
            issued_at=at,
            expires_at=at + 30 * DAY,
        )
        label = seal_manifest(manifest, self.key(sealer))
        self.labels[hashlib.sha256(label.encode()).hexdigest()] = label
        seal_body = seal_event_body(manifest, self.who(sealer), label, handover_witness=witness)
        if body is not None:
            seal_body = {**seal_body, **body}
            seal_body = {k: v for k, v in seal_body.items() if v is not DROP}
        self.policy[package] = witness
        return self.event(
            "seal",
            packages if packages is not None else {package: None},
            actors if actors is not None else {"sealer": self.who(sealer)},
            seal_body,
            signers if signers is not None else [sealer],
            time=at,
            place="PRT-01",
        )

    def transfer_env(
        self,
        kind: str,
        packages: Sequence[str],
        releaser: str,
        receiver: str,
        *,
        witness: str | None = None,
        custodian2: str | None = None,
        signers: Sequence[str] | None = None,
        actors: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> Any:
        names = {"releaser": releaser, "receiver": receiver}
        if witness is not None:
            names["witness"] = witness
        if custodian2 is not None:
            names["custodian2"] = custodian2
        if actors is None:
            actors = {slot: self.who(n) for slot, n in names.items()}
        if body is None:
            named = list(packages)
            body = {"seals": self.serials(named[0])} if len(named) == 1 else {}
        return self.event(
            kind,
            packages,
            actors,
            body,
            signers if signers is not None else list(names.values()),
            **kw,
        )

    def serials(self, package: str) -> list[str]:
        n = package.rsplit("PK", 1)[1]
        return [f"{self.code}-S{n}{i}" for i in range(1, 4)]

    def pair_env(
        self, kind: str, packages: Sequence[str], body: Mapping[str, Any], **kw: Any
    ) -> Any:
        signers = kw.pop("signers", ["examiner", "supervisor"])
        actors = kw.pop(
            "actors", {"examiner": self.who("examiner"), "supervisor": self.who("supervisor")}
        )
        return self.event(kind, packages, actors, body, signers, **kw)

    def to(self, status: str, *packages_n: int, witness: bool = False) -> None:
        """Run the standard chain of each package up to ``status`` (setup statements)."""
        order = [
            "sealed",
            "in_transit",
            "handed",
            "stored",
            "opened",
            "distributed",
            "recovered",
            "returned",
            "destroyed",
        ]
        for n in packages_n or (1,):
            p = self.pkg(n)
            for reached in order[: order.index(status) + 1]:
                self.step(self.lifecycle(reached, p, n, witness))

    def lifecycle(self, reached: str, p: str, n: int, witness: bool) -> Any:
        w = "supervisor" if witness else None
        if reached == "sealed":
            return self.seal_env(n, witness=witness)
        if reached == "in_transit":
            return self.transfer_env("dispatch", [p], "sealer", "courier1", witness=w)
        if reached == "handed":
            return self.transfer_env("handover", [p], "courier1", "courier2", witness=w)
        if reached == "stored":
            return self.transfer_env(
                "receive", [p], "courier2", "custodian1", custodian2="custodian2"
            )
        if reached == "opened":
            return self.pair_env("open", [p], {"seals": self.serials(p)})
        if reached == "distributed":
            return self.pair_env("distribute", [p], {"copies": 30})
        if reached == "recovered":
            return self.pair_env("recover", [p], {"copies": 30})
        if reached == "returned":
            return self.transfer_env("return", [p], "examiner", "custodian1", body={})
        if reached == "destroyed":
            return self.destroy_env([p])
        raise AssertionError(reached)

    def destroy_env(self, packages: Sequence[str], **kw: Any) -> Any:
        signers = kw.pop("signers", ["officer", "supervisor"])
        actors = kw.pop(
            "actors", {"officer": self.who("officer"), "witness": self.who("supervisor")}
        )
        body = kw.pop("body", {"method": "shredding", "copies": dict.fromkeys(packages, 30)})
        return self.event("destroy", packages, actors, body, signers, **kw)

    def officer_env(
        self, kind: str, packages: Sequence[str], body: Mapping[str, Any], **kw: Any
    ) -> Any:
        signers = kw.pop("signers", ["secrecy"])
        actors = kw.pop("actors", {"officer": self.who("secrecy")})
        return self.event(kind, packages, actors, body, signers, **kw)

    def done(self, env: Any, expect: str, findings: Sequence[str] = ()) -> None:
        self.input = env
        self.expect = expect
        self.findings = sorted(findings)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.note:
            out["note"] = self.note
        if self.setup_received is not None:
            out["setup_received"] = format_time(self.setup_received)
        out["setup"] = self.setup
        out["input"] = self.input
        out["expect"] = self.expect
        if self.findings:
            out["findings"] = self.findings
        return out


DROP = object()  # a body value that removes the field


class VectorFile:
    def __init__(self, season: Season, kind: str, code: str, title: str) -> None:
        self.season, self.kind, self.code, self.title = season, kind, code, title
        self.cases: list[Case] = []
        self.extra: dict[str, Any] = {}  # file-level inputs (keys to verify with)

    def case(self, name: str, note: str = "") -> Case:
        c = Case(self.season, f"{self.code}{len(self.cases) + 1:02d}", name, note)
        self.cases.append(c)
        return c

    def document(self) -> dict[str, Any]:
        names = [c.name for c in self.cases]
        assert len(set(names)) == len(names), f"{self.kind}: duplicate case names"
        for c in self.cases:
            assert c.expect == "accept" or c.expect.startswith("refuse "), c.name
        return {
            "format": FORMAT,
            "kind": self.kind,
            "title": self.title,
            "season": "season.json",
            "received": format_time(RECEIVED),
            **self.extra,
            "cases": [c.as_json() for c in self.cases],
        }


# === the vectors ===============================================================================


def envelope_vectors(f: VectorFile) -> None:
    """DSSE envelope and canonical payload bytes (every case is a seal, mutated)."""

    def sealed(c: Case) -> tuple[dict[str, Any], bytes]:
        env = c.seal_env()
        return env, base64.b64decode(env["payload"])

    c = f.case("valid-seal", "a well-formed seal: the baseline every other case mutates")
    env, _ = sealed(c)
    c.done(env, "accept")

    def payload_case(name: str, note: str, mutate: Callable[[bytes], bytes]) -> None:
        c = f.case(name, note)
        _, payload = sealed(c)
        c.done(sign_raw(mutate(payload), [c.key("sealer")]), "refuse format")

    def pretty(p: bytes) -> bytes:
        return json.dumps(json.loads(p), sort_keys=True, ensure_ascii=False).encode()

    def unsorted(p: bytes) -> bytes:
        obj = json.loads(p)
        return json.dumps(
            dict(reversed(list(obj.items()))), separators=(",", ":"), ensure_ascii=False
        ).encode()

    def escaped(p: bytes) -> bytes:
        return json.dumps(
            json.loads(p), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        ).encode()

    payload_case("payload-whitespace", "insignificant whitespace in the payload", pretty)
    payload_case("payload-unsorted-keys", "object keys not in code-point order", unsorted)
    payload_case("payload-ascii-escapes", "non-ASCII written as \\u escapes", escaped)
    payload_case(
        "payload-nan",
        "NaN is not a JSON number",
        lambda p: p.replace(b'"copies":30', b'"copies":NaN'),
    )
    payload_case(
        "payload-duplicate-key",
        "a key twice in one object",
        lambda p: p.replace(b'"corrects":null', b'"corrects":null,"corrects":null'),
    )
    payload_case(
        "payload-nul",
        "U+0000 in a string",
        lambda p: p.replace(b'"place":"PRT-01"', b'"place":"PRT\\u0000"'),
    )
    payload_case(
        "payload-type-v2",
        "the payload's type is not custody.event.v1",
        lambda p: p.replace(b'"type":"custody.event.v1"', b'"type":"custody.event.v2"'),
    )
    payload_case(
        "payload-extra-field",
        "a top-level field the event does not have",
        lambda p: p.replace(b'"corrects":null', b'"corrects":null,"extra":1'),
    )
    payload_case(
        "payload-unknown-kind",
        "kind is not one of the event kinds",
        lambda p: p.replace(b'"kind":"seal"', b'"kind":"sealed"'),
    )
    payload_case(
        "payload-time-fraction",
        "time with fractional seconds",
        lambda p: p.replace(b':00Z","type"', b':00.5Z","type"').replace(
            b'"time":"2027-03-03T08:56:01Z"', b'"time":"2027-03-03T08:56:01.5Z"'
        ),
    )
    payload_case(
        "payload-bad-package-id",
        "a package id with a space",
        lambda p: p.replace(b'"packages":{"', b'"packages":{"PK ').replace(
            b'.PK1":null', b'.PK1":null'
        ),
    )
    payload_case(
        "payload-corrects-prefix",
        "corrects is a 16-hex prefix, not a full statement id",
        lambda p: p.replace(b'"corrects":null', b'"corrects":"0123456789abcdef"'),
    )

    c = f.case(
        "envelope-extra-field", "the envelope has a field beyond payload, payloadType, signatures"
    )
    env, _ = sealed(c)
    c.done({**env, "note": "x"}, "refuse format")

    c = f.case("signature-extra-field", "a signature object with a field beyond keyid and sig")
    env, _ = sealed(c)
    c.done({**env, "signatures": [{**env["signatures"][0], "cert": ""}]}, "refuse format")

    c = f.case("payload-base64-unpadded", "payload base64 without its padding")
    env, _ = sealed(c)
    c.done({**env, "payload": env["payload"].rstrip("=") or env["payload"]}, "refuse format")

    c = f.case("payload-base64-urlsafe", "payload in the URL-safe alphabet")
    env, payload = sealed(c)
    urlsafe = base64.urlsafe_b64encode(payload).decode()
    assert urlsafe != env["payload"]
    c.done({**env, "payload": urlsafe}, "refuse format")

    c = f.case("sig-63-bytes", "a signature of 63 bytes")
    env, _ = sealed(c)
    short = b64(base64.b64decode(env["signatures"][0]["sig"])[:63])
    c.done({**env, "signatures": [{**env["signatures"][0], "sig": short}]}, "refuse format")

    c = f.case("no-signature", "an envelope with an empty signature list")
    env, _ = sealed(c)
    c.done({**env, "signatures": []}, "refuse format")

    c = f.case("seventeen-signatures", "more than 16 signatures")
    env, payload = sealed(c)
    extra = [c.season.enrol(f"{c.code}.x{i}", [Role.AUDITOR]) for i in range(16)]
    c.done(sign_raw(payload, [c.key("sealer"), *extra]), "refuse format")

    c = f.case(
        "sixteen-signatures",
        "the sealer and 15 more certified keys that fill no slot: 16 is the limit on every path "
        "(a service's door included)",
    )
    env, payload = sealed(c)
    extra = [c.season.enrol(f"{c.code}.x{i}", [Role.AUDITOR]) for i in range(15)]
    c.done(sign_raw(payload, [c.key("sealer"), *extra]), "accept")

    for name, how, hint in (
        ("empty-hint", "an empty keyid", {"keyid": ""}),
        ("null-hint", "keyid null", {"keyid": None}),
        ("absent-hint", "no keyid field", {}),
    ):
        c = f.case(
            name,
            f"the sealer's good signature with {how}: more than 32 keys are candidates (and a "
            "service tries none), so it counts for nobody",
        )
        env, _ = sealed(c)
        c.done(
            {**env, "signatures": [{"sig": env["signatures"][0]["sig"], **hint}]},
            "refuse unknown_signer",
        )

    c = f.case("wrong-payload-type", "a custody event under the certificate payload type")
    env, payload = sealed(c)
    c.done(
        sign_raw(payload, [c.key("sealer")], "application/vnd.custody.certificate.v1+json"),
        "refuse format",
    )

    c = f.case("forged-signature", "the sealer's hint, a signature that does not verify")
    env, _ = sealed(c)
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[0] ^= 1
    c.done(
        {**env, "signatures": [{**env["signatures"][0], "sig": b64(bytes(sig))}]},
        "refuse signature",
    )

    c = f.case("hint-names-other-key", "a good signature whose hint names another certified key")
    env, _ = sealed(c)
    other = c.key("printer")
    c.done(
        {**env, "signatures": [{**env["signatures"][0], "keyid": other.key_id}]},
        "refuse signature",
    )

    c = f.case("unknown-signer", "an extra signature by a key no certificate binds")
    env, payload = sealed(c)
    stranger = SigningKey(seed(f"stranger {c.code}"))
    c.done(sign_raw(payload, [c.key("sealer"), stranger]), "refuse unknown_signer")

    c = f.case("same-key-twice", "two signatures by one key")
    env, _ = sealed(c)
    c.done({**env, "signatures": env["signatures"] * 2}, "refuse duplicate_signature")

    c = f.case("one-person-two-keys", "one person signs with two of their certified keys")
    env, payload = sealed(c)
    second = c.season.enrol(c.who("sealer"), [Role.PROPOSER], key_label=f"{c.code}.sealer#2")
    c.done(sign_raw(payload, [c.key("sealer"), second]), "refuse duplicate_signature")

    c = f.case("other-authority", "the event names another authority")
    env, payload = sealed(c)
    other_auth = json.loads(payload)
    other_auth["authority"] = "0" * 64
    c.done(sign_raw(canonical_json(other_auth), [c.key("sealer")]), "refuse format")


def seal_vectors(f: VectorFile) -> None:
    c = f.case("accept", "a seal as `custody package seal` writes it")
    c.done(c.seal_env(), "accept")
    c = f.case("accept-printer", "a printer may seal")
    c.done(c.seal_env(sealer="printer"), "accept")
    c = f.case(
        "accept-minimal-body",
        "only the fields the rules read (label fields absent; handover_witness stays: "
        "it must equal the exam's policy)",
    )
    c.done(
        c.seal_env(
            body=dict.fromkeys(
                (
                    "session",
                    "paper_commitment",
                    "places",
                    "destination",
                    "classification",
                    "label_sha256",
                ),
                DROP,
            )
        ),
        "accept",
    )
    c = f.case("sealer-courier", "a courier holds no sealing role")
    c.who("sealer", roles=(Role.COURIER,))
    c.done(c.seal_env(), "refuse role")
    c = f.case("sealer-recused-exam", "the sealer is recused from the exam")
    c.who("sealer", recusals=[f"exam:{EXAM}"])
    c.done(c.seal_env(), "refuse recused")
    c = f.case("sealer-recused-package", "the sealer is recused from this package")
    c.who("sealer", recusals=[f"package:{c.pkg()}"])
    c.done(c.seal_env(), "refuse recused")
    c = f.case("sealer-not-named", "actors names no sealer: a missing signer")
    c.done(c.seal_env(actors={}), "refuse threshold")
    c = f.case("sealer-other-person", "actors names one proposer, another signs")
    c.who("sealer")
    other = c.who("printer", roles=(Role.PROPOSER,))
    c.done(c.seal_env(actors={"sealer": other}), "refuse threshold")
    c = f.case("sealed-twice", "a package is sealed once")
    c.to("sealed")
    c.done(c.seal_env(), "refuse chain")
    c = f.case("seal-previous-not-null", "a seal starts a chain: its link is null")
    c.done(c.seal_env(packages={c.pkg(): "ab" * 32}), "refuse chain")
    c = f.case("seal-two-packages", "a seal seals exactly one package")
    c.done(c.seal_env(packages={c.pkg(1): None, c.pkg(2): None}), "refuse format")
    c = f.case("seal-no-package", "a seal names a package")
    c.done(c.seal_env(packages={}), "refuse format")
    for name, body in (
        ("copies-zero", {"copies": 0}),
        ("copies-string", {"copies": "30"}),
        ("seals-duplicate", {"seals": ["A", "A"]}),
        ("seals-empty", {"seals": []}),
        (
            "window-reversed",
            {"window": {"start": "2027-03-03T12:00:00Z", "end": "2027-03-03T08:00:00Z"}},
        ),
        (
            "window-bad-time",
            {"window": {"start": "2027-03-03 08:00", "end": "2027-03-03T12:00:00Z"}},
        ),
        ("route-empty", {"route": []}),
        ("route-not-list", {"route": "courier"}),
        ("exam-missing", {"exam": DROP}),
        ("paper-empty", {"paper": ""}),
    ):
        c = f.case(f"body-{name}", f"body: {name.replace('-', ' ')}")
        c.done(c.seal_env(body=body), "refuse format")
    c = f.case("dated-6-min-early", "a seal is made online: 6 minutes before the receive time")
    c.done(c.seal_env(time=RECEIVED - 6 * MIN, opens=RECEIVED - 6 * MIN), "refuse clock")
    c = f.case("dated-6-min-late", "dated 6 minutes after the receive time")
    c.done(c.seal_env(time=RECEIVED + 6 * MIN, opens=RECEIVED + 6 * MIN), "refuse clock")
    c = f.case("dated-5-min-late", "within the skew after the receive time")
    c.done(c.seal_env(time=RECEIVED + 5 * MIN, opens=RECEIVED + 5 * MIN), "accept")


def transfer_vectors(f: VectorFile, kind: str) -> None:
    """dispatch and handover: releaser = holder, receiver = next on route (+ witness)."""
    before = {"dispatch": "sealed", "handover": "in_transit"}[kind]
    rel, rec = {"dispatch": ("sealer", "courier1"), "handover": ("courier1", "courier2")}[kind]

    c = f.case("accept", f"a {kind} to the next person on the route")
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec), "accept")
    c = f.case("accept-with-witness", "the exam's policy asks for a supervising witness, who signs")
    c.to(before, witness=True)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, witness="supervisor"), "accept")
    c = f.case("witness-not-named", "the policy asks for a witness; actors names none")
    c.to(before, witness=True)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec), "refuse threshold")
    c = f.case("witness-named-not-signed", "the witness is named but did not sign")
    c.to(before, witness=True)
    c.done(
        c.transfer_env(kind, [c.pkg()], rel, rec, witness="supervisor", signers=[rel, rec]),
        "refuse threshold",
    )
    c = f.case("witness-not-supervisor", "the witness slot needs a supervisor; an auditor signs")
    c.to(before, witness=True)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, witness="auditor"), "refuse role")
    c = f.case("witness-recused", "the witness is recused from the package's position")
    c.who("supervisor2", recusals=["position:P014"])
    c.to(before, witness=True)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, witness="supervisor2"), "refuse recused")
    c = f.case("receiver-off-route", "the receiver is not the next person on the route")
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, "courier3"), "refuse route")
    c = f.case("receiver-not-signed", "the receiver did not sign")
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, signers=[rel]), "refuse threshold")
    c = f.case("holder-not-signed", "someone other than the holder signs as releaser")
    c.to(before)
    c.done(
        c.transfer_env(kind, [c.pkg()], "courier3", rec, signers=["courier3", rec]),
        "refuse threshold",
    )
    c = f.case("receiver-recused", "the receiver is recused from this package")
    c.who(rec, recusals=[f"package:{c.pkg()}"])
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec), "refuse recused")
    c = f.case("link-prefix", "the previous event named by a 16-hex prefix of its id")
    c.to(before)
    c.done(
        c.transfer_env(kind, {c.pkg(): c.last_id(c.pkg())[:16]}, rel, rec),  # type: ignore[arg-type]
        "refuse chain",
    )
    c = f.case("link-wrong", "the previous event is another statement's id")
    c.to(before)
    c.done(c.transfer_env(kind, {c.pkg(): "0" * 64}, rel, rec), "refuse chain")  # type: ignore[arg-type]
    c = f.case("link-null", "a null link after the seal")
    c.to(before)
    c.done(c.transfer_env(kind, {c.pkg(): None}, rel, rec), "refuse chain")  # type: ignore[arg-type]
    c = f.case("never-sealed", "a package the log never saw")
    c.done(c.transfer_env(kind, {c.pkg(): "1" * 64}, rel, rec), "refuse chain")  # type: ignore[arg-type]
    c = f.case("before-previous", "dated before the package's previous event")
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, time=SETUP - 30 * SEC), "refuse chain")
    c = f.case("seal-mismatch", "observed seals differ from the sealed ones: accepted, a finding")
    c.to(before)
    c.done(
        c.transfer_env(kind, [c.pkg()], rel, rec, body={"seals": ["X-1", "X-2", "X-3"]}),
        "accept",
        ["seal_mismatch"],
    )
    c = f.case("seals-not-list", "body.seals must be a list of serials")
    c.to(before)
    c.done(c.transfer_env(kind, [c.pkg()], rel, rec, body={"seals": "all"}), "refuse format")
    wrong = {"dispatch": "in_transit", "handover": "sealed"}[kind]
    c = f.case(f"from-{wrong}", f"a {kind} cannot follow status {wrong}")
    if kind == "dispatch":
        c.to("in_transit")
        c.done(c.transfer_env(kind, [c.pkg()], "courier1", "courier2"), "refuse chain")
    else:
        c.to("sealed")
        c.done(c.transfer_env(kind, [c.pkg()], "sealer", "courier1"), "refuse chain")
    c = f.case("after-destroy", "nothing follows destruction")
    c.to("destroyed")
    c.done(c.transfer_env(kind, [c.pkg()], "custodian1", "courier1", body={}), "refuse closed")


def handover_extra(f: VectorFile) -> None:
    c = f.case("frozen-to-courier", "a frozen package goes only to a custodian or secrecy officer")
    c.to("in_transit")
    c.step(c.officer_env("freeze", [c.pkg()], c.sealed("reason", "vector")))
    c.done(c.transfer_env("handover", [c.pkg()], "courier1", "courier2"), "refuse frozen")
    c = f.case("frozen-to-custodian", "a frozen package into secure custody, off its route")
    c.to("in_transit")
    c.step(c.officer_env("freeze", [c.pkg()], c.sealed("reason", "vector")))
    c.done(c.transfer_env("handover", [c.pkg()], "courier1", "custodian2"), "accept")
    c = f.case("after-reroute", "a secrecy officer's reroute replaces the rest of the route")
    c.to("in_transit")
    c.step(c.officer_env("reroute", [c.pkg()], {"route": [c.who("courier3"), c.who("custodian1")]}))
    c.done(c.transfer_env("handover", [c.pkg()], "courier1", "courier3"), "accept")
    c = f.case("old-route-after-reroute", "after a reroute the old next holder is off route")
    c.to("in_transit")
    c.step(c.officer_env("reroute", [c.pkg()], {"route": [c.who("courier3"), c.who("custodian1")]}))
    c.done(c.transfer_env("handover", [c.pkg()], "courier1", "courier2"), "refuse route")


def receive_vectors(f: VectorFile) -> None:
    c = f.case("accept", "two custodians take the package into storage")
    c.to("handed")
    c.done(
        c.transfer_env("receive", [c.pkg()], "courier2", "custodian1", custodian2="custodian2"),
        "accept",
    )
    c = f.case("accept-from-sealed", "received straight from the sealer")
    c.to("sealed")
    c.done(
        c.transfer_env("receive", [c.pkg()], "sealer", "courier1", custodian2="custodian2"),
        "accept",
    )
    c = f.case("custodian2-not-named", "the second custodian is a slot of its own")
    c.to("handed")
    c.done(c.transfer_env("receive", [c.pkg()], "courier2", "custodian1"), "refuse threshold")
    c = f.case("custodian2-a-courier", "custodian2 must hold the custodian role")
    c.to("handed")
    c.done(
        c.transfer_env("receive", [c.pkg()], "courier2", "custodian1", custodian2="courier3"),
        "refuse role",
    )
    c = f.case("custodian2-is-receiver", "one person cannot fill two slots")
    c.to("handed")
    c.done(
        c.transfer_env(
            "receive",
            [c.pkg()],
            "courier2",
            "custodian1",
            custodian2="custodian1",
            signers=["courier2", "custodian1"],
        ),
        "refuse threshold",
    )
    c = f.case("from-stored", "receive cannot follow stored")
    c.to("stored")
    c.done(
        c.transfer_env("receive", [c.pkg()], "custodian1", "custodian2", custodian2="custodian3"),
        "refuse chain",
    )


def inspect_vectors(f: VectorFile, kind: str) -> None:
    at = "stored" if kind == "patrol" else "in_transit"
    c = f.case("accept-custodian", f"a custodian's {kind}")
    c.to(at)
    c.done(
        c.event(
            kind,
            [c.pkg()],
            {"inspector": c.who("custodian2")},
            {"seals": c.serials(c.pkg())},
            ["custodian2"],
        ),
        "accept",
    )
    c = f.case("accept-courier-on-route", "a courier on the package's route")
    c.to(at)
    c.done(c.event(kind, [c.pkg()], {"inspector": c.who("courier2")}, {}, ["courier2"]), "accept")
    c = f.case("inspector-not-signed", "the inspector actors names did not sign; another did")
    c.to(at)
    c.done(
        c.event(kind, [c.pkg()], {"inspector": c.who("custodian2")}, {}, ["custodian1"]),
        "refuse threshold",
    )
    c = f.case("inspector-not-named", "actors names no inspector")
    c.to(at)
    c.done(c.event(kind, [c.pkg()], {}, {}, ["custodian2"]), "refuse threshold")
    c = f.case("courier-no-part", "a courier neither holding nor on the route")
    c.to(at)
    c.done(
        c.event(kind, [c.pkg()], {"inspector": c.who("courier3")}, {}, ["courier3"]), "refuse role"
    )
    c = f.case("examiner-not-inspector", "a chief examiner holds no inspector role")
    c.to(at)
    c.done(
        c.event(kind, [c.pkg()], {"inspector": c.who("examiner")}, {}, ["examiner"]), "refuse role"
    )
    c = f.case("offline-3h", "captured offline 3 hours before it arrived: accepted, late")
    c.early().to(at)
    c.done(
        c.event(
            kind,
            [c.pkg()],
            {"inspector": c.who("custodian2")},
            {},
            ["custodian2"],
            time=RECEIVED - 3 * HOUR,
        ),
        "accept",
        ["late"],
    )
    c = f.case("offline-25h", "captured offline 25 hours before: beyond the lag")
    c.early().to(at)
    c.done(
        c.event(
            kind,
            [c.pkg()],
            {"inspector": c.who("custodian2")},
            {},
            ["custodian2"],
            time=RECEIVED - 25 * HOUR,
        ),
        "refuse clock",
    )
    c = f.case(
        "offline-before-previous", "captured offline, but dated before the package's previous event"
    )
    c.to(at)
    c.done(
        c.event(
            kind,
            [c.pkg()],
            {"inspector": c.who("custodian2")},
            {},
            ["custodian2"],
            time=RECEIVED - 2 * HOUR,
        ),
        "refuse chain",
    )
    c = f.case("seal-mismatch", "observed seals differ: accepted, a finding")
    c.to(at)
    c.done(
        c.event(
            kind, [c.pkg()], {"inspector": c.who("custodian2")}, {"seals": ["X"]}, ["custodian2"]
        ),
        "accept",
        ["seal_mismatch"],
    )
    wrong = "opened"
    c = f.case(f"from-{wrong}", f"no {kind} of an opened package")
    c.to(wrong)
    c.done(
        c.event(kind, [c.pkg()], {"inspector": c.who("custodian2")}, {}, ["custodian2"]),
        "refuse chain",
    )


def checkin_vectors(f: VectorFile) -> None:
    c = f.case("accept", "the holding courier's all-well")
    c.to("in_transit")
    c.done(c.event("checkin", [c.pkg()], {"escort": c.who("courier1")}, {}, ["courier1"]), "accept")
    c = f.case("offline-23h", "captured offline 23 hours before: accepted, late")
    c.early().to("in_transit")
    c.done(
        c.event(
            "checkin",
            [c.pkg()],
            {"escort": c.who("courier1")},
            {},
            ["courier1"],
            time=RECEIVED - 23 * HOUR,
        ),
        "accept",
        ["late"],
    )
    c = f.case("not-holder", "a courier who does not hold the package")
    c.to("in_transit")
    c.done(
        c.event("checkin", [c.pkg()], {"escort": c.who("courier2")}, {}, ["courier2"]),
        "refuse threshold",
    )
    c = f.case(
        "from-stored",
        "the escort slot is the holder as a courier: a stored package's holder is a custodian",
    )
    c.to("stored")
    c.done(
        c.event("checkin", [c.pkg()], {"escort": c.who("custodian1")}, {}, ["custodian1"]),
        "refuse role",
    )


def pair_vectors(f: VectorFile, kind: str) -> None:
    before = {"open": "stored", "distribute": "opened", "recover": "distributed"}[kind]
    body: dict[str, Any] = {"open": {}, "distribute": {"copies": 30}, "recover": {"copies": 30}}[
        kind
    ]
    c = f.case("accept", f"chief examiner and supervisor {kind} together")
    c.to(before)
    c.done(c.pair_env(kind, [c.pkg()], body), "accept")
    c = f.case("supervisor-not-signed", "no supervisor, no opening")
    c.to(before)
    c.done(c.pair_env(kind, [c.pkg()], body, signers=["examiner"]), "refuse threshold")
    c = f.case("examiner-not-signed", "the chief examiner did not sign")
    c.to(before)
    c.done(c.pair_env(kind, [c.pkg()], body, signers=["supervisor"]), "refuse threshold")
    c = f.case("supervisor-not-named", "actors names no supervisor")
    c.to(before)
    c.done(
        c.pair_env(
            kind, [c.pkg()], body, actors={"examiner": c.who("examiner")}, signers=["examiner"]
        ),
        "refuse threshold",
    )
    c = f.case("examiner-a-supervisor", "the examiner slot needs a chief examiner")
    c.to(before)
    c.done(
        c.pair_env(
            kind,
            [c.pkg()],
            body,
            actors={"examiner": c.who("supervisor2"), "supervisor": c.who("supervisor")},
            signers=["supervisor2", "supervisor"],
        ),
        "refuse role",
    )
    c = f.case("examiner-recused", "the chief examiner is recused from the exam")
    c.who("examiner2", recusals=[f"exam:{EXAM}"])
    c.to(before)
    c.done(
        c.pair_env(
            kind,
            [c.pkg()],
            body,
            actors={"examiner": c.who("examiner2"), "supervisor": c.who("supervisor")},
            signers=["examiner2", "supervisor"],
        ),
        "refuse recused",
    )
    c = f.case("wrong-status", f"a {kind} cannot follow sealed")
    c.to("sealed")
    c.done(c.pair_env(kind, [c.pkg()], body), "refuse chain")
    if kind == "open":
        c = f.case("before-window", "the window opens in two days")
        c.step(c.seal_env(opens=RECEIVED + 2 * DAY, closes=RECEIVED + 2 * DAY + 3 * HOUR))
        for reached in ("in_transit", "handed", "stored"):
            c.step(c.lifecycle(reached, c.pkg(), 1, False))
        c.done(c.pair_env(kind, [c.pkg()], body), "refuse window")
        c = f.case("after-window", "the window closed before the receive time")
        c.step(c.seal_env(closes=SETUP + 2 * MIN))
        for reached in ("in_transit", "handed", "stored"):
            c.step(c.lifecycle(reached, c.pkg(), 1, False))
        c.done(c.pair_env(kind, [c.pkg()], body), "refuse window")
        c = f.case(
            "window-by-receive-time",
            "dated inside the window (4 min after the receive time, within the skew), but the "
            "window opens 3 min after the receive time: the log's clock decides",
        )
        c.step(c.seal_env(opens=RECEIVED + 3 * MIN, closes=RECEIVED + 3 * HOUR))
        for reached in ("in_transit", "handed", "stored"):
            c.step(c.lifecycle(reached, c.pkg(), 1, False))
        c.done(c.pair_env(kind, [c.pkg()], body, time=RECEIVED + 4 * MIN), "refuse window")
        c = f.case("dated-6-min-early", "an opening is made online")
        c.to("stored")
        c.done(c.pair_env(kind, [c.pkg()], body, time=RECEIVED - 6 * MIN), "refuse clock")
    if kind == "distribute":
        c = f.case("more-than-copies", "31 copies of a package of 30")
        c.to(before)
        c.done(c.pair_env(kind, [c.pkg()], {"copies": 31}), "refuse format")
        c = f.case("copies-negative", "copies is a non-negative integer")
        c.to(before)
        c.done(c.pair_env(kind, [c.pkg()], {"copies": -1}), "refuse format")
    if kind == "recover":
        c = f.case("count-short", "29 back of 30 distributed: accepted, a finding")
        c.to(before)
        c.done(c.pair_env(kind, [c.pkg()], {"copies": 29}), "accept", ["count_mismatch"])


def return_vectors(f: VectorFile) -> None:
    c = f.case("accept", "recovered copies back to a custodian")
    c.to("recovered")
    c.done(c.transfer_env("return", [c.pkg()], "examiner", "custodian1", body={}), "accept")
    c = f.case("accept-from-opened", "an opened package returned unused")
    c.to("opened")
    c.done(c.transfer_env("return", [c.pkg()], "examiner", "custodian2", body={}), "accept")
    c = f.case("to-courier", "a return goes to a custodian only")
    c.to("recovered")
    c.done(c.transfer_env("return", [c.pkg()], "examiner", "courier1", body={}), "refuse route")
    c = f.case("from-stored", "a return follows recovered or opened")
    c.to("stored")
    c.done(c.transfer_env("return", [c.pkg()], "custodian1", "custodian2", body={}), "refuse chain")


def destroy_vectors(f: VectorFile) -> None:
    c = f.case("accept", "destruction officer and witness close the chain")
    c.to("returned")
    c.done(c.destroy_env([c.pkg()]), "accept")
    c = f.case("accept-certificate", "one destruction certificate for three packages")
    c.to("stored", 1, 2, 3)
    c.done(c.destroy_env([c.pkg(1), c.pkg(2), c.pkg(3)]), "accept")
    c = f.case("accept-witness-auditor", "an auditor may witness a destruction")
    c.to("stored")
    c.done(
        c.destroy_env(
            [c.pkg()],
            actors={"officer": c.who("officer"), "witness": c.who("auditor")},
            signers=["officer", "auditor"],
        ),
        "accept",
    )
    c = f.case("officer-not-signed", "the destruction officer did not sign")
    c.to("returned")
    c.done(c.destroy_env([c.pkg()], signers=["supervisor"]), "refuse threshold")
    c = f.case("witness-missing", "no witness")
    c.to("returned")
    c.done(
        c.destroy_env([c.pkg()], actors={"officer": c.who("officer")}, signers=["officer"]),
        "refuse threshold",
    )
    c = f.case("witness-a-courier", "a courier cannot witness destruction")
    c.to("returned")
    c.done(
        c.destroy_env(
            [c.pkg()],
            actors={"officer": c.who("officer"), "witness": c.who("courier1")},
            signers=["officer", "courier1"],
        ),
        "refuse role",
    )
    c = f.case("twice", "a destroyed package's chain is closed")
    c.to("destroyed")
    c.done(c.destroy_env([c.pkg()]), "refuse closed")
    c = f.case("in-transit", "no destruction in transit")
    c.to("in_transit")
    c.done(c.destroy_env([c.pkg()]), "refuse chain")


def officer_vectors(f: VectorFile) -> None:
    for kind, fixed in (
        ("freeze", None),
        ("release", None),
        ("compromise", {"paper": "P"}),
        ("activate_backup", {"paper": "P", "backup": "B"}),
    ):
        c = f.case(f"{kind}-accept", f"a secrecy officer's {kind}")
        c.to("stored")
        body = fixed or c.sealed("reason", "vector")
        c.done(c.officer_env(kind, [c.pkg()], body), "accept")
        c = f.case(f"{kind}-by-custodian", f"{kind} needs a secrecy officer")
        c.to("stored")
        body = fixed or c.sealed("reason", "vector")
        c.done(
            c.officer_env(
                kind,
                [c.pkg()],
                body,
                actors={"officer": c.who("custodian1")},
                signers=["custodian1"],
            ),
            "refuse role",
        )
    c = f.case("officer-not-signed", "the secrecy officer actors names did not sign")
    c.to("stored")
    c.done(
        c.officer_env("freeze", [c.pkg()], c.sealed("reason", "x"), signers=["custodian1"]),
        "refuse threshold",
    )
    c = f.case("officer-not-named", "actors names no officer")
    c.to("stored")
    c.done(
        c.officer_env("freeze", [c.pkg()], c.sealed("reason", "x"), actors={}, signers=["secrecy"]),
        "refuse threshold",
    )
    c = f.case("reroute-accept", "a new rest of the route")
    c.to("in_transit")
    c.done(c.officer_env("reroute", [c.pkg()], {"route": [c.who("courier3")]}), "accept")
    c = f.case("reroute-not-list", "body.route must be a list of person ids")
    c.to("in_transit")
    c.done(c.officer_env("reroute", [c.pkg()], {"route": "x"}), "refuse format")
    c = f.case("frozen-open", "a frozen package is not opened")
    c.to("stored")
    c.step(c.officer_env("freeze", [c.pkg()], c.sealed("reason", "vector")))
    c.done(c.pair_env("open", [c.pkg()], {}), "refuse frozen")
    c = f.case("released-open", "released, it opens again")
    c.to("stored")
    c.step(c.officer_env("freeze", [c.pkg()], c.sealed("reason", "vector")))
    c.step(c.officer_env("release", [c.pkg()], c.sealed("reason", "vector")))
    c.done(c.pair_env("open", [c.pkg()], {}), "accept")
    c = f.case("correction-accept", "a correction names the full id of the statement it corrects")
    c.to("in_transit")
    c.done(
        c.officer_env(
            "correction",
            [c.pkg()],
            c.sealed("reason", "wrong place"),
            corrects=c.last_id(c.pkg()),
        ),
        "accept",
    )
    c = f.case("correction-without-corrects", "a correction names what it corrects")
    c.to("in_transit")
    c.done(c.officer_env("correction", [c.pkg()], c.sealed("reason", "x")), "refuse format")
    c = f.case("correction-unknown", "the corrected statement is not in the log")
    c.to("in_transit")
    c.done(
        c.officer_env("correction", [c.pkg()], c.sealed("reason", "x"), corrects="2" * 64),
        "refuse chain",
    )
    sealed_text_vectors(f)


def sealed_text_vectors(f: VectorFile) -> None:
    """A person's words are sealed to the secrecy officers (docs/formats.md, "What is in
    clear"): a text in clear is ``format`` (after the signers), a malformed box ``format``,
    a box to anyone but a secrecy officer ``role``."""
    for kind in ("freeze", "release", "correction"):
        c = f.case(f"{kind}-reason-in-clear", f"a {kind}'s reason in clear is refused")
        c.to("stored")
        corrects = {"corrects": c.last_id(c.pkg())} if kind == "correction" else {}
        c.done(
            c.officer_env(kind, [c.pkg()], {"reason": "押运员电话 13700002222"}, **corrects),
            "refuse format",
        )
    c = f.case("freeze-empty-reason", "an empty reason is no text: accepted")
    c.to("stored")
    c.done(c.officer_env("freeze", [c.pkg()], {"reason": ""}), "accept")
    bad: list[tuple[str, str, Any]] = [
        ("sha256-not-hex", "sha256 is 64 lowercase hex", {"sha256": "X" * 64}),
        ("no-box", "sealed holds 1 to 64 boxes", {"sealed": []}),
        ("box-not-base64", "a box is canonical base64", {"box": "not base64!"}),
    ]
    for name, title, change in bad:
        c = f.case(f"freeze-sealed-{name}", f"reason_sealed: {title}")
        c.to("stored")
        body = c.sealed("reason", "vector")
        sealed = body["reason_sealed"]
        if "box" in change:
            sealed["sealed"][0]["box"] = change["box"]
        else:
            sealed.update(change)
        c.done(c.officer_env("freeze", [c.pkg()], body), "refuse format")
    c = f.case("freeze-sealed-to-auditor", "a reason sealed to an auditor, not a secrecy officer")
    c.to("stored")
    c.done(
        c.officer_env("freeze", [c.pkg()], c.sealed("reason", "vector", to="auditor")),
        "refuse role",
    )


def packageless_vectors(f: VectorFile) -> None:
    season = f.season
    c = f.case("leak-report-accept", "anyone enrolled reports a leak (no package in the chain)")
    c.to("stored")
    c.done(
        c.event(
            "leak_report",
            {},
            {"reporter": c.who("auditor")},
            {"packages": [c.pkg()], **c.sealed("text", "题目外泄 paper seen online")},
            ["auditor"],
        ),
        "accept",
    )
    c = f.case("leak-report-unsigned-reporter", "the reporter must sign")
    c.who("auditor")
    c.done(
        c.event(
            "leak_report",
            {},
            {"reporter": c.who("auditor")},
            {"packages": [], **c.sealed("text", "x")},
            ["courier1"],
        ),
        "refuse threshold",
    )
    c = f.case("leak-report-text-in-clear", "a leak report's text in clear is refused")
    c.done(
        c.event(
            "leak_report",
            {},
            {"reporter": c.who("auditor")},
            {"packages": [], "text": "考生李雷 13800001111 卖题"},
            ["auditor"],
        ),
        "refuse format",
    )
    c = f.case("incident-by-person", "incident statements come from the system key alone")
    c.done(
        c.event(
            "incident", {}, {"officer": c.who("secrecy")}, {"incident": "INC-00001"}, ["secrecy"]
        ),
        "refuse role",
    )
    c = f.case("system-by-person-key", "actors.system, signed by a person's key")
    c.who("secrecy")
    c.done(
        c.event(
            "incident", {}, {"system": season.authority.id}, {"incident": "INC-00001"}, ["secrecy"]
        ),
        "refuse signature",
    )
    c = f.case(
        "system-freeze-accept", "a freeze made by the system, signed by the system key alone"
    )
    c.to("in_transit")
    payload = c.payload(
        "freeze",
        [c.pkg()],
        {"system": season.authority.id},
        {"incident": "INC-99999", "reason": "vector"},
    )
    c.done(sign_raw(canonical_json(payload), [season.system]), "accept")
    c = f.case("system-incident-accept", "an incident statement: the system key alone, no package")
    payload = c.payload(
        "incident",
        {},
        {"system": season.authority.id},
        {
            "type": "custody.incident.v1",
            "incident": "INC-90001",
            "action": "open",
            "kind": "public_report",
        },
    )
    c.done(sign_raw(canonical_json(payload), [season.system]), "accept")
    c = f.case("system-other-authority", "actors.system must be the authority id")
    c.to("in_transit")
    payload = c.payload(
        "freeze", [c.pkg()], {"system": "0" * 64}, {"incident": "INC-99999", "reason": "x"}
    )
    c.done(sign_raw(canonical_json(payload), [season.system]), "refuse format")
    c = f.case("system-and-person", "a system statement carries no other signature")
    c.to("in_transit")
    payload = c.payload(
        "freeze",
        [c.pkg()],
        {"system": season.authority.id},
        {"incident": "INC-99999", "reason": "x"},
    )
    c.done(sign_raw(canonical_json(payload), [season.system, c.key("secrecy")]), "refuse signature")
    c = f.case("system-dispatch", "the system makes only incident, freeze, compromise, paper_act")
    c.to("sealed")
    payload = c.payload("dispatch", [c.pkg()], {"system": season.authority.id}, {})
    c.done(sign_raw(canonical_json(payload), [season.system]), "refuse role")
    c = f.case("paper-act-by-person", "paper acts are recorded by the system")
    c.done(
        c.event("paper_act", {}, {"officer": c.who("secrecy")}, {"act_kind": "print"}, ["secrecy"]),
        "refuse format",
    )
    c = f.case(
        "dispatch-no-package", "only incident, leak_report and paper_act may name no package"
    )
    c.done(
        c.event(
            "dispatch",
            {},
            {"releaser": c.who("courier1"), "receiver": c.who("courier2")},
            {},
            ["courier1", "courier2"],
        ),
        "refuse format",
    )


def multi_vectors(f: VectorFile) -> None:
    c = f.case("dispatch-two-accept", "two packages of one policy dispatched together")
    c.to("sealed", 1, 2)
    c.done(c.transfer_env("dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1"), "accept")
    c = f.case("dispatch-two-witness-accept", "both ask for a witness, who signs once for both")
    c.to("sealed", 1, 2, witness=True)
    c.done(
        c.transfer_env(
            "dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1", witness="supervisor"
        ),
        "accept",
    )
    c = f.case("mixed-witness-policy", "one package asks for a witness, the other does not")
    c.step(c.seal_env(1, witness=False))
    c.step(c.seal_env(2, witness=True))
    c.done(
        c.transfer_env(
            "dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1", witness="supervisor"
        ),
        "refuse mixed_packages",
    )
    c = f.case("mixed-witness-policy-unnamed", "the second package's witness is skipped")
    c.step(c.seal_env(1, witness=False))
    c.step(c.seal_env(2, witness=True))
    c.done(
        c.transfer_env("dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1"),
        "refuse mixed_packages",
    )
    c = f.case("mixed-holders", "the packages are held by different people")
    c.to("in_transit", 1)
    c.to("sealed", 2)
    c.done(
        c.transfer_env("handover", [c.pkg(1), c.pkg(2)], "courier1", "courier2"),
        "refuse mixed_packages",
    )
    c = f.case("recused-second", "the receiver is recused from the second package only")
    c.who("courier1", recusals=[f"package:{c.pkg(2)}"])
    c.to("sealed", 1, 2)
    c.done(c.transfer_env("dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1"), "refuse recused")
    c = f.case("off-route-second", "the second package's route goes elsewhere")
    c.step(c.seal_env(1))
    c.step(c.seal_env(2, route=("courier3", "custodian1")))
    c.done(c.transfer_env("dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1"), "refuse route")
    c = f.case("state-second", "the second package was dispatched already")
    c.to("sealed", 1)
    c.to("in_transit", 2)
    c.done(
        c.transfer_env("dispatch", [c.pkg(1), c.pkg(2)], "sealer", "courier1"),
        "refuse mixed_packages",
    )
    c = f.case("link-second", "the second package's link is stale")
    c.to("sealed", 1, 2)
    links = {c.pkg(1): c.last_id(c.pkg(1)), c.pkg(2): "3" * 64}
    c.done(c.transfer_env("dispatch", links, "sealer", "courier1"), "refuse chain")  # type: ignore[arg-type]
    c = f.case("destroyed-second", "the second package was destroyed")
    c.to("stored", 1)
    c.to("destroyed", 2)
    c.done(c.destroy_env([c.pkg(1), c.pkg(2)]), "refuse closed")
    c = f.case("open-window-second", "the second package's window has not opened")
    c.to("stored", 1)
    c.step(c.seal_env(2, opens=RECEIVED + DAY, closes=RECEIVED + DAY + HOUR))
    for reached in ("in_transit", "handed", "stored"):
        c.step(c.lifecycle(reached, c.pkg(2), 2, False))
    c.done(c.pair_env("open", [c.pkg(1), c.pkg(2)], {}), "refuse window")
    c = f.case(
        "seals-union",
        "body.seals of a two-package event is compared with each package's own serials",
    )
    c.to("sealed", 1, 2)
    c.done(
        c.transfer_env(
            "dispatch",
            [c.pkg(1), c.pkg(2)],
            "sealer",
            "courier1",
            body={"seals": c.serials(c.pkg(1)) + c.serials(c.pkg(2))},
        ),
        "accept",
        ["seal_mismatch", "seal_mismatch"],
    )
    c = f.case(
        "seals-first-only",
        "body.seals holds the first package's serials: the second package mismatches",
    )
    c.to("sealed", 1, 2)
    c.done(
        c.transfer_env(
            "dispatch",
            [c.pkg(1), c.pkg(2)],
            "sealer",
            "courier1",
            body={"seals": c.serials(c.pkg(1))},
        ),
        "accept",
        ["seal_mismatch"],
    )
    c = f.case(
        "seals-unread-once-opened",
        "after opening, body.seals is not read: even a value that is not a list passes",
    )
    c.to("opened")
    c.done(
        c.transfer_env("return", [c.pkg()], "examiner", "custodian1", body={"seals": "all"}),
        "accept",
    )


def clock_vectors(f: VectorFile) -> None:
    # Online kinds: within the skew either way, or refused.
    for name, offset, expect in (
        ("dispatch-plus-5min", 5 * MIN, "accept"),
        ("dispatch-plus-6min", 6 * MIN, "refuse clock"),
        ("dispatch-minus-5min", -5 * MIN, "accept"),
        ("dispatch-minus-6min", -6 * MIN, "refuse clock"),
        ("dispatch-plus-48h", 48 * HOUR, "refuse clock"),
    ):
        c = f.case(name, f"a dispatch (made online) dated {offset} from the receive time")
        c.step(c.seal_env(time=RECEIVED - 5 * MIN))
        c.done(
            c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1", time=RECEIVED + offset),
            expect,
        )
    # Offline kinds: the package was sealed and dispatched at the earlier clock.
    for name, offset, expect, findings in (
        ("handover-minus-5min", -5 * MIN, "accept", []),
        ("handover-minus-6min-late", -6 * MIN, "accept", ["late"]),
        ("handover-minus-23h-late", -23 * HOUR, "accept", ["late"]),
        ("handover-minus-24h-exact", -24 * HOUR, "accept", ["late"]),
        ("handover-minus-24h-1s", -24 * HOUR - SEC, "refuse clock", []),
        ("handover-plus-6min", 6 * MIN, "refuse clock", []),
    ):
        c = f.case(
            name, f"a handover (may be captured offline) dated {offset} from the receive time"
        )
        c.early().to("in_transit")
        c.done(
            c.transfer_env("handover", [c.pkg()], "courier1", "courier2", time=RECEIVED + offset),
            expect,
            findings,
        )
    c = f.case("inspect-next-june", "an inspection dated next June")
    c.to("in_transit")
    c.done(
        c.event(
            "inspect",
            [c.pkg()],
            {"inspector": c.who("courier1")},
            {},
            ["courier1"],
            time=utc(2027, 6, 1),
        ),
        "refuse clock",
    )
    c = f.case("patrol-plus-6min", "a patrol dated 6 minutes ahead")
    c.to("stored")
    c.done(
        c.event(
            "patrol",
            [c.pkg()],
            {"inspector": c.who("custodian2")},
            {},
            ["custodian2"],
            time=RECEIVED + 6 * MIN,
        ),
        "refuse clock",
    )
    c = f.case("receive-minus-6min", "a receive into storage is made online")
    c.early().to("handed")
    c.done(
        c.transfer_env(
            "receive",
            [c.pkg()],
            "courier2",
            "custodian1",
            custodian2="custodian2",
            time=RECEIVED - 6 * MIN,
        ),
        "refuse clock",
    )


def blocked_key_vectors(f: VectorFile) -> None:
    """The blocked-key gate: a refusal whose suspects the incident desk blocks, then the
    blocked key signing again. These cases are not isolated from each other: each later case
    borrows the person whose key the first case's refusal left blocked."""
    first = f.case(
        "off-route-blocks-receiver",
        "a dispatch to a courier off the route: refused; the desk opens an off_route incident "
        "(high) that blocks the receiver's key",
    )
    first.to("sealed")
    first.done(first.transfer_env("dispatch", [first.pkg()], "sealer", "courier3"), "refuse route")
    blocked = first.who("courier3")

    c = f.case(
        "blocked-key-signs",
        f"{blocked} (blocked by the first case) is the next on this route and signs the dispatch",
    )
    c.people["courier1"] = blocked
    c.to("sealed")
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse blocked_key")

    c = f.case(
        "blocked-before-rules",
        "the blocked key co-signs a dispatch whose link is wrong: the gate answers first",
    )
    c.people["courier1"] = blocked
    c.to("sealed")
    c.done(
        c.transfer_env("dispatch", {c.pkg(): "4" * 64}, "sealer", "courier1"),  # type: ignore[arg-type]
        "refuse blocked_key",
    )

    c = f.case(
        "blocked-extra-signature",
        "a good dispatch by the holder and the next courier, with the blocked key's signature "
        "added (filling no slot): refused all the same",
    )
    c.to("sealed")
    payload = c.payload(
        "dispatch",
        [c.pkg()],
        {"releaser": c.who("sealer"), "receiver": c.who("courier1")},
        {"seals": c.serials(c.pkg())},
    )
    c.done(
        sign_raw(
            canonical_json(payload), [c.key("sealer"), c.key("courier1"), c.season.keys[blocked]]
        ),
        "refuse blocked_key",
    )

    c = f.case(
        "revoked-blocks-signer",
        "a dispatch signed by a receiver revoked before its time: refused; the desk blocks "
        "the revoked key",
    )
    c.to("sealed")
    f.season.revoke(
        c.key("courier1"), RevocationReason.LEFT_POST, effective=SETUP - HOUR, issued=SETUP - HOUR
    )
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse revoked")
    revoked = c.who("courier1")

    c = f.case(
        "inspect-by-revoked-blocked",
        f"{revoked}'s key (revoked, so blocked) signs an inspection: the gate answers before "
        "the revocation is judged",
    )
    c.to("in_transit")
    c.done(
        c.event("inspect", [c.pkg()], {"inspector": revoked}, {}, [revoked]),
        "refuse blocked_key",
    )


def revocation_vectors(f: VectorFile) -> None:
    s = f.season
    c = f.case("superseded-before", "revoked (superseded) effective before the statement's time")
    c.to("sealed")
    s.revoke(
        c.key("courier1"), RevocationReason.SUPERSEDED, effective=SETUP - HOUR, issued=SETUP - HOUR
    )
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse revoked")
    c = f.case(
        "left-post-after", "revoked (left post) effective after the statement's time: still good"
    )
    c.to("sealed")
    s.revoke(
        c.key("courier1"),
        RevocationReason.LEFT_POST,
        effective=RECEIVED + HOUR,
        issued=RECEIVED - HOUR,
    )
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "accept")
    c = f.case(
        "compromise-published-backdated",
        "revoked for key_compromise, published before the receive time, effective after the "
        "statement's claimed time: refused whatever the statement claims",
    )
    c.to("sealed")
    s.revoke(
        c.key("courier1"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED + HOUR,
        issued=RECEIVED - MIN,
    )
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse revoked")
    c = f.case(
        "compromise-not-yet-published",
        "revoked for key_compromise, but the revocation is issued after the receive time",
    )
    c.to("sealed")
    s.revoke(
        c.key("courier1"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED + DAY,
        issued=RECEIVED + DAY,
    )
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "accept")
    c = f.case(
        "compromise-offline-late",
        "an offline handover dated before a compromise revocation, received after it was issued",
    )
    c.early().to("in_transit")
    s.revoke(
        c.key("courier2"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED - MIN,
        issued=RECEIVED - MIN,
    )
    c.done(
        c.transfer_env("handover", [c.pkg()], "courier1", "courier2", time=RECEIVED - 10 * MIN),
        "refuse revoked",
    )
    c = f.case("superseded-offline-late", "a late handover dated before a superseded revocation")
    c.early().to("in_transit")
    s.revoke(
        c.key("courier2"),
        RevocationReason.SUPERSEDED,
        effective=RECEIVED - MIN,
        issued=RECEIVED - MIN,
    )
    c.done(
        c.transfer_env("handover", [c.pkg()], "courier1", "courier2", time=RECEIVED - 10 * MIN),
        "accept",
        ["late"],
    )
    c = f.case(
        "earliest-revocation-applies",
        "two revocations name the key: the earliest effective one counts",
    )
    c.to("sealed")
    key = c.key("courier1")
    s.revoke(key, RevocationReason.SUSPENDED, effective=RECEIVED + DAY, issued=SETUP - HOUR)
    s.revoke(key, RevocationReason.LEFT_POST, effective=SETUP - HOUR, issued=SETUP - HOUR)
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse revoked")
    c = f.case("expired", "the receiver's certificate ended before the statement")
    c.who("courier1", not_after=SETUP - DAY, not_before=CERT_FROM)
    c.to("sealed")
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse expired")
    c = f.case("not-yet-valid", "the receiver's certificate starts after the statement")
    c.who("courier1", not_before=RECEIVED + DAY, not_after=CERT_TO)
    c.to("sealed")
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "courier1"), "refuse not_yet_valid")


# --- labels ------------------------------------------------------------------------------------


def label_vectors(f: VectorFile) -> None:
    s = f.season

    def manifest(c: Case, **over: Any) -> Manifest:
        fields: dict[str, Any] = dict(  # noqa: C408 - the Manifest's keyword names
            package_id=c.pkg(),
            exam_id=EXAM,
            session="AM",
            position="P014",
            paper_id="P014-A",
            paper_commitment=hashlib.sha256(c.code.encode()).digest(),
            copy_count=30,
            bag_size=10,
            seal_serials=("S1", "S2", "S3"),
            site="西安市第一考点",
            room="第3考场",
            opens_at=RECEIVED + DAY,
            closes_at=RECEIVED + DAY + HOUR,
            route=(
                RouteStep("print-qian", "PRT-01"),
                RouteStep("courier-sun", "ROAD"),
                RouteStep("custodian-zhou", "XA-01"),
            ),
            classification=Classification.TOP_SECRET,
            issued_at=RECEIVED - DAY,
            expires_at=RECEIVED + 30 * DAY,
        )
        fields.update(over)
        return Manifest(**fields)

    def fields_of(m: Manifest) -> dict[int, Any]:
        return dict(cbor2.loads(manifest_to_cbor(m)))

    def cose_over(
        payload: bytes,
        key: SigningKey,
        *,
        protected: bytes | None = None,
        unprotected: dict[Any, Any] | None = None,
    ) -> bytes:
        prot = protected if protected is not None else protected_header(kid_of(key.key_id))
        sig = key.sign(sig_structure(prot, payload))
        return cbor2.dumps(cbor2.CBORTag(18, [prot, unprotected or {}, payload, sig]))

    def text(body: bytes) -> str:
        return PREFIX + base45.b45encode(body).decode()

    c = f.case("accept", "the typical label, compressed")
    c.done(seal_manifest(manifest(c), c.key("sealer")), "accept")
    c = f.case("accept-uncompressed", "the COSE message itself, not compressed")
    c.done(text(encode_cose(manifest_to_cbor(manifest(c)), c.key("sealer"))), "accept")
    c = f.case("accept-printer", "a printer seals")
    c.done(seal_manifest(manifest(c), c.key("printer")), "accept")
    c = f.case("prefix-wrong", "not a custody label")
    c.done("HC1:" + seal_manifest(manifest(c), c.key("sealer"))[4:], "refuse format")
    c = f.case("version-cp2", "a later version this reader does not know")
    c.done("CP2:" + seal_manifest(manifest(c), c.key("sealer"))[4:], "refuse format")
    c = f.case("base45-bad-char", "a character outside the Base45 alphabet")
    label = seal_manifest(manifest(c), c.key("sealer"))
    c.done(label[:10] + "a" + label[11:], "refuse format")
    c = f.case("base45-dangling", "one dangling Base45 character")
    tail = seal_manifest(manifest(c), c.key("sealer"))[len(PREFIX) :]
    tail = tail + "0" if len(tail) % 3 == 0 else tail[:-1] if len(tail) % 3 == 2 else tail
    assert len(tail) % 3 == 1
    c.done(PREFIX + tail, "refuse format")
    c = f.case("too-long", "more than 1600 characters")
    c.done(PREFIX + "0" * 1600, "refuse format")
    c = f.case("neither-cose-nor-zlib", "the body starts with neither 0xD2 nor 0x78")
    c.done(text(b"\xa0" + b"\x00" * 10), "refuse format")
    c = f.case("zlib-trailing", "bytes after the zlib stream")
    cose = encode_cose(manifest_to_cbor(manifest(c)), c.key("sealer"))
    c.done(text(zlib.compress(cose, 9) + b"\x00"), "refuse format")
    c = f.case("zlib-bomb", "inflates beyond 2048 bytes")
    c.done(text(zlib.compress(b"\xd2" + b"\x00" * 4000, 9)), "refuse format")
    c = f.case("altered-byte", "one manifest byte changed after signing")
    m = manifest(c)
    payload = manifest_to_cbor(m)
    cose = bytearray(cose_over(payload, c.key("sealer")))
    idx = bytes(cose).index(b"P014-A")
    cose[idx + 5] = ord("B")
    c.done(text(bytes(cose)), "refuse signature")
    c = f.case("unknown-kid", "signed by a key no certificate binds")
    c.done(
        seal_manifest(manifest(c), SigningKey(seed(f"stranger {c.code}"))), "refuse unknown_signer"
    )
    c = f.case("unprotected-not-empty", "the unprotected header carries a field")
    c.done(
        text(cose_over(manifest_to_cbor(manifest(c)), c.key("sealer"), unprotected={1: -8})),
        "refuse format",
    )
    c = f.case("protected-extra", "the protected header has a third entry")
    key = c.key("sealer")
    prot = cbor2.dumps({1: -8, 4: kid_of(key.key_id), 3: 0}, canonical=True)
    c.done(text(cose_over(manifest_to_cbor(manifest(c)), key, protected=prot)), "refuse format")
    c = f.case("protected-alg-es256", "alg is not EdDSA")
    prot = cbor2.dumps({1: -7, 4: kid_of(key.key_id)}, canonical=True)
    c.done(text(cose_over(manifest_to_cbor(manifest(c)), key, protected=prot)), "refuse format")
    c = f.case("manifest-not-deterministic", "a manifest map in non-deterministic key order")
    flds = fields_of(manifest(c))
    body = b"\xaf" + b"".join(
        cbor2.dumps(k) + cbor2.dumps(flds[k]) for k in sorted(flds, reverse=True)
    )
    c.done(text(cose_over(body, c.key("sealer"))), "refuse format")
    c = f.case("manifest-extra-key", "key 16 is not a manifest field")
    flds = fields_of(manifest(c))
    flds[16] = 0
    c.done(text(cose_over(cbor2.dumps(flds, canonical=True), c.key("sealer"))), "refuse format")
    c = f.case("manifest-missing-key", "key 3 (session) is missing")
    flds = fields_of(manifest(c))
    del flds[3]
    c.done(text(cose_over(cbor2.dumps(flds, canonical=True), c.key("sealer"))), "refuse format")

    def signed_fields(c: Case, mutate: Callable[[dict[int, Any]], None]) -> str:
        flds = fields_of(manifest(c))
        mutate(flds)
        return text(cose_over(cbor2.dumps(flds, canonical=True), c.key("sealer")))

    for name, note, mutate in (
        (
            "seals-count",
            "30 copies in bags of 10 with two seal serials",
            lambda d: d.__setitem__(9, ["S1", "S2"]),
        ),
        ("seals-duplicate", "a seal serial twice", lambda d: d.__setitem__(9, ["S1", "S1", "S2"])),
        ("copies-zero", "copy count 0", lambda d: d.__setitem__(7, 0)),
        (
            "copies-over",
            "copy count 10001",
            lambda d: (
                d.__setitem__(7, 10001),
                d.__setitem__(8, 10000),
                d.__setitem__(9, ["S1", "S2"]),
            ),
        ),
        (
            "window-before-issue",
            "the window opens before issued-at",
            lambda d: d.__setitem__(11, [d[14] - 1, d[14] + 3600]),
        ),
        (
            "window-reversed",
            "the window ends before it starts",
            lambda d: d.__setitem__(11, [d[11][1], d[11][0]]),
        ),
        (
            "expiry-before-issue",
            "expiry not later than issued-at",
            lambda d: d.__setitem__(15, d[14]),
        ),
        (
            "route-repeat",
            "one person twice in a row",
            lambda d: d.__setitem__(12, [["a", "X"], ["a", "Y"]]),
        ),
        (
            "route-nine-steps",
            "more than 8 route steps",
            lambda d: d.__setitem__(12, [[f"p{i}", "X"] for i in range(9)]),
        ),
        ("classification-4", "classification is 1, 2 or 3", lambda d: d.__setitem__(13, 4)),
        (
            "commitment-31",
            "the paper commitment is 32 bytes",
            lambda d: d.__setitem__(6, b"\x00" * 31),
        ),
        ("package-id-space", "an id with a space", lambda d: d.__setitem__(1, "PK 1")),
        (
            "place-too-long",
            "a destination of 33 characters",
            lambda d: d.__setitem__(10, ["考" * 33, "R"]),
        ),
        (
            "destination-three",
            "destination is [site, room]",
            lambda d: d.__setitem__(10, ["A", "B", "C"]),
        ),
    ):
        c = f.case(f"manifest-{name}", f"valid signature, inconsistent manifest: {note}")
        c.done(signed_fields(c, mutate), "refuse format")

    c = f.case("sealer-courier", "a courier holds no sealing role")
    c.who("sealer", roles=(Role.COURIER,))
    c.done(seal_manifest(manifest(c), c.key("sealer")), "refuse role")
    c = f.case("sealer-recused", "the sealer is recused from the position")
    c.who("sealer", recusals=["position:P014"])
    c.done(seal_manifest(manifest(c), c.key("sealer")), "refuse recused")
    c = f.case(
        "sealer-superseded-later", "revoked (superseded) after issued-at: the label stays good"
    )
    c.who("sealer")
    s.revoke(
        c.key("sealer"),
        RevocationReason.SUPERSEDED,
        effective=RECEIVED - HOUR,
        issued=RECEIVED - HOUR,
    )
    c.done(seal_manifest(manifest(c), c.key("sealer")), "accept")
    c = f.case("sealer-revoked-before", "revoked (left post) before issued-at")
    c.who("sealer")
    s.revoke(
        c.key("sealer"),
        RevocationReason.LEFT_POST,
        effective=RECEIVED - 2 * DAY,
        issued=RECEIVED - 2 * DAY,
    )
    c.done(seal_manifest(manifest(c), c.key("sealer")), "refuse revoked")
    c = f.case(
        "sealer-compromised-backdated",
        "revoked for key_compromise (in force now) after the issued-at it claims",
    )
    c.who("sealer")
    s.revoke(
        c.key("sealer"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED - HOUR,
        issued=RECEIVED - HOUR,
    )
    c.done(seal_manifest(manifest(c), c.key("sealer")), "refuse revoked")
    c = f.case(
        "sealer-compromise-in-future",
        "a key_compromise revocation not yet in force at verification",
    )
    c.who("sealer")
    s.revoke(
        c.key("sealer"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED + HOUR,
        issued=RECEIVED - HOUR,
    )
    c.done(seal_manifest(manifest(c), c.key("sealer")), "accept")
    c = f.case("expired", "used after its expiry")
    c.done(
        seal_manifest(
            manifest(
                c,
                issued_at=RECEIVED - 10 * DAY,
                opens_at=RECEIVED - 9 * DAY,
                closes_at=RECEIVED - 8 * DAY,
                expires_at=RECEIVED - SEC,
            ),
            c.key("sealer"),
        ),
        "refuse expired",
    )
    c = f.case("issued-in-future", "issued-at after the verifier's now")
    c.done(
        seal_manifest(manifest(c, issued_at=RECEIVED + SEC), c.key("sealer")),
        "refuse not_yet_valid",
    )
    c = f.case("sealer-cert-expired", "the sealer's certificate ended before issued-at")
    c.who("sealer", not_after=RECEIVED - 2 * DAY)
    c.done(seal_manifest(manifest(c), c.key("sealer")), "refuse expired")
    c = f.case(
        "zlib-padding",
        "a bit set after the deflate data's end in its last byte (inflates alike: another "
        "writing of the same label)",
    )
    cose = encode_cose(manifest_to_cbor(manifest(c)), c.key("sealer"))
    c.done(text(_with_padding_bit(zlib.compress(cose, 9))), "refuse format")


# --- trust bundles and checkpoints (verified offline) ---------------------------------------


def _signed(
    payload: dict[str, Any] | bytes, payload_type: str, *keys: SigningKey
) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else canonical_json(payload)
    return env_obj(sign_envelope(payload_type, raw, keys))


def trust_bundle_vectors(f: VectorFile) -> None:
    s = f.season
    root = s.root
    stranger = SigningKey(seed("stranger root"))
    cert_type = "application/vnd.custody.certificate.v1+json"
    rev_type = "application/vnd.custody.revocation.v1+json"
    bundle_type = "application/vnd.custody.trust-bundle.v1+json"

    def person(c: Case, role: str) -> dict[str, Any]:
        c.who(role)
        return json.loads(base64.b64decode(s.certificates[-1].to_json_obj()["payload"]))

    def bundle(
        authority: Any,
        certs: list[Any],
        revs: list[Any],
        *signers: SigningKey,
        payload_type: str = bundle_type,
        kind: str = "custody.trust-bundle.v1",
    ) -> str:
        payload = {
            "type": kind,
            "authority": authority,
            "certificates": certs,
            "revocations": revs,
            "issued_at": format_time(RECEIVED),
        }
        return json.dumps(_signed(payload, payload_type, *(signers or (root,))))

    auth = s.authority_envelope.to_json_obj()
    f.extra = {"pin": s.authority.id}

    c = f.case("accept", "the authority, two certificates and a revocation, all root-signed")
    one, two = person(c, "courier1"), person(c, "custodian1")
    rev = Revocation(
        s.authority.id, c.key("courier1").key_id, RECEIVED, RevocationReason.LEFT_POST, RECEIVED, ""
    )
    c.done(
        bundle(
            auth,
            [_signed(one, cert_type, root), _signed(two, cert_type, root)],
            [_signed(rev.payload(), rev_type, root)],
        ),
        "accept",
    )
    c = f.case("accept-empty", "the authority alone")
    c.done(bundle(auth, [], []), "accept")
    c = f.case("bundle-signed-by-another-key", "the bundle's signature is not the root key's")
    c.done(bundle(auth, [], [], stranger), "refuse signature")
    c = f.case("bundle-extra-signature", "the root's signature and another one")
    c.done(bundle(auth, [], [], root, stranger), "refuse signature")
    c = f.case(
        "another-authority", "a self-consistent bundle of another authority, against the pinned one"
    )
    other = Authority(
        "其他 Other",
        stranger.verify_key,
        s.log.verify_key,
        s.system.verify_key,
        f"custody/{stranger.key_id[:16]}",
        CERT_FROM,
    )
    c.done(
        bundle(issue_authority(other, stranger).to_json_obj(), [], [], stranger), "refuse issuer"
    )
    c = f.case("authority-not-self-signed", "the authority statement signed by another key")
    c.done(
        bundle(
            _signed(s.authority.payload(), "application/vnd.custody.authority.v1+json", stranger),
            [],
            [],
        ),
        "refuse issuer",
    )
    c = f.case("certificate-not-root-signed", "a certificate signed by another key")
    c.done(bundle(auth, [_signed(person(c, "courier1"), cert_type, stranger)], []), "refuse issuer")
    c = f.case("certificate-extra-signature", "a certificate signed by the root and another key")
    c.done(
        bundle(auth, [_signed(person(c, "courier1"), cert_type, root, stranger)], []),
        "refuse issuer",
    )
    c = f.case("certificate-other-authority", "a root-signed certificate naming another authority")
    cert = {**person(c, "courier1"), "authority": "0" * 64}
    c.done(bundle(auth, [_signed(cert, cert_type, root)], []), "refuse issuer")
    c = f.case("certificate-wrong-type", "a certificate under the revocation payload type")
    c.done(bundle(auth, [_signed(person(c, "courier1"), rev_type, root)], []), "refuse format")
    for name, change in (
        (
            "window-reversed",
            {"not_before": "2027-12-31T00:00:00Z", "not_after": "2027-01-01T00:00:00Z"},
        ),
        ("no-role", {"roles": []}),
        ("unknown-role", {"roles": ["driver"]}),
        ("time-format", {"not_before": "2027-01-01"}),
        ("key-alg", {"signing_key": {"alg": "rsa", "key": "AAAA"}}),
    ):
        c = f.case(f"certificate-{name}", f"a root-signed certificate: {name.replace('-', ' ')}")
        cert = {**person(c, "courier1"), **change}
        c.done(bundle(auth, [_signed(cert, cert_type, root)], []), "refuse format")
    c = f.case(
        "certificate-small-order-key", "a root-signed certificate binding a small-order point"
    )
    cert = {
        **person(c, "courier1"),
        "signing_key": {"alg": "ed25519", "key": b64(bytes([1]) + bytes(31))},
    }
    c.done(bundle(auth, [_signed(cert, cert_type, root)], []), "refuse weak_key")
    c = f.case("revocation-not-root-signed", "a revocation signed by another key")
    rev = Revocation(
        s.authority.id, c.key("courier1").key_id, RECEIVED, RevocationReason.SUSPENDED, RECEIVED, ""
    )
    c.done(bundle(auth, [], [_signed(rev.payload(), rev_type, stranger)]), "refuse issuer")
    c = f.case(
        "revocation-unknown-reason", "a root-signed revocation with a reason not in the list"
    )
    rev_obj = json.loads(rev.payload())
    rev_obj["reason"] = "lost"
    c.done(bundle(auth, [], [_signed(rev_obj, rev_type, root)]), "refuse format")
    c = f.case("bundle-wrong-payload-type", "a bundle under the certificate payload type")
    c.done(bundle(auth, [], [], payload_type=cert_type), "refuse format")
    c = f.case("bundle-type-v2", "the payload's type is not custody.trust-bundle.v1")
    c.done(bundle(auth, [], [], kind="custody.trust-bundle.v2"), "refuse format")
    c = f.case("not-json", "not a JSON document")
    c.done("custody trust bundle", "refuse format")


def checkpoint_vectors(f: VectorFile) -> None:
    s = f.season
    origin = s.authority.log_origin
    witness = SigningKey(seed("witness w1"))
    stranger = SigningKey(seed("stranger log"))
    cp = Checkpoint(origin, 5, hashlib.sha256(b"vector tree").digest())
    signed = sign_checkpoint(cp, origin, s.log)
    cosig = cosign(cp, WITNESS, witness, 1804150800)
    # The checkpoint's verifier knows the log's key (a client, `custody verify`, a receipt):
    # witness cosignatures are counted under the witnesses' keys (file cosignature.json).
    f.extra = {"origin": origin, "verifier_keys": [NoteVerifier(origin, s.log.verify_key).vkey()]}

    def alter(line: str) -> str:
        head, b64sig = line.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(b64sig))
        raw[-1] ^= 1
        return f"{head} {b64(bytes(raw))}\n"

    c = f.case("accept", "a checkpoint signed by the log key")
    c.done(signed, "accept")
    c = f.case("accept-cosigned", "with a witness's cosignature line: not the log's key, ignored")
    c.done(signed + cosig, "accept")
    c = f.case("accept-unknown-line", "with a signature by an unknown key: ignored")
    c.done(signed + signature_line(cp.body(), "someone.example/other", stranger), "accept")
    c = f.case("accept-name-known-hash-not", "a line with the log's name and another key: ignored")
    c.done(signed + signature_line(cp.body(), origin, stranger), "accept")
    c = f.case("accept-size-0-empty-root", "the empty tree with SHA-256 of nothing as its root")
    c.done(
        sign_checkpoint(Checkpoint(origin, 0, hashlib.sha256(b"").digest()), origin, s.log),
        "accept",
    )
    c = f.case("signature-altered", "the log's signature does not verify")
    c.done(cp.body() + "\n" + alter(signed.split("\n\n", 1)[1]), "refuse signature")
    c = f.case("cosignature-altered", "an altered line by a key this verifier does not know")
    c.done(signed + alter(cosig), "accept")
    c = f.case("log-key-twice", "the log's signature line twice")
    line = signed.split("\n\n", 1)[1]
    c.done(signed + line, "refuse duplicate_signature")
    c = f.case("unknown-only", "signed by an unknown key only")
    c.done(sign_checkpoint(cp, "someone.example/other", stranger), "refuse unknown_signer")
    c = f.case("cosignature-only", "a witness cosignature, no log signature")
    c.done(cp.body() + "\n" + cosig, "refuse unknown_signer")
    c = f.case("text-altered", "the size changed after signing")
    c.done(signed.replace("\n5\n", "\n6\n", 1), "refuse signature")
    c = f.case("no-blank-line", "no blank line before the signatures")
    c.done(signed.replace("\n\n", "\n", 1), "refuse format")
    c = f.case("no-final-newline", "the last signature line does not end in a newline")
    c.done(signed[:-1], "refuse format")
    c = f.case("size-leading-zero", "size 05")
    c.done(sign_note(f"{origin}\n05\n{b64(cp.root)}\n", origin, s.log), "refuse format")
    c = f.case("root-31-bytes", "a root of 31 bytes")
    c.done(sign_note(f"{origin}\n5\n{b64(cp.root[:31])}\n", origin, s.log), "refuse format")
    c = f.case("other-origin", "signed by the log key, but the origin line is another log's")
    c.done(
        sign_note(f"custody/0000000000000000\n5\n{b64(cp.root)}\n", origin, s.log), "refuse format"
    )
    c = f.case("control-character", "a tab in the origin line")
    c.done(signed.replace(origin, origin + "\t", 1), "refuse format")
    c = f.case("signature-base64-noncanonical", "the signature's base64 has non-zero padding bits")
    head, tail = signed.rsplit(" ", 1)
    b = tail.rstrip("\n")
    pad = b.rstrip("=")
    last = B64_ALPHABET.index(pad[-1])
    bumped = pad[:-1] + B64_ALPHABET[last ^ 1] + b[len(pad) :]
    c.done(f"{head} {bumped}\n", "refuse format")
    c = f.case("dash-not-em", "a signature line starting with a hyphen")
    c.done(signed.replace("\u2014 ", "- ", 1), "refuse format")


def cosignature_vectors(f: VectorFile) -> None:
    """Cosignature lines (cosignature/v1, type 0x04) verified as note signatures under the
    witnesses' keys alone (as a witness policy counts them; the log's line is then unknown)."""
    s = f.season
    origin = s.authority.log_origin
    w1, w2 = SigningKey(seed("witness w1")), SigningKey(seed("witness w2"))
    cp = Checkpoint(origin, 5, hashlib.sha256(b"vector tree").digest())
    signed = sign_checkpoint(cp, origin, s.log)
    one = cosign(cp, WITNESS, w1, 1804150800)
    two = cosign(cp, "witness.example/w2", w2, 1804150860)
    f.extra = {
        "origin": origin,
        "verifier_keys": [
            CosignatureVerifier(WITNESS, w1.verify_key).vkey(),
            CosignatureVerifier("witness.example/w2", w2.verify_key).vkey(),
        ],
    }

    def alter(line: str, at: int) -> str:
        head, b64sig = line.rsplit(" ", 1)
        raw = bytearray(base64.b64decode(b64sig))
        raw[at] ^= 1
        return f"{head} {b64(bytes(raw))}\n"

    c = f.case("accept-one", "the log's line (unknown here) and one witness's cosignature")
    c.done(signed + one, "accept")
    c = f.case("accept-two", "two witnesses")
    c.done(signed + one + two, "accept")
    c = f.case("signature-altered", "a witness's signature bytes altered")
    c.done(signed + alter(one, -1), "refuse signature")
    c = f.case("timestamp-altered", "the cosignature's time altered (it is signed)")
    c.done(signed + alter(one, 11), "refuse signature")
    c = f.case("witness-twice", "one witness's line twice")
    c.done(signed + one + one, "refuse duplicate_signature")
    c = f.case("no-witness", "the log's signature alone: no known key here")
    c.done(signed, "refuse unknown_signer")
    c = f.case(
        "plain-signature-by-witness-key",
        "the witness key used for a plain note signature (type 0x01): another key hash, ignored",
    )
    c.done(signed + signature_line(cp.body(), WITNESS, w1), "refuse unknown_signer")
    c = f.case("cosigned-other-text", "a cosignature made over another checkpoint")
    other = Checkpoint(origin, 6, hashlib.sha256(b"another tree").digest())
    c.done(signed + cosign(other, WITNESS, w1, 1804150800), "refuse signature")


def keyfile_vectors(f: VectorFile) -> None:
    """Key files sealed under the file's passphrase, with the smallest KDF cost accepted."""
    passphrase = "correct horse battery staple"
    f.extra = {"passphrase": passphrase}
    kdf = KdfParams(1, 8192, seed("keyfile salt")[:16])
    nonce = seed("keyfile nonce")[:24]

    def sealed(
        label: str = "kf.courier1",
        *,
        enc: bool = True,
        secret_of: str = "kf.courier1",
        public_of: str = "kf.courier1",
        key_kdf: KdfParams = kdf,
        header_kdf: KdfParams | None = None,
        phrase: str = passphrase,
        n: bytes = nonce,
        fmt: str = "custody-keyfile/v1",
        alter: Callable[[dict[str, Any]], None] | None = None,
    ) -> str:
        signing = SigningKey(seed(f"person {secret_of}"))
        public = {"ed25519": b64(SigningKey(seed(f"person {public_of}")).verify_key.raw)}
        secret = {"ed25519_seed": b64(seed(f"person {secret_of}"))}
        if enc:
            x = nacl.public.PrivateKey(seed(f"x25519 {secret_of}"))
            public["x25519"] = b64(bytes(x.public_key))
            secret["x25519_secret"] = b64(bytes(x))
        hk = header_kdf or key_kdf
        header: dict[str, Any] = {
            "format": fmt,
            "label": label,
            "kdf": {
                "alg": "argon2id13",
                "opslimit": hk.opslimit,
                "memlimit": hk.memlimit,
                "salt": b64(hk.salt),
            },
            "aead": {"alg": "xchacha20poly1305-ietf", "nonce": b64(n)},
            "public": public,
        }
        key = nacl.pwhash.argon2id.kdf(
            32, phrase.encode(), key_kdf.salt, opslimit=key_kdf.opslimit, memlimit=key_kdf.memlimit
        )
        ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            canonical_json(secret), canonical_json(header), n, key
        )
        doc = {**header, "ciphertext": b64(ct)}
        if alter is not None:
            alter(doc)
        del signing
        return canonical_json(doc).decode() + "\n"

    c = f.case("accept", "a person's keys (Ed25519 seed and X25519 secret)")
    c.done(sealed(), "accept")
    c = f.case("accept-authority", "an authority key: no X25519 part")
    c.done(sealed("authority log", enc=False), "accept")
    c = f.case("wrong-passphrase", "sealed under another passphrase")
    c.done(sealed(phrase="another passphrase entirely"), "refuse decryption")
    c = f.case("ciphertext-altered", "one ciphertext byte changed")

    def flip(doc: dict[str, Any]) -> None:
        raw = bytearray(base64.b64decode(doc["ciphertext"]))
        raw[0] ^= 1
        doc["ciphertext"] = b64(bytes(raw))

    c.done(sealed(alter=flip), "refuse decryption")
    c = f.case("label-altered", "the header (associated data) changed after sealing")
    c.done(sealed(alter=lambda d: d.__setitem__("label", "kf.courier2")), "refuse decryption")
    c = f.case("opslimit-17", "a KDF cost above the accepted range")
    c.done(sealed(header_kdf=KdfParams(17, 8192, kdf.salt)), "refuse decryption")
    c = f.case("memlimit-4096", "a KDF memory below the accepted range")
    c.done(sealed(header_kdf=KdfParams(1, 4096, kdf.salt)), "refuse decryption")
    c = f.case("salt-15-bytes", "a salt of 15 bytes")
    c.done(
        sealed(alter=lambda d: d["kdf"].__setitem__("salt", b64(kdf.salt[:15]))),
        "refuse decryption",
    )
    c = f.case("nonce-23-bytes", "a nonce of 23 bytes")
    c.done(
        sealed(alter=lambda d: d["aead"].__setitem__("nonce", b64(nonce[:23]))), "refuse decryption"
    )
    c = f.case("public-mismatch", "sealed consistently, but public.ed25519 is another key's")
    c.done(sealed(public_of="kf.courier2"), "refuse format")
    c = f.case("format-v2", "another format")
    c.done(sealed(fmt="custody-keyfile/v2"), "refuse format")
    c = f.case("kdf-scrypt", "another KDF")
    c.done(sealed(alter=lambda d: d["kdf"].__setitem__("alg", "scrypt")), "refuse format")
    c = f.case("no-public", "no public keys")
    c.done(sealed(alter=lambda d: d.pop("public")), "refuse format")
    c = f.case("ciphertext-urlsafe", "the ciphertext in URL-safe base64")

    def urlsafe(doc: dict[str, Any]) -> None:
        raw = base64.b64decode(doc["ciphertext"])
        doc["ciphertext"] = base64.urlsafe_b64encode(raw).decode()
        assert doc["ciphertext"] != b64(raw)

    c.done(sealed(alter=urlsafe), "refuse format")
    c = f.case("not-json", "not a JSON document")
    c.done("custody key file\n", "refuse format")


def receipt_vectors(f: VectorFile) -> None:
    """Receipts (custody event submit --receipts) checked offline against the log's key."""
    s = f.season
    origin = s.authority.log_origin
    f.extra = {"origin": origin, "verifier_keys": [NoteVerifier(origin, s.log.verify_key).vkey()]}
    c0 = Case(s, "rct", "receipts")
    envs = [c0.seal_env(n) for n in range(1, 6)]
    leaves = [leaf_bytes(parse_envelope(e), RECEIVED) for e in envs]
    tree = MemoryTree()
    tree.extend(leaves)
    size = tree.size

    def receipt(
        index: int,
        *,
        at: int | None = None,
        key: SigningKey | None = None,
        name: str | None = None,
        cp_origin: str | None = None,
        **over: Any,
    ) -> dict[str, Any]:
        n = at if at is not None else size
        cp = Checkpoint(cp_origin or origin, n, tree.root(n))
        doc: dict[str, Any] = {
            "format": "custody-receipt/v1",
            "index": index,
            "statement_id": hashlib.sha256(base64.b64decode(envs[index]["payload"])).hexdigest(),
            "received": format_time(RECEIVED),
            "tree_size": n,
            "checkpoint": sign_checkpoint(cp, name or origin, key or s.log),
            "inclusion_proof": [b64(h) for h in tree.inclusion_proof(min(index, n - 1), n)],
        }
        doc.update(over)
        return doc

    def case(name: str, note: str, doc: dict[str, Any], env: Any, expect: str) -> None:
        c = f.case(name, note)
        c.done({"receipt": doc, "envelope": env}, expect)

    case("accept", "entry 2 of a tree of 5", receipt(2), envs[2], "accept")
    case("accept-last", "the last entry", receipt(4), envs[4], "accept")
    case(
        "accept-size-1",
        "the only entry of a tree of 1: an empty proof",
        receipt(0, at=1),
        envs[0],
        "accept",
    )
    case(
        "accept-tree-size-lies",
        "the receipt's tree_size is informative: the checkpoint's size counts",
        receipt(2, tree_size=3),
        envs[2],
        "accept",
    )
    bad = receipt(2)
    h = bytearray(base64.b64decode(bad["inclusion_proof"][0]))
    h[0] ^= 1
    case(
        "proof-altered",
        "one proof hash changed",
        {**bad, "inclusion_proof": [b64(bytes(h)), *bad["inclusion_proof"][1:]]},
        envs[2],
        "refuse log_consistency",
    )
    case(
        "index-wrong",
        "the proof of entry 2 given as entry 3",
        {**receipt(2), "index": 3},
        envs[2],
        "refuse log_consistency",
    )
    case(
        "received-other",
        "another receive time: another leaf",
        receipt(2, received="2027-03-03T09:00:01Z"),
        envs[2],
        "refuse log_consistency",
    )
    case(
        "envelope-other",
        "another envelope than the one logged",
        receipt(2),
        envs[3],
        "refuse log_consistency",
    )
    signed_twice = {
        **envs[2],
        "signatures": envs[2]["signatures"]
        + [sign_raw(base64.b64decode(envs[2]["payload"]), [c0.key("printer")])["signatures"][0]],
    }
    case(
        "envelope-more-signatures",
        "the logged event with one more signature: another leaf",
        receipt(2),
        signed_twice,
        "refuse log_consistency",
    )
    case(
        "proof-short",
        "the proof without its last hash",
        {**receipt(2), "inclusion_proof": receipt(2)["inclusion_proof"][:-1]},
        envs[2],
        "refuse log_consistency",
    )
    case(
        "proof-long",
        "the proof with one hash too many",
        {**receipt(2), "inclusion_proof": [*receipt(2)["inclusion_proof"], b64(bytes(32))]},
        envs[2],
        "refuse log_consistency",
    )
    case(
        "index-beyond",
        "index 5 in a tree of 5",
        {**receipt(4), "index": 5},
        envs[4],
        "refuse log_consistency",
    )
    case(
        "proof-hash-31",
        "a proof hash of 31 bytes",
        {**receipt(2), "inclusion_proof": [b64(bytes(31))]},
        envs[2],
        "refuse format",
    )
    stranger = SigningKey(seed("stranger log"))
    case(
        "checkpoint-other-key",
        "a checkpoint signed by another key under another name",
        receipt(2, key=stranger, name="someone.example/log"),
        envs[2],
        "refuse unknown_signer",
    )
    case(
        "checkpoint-other-origin",
        "signed by the log key, for another origin",
        receipt(2, cp_origin="custody/0000000000000000"),
        envs[2],
        "refuse format",
    )
    case(
        "format-v2",
        "another receipt format",
        receipt(2, format="custody-receipt/v2"),
        envs[2],
        "refuse format",
    )
    case(
        "received-not-a-time",
        "received is not a time",
        receipt(2, received="2027-03-03 09:00"),
        envs[2],
        "refuse format",
    )


def paper_act_vectors(f: VectorFile) -> None:
    """The system's record of a paper act (kind paper_act), embedding the people's signed act."""
    s = f.season
    types = {
        "proposal": "application/vnd.custody.paper-proposal.v1+json",
        "print": "application/vnd.custody.paper-print.v1+json",
        "opening": "application/vnd.custody.paper-opening.v1+json",
    }

    def act(
        c: Case,
        kind: str,
        signer: str,
        *,
        at: datetime = RECEIVED - MIN,
        paper: str = "P01-A",
        payload_type: str | None = None,
        extra_key: SigningKey | None = None,
    ) -> Any:
        if kind == "proposal":
            body: dict[str, Any] = {
                "type": "custody.paper-proposal.v1",
                "paper_id": paper,
                "version": 1,
                "proposed_at": format_time(at),
                "proposer": c.who(signer),
                "exam": EXAM,
            }
        else:
            body = {
                "type": f"custody.paper-{kind}.v1",
                "paper": {"paper_id": paper, "version": 1, "commitment": "00" * 32},
                "exam": EXAM,
                "position": "P014",
                "classification": "top-secret",
                "at": format_time(at),
                "by": [c.who(signer)],
            }
        keys = [c.key(signer)] + ([extra_key] if extra_key is not None else [])
        return sign_raw(canonical_json(body), keys, payload_type or types[kind])

    def record(c: Case, kind: str, embedded: Any, paper_ref: str = "P01-A@v1") -> Any:
        payload = c.payload(
            "paper_act",
            {},
            {"system": s.authority.id},
            {"act_kind": kind, "paper": paper_ref, "act": embedded},
            time=RECEIVED,
        )
        return sign_raw(canonical_json(payload), [s.system])

    c = f.case("print-accept", "the printer's print act, recorded by the system")
    c.done(record(c, "print", act(c, "print", "printer")), "accept")
    c = f.case("proposal-accept", "a proposal names itself (paper_id, version, proposed_at)")
    c.done(record(c, "proposal", act(c, "proposal", "sealer")), "accept")
    c = f.case("type-not-the-kind", "a print act under the opening payload type")
    c.done(
        record(c, "print", act(c, "print", "printer", payload_type=types["opening"])),
        "refuse format",
    )
    c = f.case("unknown-act-kind", "act_kind is not one of the six")
    c.done(record(c, "reprint", act(c, "print", "printer")), "refuse format")
    c = f.case("other-paper", "the embedded act is about another paper")
    c.done(record(c, "print", act(c, "print", "printer", paper="P02-A")), "refuse format")
    c = f.case("act-6-min-early", "the act's own time 6 minutes before the receive time")
    c.done(record(c, "print", act(c, "print", "printer", at=RECEIVED - 6 * MIN)), "refuse clock")
    c = f.case("act-6-min-late", "the act's own time 6 minutes after the receive time")
    c.done(record(c, "print", act(c, "print", "printer", at=RECEIVED + 6 * MIN)), "refuse clock")
    c = f.case("act-unknown-signer", "one more signature by a key no certificate binds")
    c.done(
        record(
            c, "print", act(c, "print", "printer", extra_key=SigningKey(seed(f"stranger {c.code}")))
        ),
        "refuse signature",
    )
    c = f.case(
        "act-signer-compromised",
        "the printer's key revoked for compromise, published before the act was received",
    )
    c.who("printer")
    s.revoke(
        c.key("printer"),
        RevocationReason.KEY_COMPROMISE,
        effective=RECEIVED + HOUR,
        issued=RECEIVED - HOUR,
    )
    c.done(record(c, "print", act(c, "print", "printer")), "refuse revoked")
    c = f.case("act-signer-expired", "the printer's certificate ended before the act")
    c.who("printer", not_after=RECEIVED - DAY)
    c.done(record(c, "print", act(c, "print", "printer")), "refuse expired")
    c = f.case("by-a-person", "a paper_act signed by a person, not the system")
    c.done(
        c.event(
            "paper_act",
            {},
            {"printer": c.who("printer")},
            {"act_kind": "print", "paper": "P01-A@v1", "act": act(c, "print", "printer")},
            ["printer"],
        ),
        "refuse format",
    )


def export_vectors(f: VectorFile) -> None:
    """Export bundles (custody export), verified offline against the pinned authority."""
    import tempfile

    from custody.audit import export_bundle
    from custody.conformance import create_season_home, parse_season
    from custody.home import Home
    from custody.service import ServiceSecrets, open_writer

    s = f.season
    f.extra = {"pin": s.authority.id}
    small = Season()  # the same authority (same seeds), with only this file's people
    c = Case(small, "exp", "export")
    for n in (1, 2):
        c.step(c.seal_env(n))
    for reached in ("in_transit", "handed", "stored"):
        c.step(c.lifecycle(reached, c.pkg(1), 1, False))
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "season")
        phrase = "export vectors passphrase"
        create_season_home(
            home, parse_season(json.dumps(small.document()).encode()), passphrase=phrase
        )
        log = open_writer(home, ServiceSecrets(log=phrase, system=phrase))
        try:
            for env in small.setup():
                log.submit(parse_envelope(env), now=EARLY)
            for env in c.setup:
                log.submit(parse_envelope(env), now=RECEIVED)
            export_bundle(log, Path(tmp) / "out")
        finally:
            log.close()
        files = {p.name: p.read_text("utf-8") for p in sorted((Path(tmp) / "out").iterdir())}
    # The packages were sealed by hand-made events: their labels go in labels.jsonl here.
    labels = "".join(
        canonical_json(
            {
                "label": c.labels[
                    json.loads(base64.b64decode(e["payload"]))["body"]["label_sha256"]
                ],
                "package_id": pid,
            }
        ).decode()
        + "\n"
        for pid, e in ((c.pkg(1), c.setup[0]), (c.pkg(2), c.setup[1]))
    )
    files["labels.jsonl"] = labels
    # The certificates this bundle needs are in the vectors' season too (one trust for all).
    s.certificates.extend(small.certificates)

    def manifest(fs: dict[str, str], *, size: int | None = None, drop: str = "") -> dict[str, str]:
        m = json.loads(fs["manifest.json"])
        order = ["events.jsonl", "labels.jsonl", "trust.json", "checkpoint.note"]
        m["files"] = {
            name: hashlib.sha256(fs[name].encode()).hexdigest() for name in order if name != drop
        }
        if size is not None:
            m["size"] = size
        return {**fs, "manifest.json": json.dumps(m, indent=2, ensure_ascii=False) + "\n"}

    good = manifest(files)
    # Entries 0 and 1 are the exams' policies; the package events follow.
    policies, lines = (
        good["events.jsonl"].splitlines(keepends=True)[:2],
        good["events.jsonl"].splitlines(keepends=True)[2:],
    )

    def with_lines(new: list[str]) -> dict[str, str]:
        return manifest({**good, "events.jsonl": "".join(policies + new)})

    def case(name: str, note: str, fs: dict[str, str], expect: str) -> None:
        cs = f.case(name, note)
        cs.done({"files": fs}, expect)

    case(
        "accept",
        "five events, two labels, the checkpoint and the manifest as export writes them",
        good,
        "accept",
    )
    entry = json.loads(lines[1])
    sig = bytearray(base64.b64decode(entry["envelope"]["signatures"][0]["sig"]))
    sig[0] ^= 1
    entry["envelope"]["signatures"][0]["sig"] = b64(bytes(sig))
    altered = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    case(
        "event-signature-altered",
        "the second seal's (entry 3) first signature changed",
        with_lines([lines[0], altered, *lines[2:]]),
        "refuse signature",
    )
    case(
        "event-line-not-canonical",
        "entry 3 with a space after a colon",
        with_lines([lines[0], lines[1].replace('{"envelope":', '{"envelope": ', 1), *lines[2:]]),
        "refuse format",
    )
    case(
        "last-event-removed",
        "the last entry is missing",
        with_lines(lines[:-1]),
        "refuse checkpoint_size",
    )
    case(
        "event-removed",
        "the dispatch (entry 4) is missing: the handover's releaser is then not the holder, "
        "who signs first",
        with_lines([*lines[:2], *lines[3:]]),
        "refuse threshold",
    )
    case(
        "events-swapped",
        "the dispatch and the handover swapped: signers are judged before the link",
        with_lines([lines[0], lines[1], lines[3], lines[2], *lines[4:]]),
        "refuse threshold",
    )
    earlier = lines[3].replace(
        '"received":"2027-03-03T09:00:00Z"', '"received":"2027-03-03T08:00:00Z"'
    )
    case(
        "receive-time-back",
        "the handover (entry 5) received before the dispatch",
        with_lines([*lines[:3], earlier, *lines[4:]]),
        "refuse receive_order",
    )
    stranger = SigningKey(seed("stranger log"))
    cp_text = good["checkpoint.note"].split("\n\n", 1)[0] + "\n"
    case(
        "checkpoint-other-key",
        "the checkpoint signed by another key",
        manifest({**good, "checkpoint.note": sign_note(cp_text, "someone.example/log", stranger)}),
        "refuse checkpoint_signature",
    )
    root_line = cp_text.split("\n")[2]
    forged = cp_text.replace(root_line, b64(hashlib.sha256(b"another root").digest()))
    case(
        "checkpoint-root-other",
        "a checkpoint the log key signed over another root",
        manifest({**good, "checkpoint.note": sign_note(forged, s.authority.log_origin, s.log)}),
        "refuse checkpoint_root",
    )
    case(
        "manifest-size",
        "manifest.json says another size",
        manifest(good, size=4),
        "refuse manifest",
    )
    case(
        "manifest-drops-labels",
        "manifest.json does not list labels.jsonl",
        manifest(good, drop="labels.jsonl"),
        "refuse manifest",
    )
    case(
        "manifest-hash-stale",
        "trust.json re-spaced (the same document) after the manifest was written",
        {**good, "trust.json": good["trust.json"].replace(",", ", ", 1)},
        "refuse manifest",
    )
    label_lines = good["labels.jsonl"].splitlines(keepends=True)
    one, two = c.pkg(1), c.pkg(2)
    swapped = [
        label_lines[1].replace(f'"package_id":"{two}"', f'"package_id":"{one}"'),
        label_lines[0].replace(f'"package_id":"{one}"', f'"package_id":"{two}"'),
    ]
    case(
        "labels-swapped",
        "each label listed under the other package",
        manifest({**good, "labels.jsonl": "".join(swapped)}),
        "refuse label",
    )
    case(
        "label-missing",
        "a seal event commits to a label the bundle lacks",
        manifest({**good, "labels.jsonl": label_lines[1]}),
        "refuse label",
    )

    # A witness policy of the verifier's own (k of n), over cosignature lines on checkpoint.note.
    from crypto.note import parse_checkpoint

    checkpoint = parse_checkpoint(cp_text)
    names = [f"witness.example/w{i}" for i in (1, 2, 3)]
    wkeys = [SigningKey(seed(f"witness w{i}")) for i in (1, 2, 3)]
    lines_of = [
        cosign(checkpoint, n, k, 1804150800 + i)
        for i, (n, k) in enumerate(zip(names, wkeys, strict=True))
    ]
    policy = {
        "quorum": 2,
        "witnesses": [
            {"name": n, "vkey": CosignatureVerifier(n, k.verify_key).vkey()}
            for n, k in zip(names, wkeys, strict=True)
        ],
    }

    def cosigned(*extra: str) -> dict[str, str]:
        return manifest({**good, "checkpoint.note": good["checkpoint.note"] + "".join(extra)})

    def policy_case(name: str, note: str, fs: dict[str, str], expect: str) -> None:
        cs = f.case(name, note)
        cs.done({"files": fs, "witness_policy": policy}, expect)

    policy_case(
        "witnesses-enough",
        "a policy of 2 of 3 witnesses; two of them cosigned the checkpoint",
        cosigned(lines_of[0], lines_of[2]),
        "accept",
    )
    policy_case(
        "witnesses-too-few",
        "2 of 3 asked; one cosigned",
        cosigned(lines_of[0]),
        "refuse witness_policy",
    )
    stranger_w = SigningKey(seed("witness w9"))
    policy_case(
        "witness-unknown",
        "one listed witness and one the policy does not list (ignored): too few",
        cosigned(lines_of[0], cosign(checkpoint, "witness.example/w9", stranger_w, 1804150900)),
        "refuse witness_policy",
    )
    head, b64sig = lines_of[1].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64sig))
    raw[-1] ^= 1
    altered_line = f"{head} {b64(bytes(raw))}\n"
    policy_case(
        "witness-bad-signature",
        "two listed witnesses cosigned (the quorum is met) and a third's line does not verify: "
        "a forged line is a problem of its own",
        cosigned(lines_of[0], altered_line, lines_of[2]),
        "refuse witness_cosignature",
    )
    policy_case(
        "witnesses-none",
        "a policy, and no cosignature on the checkpoint",
        good,
        "refuse witness_policy",
    )

    # `custody verify --since OLD.note`: an earlier checkpoint the log must extend.
    tree = MemoryTree()
    tree.extend([line.rstrip("\n").encode("utf-8") for line in good["events.jsonl"].splitlines()])
    size = tree.size
    origin = s.authority.log_origin

    def since_case(name: str, note: str, old: str, expect: str) -> None:
        cs = f.case(name, note)
        cs.done({"files": good, "since": old}, expect)

    since_case(
        "since-consistent",
        "an earlier checkpoint of size 4 whose root is the first 4 entries'",
        sign_checkpoint(Checkpoint(origin, 4, tree.root(4)), origin, s.log),
        "accept",
    )
    since_case(
        "since-same-size",
        "the earlier checkpoint is the bundle's own",
        sign_checkpoint(Checkpoint(origin, size, tree.root(size)), origin, s.log),
        "accept",
    )
    since_case(
        "since-forked",
        "an earlier checkpoint of size 4 the log key signed over another root: a fork",
        sign_checkpoint(
            Checkpoint(origin, 4, hashlib.sha256(b"another history").digest()), origin, s.log
        ),
        "refuse log_consistency",
    )
    since_case(
        "since-larger",
        f"an earlier checkpoint of size {size + 1}: the log shrank",
        sign_checkpoint(
            Checkpoint(origin, size + 1, hashlib.sha256(b"longer").digest()), origin, s.log
        ),
        "refuse log_consistency",
    )
    since_case(
        "since-other-key",
        "an earlier checkpoint not signed by the log key",
        sign_checkpoint(Checkpoint(origin, 4, tree.root(4)), "someone.example/log", stranger),
        "refuse checkpoint_signature",
    )


def exam_policy_vectors(f: VectorFile) -> None:
    """exam_policy statements (the system key alone) and the seals they bind."""
    s = f.season

    def policy(
        c: Case,
        exam: str,
        witness: Any,
        *,
        extra: Mapping[str, Any] | None = None,
        signers: Sequence[SigningKey] | None = None,
        actors: Mapping[str, str] | None = None,
    ) -> Any:
        body: dict[str, Any] = {
            "exam": exam,
            "handover_witness": witness,
            "retention_until": format_time(RETAIN),
            **(extra or {}),
        }
        payload = c.payload("exam_policy", {}, actors or {"system": s.authority.id}, body)
        return sign_raw(canonical_json(payload), signers or [s.system])

    c = f.case("policy-accept", "an exam's policy put in force by the system")
    c.done(policy(c, f"{c.code}-EXAM", False), "accept")
    c = f.case("seal-after-policy", "a seal that follows its exam's policy on the log")
    c.step(policy(c, f"{c.code}-EXAM", True))
    c.done(c.seal_env(witness=True, exam=f"{c.code}-EXAM"), "accept")
    c = f.case("seal-no-policy", "a seal for an exam with no policy on the log")
    c.done(c.seal_env(exam=f"{c.code}-EXAM"), "refuse exam_policy")
    c = f.case("seal-witness-differs", "the exam's policy asks for a witness, the seal says none")
    c.step(policy(c, f"{c.code}-EXAM", True))
    c.done(c.seal_env(witness=False, exam=f"{c.code}-EXAM"), "refuse exam_policy")
    c = f.case("seal-witness-missing", "the seal's body has no handover_witness")
    c.step(policy(c, f"{c.code}-EXAM", False))
    c.done(c.seal_env(exam=f"{c.code}-EXAM", body={"handover_witness": DROP}), "refuse exam_policy")
    c = f.case("later-policy-binds", "the latest policy of an exam binds later seals")
    c.step(policy(c, f"{c.code}-EXAM", False))
    c.step(policy(c, f"{c.code}-EXAM", True))
    c.done(c.seal_env(witness=False, exam=f"{c.code}-EXAM"), "refuse exam_policy")
    c = f.case("policy-extra-field", "a body field beyond exam, handover_witness, retention_until")
    c.done(policy(c, f"{c.code}-EXAM", False, extra={"note": "x"}), "refuse format")
    c = f.case("policy-witness-string", "handover_witness must be true or false")
    c.done(policy(c, f"{c.code}-EXAM", "true"), "refuse format")
    c = f.case("policy-by-person", "a person cannot put a policy in force")
    c.done(
        policy(
            c,
            f"{c.code}-EXAM",
            False,
            actors={"officer": c.who("secrecy")},
            signers=[c.key("secrecy")],
        ),
        "refuse format",
    )
    c = f.case("policy-person-key", "actors.system, signed by a person's key")
    c.who("secrecy")
    c.done(policy(c, f"{c.code}-EXAM", False, signers=[c.key("secrecy")]), "refuse signature")


def incident_act_vectors(f: VectorFile) -> None:
    """People's acts on incidents (acknowledge, contain, resolve, unblock), judged on a log of
    their own: incidents are numbered in the order that log opens them, so the acts below
    name them. The acts are made by the project's own act type (``custody.incidents.acts``):
    regenerating after a change of the act's format keeps them valid."""
    from crypto.signing import X25519, key_id
    from custody.incidents.acts import ACT_TYPE, Act, Recipient, SealedBox, SealedNote, seal_note

    s = f.season
    opened = 0

    def sealed_to(c: Case, role: str = "secrecy") -> Recipient:
        """The case's person of ``role`` as a note's recipient (their X25519 key)."""
        subject = c.who(role)
        enc = nacl.public.PrivateKey(seed(f"x25519 {subject}")).public_key.encode()
        return Recipient(subject, key_id(X25519, enc), enc)

    def leak(c: Case) -> str:
        """A setup leak report (no package): it opens one incident (critical, no suspect)."""
        nonlocal opened
        c.step(
            c.event(
                "leak_report",
                {},
                {"reporter": c.who("auditor")},
                # sealed to an officer of its own, whom no case revokes
                {"packages": [], **c.sealed("text", f"vector {c.code}", to="reader")},
                ["auditor"],
                time=RECEIVED,
            )
        )
        opened += 1
        return f"INC-{opened:05d}"

    def act(
        c: Case,
        incident: str,
        kind: str,
        person: str,
        *,
        signer: str | None = None,
        at: datetime = RECEIVED,
        key: str | None = None,
        authority: str | None = None,
        note: str = "vector",
        note_to: str = "secrecy",
        note_sealed: SealedNote | None = None,
        clear: str = "",
    ) -> Any:
        subject = person if "." in person else c.who(person)
        signing = (
            SigningKey(seed(f"stranger {c.code}"))
            if signer == "stranger"
            else s.keys[signer if signer and "." in signer else c.who(signer or person)]
        )
        sealed = note_sealed or seal_note(
            note, [sealed_to(c, note_to)], seed=seed(f"note {c.code} {kind} {note}")
        )
        made = Act(
            authority=authority or s.authority.id,
            incident=incident,
            act=kind,
            person=subject,
            time=at,
            note_sealed=sealed,
            key=key,
        )
        if not clear:
            return env_obj(made.sign(signing))
        payload = {**json.loads(made.payload()), "note": clear}  # as acts were before sealing
        return sign_raw(canonical_json(payload), [signing], ACT_TYPE)

    for kind, good, bad in (
        ("acknowledge", "custodian1", "courier1"),
        ("contain", "secrecy", "custodian1"),
        ("resolve", "secrecy", "custodian1"),
    ):
        c = f.case(f"{kind}-accept", f"{kind} by a {CAST[good].value} on a level-0 incident")
        c.done(act(c, leak(c), kind, good), "accept")
        c = f.case(f"{kind}-by-{CAST[bad].value}", f"a {CAST[bad].value} may not {kind}")
        c.done(act(c, leak(c), kind, bad), "refuse role")
    resolved = f"INC-{opened - 1:05d}"  # resolve-accept's incident
    c = f.case("acknowledge-first", "the first acknowledgement of an incident")
    first_incident = leak(c)
    first = act(c, first_incident, "acknowledge", "custodian1")
    c.done(first, "accept")
    c = f.case("same-act-twice", "the same signed act again: a conflict")
    c.done(first, "refuse conflict")
    c = f.case(
        "after-resolved", "an incident resolved (by resolve-accept) takes no acknowledgement"
    )
    c.done(act(c, resolved, "acknowledge", "custodian1"), "refuse conflict")
    c = f.case("signed-by-another", "the act names one secrecy officer, another signs it")
    c.who("secrecy")
    c.done(act(c, leak(c), "contain", "secrecy", signer="custodian1"), "refuse threshold")
    c = f.case("unknown-signer", "the act is signed by a key no certificate binds")
    c.done(act(c, leak(c), "contain", "secrecy", signer="stranger"), "refuse unknown_signer")
    c = f.case("signer-revoked", "the secrecy officer's key was revoked before the act")
    c.who("secrecy")
    s.revoke(c.key("secrecy"), RevocationReason.LEFT_POST, effective=SETUP, issued=SETUP)
    c.done(act(c, leak(c), "contain", "secrecy"), "refuse revoked")
    for name, offset, expect in (
        ("dated-6-min-early", -6 * MIN, "refuse clock"),
        ("dated-6-min-late", 6 * MIN, "refuse clock"),
        ("dated-5-min-late", 5 * MIN, "accept"),
    ):
        c = f.case(name, f"an act dated {offset} from the server's clock (five-minute rule)")
        c.done(act(c, leak(c), "acknowledge", "custodian1", at=RECEIVED + offset), expect)
    c = f.case(
        "before-opened",
        "dated 4 minutes before the server's clock (within the skew), but before the incident "
        "opened (at the server's clock)",
    )
    c.done(act(c, leak(c), "acknowledge", "custodian1", at=RECEIVED - 4 * MIN), "refuse clock")
    c = f.case("other-authority", "the act names another authority")
    c.done(act(c, leak(c), "acknowledge", "custodian1", authority="0" * 64), "refuse format")
    c = f.case("unknown-act", "an act that is not one of the four")
    c.done(act(c, leak(c), "escalate", "secrecy"), "refuse format")
    c = f.case("note-in-clear", "a note in clear (note), not sealed: it would be on the log")
    c.done(
        act(c, leak(c), "acknowledge", "custodian1", clear="联系人 13800001111"), "refuse format"
    )
    c = f.case("note-box-too-long", "a sealed box of more than 24,000 base64 characters")
    big = SealedNote("0" * 64, (SealedBox(c.who("secrecy"), sealed_to(c).key_id, "A" * 24004),))
    c.done(act(c, leak(c), "acknowledge", "custodian1", note_sealed=big), "refuse format")
    c = f.case("note-sealed-to-courier", "a note sealed to a courier, not a secrecy officer")
    c.done(act(c, leak(c), "acknowledge", "custodian1", note_to="courier1"), "refuse role")
    c = f.case("unknown-incident", "an incident the log never opened")
    c.done(act(c, "INC-99999", "acknowledge", "custodian1"), "refuse not_found")

    # A refusal whose suspect key the desk blocks (section "Keys a refusal blocks").
    c = f.case(
        "off-route-opens",
        "a dispatch to a custodian off the route: refused; it opens an off_route incident that "
        "blocks the custodian's key and names it a suspect",
    )
    c.to("sealed")
    c.done(c.transfer_env("dispatch", [c.pkg()], "sealer", "custodian3"), "refuse route")
    opened += 1
    off_route, suspect = f"INC-{opened:05d}", c.who("custodian3")
    suspect_key = c.key("custodian3").key_id
    c = f.case("suspect-acknowledges", "a suspect may not act on the incident that suspects them")
    c.done(act(c, off_route, "acknowledge", suspect, signer=suspect), "refuse role")
    c = f.case("blocked-acts-elsewhere", "the blocked key acknowledges another incident")
    other = leak(c)
    c.done(act(c, other, "acknowledge", suspect, signer=suspect), "refuse blocked_key")
    c = f.case("unblock-by-custodian", "only a secrecy officer lifts a block")
    c.done(act(c, off_route, "unblock", "custodian1", key=suspect_key), "refuse role")
    c = f.case("unblock-without-key", "an unblock names the key it lifts")
    c.done(act(c, off_route, "unblock", "secrecy"), "refuse format")
    c = f.case("unblock-not-blocked", "a key no incident blocks")
    c.who("custodian1")
    c.done(
        act(c, off_route, "unblock", "secrecy", key=c.key("custodian1").key_id), "refuse not_found"
    )
    c = f.case("unblock-accept", "a secrecy officer lifts the block on the suspect's key")
    c.done(act(c, off_route, "unblock", "secrecy", key=suspect_key), "accept")
    c = f.case("after-unblock", "the key, no longer blocked, acknowledges the other incident")
    c.done(act(c, other, "acknowledge", suspect, signer=suspect, note="after"), "accept")


WITNESS = "witness.example/w1"
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


FILES: list[tuple[str, str, str, Callable[[VectorFile], None]]] = [
    (
        "envelope",
        "env",
        "DSSE envelopes and canonical payload bytes (submitted as events)",
        envelope_vectors,
    ),
    ("event.seal", "sea", "seal events", seal_vectors),
    ("event.dispatch", "dis", "dispatch events", lambda f: transfer_vectors(f, "dispatch")),
    (
        "event.handover",
        "han",
        "handover events",
        lambda f: (transfer_vectors(f, "handover"), handover_extra(f)),
    ),
    ("event.receive", "rec", "receive events (into storage)", receive_vectors),
    ("event.inspect", "ins", "inspect events", lambda f: inspect_vectors(f, "inspect")),
    ("event.patrol", "pat", "patrol events", lambda f: inspect_vectors(f, "patrol")),
    ("event.checkin", "chk", "checkin events", checkin_vectors),
    ("event.open", "opn", "open events", lambda f: pair_vectors(f, "open")),
    ("event.distribute", "dst", "distribute events", lambda f: pair_vectors(f, "distribute")),
    ("event.recover", "rcv", "recover events", lambda f: pair_vectors(f, "recover")),
    ("event.return", "ret", "return events", return_vectors),
    ("event.destroy", "des", "destroy events", destroy_vectors),
    (
        "event.officer",
        "off",
        "freeze, release, compromise, reroute, activate_backup, correction",
        officer_vectors,
    ),
    (
        "event.packageless",
        "pkl",
        "leak_report, incident, system statements, paper_act",
        packageless_vectors,
    ),
    ("event.multi-package", "mul", "events naming several packages", multi_vectors),
    ("event.clock", "clk", "the server's clock: skew, offline capture, lag", clock_vectors),
    ("event.revocation", "rev", "revocation, expiry and compromise", revocation_vectors),
    (
        "event.blocked-key",
        "blk",
        "the blocked-key gate: keys an incident blocked, signing afterwards",
        blocked_key_vectors,
    ),
    ("label", "lab", "package labels (QR payload CP1), verified at the fixed clock", label_vectors),
    (
        "trust-bundle",
        "tru",
        "trust bundles, verified against the pinned authority",
        trust_bundle_vectors,
    ),
    (
        "checkpoint",
        "cpt",
        "signed checkpoints, verified under the log's key",
        checkpoint_vectors,
    ),
    (
        "event.exam-policy",
        "exa",
        "exam_policy statements and the seals they bind",
        exam_policy_vectors,
    ),
    (
        "event.paper-act",
        "pap",
        "paper_act: the system's record of a people-signed paper act",
        paper_act_vectors,
    ),
    ("keyfile", "kf", "key files: private keys sealed under a passphrase", keyfile_vectors),
    ("receipt", "rct", "receipts, checked offline against the log's key", receipt_vectors),
    (
        "export",
        "exp",
        "export bundles, verified offline against the pinned authority",
        export_vectors,
    ),
    (
        "incident-act",
        "act",
        "incident acts (acknowledge, contain, resolve, unblock), on a log of their own",
        incident_act_vectors,
    ),
    (
        "cosignature",
        "cos",
        "witness cosignatures (cosignature/v1), verified under the witnesses' keys",
        cosignature_vectors,
    ),
]


def build() -> dict[str, bytes]:
    """Every file's bytes, by file name."""
    season = Season()
    out: dict[str, bytes] = {}
    for kind, code, title, make in FILES:
        vf = VectorFile(season, kind, code, title)
        make(vf)
        out[f"{kind}.json"] = dump(vf.document())
    out["season.json"] = dump(season.document())
    return out


def dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=False).encode() + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [
            n
            for n, b in files.items()
            if not (args.out / n).is_file() or (args.out / n).read_bytes() != b
        ]
        for name in stale:
            print(f"stale: {args.out / name}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    for name in sorted(files):
        if name != "season.json":
            doc = json.loads(files[name])
            print(f"{doc['kind']}: {len(doc['cases'])} vectors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
