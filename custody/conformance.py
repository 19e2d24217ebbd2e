"""Conformance vectors (``docs/vectors/``): read them, make their season's rehearsal home, and
run them against a live custody service over its HTTP API.

The vectors are data (docs/formats.md, "Conformance vectors"): a season file (the authority's
published seeds and its trust document) and one file per message kind, each case a named input
with ``expect: accept`` or ``expect: refuse <error code>``, after setup statements that must be
accepted. Cases are isolated by their people and packages, so every case of every file runs
against one fresh log, one after another.

Rules:
- ``parse_vector_file`` and ``parse_season`` are the one place vector bytes become values; a
  malformed file is a ``FormatError`` naming the file part, never a crash.
- A season's home is a rehearsal home only (its keys come from published seeds): it exists to
  check an implementation, never to hold a paper.
- Against a live service, a case is judged by the answer's status and stable error code (and,
  for an accepted event, the kinds of the findings its receipt lists), never by message text.
- A service runs on one clock (``--now``): each run submits the statements the vectors receive
  at that clock (``received``), so a season whose setup is received earlier is run in passes,
  earliest first, each against the service restarted at that pass's clock.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from crypto.dsse import parse_envelope
from crypto.encoding import Fields, canonical_json, parse_json_object
from crypto.signing import SigningKey
from custody import identity
from custody.errors import ConflictError, FormatError, NotFoundError, UsageError
from custody.home import Home
from keys.keyfile import KeyPair
from keys.model import AUTHORITY_TYPE, Authority

VECTOR_FORMAT = "custody-vectors/v1"
SEASON_FORMAT = "custody-vector-season/v1"
SEASON_FILE = "season.json"
LABEL_KIND = "label"
# Kinds a verifier checks offline, with keys the file names: a service has no route for them.
OFFLINE_KINDS = frozenset(
    {"trust-bundle", "checkpoint", "cosignature", "keyfile", "receipt", "export"}
)
ACT_KIND = "incident-act"
ACT_TYPE = "application/vnd.custody.incident-act.v1+json"
# Kinds judged on a log of their own (their cases name incidents by number, counted from that
# log's first): a service has no route for incident acts, so only verifiers judge them.
OWN_LOG_KINDS = frozenset({ACT_KIND})


@dataclass(frozen=True)
class Expect:
    """What a case must get: accepted, or refused with one stable error code."""

    code: str | None  # None: accepted

    @classmethod
    def parse(cls, text: object) -> Expect:
        if text == "accept":
            return cls(None)
        if isinstance(text, str) and text.startswith("refuse ") and len(text.split()) == 2:
            return cls(text.split()[1])
        raise FormatError(f"vector: expect must be 'accept' or 'refuse CODE', not {text!r}")

    def __str__(self) -> str:
        return "accept" if self.code is None else f"refuse {self.code}"


@dataclass(frozen=True)
class VectorCase:
    name: str
    note: str
    setup: tuple[Any, ...]
    setup_received: datetime | None
    input: Any
    expect: Expect
    findings: tuple[str, ...]


@dataclass(frozen=True)
class VectorFile:
    kind: str
    title: str
    received: datetime
    cases: tuple[VectorCase, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)  # file-level keys (pin, vkeys)

    def setup_clock(self, case: VectorCase) -> datetime:
        return case.setup_received or self.received


@dataclass(frozen=True)
class Season:
    """The vectors' authority: its published seeds and its trust document."""

    received: datetime
    root_seed: bytes
    log_seed: bytes
    system_seed: bytes
    trust_document: dict[str, Any]
    setup: tuple[Any, ...] = ()  # statements every run submits first (the exams' policies)
    setup_received: datetime | None = None

    @property
    def authority(self) -> Authority:
        env = parse_envelope(self.trust_document["authority"], what="season authority")
        if env.payload_type != AUTHORITY_TYPE:
            raise FormatError("season: trust.authority is not an authority statement")
        return Authority.from_payload(env.payload)


def _seed(f: Fields, name: str) -> bytes:
    text = f.text(name)
    try:
        raw = bytes.fromhex(text)
    except ValueError as e:
        raise FormatError(f"season: seeds.{name} must be 64 hex digits") from e
    if len(raw) != 32:
        raise FormatError(f"season: seeds.{name} must be 32 bytes")
    return raw


def parse_season(data: bytes) -> Season:
    f = Fields(parse_json_object(data, what="season"), what="season")
    f.expect("format", SEASON_FORMAT)
    seeds = f.sub("seeds")
    trust = f.sub("trust")
    trust.items("certificates")
    trust.items("revocations")
    return Season(
        received=f.time("received"),
        root_seed=_seed(seeds, "root"),
        log_seed=_seed(seeds, "log"),
        system_seed=_seed(seeds, "system"),
        trust_document=dict(trust.obj),
        setup=tuple(f.items("setup")) if "setup" in f.obj else (),
        setup_received=f.opt_time("setup_received"),
    )


def parse_vector_file(data: bytes) -> VectorFile:
    f = Fields(parse_json_object(data, what="vector file"), what="vector file")
    f.expect("format", VECTOR_FORMAT)
    kind = f.text("kind")
    cases = []
    names: set[str] = set()
    for i, raw in enumerate(f.items("cases")):
        if not isinstance(raw, dict):
            raise FormatError(f"vector file {kind}: case {i} must be an object")
        c = Fields(raw, what=f"{kind} case {i}")
        name = c.text("name")
        if name in names:
            raise FormatError(f"vector file {kind}: case name {name!r} twice")
        names.add(name)
        findings = raw.get("findings", [])
        if not isinstance(findings, list) or not all(isinstance(x, str) for x in findings):
            raise FormatError(f"{kind} case {name}: findings must be a list of kinds")
        cases.append(
            VectorCase(
                name=name,
                note=str(raw.get("note", "")),
                setup=tuple(c.items("setup")),
                setup_received=c.opt_time("setup_received"),
                input=raw.get("input"),
                expect=Expect.parse(raw.get("expect")),
                findings=tuple(sorted(findings)),
            )
        )
    known = {"format", "kind", "title", "season", "received", "cases"}
    extra = {k: v for k, v in f.obj.items() if k not in known}
    return VectorFile(kind, str(f.obj.get("title", "")), f.time("received"), tuple(cases), extra)


def load_vectors(directory: Path) -> tuple[Season, list[VectorFile]]:
    """The season and every vector file of a folder (file name order)."""
    season_path = directory / SEASON_FILE
    if not season_path.is_file():
        raise NotFoundError(f"{season_path} is missing: not a conformance vector folder")
    season = parse_season(season_path.read_bytes())
    files = []
    for path in sorted(directory.glob("*.json")):
        if path.name == SEASON_FILE:
            continue
        try:
            files.append(parse_vector_file(path.read_bytes()))
        except FormatError as e:
            raise FormatError(f"{path.name}: {e.message}") from e
    if not files:
        raise NotFoundError(f"{directory} holds no vector file")
    return season, files


def create_season_home(home: Home, season: Season, *, passphrase: str) -> Authority:
    """A rehearsal home holding the vectors' authority (from its seeds), every certificate and
    every revocation of the season: the fresh season the vectors run against."""
    published = season.authority
    pairs = tuple(
        KeyPair(label, SigningKey(seed), None)
        for label, seed in (
            ("authority root", season.root_seed),
            ("authority log", season.log_seed),
            ("authority system", season.system_seed),
        )
    )
    root, log, system = pairs
    if (root.signing.verify_key, log.signing.verify_key, system.signing.verify_key) != (
        published.root_key,
        published.log_key,
        published.system_key,
    ):
        raise FormatError("season: the seeds do not give the authority statement's keys")
    authority = identity.init_authority(
        home,
        name=published.name,
        passphrase=passphrase,
        now=published.created_at,
        rehearsal=True,
        given_keys=(root, log, system),
    )
    if authority.id != published.id or authority.log_origin != published.log_origin:
        raise ConflictError("season: the home's authority differs from the published one")
    identity.import_signed(home, canonical_json(season.trust_document))
    return authority


# --- running against a live service ------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a service answered: accepted (with findings) or refused with a code."""

    code: str | None
    findings: tuple[str, ...] = ()
    status: int = 0

    def __str__(self) -> str:
        if self.code is None:
            return "accept" + (f" (findings {list(self.findings)})" if self.findings else "")
        return f"refuse {self.code}"


@dataclass(frozen=True)
class CaseResult:
    kind: str
    name: str
    expected: str
    got: str
    ok: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "expected": self.expected,
            "got": self.got,
            "ok": self.ok,
        }


def judge(case: VectorCase, answer: Answer) -> bool:
    if case.expect.code is None:
        return answer.code is None and answer.findings == case.findings
    return answer.code == case.expect.code


class Client:
    """A small JSON client of the custody HTTP API (standard library only)."""

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 5) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--url must be an http:// or https:// URL, not {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries

    def request(
        self, method: str, path: str, body: bytes | None = None, *, kind: str = "application/json"
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url + path, data=body, method=method
        )
        if body is not None:
            req.add_header("Content-Type", kind)
        for _ in range(self.retries + 1):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    return int(resp.status), resp.read()
            except urllib.error.HTTPError as e:
                if e.code != 429:
                    return int(e.code), e.read()
                wait = e.headers.get("Retry-After", "1")
                time.sleep(min(float(wait) if wait.replace(".", "", 1).isdigit() else 1.0, 60.0))
            except (urllib.error.URLError, OSError) as e:
                raise UsageError(f"cannot reach {self.url}: {e}") from e
        raise UsageError(
            f"{self.url} kept answering 429 (rate limited)",
            hint="serve the season with higher --rate-per-address and --rate-per-key",
        )

    def health(self) -> dict[str, Any]:
        status, body = self.request("GET", "/healthz")
        if status != 200:
            raise UsageError(f"{self.url}/healthz answered {status}")
        return parse_json_object(body, what="/healthz answer")

    def submit(self, envelope: Any) -> Answer:
        status, body = self.request("POST", "/v1/events", json.dumps(envelope).encode())
        return _answer(status, body, event=True)

    def offline(self, file: VectorFile, text: Any) -> Answer | None:
        """A service has no route for the offline kinds (``OFFLINE_KINDS``): verifiers only."""
        return None

    def act(self, envelope: Any) -> Answer | None:
        """A service has no route for incident acts (``custody incident ack`` ... on its
        home records them): verifiers only."""
        return None

    def verify_label(self, text: Any) -> Answer:
        data = text.encode("utf-8") if isinstance(text, str) else b""
        status, body = self.request("POST", "/v1/labels/verify", data, kind="text/plain")
        return _answer(status, body, event=False)


def _answer(status: int, body: bytes, *, event: bool) -> Answer:
    try:
        obj = parse_json_object(body, what="answer")
    except FormatError:
        return Answer(f"<HTTP {status}, not JSON>", status=status)
    if status in (200, 201) and "error" not in obj:
        if event and status != 201:
            return Answer("<already in the log: not a fresh season>", status=status)
        findings = obj.get("findings", []) if event else []
        kinds = tuple(sorted(str(x.get("kind")) for x in findings if isinstance(x, dict)))
        return Answer(None, kinds, status)
    return Answer(str(obj.get("error", f"<HTTP {status}>")), status=status)


def clocks(files: Sequence[VectorFile], season: Season | None = None) -> list[datetime]:
    """Every receive time the vectors need, earliest first (one service pass each)."""
    times = {f.received for f in files} | {
        f.setup_clock(c) for f in files for c in f.cases if c.setup
    }
    if season is not None and season.setup:
        times.add(season.setup_received or season.received)
    return sorted(times)


def run_http(
    client: Client, season: Season, files: Sequence[VectorFile], *, received: datetime
) -> tuple[list[CaseResult], int]:
    """Submit the statements received at ``received``; judge the cases whose input is.

    Returns the results and the number of cases judged at another clock (another pass)."""
    health = client.health()
    if health.get("authority_id") != season.authority.id:
        raise UsageError(
            f"{client.url} serves authority {str(health.get('authority_id'))[:16]}, not the "
            f"vectors' {season.authority.id[:16]}",
            hint="serve a home made with `custody conformance DIR --setup`",
        )
    if received == clocks(files, season)[0] and health.get("log_size") != 0:
        raise UsageError(
            f"{client.url} holds {health.get('log_size')} entries: the vectors need a fresh season",
            hint="make a new home with `custody conformance DIR --setup` and serve it",
        )
    return run_pass(client, files, received=received, season=season)


class Door(Protocol):
    """Where vectors are submitted: a live service (``Client``), or a log in process.

    ``offline`` judges a case of an offline kind (``OFFLINE_KINDS``) with the file's keys, or
    answers ``None`` where there is nothing to submit it to (a service)."""

    def submit(self, envelope: Any) -> Answer: ...

    def verify_label(self, text: Any) -> Answer: ...

    def offline(self, file: VectorFile, text: Any) -> Answer | None: ...

    def act(self, envelope: Any) -> Answer | None: ...


def run_pass(
    door: Door,
    files: Sequence[VectorFile],
    *,
    received: datetime,
    season: Season | None = None,
    own_log: bool = False,
) -> tuple[list[CaseResult], int]:
    """One pass at one clock: every statement received at ``received`` is submitted, in file
    and case order; the cases whose input is received then are judged. Returns the results
    and the number of cases not judged in this pass (another clock's, or offline only).

    ``own_log`` False runs the files of the shared log (every kind but ``OWN_LOG_KINDS``);
    True runs only the files of ``OWN_LOG_KINDS``, on a door holding a log of their own."""
    results: list[CaseResult] = []
    elsewhere = sum(len(f.cases) for f in files if (f.kind in OWN_LOG_KINDS) != own_log)
    files = [f for f in files if (f.kind in OWN_LOG_KINDS) == own_log]
    if season is not None and (season.setup_received or season.received) == received:
        for i, step in enumerate(season.setup):
            answer = door.submit(step)
            if answer.code is not None:
                results.append(CaseResult("season", f"setup {i}", "accept", str(answer), False))
    for f in files:
        for case in f.cases:
            result = _run_case(door, f, case, received)
            if result is None:
                elsewhere += 1
            else:
                results.append(result)
    return results, elsewhere


def offline_only(door: Door, files: Sequence[VectorFile]) -> int:
    """How many cases ``door`` cannot judge (offline kinds and incident acts, for a
    service)."""
    return sum(
        len(f.cases)
        for f in files
        if (f.kind in OFFLINE_KINDS and f.cases and door.offline(f, f.cases[0].input) is None)
        or f.kind in OWN_LOG_KINDS
    )


def _run_case(
    client: Door, f: VectorFile, case: VectorCase, received: datetime
) -> CaseResult | None:
    if f.setup_clock(case) == received:
        for i, step in enumerate(case.setup):
            answer = client.submit(step)
            if answer.code is not None:
                return CaseResult(
                    f.kind, case.name, str(case.expect), f"setup {i}: {answer}", False
                )
    if f.received != received:
        return None
    if f.kind in OFFLINE_KINDS:
        offline = client.offline(f, case.input)
        if offline is None:
            return None
        answer = offline
    elif f.kind == LABEL_KIND:
        answer = client.verify_label(case.input)
    elif isinstance(case.input, dict) and case.input.get("payloadType") == ACT_TYPE:
        acted = client.act(case.input)
        if acted is None:
            return None
        answer = acted
    else:
        answer = client.submit(case.input)
    return CaseResult(f.kind, case.name, _expected(case), str(answer), judge(case, answer))


def _expected(case: VectorCase) -> str:
    if case.expect.code is None and case.findings:
        return f"accept (findings {list(case.findings)})"
    return str(case.expect)
