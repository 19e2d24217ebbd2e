"""An independent verifier, written from docs/formats.md alone.

It imports nothing of the project (no ``crypto``, ``keys``, ``labels``, ``custody``, ``api``):
only the standard library, PyNaCl (Ed25519), cbor2 (CBOR) and the document's rules, section by
section. It judges the conformance vectors of docs/vectors/ (section "Conformance vectors") and
must reach the same answer as the project on every case: that is what shows the document is
enough to write a client.

    python tests/conformance/independent_verifier.py docs/vectors
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import nacl.bindings
import nacl.exceptions
import nacl.pwhash
import nacl.signing

EVENT_TYPE = "application/vnd.custody.event.v1+json"
AUTHORITY_TYPE = "application/vnd.custody.authority.v1+json"
CERTIFICATE_TYPE = "application/vnd.custody.certificate.v1+json"
REVOCATION_TYPE = "application/vnd.custody.revocation.v1+json"
ACT_TYPE = "application/vnd.custody.incident-act.v1+json"
ACTS = {"acknowledge", "contain", "resolve", "unblock"}
OWN_LOG = {"incident-act"}  # kinds judged on a log of their own
SKEW = timedelta(minutes=5)
MAX_LAG = timedelta(hours=24)
OFFLINE = {"handover", "inspect", "checkin", "patrol"}
KINDS = {
    "seal",
    "dispatch",
    "handover",
    "receive",
    "inspect",
    "patrol",
    "checkin",
    "open",
    "distribute",
    "recover",
    "return",
    "destroy",
    "freeze",
    "release",
    "compromise",
    "reroute",
    "activate_backup",
    "correction",
    "incident",
    "leak_report",
    "paper_act",
    "exam_policy",
}
PACKAGELESS = {"incident", "leak_report", "paper_act", "exam_policy"}
# A person's free text, sealed (docs/formats.md, "What is in clear on the log, and why").
TEXT_FIELDS = {
    "leak_report": "text",
    "freeze": "reason",
    "release": "reason",
    "correction": "reason",
}
PAPER_TEXT_FIELDS = {
    "custody.paper-opening.v1": "reason",
    "custody.paper-backup-activation.v1": "reason",
}
PAPER_ACT_TYPES = {
    "proposal": "application/vnd.custody.paper-proposal.v1+json",
    "print": "application/vnd.custody.paper-print.v1+json",
    "opening": "application/vnd.custody.paper-opening.v1+json",
    "break_glass": "application/vnd.custody.paper-opening.v1+json",
    "backup_activation": "application/vnd.custody.paper-backup-activation.v1+json",
    "destruction": "application/vnd.custody.paper-destruction.v1+json",
}
SYSTEM_KINDS = {"incident", "freeze", "compromise", "paper_act", "exam_policy"}
HOLDER_ROLES = {"proposer", "printer", "courier", "custodian", "chief_examiner", "secrecy_officer"}
ALL_ROLES = HOLDER_ROLES | {"supervisor", "destruction_officer", "auditor"}
TRANSFERS = {"dispatch", "handover", "receive", "return"}
ALLOWED_FROM = {
    "dispatch": {"sealed"},
    "handover": {"in_transit", "stored"},
    "receive": {"in_transit", "sealed"},
    "inspect": {"sealed", "in_transit", "stored", "returned"},
    "patrol": {"stored", "returned"},
    "checkin": {"in_transit"},
    "open": {"stored"},
    "distribute": {"opened"},
    "recover": {"distributed"},
    "return": {"recovered", "opened"},
    "destroy": {"stored", "returned", "recovered"},
}
WHEN_FROZEN = {
    "handover",
    "receive",
    "inspect",
    "patrol",
    "release",
    "destroy",
    "compromise",
    "reroute",
    "correction",
    "incident",
    "freeze",
}
OPENED = {"opened", "distributed", "recovered", "returned"}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class Refused(Exception):  # noqa: N818 - a refusal, as the document names it
    def __init__(self, code: str, why: str = "") -> None:
        super().__init__(f"{code}: {why}")
        self.code = code


# --- conventions ----------------------------------------------------------------------------


def b64d(value: object) -> bytes:
    """Standard alphabet, padded, canonical (re-encodes to the same text)."""
    if not isinstance(value, str) or len(value) % 4:
        raise Refused("format", "base64")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refused("format", "base64") from e
    if base64.b64encode(raw).decode() != value:
        raise Refused("format", "non-canonical base64")
    return raw


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise Refused("format", "duplicate key")
        out[k] = v
    return out


def json_obj(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
    except (ValueError, RecursionError) as e:
        raise Refused("format", "not JSON") from e
    if not isinstance(value, dict):
        raise Refused("format", "not an object")
    return value


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def time_of(value: object) -> datetime:
    if not isinstance(value, str) or not TIME_RE.match(value):
        raise Refused("format", "time")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as e:
        raise Refused("format", "time") from e


def is_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and all(c.isalnum() or c in "._-" for c in value)
    )


def key_id(raw: bytes) -> str:
    return hashlib.sha256(b"ed25519:" + raw).hexdigest()


def ed_ok(raw_key: bytes, message: bytes, sig: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(raw_key).verify(message, sig)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


# --- DSSE -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    payload_type: str
    payload: bytes
    sigs: tuple[tuple[str, bytes], ...]

    def pae(self) -> bytes:
        t = self.payload_type.encode()
        return b"DSSEv1 %d %s %d %s" % (len(t), t, len(self.payload), self.payload)


def parse_env(obj: object) -> Env:
    if not isinstance(obj, dict) or set(obj) - {"payload", "payloadType", "signatures"}:
        raise Refused("format", "envelope fields")
    if not isinstance(obj.get("payloadType"), str):
        raise Refused("format", "payloadType")
    payload = b64d(obj.get("payload"))
    sigs = obj.get("signatures")
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= 16:
        raise Refused("format", "1 to 16 signatures")
    out = []
    for s in sigs:
        if not isinstance(s, dict) or set(s) - {"keyid", "sig"}:
            raise Refused("format", "signature fields")
        hint = s.get("keyid")
        if hint is None:
            hint = ""
        if not isinstance(hint, str):
            raise Refused("format", "keyid")
        sig = b64d(s.get("sig"))
        if len(sig) != 64:
            raise Refused("format", "64-byte signature")
        out.append((hint, sig))
    return Env(obj["payloadType"], payload, tuple(out))


def signed_by(env: Env, keys: Mapping[str, bytes]) -> tuple[set[str], list[int]]:
    """Distinct keys that verify, and the signatures that match none (hint rules)."""
    message = env.pae()
    found: set[str] = set()
    unmatched: list[int] = []
    for i, (hint, sig) in enumerate(env.sigs):
        match = None
        if hint:
            if hint in keys and ed_ok(keys[hint], message, sig):
                match = hint
        elif len(keys) <= 32:
            match = next((k for k, raw in keys.items() if ed_ok(raw, message, sig)), None)
        if match is None:
            unmatched.append(i)
        elif match in found:
            raise Refused("duplicate_signature", "one key twice")
        else:
            found.add(match)
    return found, unmatched


# --- trust ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    key_id: str
    key: bytes
    subject: str
    roles: frozenset[str]
    not_before: datetime
    not_after: datetime
    recusals: frozenset[str]
    enc_id: str = ""  # the X25519 key's id: hex(SHA-256("x25519:" || key))


def sealed_note_boxes(value: object) -> list[tuple[str, str]]:
    """docs/formats.md, "Incident act": ``note_sealed`` (null, or the boxes and a SHA-256);
    the (to, key) of each box, or ``format``."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise Refused("format", "note_sealed")
    digest, sealed = value.get("sha256"), value.get("sealed")
    if not isinstance(digest, str) or not re.fullmatch("[0-9a-f]{64}", digest):
        raise Refused("format", "note_sealed.sha256")
    if not isinstance(sealed, list) or not 1 <= len(sealed) <= 64:
        raise Refused("format", "note_sealed.sealed")
    out = []
    for box in sealed:
        if not isinstance(box, dict):
            raise Refused("format", "a sealed box")
        to, key, data = box.get("to"), box.get("key"), box.get("box")
        if not (isinstance(to, str) and isinstance(key, str) and isinstance(data, str)):
            raise Refused("format", "a sealed box's fields")
        if len(data) > 24000:
            raise Refused("format", "a sealed box too long")
        b64d(data)
        out.append((to, key))
    if len({k for _, k in out}) != len(out):
        raise Refused("format", "two boxes for one key")
    return out


@dataclass(frozen=True)
class Rev:
    effective_at: datetime
    issued_at: datetime
    reason: str


class Trust:
    def __init__(self, doc: Mapping[str, Any]) -> None:
        auth_env = parse_env(doc["authority"])
        auth = json_obj(auth_env.payload)
        root = b64d(auth["root_key"])
        assert auth_env.payload_type == AUTHORITY_TYPE and self._root_only(auth_env, root)
        self.id = key_id(root)
        self.log_key = b64d(auth["log_key"])
        self.log_origin = auth["log_origin"]
        self.system_key = b64d(auth["system_key"])
        self.system_id = key_id(self.system_key)
        self.certs: dict[str, Cert] = {}
        self.revs: dict[str, Rev] = {}
        for raw in doc["certificates"]:
            env = parse_env(raw)
            assert env.payload_type == CERTIFICATE_TYPE and self._root_only(env, root)
            c = json_obj(env.payload)
            assert c["authority"] == self.id
            key = b64d(c["signing_key"]["key"])
            self.certs[key_id(key)] = Cert(
                key_id(key),
                key,
                c["subject"],
                frozenset(c["roles"]),
                time_of(c["not_before"]),
                time_of(c["not_after"]),
                frozenset(c["recusals"]),
                hashlib.sha256(b"x25519:" + b64d(c["encryption_key"]["key"])).hexdigest(),
            )
        for raw in doc["revocations"]:
            env = parse_env(raw)
            assert env.payload_type == REVOCATION_TYPE and self._root_only(env, root)
            r = json_obj(env.payload)
            assert r["authority"] == self.id
            rev = Rev(time_of(r["effective_at"]), time_of(r["issued_at"]), r["reason"])
            held = self.revs.get(r["key_id"])
            if held is None or rev.effective_at < held.effective_at:
                self.revs[r["key_id"]] = rev
        self.keys = {k: c.key for k, c in self.certs.items()}
        self.keys[self.system_id] = self.system_key

    @staticmethod
    def _root_only(env: Env, root: bytes) -> bool:
        found, unmatched = signed_by(env, {key_id(root): root})
        return found == {key_id(root)} and not unmatched

    def standing(self, kid: str, at: datetime, received: datetime | None) -> Cert:
        cert = self.certs.get(kid)
        if cert is None:
            raise Refused("unknown_signer", "no certificate")
        if at < cert.not_before:
            raise Refused("not_yet_valid")
        if at > cert.not_after:
            raise Refused("expired")
        rev = self.revs.get(kid)
        if rev and rev.reason == "key_compromise" and received and rev.issued_at <= received:
            raise Refused("revoked", "compromised, published")
        if rev and rev.effective_at <= at:
            raise Refused("revoked")
        return cert


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: str
    kind: str
    time: datetime
    place: str
    packages: dict[str, str | None]
    actors: dict[str, str]
    body: dict[str, Any]
    corrects: str | None
    authority: str


def parse_event(payload: bytes) -> Event:
    if b"\\u0000" in payload:
        raise Refused("format", "NUL")
    obj = json_obj(payload)
    try:
        if canonical(obj) != payload:
            raise Refused("format", "not canonical")
    except ValueError as e:
        raise Refused("format", "NaN") from e
    if obj.get("type") != "custody.event.v1":
        raise Refused("format", "type")
    if set(obj) - {
        "type",
        "kind",
        "authority",
        "time",
        "place",
        "packages",
        "actors",
        "body",
        "corrects",
    }:
        raise Refused("format", "extra field")
    if obj.get("kind") not in KINDS:
        raise Refused("format", "kind")
    packages, actors, body = obj.get("packages"), obj.get("actors"), obj.get("body")
    if not isinstance(packages, dict) or not all(
        v is None or isinstance(v, str) for v in packages.values()
    ):
        raise Refused("format", "packages")
    if len(packages) > 1000 or not all(is_id(p) for p in packages):
        raise Refused("format", "package ids")
    corrects = obj.get("corrects")
    if corrects is not None and not (isinstance(corrects, str) and HEX64.match(corrects)):
        raise Refused("format", "corrects")
    if not isinstance(body, dict):
        raise Refused("format", "body")
    if not isinstance(obj.get("authority"), str) or not isinstance(obj.get("place"), str):
        raise Refused("format", "authority/place")
    if not isinstance(actors, dict) or not all(isinstance(v, str) for v in actors.values()):
        raise Refused("format", "actors")
    return Event(
        hashlib.sha256(payload).hexdigest(),
        obj["kind"],
        time_of(obj.get("time")),
        obj["place"],
        packages,
        actors,
        body,
        corrects,
        obj["authority"],
    )


@dataclass(frozen=True)
class State:
    exam: str
    position: str
    package: str
    copies: int
    seals: tuple[str, ...]
    start: datetime
    end: datetime
    route: tuple[str, ...]
    witness: bool
    status: str
    holder: str
    pos: int
    last: str
    last_time: datetime
    frozen: bool = False
    distributed: int = 0

    @property
    def scope(self) -> list[str]:
        return [f"exam:{self.exam}", f"position:{self.position}", f"package:{self.package}"]

    @property
    def next(self) -> str | None:
        return self.route[self.pos + 1] if self.pos + 1 < len(self.route) else None


@dataclass(frozen=True)
class Slot:
    name: str
    roles: frozenset[str]
    person: str | None


def slot(name: str, roles: set[str] | frozenset[str], person: str | None) -> Slot:
    return Slot(name, frozenset(roles), person)


def actor(e: Event, name: str) -> str:
    person = e.actors.get(name)
    if not person:
        raise Refused("threshold", f"actors names no {name}")
    return person


def slots(e: Event, s: State | None) -> list[Slot]:
    """docs/formats.md, "Signer slots": the table of kinds."""
    k = e.kind
    if k == "seal":
        return [slot("sealer", {"proposer", "printer"}, actor(e, "sealer"))]
    if k in TRANSFERS:
        assert s is not None
        out = [
            slot("releaser", HOLDER_ROLES, s.holder),
            slot("receiver", HOLDER_ROLES, actor(e, "receiver")),
        ]
        if k == "receive":
            out.append(slot("custodian2", {"custodian"}, actor(e, "custodian2")))
        elif s.witness and k in {"dispatch", "handover"}:
            out.append(slot("witness", {"supervisor"}, actor(e, "witness")))
        return out
    if k in {"inspect", "patrol"}:
        return [
            slot(
                "inspector",
                {"custodian", "secrecy_officer", "supervisor", "courier"},
                actor(e, "inspector"),
            )
        ]
    if k == "checkin":
        assert s is not None
        return [slot("escort", {"courier"}, s.holder)]
    if k in {"open", "distribute", "recover"}:
        return [
            slot("examiner", {"chief_examiner"}, actor(e, "examiner")),
            slot("supervisor", {"supervisor"}, actor(e, "supervisor")),
        ]
    if k == "destroy":
        return [
            slot("officer", {"destruction_officer"}, actor(e, "officer")),
            slot("witness", {"supervisor", "secrecy_officer", "auditor"}, actor(e, "witness")),
        ]
    if k == "leak_report":
        return [slot("reporter", ALL_ROLES, actor(e, "reporter"))]
    if k == "incident":
        raise Refused("role", "incident by a person")
    if k in {"freeze", "release", "compromise", "reroute", "activate_backup", "correction"}:
        return [slot("officer", {"secrecy_officer"}, actor(e, "officer"))]
    raise Refused("format", f"{k} not from people")


def assign(
    reqs: list[Slot], eligible: dict[str, list[Cert]], used: frozenset[str]
) -> dict[str, Cert] | None:
    if not reqs:
        return {}
    for cert in eligible[reqs[0].name]:
        if cert.subject in used:
            continue
        rest = assign(reqs[1:], eligible, used | {cert.subject})
        if rest is not None:
            return {reqs[0].name: cert, **rest}
    return None


@dataclass
class Incident:
    kind: str
    subject: str
    opened: datetime
    suspects: set[str]
    status: str = "open"


class Log:
    def __init__(self, trust: Trust) -> None:
        self.trust = trust
        self.states: dict[str, State] = {}
        self.ids: set[str] = set()
        self.seals: dict[str, tuple[str, dict[str, Any]]] = {}  # package -> (sealer, seal body)
        self.exams: dict[str, tuple[bool, datetime]] = {}  # exam -> (witness, retention_until)
        self.blocked: set[str] = set()  # keys an incident blocked (section "Incidents")
        self._seen: tuple[Event, set[str], list[str], Env] | None = None
        self.incidents: dict[str, Incident] = {}
        self.acts: set[str] = set()
        self._found_for: list[tuple[str, str]] = []  # (package, finding) of the last event

    def submit(self, obj: object, received: datetime) -> tuple[str | None, list[str]]:
        self._seen = None
        self._found_for = []
        try:
            findings = self._submit(obj, received)
        except Refused as r:
            suspects = self._suspects(r.code, received)
            self.blocked |= suspects
            self._refusal_incident(r.code, suspects, received)
            return r.code, []
        if self._seen is not None:
            self._accepted_incidents(self._seen[0], received)
        return None, sorted(findings)

    # -- incidents (docs/formats.md, "Incidents numbered on the log") -------------------------

    def _open(self, kind: str, subject: str, received: datetime, suspects: set[str]) -> None:
        for inc in self.incidents.values():
            if inc.kind == kind and inc.subject == subject and inc.status != "resolved":
                inc.suspects |= suspects  # joins: no new number
                return
        number = f"INC-{len(self.incidents) + 1:05d}"
        self.incidents[number] = Incident(kind, subject, received, suspects)

    def _refusal_incident(self, code: str, suspects: set[str], received: datetime) -> None:
        if self._seen is None:
            return
        e, _, unmatched, env = self._seen
        known = [p for p in e.packages if p in self.states]
        hints = [env.sigs[i][0] for i in unmatched]
        kind = {
            "route": "off_route",
            "revoked": "revoked_key",
            "expired": "expired_key",
            "not_yet_valid": "expired_key",
            "recused": "recused_signer",
            "blocked_key": "blocked_key_used",
            "unknown_signer": "unknown_key",
            "signature": "forged_signature",
            "weak_key": "forged_signature",
            "duplicate_signature": "forged_signature",
            "clock": "opening_out_of_window" if e.kind == "open" else "clock_skew",
            "window": "opening_out_of_window",
            "frozen": "frozen_violation",
            "closed": "act_after_destruction",
            "threshold": "opening_without_both",
            "role": "opening_without_both",
            "format": "forged_signature",
        }.get(code)
        if kind is None or (code in {"threshold", "role"} and e.kind != "open"):
            return
        if code == "format" and not unmatched:
            return
        named: list[str] = []
        if code in {"revoked", "expired", "not_yet_valid", "blocked_key"}:
            named = sorted(suspects)
        elif code == "unknown_signer":
            named = sorted(h for h in hints if h not in self.trust.certs)
        elif kind == "forged_signature":
            named = hints
        subject = next((n for n in named if n), known[0] if known else kind)
        self._open(kind, subject, received, suspects)

    def _accepted_incidents(self, e: Event, received: datetime) -> None:
        for package, finding in self._found_for:
            if finding == "seal_mismatch":
                self._open("seal_mismatch", package, received, set())
            elif finding == "count_mismatch":
                s = self.states[package]
                short = e.body.get("copies", 0) < s.distributed
                self._open("count_short" if short else "count_over", package, received, set())
        if e.kind == "leak_report":
            named = e.body.get("packages")
            listed = [p for p in named if isinstance(p, str)] if isinstance(named, list) else []
            paper = e.body.get("paper") if isinstance(e.body.get("paper"), str) else None
            self._open("leak_report", listed[0] if listed else (paper or e.id), received, set())

    def act(self, obj: object, received: datetime) -> str | None:
        """docs/formats.md, "Incident act": the refusal code, or None when recorded."""
        try:
            self._act(obj, received)
        except Refused as r:
            return r.code
        return None

    def _act(self, obj: object, received: datetime) -> None:
        env = parse_env(obj)
        if env.payload_type != ACT_TYPE:
            raise Refused("format", "payload type")
        a = json_obj(env.payload)
        if a.get("type") != "custody.incident-act.v1" or a.get("act") not in ACTS:
            raise Refused("format", "type or act")
        if a.get("note", "") != "":
            raise Refused("format", "a note in clear")
        boxes = sealed_note_boxes(a.get("note_sealed"))
        for k in ("authority", "incident", "person"):
            if not isinstance(a.get(k), str) or not a[k]:
                raise Refused("format", k)
        key = a.get("key")
        if key is not None and not isinstance(key, str):
            raise Refused("format", "key")
        at = time_of(a.get("time"))
        if a["authority"] != self.trust.id:
            raise Refused("format", "another authority")
        if abs(at - received) > SKEW:
            raise Refused("clock", "five-minute rule")
        inc = self.incidents.get(a["incident"])
        if inc is None:
            raise Refused("not_found", "no such incident")
        kind = a["act"]
        if inc.status == "resolved" and kind != "unblock":
            raise Refused("conflict", "resolved")
        if kind == "acknowledge" and inc.status != "open":
            raise Refused("conflict", "acknowledged already")
        roles = {"custodian", "secrecy_officer"} if kind == "acknowledge" else {"secrecy_officer"}
        found, unmatched = signed_by(env, self.trust.keys)
        filled = self._fill(
            [slot("actor", roles, a["person"])], frozenset(), env, found, unmatched, at, None
        )
        if at < inc.opened:
            raise Refused("clock", "before the incident opened")
        suspects = {self.trust.certs[k].subject for k in inc.suspects if k in self.trust.certs}
        if a["person"] in suspects:
            raise Refused("role", "a suspect")
        if boxes:
            officers = {
                c.enc_id: c for c in self.trust.certs.values() if "secrecy_officer" in c.roles
            }
            standing = set()
            for to, enc in boxes:
                cert = officers.get(enc)
                if cert is None or cert.subject != to:
                    raise Refused("role", "a note sealed to someone not a secrecy officer")
                try:
                    self.trust.standing(cert.key_id, at, None)
                    standing.add(enc)
                except Refused:
                    pass
            if not standing:
                raise Refused("role", "a note no standing secrecy officer can open")
        if {c.key_id for c in filled.values()} & self.blocked:
            raise Refused("blocked_key", "the act's key is blocked")
        act_id = hashlib.sha256(env.payload).hexdigest()
        if act_id in self.acts:
            raise Refused("conflict", "the same act")
        if kind == "unblock":
            if key is None:
                raise Refused("format", "unblock names its key")
            if key not in self.blocked:
                raise Refused("not_found", "not blocked")
            self.blocked.discard(key)
        inc.status = {"acknowledge": "acknowledged", "contain": "contained"}.get(
            kind, "resolved" if kind == "resolve" else inc.status
        )
        self.acts.add(act_id)

    def _suspects(self, code: str, received: datetime) -> set[str]:
        """docs/formats.md, "Keys a refusal blocks": the suspect keys of a refusal whose
        incident (high severity) blocks them."""
        if self._seen is None:
            return set()
        e, found, unmatched, env = self._seen
        t = self.trust
        if code == "route":
            receiver = e.actors.get("receiver", "")
            return {k for k in found if k in t.certs and t.certs[k].subject == receiver}
        if code in {"revoked", "expired", "not_yet_valid"}:
            bad = {"revoked"} if code == "revoked" else {"expired", "not_yet_valid"}
            named = {env.sigs[i][0] for i in unmatched} & set(t.certs)
            out = set()
            for kid in (found | named) & set(t.certs):
                try:
                    t.standing(kid, e.time, received)
                except Refused as r:
                    if r.code in bad:
                        out.add(kid)
            return out
        if code == "recused":
            tags = {x for p in e.packages if p in self.states for x in self.states[p].scope}
            return {k for k in found if k in t.certs and t.certs[k].recusals & tags}
        if code == "blocked_key":
            return found & self.blocked
        return set()

    def _submit(self, obj: object, received: datetime) -> list[str]:
        env = parse_env(obj)
        if env.payload_type != EVENT_TYPE:
            raise Refused("format", "payload type")
        e = parse_event(env.payload)
        found, unmatched = signed_by(env, self.trust.keys)
        self._seen = (e, found, unmatched, env)
        if found & self.blocked:
            raise Refused("blocked_key", "signed by a key an incident blocked")
        if e.id in self.ids:
            raise Refused("<duplicate>")
        if e.corrects and e.corrects not in self.ids:
            raise Refused("chain", "corrects unknown")
        if e.authority != self.trust.id:
            raise Refused("format", "authority")
        late = self._time(e, received)
        if not e.packages:
            if e.kind not in PACKAGELESS:
                raise Refused("format", "no package")
            self._signers(e, env, found, unmatched, [], received)
            self._sealed_text(e)
            if e.kind == "paper_act":
                self._paper_act(e, received)
            if e.kind == "exam_policy":
                self._exam_policy(e)
            self.ids.add(e.id)
            return []
        if e.kind == "seal":
            exam = e.body.get("exam")
            if not isinstance(exam, str) or not exam:
                raise Refused("format", "seal exam")
            if exam not in self.exams:
                raise Refused("exam_policy", "no policy on the log")
            if e.body.get("handover_witness") is not self.exams[exam][0]:
                raise Refused("exam_policy", "handover_witness is not the policy's")
        known = []
        for p in e.packages:
            s = self.states.get(p)
            if s is None:
                if e.kind != "seal":
                    raise Refused("chain", "never sealed")
                continue
            if s.status == "destroyed":
                raise Refused("closed")
            known.append(s)
        filled = self._signers(e, env, found, unmatched, known, received)
        self._sealed_text(e)
        new, findings = self._transition(e, filled, received)
        self.states.update(new)
        self.ids.add(e.id)
        if e.kind == "seal":
            self.seals.setdefault(next(iter(e.packages)), (e.actors["sealer"], dict(e.body)))
        if late:
            findings += ["late"] * len(e.packages)
        return findings

    def _sealed_text(self, e: Event) -> None:
        """docs/formats.md, "What is in clear on the log": a person's leak report ``text`` and
        freeze, release, correction ``reason`` are sealed (``<field>_sealed``, the shape of an
        act's ``note_sealed``): in clear, ``format``; boxes as an act's note (``role``)."""
        field = TEXT_FIELDS.get(e.kind)
        if field is None or "system" in e.actors:
            return
        if e.body.get(field, "") not in ("", None):
            raise Refused("format", f"{field} in clear")
        self._officer_boxes(sealed_note_boxes(e.body.get(f"{field}_sealed")), e.time)

    def _officer_boxes(self, boxes: list[tuple[str, str]], at: datetime) -> None:
        if not boxes:
            return
        officers = {c.enc_id: c for c in self.trust.certs.values() if "secrecy_officer" in c.roles}
        standing = set()
        for to, enc in boxes:
            cert = officers.get(enc)
            if cert is None or cert.subject != to:
                raise Refused("role", "sealed to someone not a secrecy officer")
            try:
                self.trust.standing(cert.key_id, at, None)
                standing.add(enc)
            except Refused:
                pass
        if not standing:
            raise Refused("role", "sealed to no standing secrecy officer")

    def _exam_policy(self, e: Event) -> None:
        """docs/formats.md, "exam_policy": exactly exam, handover_witness, retention_until."""
        b = e.body
        if set(b) - {"exam", "handover_witness", "retention_until"}:
            raise Refused("format", "exam_policy fields")
        exam = b.get("exam")
        if (
            not isinstance(exam, str)
            or not exam
            or len(exam) > 200
            or not exam.isprintable()
            or exam != exam.strip()
        ):
            raise Refused("format", "exam id")
        if not isinstance(b.get("handover_witness"), bool):
            raise Refused("format", "handover_witness")
        retention = time_of(b.get("retention_until"))
        self.exams[exam] = (b["handover_witness"], retention)

    def _purge(self, e: Event, received: datetime) -> None:
        b = e.body
        if set(b) != {"act_kind", "paper", "exam", "commitment"}:
            raise Refused("format", "purge fields")
        if not all(isinstance(b[k], str) and b[k] for k in ("paper", "exam", "commitment")):
            raise Refused("format", "purge values")
        if b["exam"] not in self.exams:
            raise Refused("exam_policy", "no policy")
        if received < self.exams[b["exam"]][1]:
            raise Refused("window", "within retention")

    def _paper_act(self, e: Event, received: datetime) -> None:
        """docs/formats.md, "Paper acts": the embedded act fits its kind and paper, is dated
        within 5 minutes of the receive time, and every signature is a standing certified key."""
        if e.body.get("act_kind") == "purge":
            self._purge(e, received)
            return
        kind, paper = e.body.get("act_kind"), e.body.get("paper")
        if kind not in PAPER_ACT_TYPES or not isinstance(paper, str) or not paper:
            raise Refused("format", "act_kind or paper")
        act = parse_env(e.body.get("act"))
        if act.payload_type != PAPER_ACT_TYPES[kind]:
            raise Refused("format", "payload type of the act")
        obj = json_obj(act.payload)
        subject = obj.get("paper") if "paper" in obj else obj
        if not isinstance(subject, dict):
            raise Refused("format", "paper")
        pid, version = subject.get("paper_id"), subject.get("version")
        if not isinstance(pid, str) or not isinstance(version, int) or isinstance(version, bool):
            raise Refused("format", "paper id or version")
        if f"{pid}@v{version}" != paper:
            raise Refused("format", "another paper")
        at = time_of(obj.get("at") if "at" in obj else obj.get("proposed_at"))
        if abs(at - received) > SKEW:
            raise Refused("clock", "paper act")
        found, unmatched = signed_by(act, self.trust.keys)
        if not found or unmatched:
            raise Refused("signature", "the act's signatures")
        for kid in sorted(found):
            self.trust.standing(kid, at, received)
        field = PAPER_TEXT_FIELDS.get(str(obj.get("type")))
        if field is not None:
            if obj.get(field, "") not in ("", None):
                raise Refused("format", f"paper act {field} in clear")
            self._officer_boxes(sealed_note_boxes(obj.get(f"{field}_sealed")), at)

    @staticmethod
    def _time(e: Event, received: datetime) -> bool:
        if e.time > received + SKEW:
            raise Refused("clock", "future")
        if e.time >= received - SKEW:
            return False
        if e.kind in OFFLINE and received - e.time <= MAX_LAG:
            return True
        raise Refused("clock", "too early")

    def _signers(
        self,
        e: Event,
        env: Env,
        found: set[str],
        unmatched: list[int],
        states: list[State],
        received: datetime,
    ) -> dict[str, Cert] | None:
        t = self.trust
        if "system" in e.actors:
            if e.kind not in SYSTEM_KINDS:
                raise Refused("role", "system kind")
            if e.actors["system"] != t.id:
                raise Refused("format", "actors.system")
            if found != {t.system_id} or unmatched:
                raise Refused("signature", "system key alone")
            return None
        if states:
            asked: list[list[Slot] | Refused] = []
            for s in states:
                try:
                    asked.append(slots(e, s))
                except Refused as r:
                    if r.code != "threshold":
                        raise
                    asked.append(r)
            first = asked[0]
            for theirs in asked[1:]:
                same = (isinstance(first, Refused) and isinstance(theirs, Refused)) or (
                    not isinstance(first, Refused)
                    and not isinstance(theirs, Refused)
                    and set(first) == set(theirs)
                )
                if not same:
                    raise Refused("mixed_packages")
            if isinstance(first, Refused):
                raise first
            reqs = first
            scope: list[str] = []
            for s in states:
                scope += [x for x in s.scope if x not in scope]
        else:
            reqs = slots(e, None)
            scope = [
                f"exam:{e.body.get('exam')}",
                f"position:{e.body.get('position')}",
                *(f"package:{p}" for p in e.packages),
            ]
        return self._fill(reqs, frozenset(scope), env, found, unmatched, e.time, received)

    def _fill(
        self,
        reqs: list[Slot],
        tags: frozenset[str],
        env: Env,
        found: set[str],
        unmatched: list[int],
        at: datetime,
        received: datetime | None,
    ) -> dict[str, Cert]:
        """docs/formats.md, "Required signers": the slots filled, or the first problem."""
        t = self.trust
        problems: list[Refused] = []
        for i in unmatched:
            hint = env.sigs[i][0]
            problems.append(Refused("signature" if hint in t.certs else "unknown_signer"))
        signers: list[Cert] = []
        persons: set[str] = set()
        for kid in sorted(found):
            try:
                cert = t.standing(kid, at, received)
            except Refused as r:
                problems.append(r)
                continue
            if cert.subject in persons:
                problems.append(Refused("duplicate_signature", "one person twice"))
                continue
            persons.add(cert.subject)
            signers.append(cert)
        eligible = {
            r.name: [
                c
                for c in signers
                if c.roles & r.roles
                and (r.person is None or c.subject == r.person)
                and not c.recusals & tags
            ]
            for r in reqs
        }
        filled = assign(reqs, eligible, frozenset())
        if filled is None:
            filled, used = {}, set()
            for r in reqs:
                for c in eligible[r.name]:
                    if c.subject not in used:
                        filled[r.name] = c
                        used.add(c.subject)
                        break
        used_subjects = {c.subject for c in filled.values()}
        spare = [c for c in signers if c.subject not in used_subjects]
        for r in reqs:
            if r.name in filled:
                continue
            cands = [c for c in spare if r.person is None or c.subject == r.person]
            if any(c.roles & r.roles and c.recusals & tags for c in cands):
                problems.append(Refused("recused"))
            elif any(not c.roles & r.roles for c in cands):
                problems.append(Refused("role"))
            else:
                problems.append(Refused("threshold"))
        for code in ("duplicate_signature", "signature", "unknown_signer"):
            for p in problems:
                if p.code == code:
                    raise p
        if problems:
            raise problems[0]
        return filled

    def _transition(
        self, e: Event, filled: dict[str, Cert] | None, received: datetime
    ) -> tuple[dict[str, State], list[str]]:
        if e.kind == "correction" and not e.corrects:
            raise Refused("format", "correction names what it corrects")
        new: dict[str, State] = {}
        findings: list[str] = []
        for p, prev in e.packages.items():
            s = self.states.get(p)
            if e.kind == "seal":
                if len(e.packages) != 1:
                    raise Refused("format", "one package")
                if s is not None:
                    raise Refused("chain", "sealed already")
                if prev is not None:
                    raise Refused("chain", "seal link")
                new[p] = self._sealed(e, p)
                continue
            assert s is not None
            if prev != s.last:
                raise Refused("chain", "link")
            if e.time < s.last_time:
                raise Refused("chain", "time goes back")
            before = len(findings)
            changes = self._step(e, s, filled, received, findings)
            self._found_for.extend((p, f) for f in findings[before:])
            new[p] = replace(s, **changes, last=e.id, last_time=e.time)
        return new, findings

    @staticmethod
    def _sealed(e: Event, p: str) -> State:
        b = e.body
        route, window, seals, copies = (
            b.get("route"),
            b.get("window"),
            b.get("seals"),
            b.get("copies"),
        )
        if not isinstance(route, list) or not route or not all(isinstance(x, str) for x in route):
            raise Refused("format", "route")
        if not isinstance(window, dict):
            raise Refused("format", "window")
        start, end = time_of(window.get("start")), time_of(window.get("end"))
        if end <= start:
            raise Refused("format", "window order")
        if (
            not isinstance(seals, list)
            or not all(isinstance(x, str) for x in seals)
            or not seals
            or len(set(seals)) != len(seals)
        ):
            raise Refused("format", "seals")
        if not isinstance(copies, int) or isinstance(copies, bool) or copies <= 0:
            raise Refused("format", "copies")
        for k in ("exam", "position", "paper"):
            if not isinstance(b.get(k), str) or not b.get(k):
                raise Refused("format", k)
        return State(
            b["exam"],
            b["position"],
            p,
            copies,
            tuple(seals),
            start,
            end,
            tuple(route),
            bool(b.get("handover_witness", False)),
            "sealed",
            e.actors["sealer"],
            -1,
            e.id,
            e.time,
        )

    @staticmethod
    def _step(
        e: Event, s: State, filled: dict[str, Cert] | None, at: datetime, findings: list[str]
    ) -> dict[str, Any]:
        k = e.kind
        if s.frozen and k not in WHEN_FROZEN:
            raise Refused("frozen")
        if k in ALLOWED_FROM and s.status not in ALLOWED_FROM[k]:
            raise Refused("chain", f"{k} after {s.status}")
        if "seals" in e.body and s.status not in OPENED:
            seen = e.body["seals"]
            if not isinstance(seen, list) or not all(isinstance(x, str) for x in seen):
                raise Refused("format", "seals")
            if sorted(seen) != sorted(s.seals) or len(set(seen)) != len(seen):
                findings.append("seal_mismatch")
        if k in TRANSFERS:
            receiver = e.actors["receiver"]
            receiver_roles = filled["receiver"].roles if filled else frozenset()
            if s.frozen:
                if not receiver_roles & {"custodian", "secrecy_officer"}:
                    raise Refused("frozen", "secure custody only")
                pos = s.pos
            elif k == "return":
                pos = s.pos
            elif receiver != s.next:
                raise Refused("route")
            else:
                pos = s.pos + 1
            if k == "return" and "custodian" not in receiver_roles:
                raise Refused("route", "return to a custodian")
            status = {"receive": "stored", "return": "returned"}.get(k, "in_transit")
            return {"holder": receiver, "pos": pos, "status": status}
        if k == "open":
            if not s.start <= at <= s.end:
                raise Refused("window")
            return {"status": "opened", "holder": e.actors["examiner"]}
        if k in {"distribute", "recover"}:
            copies = e.body.get("copies")
            if not isinstance(copies, int) or isinstance(copies, bool) or copies < 0:
                raise Refused("format", "copies")
            if k == "distribute":
                if copies > s.copies:
                    raise Refused("format", "more than the package holds")
                return {"status": "distributed", "distributed": copies}
            if copies != s.distributed:
                findings.append("count_mismatch")
            return {"status": "recovered"}
        if k == "destroy":
            return {"status": "destroyed", "holder": ""}
        if k in {"freeze", "release"}:
            return {"frozen": k == "freeze"}
        if k == "reroute":
            route = e.body.get("route")
            if not isinstance(route, list) or not all(isinstance(x, str) for x in route):
                raise Refused("format", "reroute route")
            return {"route": (*s.route[: s.pos + 1], *route)}
        if k in {"inspect", "patrol"} and filled is not None:
            ins = filled["inspector"]
            if ins.roles <= {"courier"} and not (ins.subject == s.holder or ins.subject in s.route):
                raise Refused("role", "courier with no part")
        return {}


# --- labels ---------------------------------------------------------------------------------

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45_decode(text: str) -> bytes:
    if len(text) % 3 == 1:
        raise Refused("format", "dangling base45")
    values = []
    for ch in text:
        i = B45.find(ch)
        if i < 0:
            raise Refused("format", "base45 alphabet")
        values.append(i)
    out = bytearray()
    for j in range(0, len(values), 3):
        group = values[j : j + 3]
        n = sum(v * 45**i for i, v in enumerate(group))
        if len(group) == 3:
            if n > 0xFFFF:
                raise Refused("format", "base45 group")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise Refused("format", "base45 group")
            out.append(n)
    return bytes(out)


def cbor(data: bytes) -> Any:
    try:
        return cbor2.loads(data, max_depth=4, allow_indefinite=False, allow_duplicate_keys=False)
    except Exception as e:
        raise Refused("format", "CBOR") from e


def verify_label(text: str, trust: Trust, now: datetime | None) -> Mapping[int, Any]:
    """Returns the manifest's fields; ``now`` None: judged at its own issued-at time."""
    text = text.strip()
    if len(text) > 1600:
        raise Refused("format", "too long")
    if not text.startswith("CP1:"):
        raise Refused("format", "prefix")
    raw = base45_decode(text[4:])
    if not raw:
        raise Refused("format", "empty")
    if raw[0] == 0x78:
        d = zlib.decompressobj()
        try:
            cose = d.decompress(raw, 2048)
        except zlib.error as e:
            raise Refused("format", "zlib") from e
        if d.unconsumed_tail or not d.eof or d.unused_data:
            raise Refused("format", "zlib cap/trailing")
        # formats.md: no bit set after the final block's end in the deflate data's last byte
        deflated = raw[2:-4]
        for bit in range(8):
            if not deflated or not deflated[-1] >> bit & 1:
                continue
            raw_inflater = zlib.decompressobj(wbits=-15)
            try:
                again = raw_inflater.decompress(deflated[:-1] + bytes([deflated[-1] ^ 1 << bit]))
            except zlib.error:
                continue
            if again == cose and raw_inflater.eof and not raw_inflater.unused_data:
                raise Refused("format", "zlib padding bits")
    elif raw[0] == 0xD2:
        cose = raw
    else:
        raise Refused("format", "first byte")
    outer = cbor(cose)
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != 18:
        raise Refused("format", "tag 18")
    parts = outer.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise Refused("format", "4 parts")
    protected, unprotected, payload, sig = parts
    if not all(isinstance(x, bytes) for x in (protected, payload, sig)):
        raise Refused("format", "bstr parts")
    if not isinstance(unprotected, Mapping) or unprotected:
        raise Refused("format", "unprotected")
    if len(sig) != 64:
        raise Refused("format", "sig size")
    header = cbor(protected)
    if (
        not isinstance(header, Mapping)
        or set(header) != {1, 4}
        or header[1] != -8
        or not isinstance(header[4], bytes)
        or len(header[4]) != 8
    ):
        raise Refused("format", "protected header")
    kid = header[4]
    if protected != b"\xa2\x01\x27\x04\x48" + kid:
        raise Refused("format", "protected encoding")
    m = cbor(payload)
    if not isinstance(m, Mapping) or set(m) != set(range(1, 16)):
        raise Refused("format", "manifest keys")
    try:
        if cbor2.dumps(dict(m), canonical=True) != payload:
            raise Refused("format", "not deterministic")
    except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
        raise Refused("format", "value type") from e
    candidates = [k for k in trust.certs if bytes.fromhex(k)[:8] == kid]
    if not candidates:
        raise Refused("unknown_signer")
    message = cbor2.dumps(["Signature1", protected, b"", payload], canonical=True)
    signer = next((k for k in candidates if ed_ok(trust.certs[k].key, message, sig)), None)
    if signer is None:
        raise Refused("signature")
    fields = _manifest(m)
    now = now if now is not None else fields["issued"]
    cert = trust.standing(signer, fields["issued"], None)
    rev = trust.revs.get(signer)
    if rev and rev.reason == "key_compromise" and rev.effective_at <= now:
        raise Refused("revoked", "compromise in force")
    if not cert.roles & {"proposer", "printer"}:
        raise Refused("role")
    if cert.recusals & {f"exam:{m[2]}", f"position:{m[4]}", f"package:{m[1]}"}:
        raise Refused("recused")
    if now < fields["issued"]:
        raise Refused("not_yet_valid")
    if now > fields["expires"]:
        raise Refused("expired")
    return m


def _manifest(m: Mapping[int, Any]) -> dict[str, datetime]:
    def uint(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**40:
            raise Refused("format", "uint")
        return v

    def place(v: Any) -> None:
        if not isinstance(v, str) or not v.strip() or len(v) > 32 or any(ord(c) < 0x20 for c in v):
            raise Refused("format", "place")

    def array(v: Any, n: int | None = None) -> list[Any]:
        if not isinstance(v, list) or (n is not None and len(v) != n):
            raise Refused("format", "array")
        return v

    for key in (1, 2, 3, 4, 5):
        if not is_id(m[key]):
            raise Refused("format", "id")
    dest = array(m[10], 2)
    place(dest[0])
    place(dest[1])
    if not isinstance(m[6], bytes) or len(m[6]) != 32:
        raise Refused("format", "commitment")
    copies, bag = uint(m[7]), uint(m[8])
    if not 0 < copies <= 10000 or not 0 < bag <= 10000:
        raise Refused("format", "counts")
    seals = array(m[9])
    if (
        not 0 < len(seals) <= 16
        or not all(is_id(s) for s in seals)
        or len(set(seals)) != len(seals)
    ):
        raise Refused("format", "seals")
    if len(seals) != -(-copies // bag):
        raise Refused("format", "one seal per bag")
    window = [uint(x) for x in array(m[11], 2)]
    issued, expires = uint(m[14]), uint(m[15])
    if not window[0] < window[1] or window[0] < issued or not issued < expires:
        raise Refused("format", "times")
    route = [array(step, 2) for step in array(m[12])]
    if not 0 < len(route) <= 8:
        raise Refused("format", "route length")
    for person, where in route:
        if not is_id(person):
            raise Refused("format", "route person")
        place(where)
    if any(a[0] == b[0] for a, b in itertools.pairwise(route)):
        raise Refused("format", "twice in a row")
    if uint(m[13]) not in (1, 2, 3):
        raise Refused("format", "classification")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        "issued": epoch + timedelta(seconds=issued),
        "expires": epoch + timedelta(seconds=expires),
    }


# --- trust bundles ----------------------------------------------------------------------------

BUNDLE_TYPE = "application/vnd.custody.trust-bundle.v1+json"
ROLES = ALL_ROLES
REASONS = {"key_compromise", "superseded", "left_post", "conflict_of_interest", "suspended"}


def ed_point(value: object) -> bytes:
    raw = b64d(value)
    if len(raw) != 32 or not nacl.bindings.crypto_core_ed25519_is_valid_point(raw):
        raise Refused("weak_key", "not a canonical prime-order point")
    return raw


def root_only(env: Env, root: bytes) -> bool:
    found, unmatched = signed_by(env, {key_id(root): root})
    return found == {key_id(root)} and not unmatched


def verify_authority(env: Env, pin: str | None) -> tuple[str, bytes]:
    if env.payload_type != AUTHORITY_TYPE:
        raise Refused("format", "authority type")
    a = json_obj(env.payload)
    if a.get("type") != "custody.authority.v1":
        raise Refused("format", "authority")
    for k in ("name", "log_origin"):
        if not isinstance(a.get(k), str):
            raise Refused("format", k)
    root = ed_point(a.get("root_key"))
    ed_point(a.get("log_key"))
    ed_point(a.get("system_key"))
    time_of(a.get("created_at"))
    if pin is not None and key_id(root) != pin:
        raise Refused("issuer", "not the pinned root")
    if not root_only(env, root):
        raise Refused("issuer", "authority not self-signed")
    return key_id(root), root


def verify_certificate(env: Env, root: bytes, authority: str) -> None:
    if env.payload_type != CERTIFICATE_TYPE:
        raise Refused("format", "certificate type")
    if not root_only(env, root):
        raise Refused("issuer", "certificate not root-signed")
    c = json_obj(env.payload)
    sk, ek = c.get("signing_key"), c.get("encryption_key")
    if (
        c.get("type") != "custody.certificate.v1"
        or not isinstance(sk, dict)
        or not isinstance(ek, dict)
    ):
        raise Refused("format", "certificate")
    if sk.get("alg") != "ed25519" or ek.get("alg") != "x25519":
        raise Refused("format", "algorithms")
    for k in ("authority", "subject", "name", "organisation"):
        if not isinstance(c.get(k), str):
            raise Refused("format", k)
    roles = c.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) and r in ROLES for r in roles):
        raise Refused("format", "roles")
    ed_point(sk.get("key"))
    if len(b64d(ek.get("key"))) != 32:
        raise Refused("format", "x25519 key")
    nb, na = time_of(c.get("not_before")), time_of(c.get("not_after"))
    time_of(c.get("issued_at"))
    rec = c.get("recusals")
    if not isinstance(rec, list) or not all(isinstance(r, str) for r in rec):
        raise Refused("format", "recusals")
    if c.get("supersedes") is not None and not isinstance(c.get("supersedes"), str):
        raise Refused("format", "supersedes")
    if na <= nb or not roles:
        raise Refused("format", "window or roles")
    if c["authority"] != authority:
        raise Refused("issuer", "another authority")


def verify_revocation(env: Env, root: bytes, authority: str) -> None:
    if env.payload_type != REVOCATION_TYPE:
        raise Refused("format", "revocation type")
    if not root_only(env, root):
        raise Refused("issuer", "revocation not root-signed")
    r = json_obj(env.payload)
    if r.get("type") != "custody.revocation.v1" or r.get("reason") not in REASONS:
        raise Refused("format", "revocation")
    for k in ("authority", "key_id", "note"):
        if not isinstance(r.get(k), str):
            raise Refused("format", k)
    time_of(r.get("effective_at"))
    time_of(r.get("issued_at"))
    if r["authority"] != authority:
        raise Refused("issuer", "another authority")


def verify_trust_bundle(text: str, pin: str) -> None:
    env = parse_env(json_obj(text.encode("utf-8")))
    if env.payload_type != BUNDLE_TYPE:
        raise Refused("format", "bundle type")
    b = json_obj(env.payload)
    if b.get("type") != "custody.trust-bundle.v1":
        raise Refused("format", "bundle")
    authority, root = verify_authority(parse_env(b.get("authority")), pin)
    if not root_only(env, root):
        raise Refused("signature", "bundle not signed by its root key")
    certs, revs = b.get("certificates"), b.get("revocations")
    if not isinstance(certs, list) or not isinstance(revs, list):
        raise Refused("format", "lists")
    cert_envs = [parse_env(c) for c in certs]
    rev_envs = [parse_env(r) for r in revs]
    for e in cert_envs:
        verify_certificate(e, root, authority)
    for e in rev_envs:
        verify_revocation(e, root, authority)


# --- signed notes and checkpoints --------------------------------------------------------------

EM = "\u2014 "


def key_hash(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]


def note_b64(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Refused("format", "base64") from e
    if base64.b64encode(raw).decode() != text:
        raise Refused("format", "non-canonical base64")
    return raw


def verify_checkpoint(text: str, origin: str, vkeys: list[str]) -> tuple[int, bytes]:
    known: dict[tuple[str, bytes], tuple[int, bytes]] = {}
    for vkey in vkeys:
        name, khash, key = vkey.split("+", 2)
        raw = base64.b64decode(key)
        known[(name, bytes.fromhex(khash))] = (raw[0], raw[1:])
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise Refused("format", "control character")
    split = text.rfind("\n\n")
    if split < 0:
        raise Refused("format", "no blank line")
    body, block = text[: split + 1], text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise Refused("format", "signature block")
    lines = block[:-1].split("\n")
    if len(lines) > 100:
        raise Refused("format", "too many signatures")
    sigs = []
    for line in lines:
        if not line.startswith(EM):
            raise Refused("format", "em dash")
        name, sep, b64sig = line[len(EM) :].partition(" ")
        if not sep or not name or "+" in name or any(c.isspace() for c in name):
            raise Refused("format", "key name")
        raw = note_b64(b64sig)
        if len(raw) < 5:
            raise Refused("format", "short signature")
        sigs.append((name, raw[:4], raw[4:]))
    seen: set[tuple[str, bytes]] = set()
    for name, khash, sig in sigs:
        if (name, khash) not in known:
            continue  # a signature by an unknown key is ignored
        if (name, khash) in seen:
            raise Refused("duplicate_signature", "one key twice")
        sig_type, public = known[(name, khash)]
        if sig_type == 0x01:
            ok = len(sig) == 64 and ed_ok(public, body.encode(), sig)
        else:
            t = int.from_bytes(sig[:8], "big")
            message = f"cosignature/v1\ntime {t}\n".encode() + body.encode()
            ok = len(sig) == 72 and t < 2**63 and ed_ok(public, message, sig[8:])
        if not ok:
            raise Refused("signature", "known key, bad signature")
        seen.add((name, khash))
    if not seen:
        raise Refused("unknown_signer", "no known key signed")
    parts = body[:-1].split("\n")
    if len(parts) < 3:
        raise Refused("format", "checkpoint lines")
    got_origin, size, root_text = parts[:3]
    if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size) or int(size) >= 2**64:
        raise Refused("format", "size")
    root = note_b64(root_text)
    if len(root) != 32:
        raise Refused("format", "root size")
    if any(not ext for ext in parts[3:]):
        raise Refused("format", "empty extension line")
    if got_origin != origin:
        raise Refused("format", "another origin")
    return int(size), root


# --- key files ----------------------------------------------------------------------------------


def open_keyfile(text: str, passphrase: str) -> None:
    """docs/formats.md, "Key file": parse, derive, decrypt with the header as AAD, compare."""
    doc = json_obj(text.encode("utf-8"))
    kdf, aead, public = doc.get("kdf"), doc.get("aead"), doc.get("public")
    if (
        doc.get("format") != "custody-keyfile/v1"
        or not isinstance(kdf, dict)
        or not isinstance(aead, dict)
        or not isinstance(public, dict)
    ):
        raise Refused("format", "key file fields")
    if kdf.get("alg") != "argon2id13" or aead.get("alg") != "xchacha20poly1305-ietf":
        raise Refused("format", "algorithms")
    ops, mem = kdf.get("opslimit"), kdf.get("memlimit")
    if (
        not isinstance(ops, int)
        or not isinstance(mem, int)
        or not isinstance(doc.get("label"), str)
    ):
        raise Refused("format", "kdf numbers")
    salt, nonce, ciphertext = (
        b64d(kdf.get("salt")),
        b64d(aead.get("nonce")),
        b64d(doc.get("ciphertext")),
    )
    header = {k: v for k, v in doc.items() if k != "ciphertext"}
    if not (1 <= ops <= 16 and 8192 <= mem <= 1 << 30) or len(salt) != 16 or len(nonce) != 24:
        raise Refused("decryption")
    key = nacl.pwhash.argon2id.kdf(32, passphrase.encode(), salt, opslimit=ops, memlimit=mem)
    try:
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, canonical(header), nonce, key
        )
    except nacl.exceptions.CryptoError as e:
        raise Refused("decryption") from e
    secret = json_obj(plain)
    seed_bytes = b64d(secret.get("ed25519_seed"))
    if bytes(nacl.signing.SigningKey(seed_bytes).verify_key) != b64d(public.get("ed25519")):
        raise Refused("format", "public key mismatch")


# --- receipts -------------------------------------------------------------------------------------


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    """RFC 9162 2.1.3.2, with the document's refusals."""
    if any(len(p) != 32 for p in proof):
        raise Refused("format", "proof hash size")
    if index >= size:
        raise Refused("log_consistency", "index outside the tree")
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for p in proof:
        if sn == 0:
            raise Refused("log_consistency", "proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Refused("log_consistency", "the proof does not lead to the root")


def entry_bytes(envelope: object, received: str) -> bytes:
    """docs/formats.md, "Log entry": the envelope's canonical JSON and the receive time."""
    env = parse_env(envelope)
    obj = {
        "payload": base64.b64encode(env.payload).decode(),
        "payloadType": env.payload_type,
        "signatures": [{"keyid": k, "sig": base64.b64encode(sig).decode()} for k, sig in env.sigs],
    }
    return (
        b'{"envelope":'
        + canonical(obj)
        + b',"received":"'
        + received.encode()
        + b'","type":"custody.entry.v1"}'
    )


def check_receipt(value: Mapping[str, Any], origin: str, vkeys: list[str]) -> None:
    receipt = value["receipt"]
    if not isinstance(receipt, dict) or receipt.get("format") != "custody-receipt/v1":
        raise Refused("format", "receipt")
    cp = receipt.get("checkpoint")
    if not isinstance(cp, str):
        raise Refused("format", "checkpoint")
    size, root = verify_checkpoint(cp, origin, vkeys)
    proof_text = receipt.get("inclusion_proof")
    if not isinstance(proof_text, list) or not all(isinstance(h, str) for h in proof_text):
        raise Refused("format", "proof")
    proof = [b64d(h) for h in proof_text]
    index = receipt.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise Refused("format", "index")
    received = receipt.get("received")
    time_of(received)
    leaf = entry_bytes(value["envelope"], str(received))
    verify_inclusion(leaf, index, size, proof, root)


# --- export bundles ---------------------------------------------------------------------------

CLASSIFICATIONS = {1: "secret", 2: "confidential", 3: "top-secret"}


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash of leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def seal_body_of(m: Mapping[int, Any], text: str, sealer: str) -> dict[str, Any]:
    """What the seal event's body holds for a label (docs/formats.md, "The seal body")."""
    steps = list(m[12])
    if steps and steps[0][0] == sealer:
        steps = steps[1:]
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        "exam": m[2],
        "session": m[3],
        "position": m[4],
        "paper": m[5],
        "paper_commitment": m[6].hex(),
        "copies": m[7],
        "seals": list(m[9]),
        "window": {
            "start": (epoch + timedelta(seconds=m[11][0])).strftime(fmt),
            "end": (epoch + timedelta(seconds=m[11][1])).strftime(fmt),
        },
        "route": [p for p, _ in steps],
        "places": [q for _, q in steps],
        "destination": {"site": m[10][0], "room": m[10][1]},
        "classification": CLASSIFICATIONS[m[13]],
        "label_sha256": hashlib.sha256(text.encode("ascii")).hexdigest(),
    }


def witness_problems(note: str, policy: Mapping[str, Any]) -> list[str]:
    """docs/formats.md, "Export bundle" step 6: k of n listed witnesses cosigned."""
    split = note.rfind("\n\n")
    body, block = note[: split + 1], note[split + 2 :]
    listed: dict[tuple[str, bytes], bytes] = {}
    for w in policy["witnesses"]:
        name, khash, key = w["vkey"].split("+", 2)
        raw = base64.b64decode(key)
        if raw[0] == 0x04:
            listed[(name, bytes.fromhex(khash))] = raw[1:]
    valid: set[str] = set()
    invalid: set[str] = set()
    for line in block[:-1].split("\n"):
        name, _, b64sig = line[len(EM) :].partition(" ")
        raw = note_b64(b64sig)
        public = listed.get((name, raw[:4]))
        if public is None:
            continue
        sig = raw[4:]
        t = int.from_bytes(sig[:8], "big")
        message = f"cosignature/v1\ntime {t}\n".encode() + body.encode()
        if len(sig) == 72 and ed_ok(public, message, sig[8:]):
            valid.add(name)
        else:
            invalid.add(name)
    problems = ["witness_policy"] if len(valid) < policy["quorum"] else []
    return problems + ["witness_cosignature"] * len(invalid)


def verify_export(
    files: Mapping[str, str],
    pin: str,
    *,
    since: str | None = None,
    policy: Mapping[str, Any] | None = None,
) -> str | None:
    """docs/formats.md, "Export bundle": the first problem's rule, or None."""
    trust = Trust(json.loads(files["trust.json"]))
    if trust.id != pin:
        raise Refused("issuer", "not the pinned authority")
    problems: list[str] = []
    khash = key_hash(trust.log_origin, 0x01, trust.log_key).hex()
    vkey = f"{trust.log_origin}+{khash}+" + base64.b64encode(b"\x01" + trust.log_key).decode()
    try:
        size, root = verify_checkpoint(files["checkpoint.note"], trust.log_origin, [vkey])
    except Refused:
        return "checkpoint_signature"
    if policy is not None:
        problems += witness_problems(files["checkpoint.note"], policy)
    earlier: tuple[int, bytes] | None = None
    if since is not None:
        try:
            earlier = verify_checkpoint(since, trust.log_origin, [vkey])
        except Refused:
            problems.append("checkpoint_signature")
        if earlier is not None and earlier[0] > size:
            problems.append("log_consistency")
            earlier = None
    log = Log(trust)
    leaves: list[bytes] = []
    last: datetime | None = None
    for line in files["events.jsonl"].splitlines():
        raw = line.encode("utf-8")
        leaves.append(hashlib.sha256(b"\x00" + raw).digest())
        if earlier is not None and len(leaves) == earlier[0] and mth(leaves) != earlier[1]:
            problems.append("log_consistency")
        try:
            entry = json_obj(raw)
            if (
                set(entry) != {"envelope", "received", "type"}
                or entry["type"] != "custody.entry.v1"
            ):
                raise Refused("format", "entry fields")
            received = time_of(entry["received"])
            if entry_bytes(entry["envelope"], entry["received"]) != raw:
                raise Refused("format", "entry not canonical")
        except Refused as r:
            problems.append(r.code)
            continue
        if last is not None and received < last:
            problems.append("receive_order")
        last = received
        code, _ = log.submit(entry["envelope"], received)
        if code is not None:
            problems.append(code)
    if len(leaves) != size:
        problems.append("checkpoint_size")
    elif mth(leaves) != root:
        problems.append("checkpoint_root")
    seen: set[str] = set()
    for line in files.get("labels.jsonl", "").splitlines():
        try:
            obj = json_obj(line.encode("utf-8"))
            if set(obj) != {"label", "package_id"}:
                raise Refused("label", "fields")
            pid, text = obj["package_id"], obj["label"]
            if pid in seen:
                raise Refused("label", "listed twice")
            seen.add(pid)
            m = verify_label(text, trust, None)
            if m[1] != pid:
                raise Refused("label", "another package's label")
            if pid not in log.seals:
                raise Refused("label", "no seal event")
            sealer, body = log.seals[pid]
            expected = seal_body_of(m, text, sealer)
            if any(k in body and body[k] != v for k, v in expected.items()):
                raise Refused("label", "disagrees with the seal event")
        except Refused:
            problems.append("label")
    for pid, (_, body) in sorted(log.seals.items()):
        if pid not in seen and "label_sha256" in body:
            problems.append("label")
    problems += _export_manifest(files, trust, size)
    return problems[0] if problems else None


def _export_manifest(files: Mapping[str, str], trust: Trust, size: int) -> list[str]:
    try:
        m = json_obj(files["manifest.json"].encode("utf-8"))
    except (Refused, KeyError):
        return ["manifest"]
    found = []
    if json.dumps(m, indent=2, ensure_ascii=False) + "\n" != files["manifest.json"]:
        found.append("manifest")
    listed = m.get("files")
    names = {"events.jsonl", "trust.json", "checkpoint.note"} | {
        n for n in ("labels.jsonl", "witnesses.json") if n in files
    }
    if (
        m.get("format") != "custody-export/v1"
        or m.get("authority_id") != trust.id
        or m.get("origin") != trust.log_origin
        or m.get("size") != size
        or not isinstance(listed, dict)
        or set(listed) != names
        or any(listed[n] != hashlib.sha256(files[n].encode("utf-8")).hexdigest() for n in names)
    ):
        found.append("manifest")
    return found


# --- the vectors ----------------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    name: str
    expected: str
    got: str
    ok: bool = field(default=False)


def run(directory: Path) -> list[Result]:
    season = json.loads((directory / "season.json").read_text("utf-8"))
    trust = Trust(season["trust"])
    files = [
        json.loads(p.read_text("utf-8"))
        for p in sorted(directory.glob("*.json"))
        if p.name != "season.json"
    ]
    results: list[Result] = []
    for own in (False, True):
        chosen = [f for f in files if (f["kind"] in OWN_LOG) == own]
        results += run_log(season, trust, chosen)
    return results


def run_log(season: Mapping[str, Any], trust: Trust, files: list[Any]) -> list[Result]:
    """Every case of ``files`` on one fresh log, in passes by receive clock."""
    log = Log(trust)
    results: list[Result] = []
    # Passes by receive clock, earliest first: a log's receive time never goes back.
    clocks = sorted(
        {time_of(f["received"]) for f in files}
        | {time_of(c["setup_received"]) for f in files for c in f["cases"] if "setup_received" in c}
    )
    season_clock = time_of(season.get("setup_received", season["received"]))
    clocks = sorted({*clocks, season_clock}) if season.get("setup") else clocks
    for clock in clocks:
        if clock == season_clock:
            for i, step in enumerate(season.get("setup", [])):
                code, _ = log.submit(step, clock)
                if code is not None:
                    results.append(Result("season", f"setup {i}", "accept", f"refuse {code}"))
        for f in files:
            for case in f["cases"]:
                setup_clock = time_of(case.get("setup_received", f["received"]))
                expected = case["expect"]
                if setup_clock == clock:
                    bad = next(
                        (
                            (i, got)
                            for i, step in enumerate(case["setup"])
                            if (got := log.submit(step, clock))[0] is not None
                        ),
                        None,
                    )
                    if bad is not None:
                        results.append(
                            Result(
                                f["kind"], case["name"], expected, f"setup {bad[0]}: {bad[1][0]}"
                            )
                        )
                        continue
                if time_of(f["received"]) != clock:
                    continue
                if f["kind"] == "export":
                    given = case["input"]
                    code = verify_export(
                        given["files"],
                        f["pin"],
                        since=given.get("since"),
                        policy=given.get("witness_policy"),
                    )
                    findings = []
                elif f["kind"] in (
                    "label",
                    "trust-bundle",
                    "checkpoint",
                    "cosignature",
                    "keyfile",
                    "receipt",
                ):
                    try:
                        if f["kind"] == "label":
                            verify_label(case["input"], trust, clock)
                        elif f["kind"] == "receipt":
                            check_receipt(case["input"], f["origin"], f["verifier_keys"])
                        elif f["kind"] == "keyfile":
                            open_keyfile(case["input"], f["passphrase"])
                        elif f["kind"] == "trust-bundle":
                            verify_trust_bundle(case["input"], f["pin"])
                        else:
                            verify_checkpoint(case["input"], f["origin"], f["verifier_keys"])
                        code, findings = None, []
                    except Refused as r:
                        code, findings = r.code, []
                elif (
                    isinstance(case["input"], dict) and case["input"].get("payloadType") == ACT_TYPE
                ):
                    code, findings = log.act(case["input"], clock), []
                else:
                    code, findings = log.submit(case["input"], clock)
                got = "accept" if code is None else f"refuse {code}"
                ok = got == expected and (
                    code is not None or findings == sorted(case.get("findings", []))
                )
                results.append(
                    Result(
                        f["kind"],
                        case["name"],
                        expected,
                        got + (f" {findings}" if findings else ""),
                        ok,
                    )
                )
    return results


def main(argv: list[str]) -> int:
    results = run(Path(argv[1]) if len(argv) > 1 else Path("docs/vectors"))
    counts: dict[str, list[int]] = {}
    for r in results:
        counts.setdefault(r.kind, [0, 0])[0 if r.ok else 1] += 1
        if not r.ok:
            print(f"DISAGREE {r.kind}/{r.name}: expected {r.expected}, got {r.got}")
    for kind, (good, bad) in sorted(counts.items()):
        print(f"{kind}: {good + bad} vectors, {good} agree" + (f", {bad} DISAGREE" if bad else ""))
    return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
