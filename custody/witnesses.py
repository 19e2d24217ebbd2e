"""The authority's witnesses and its witness policy (``witnesses.json``), and counting
cosignatures against it, pure: bytes in, values or ``FormatError`` out.

Example::

    {"quorum": 2,
     "witnesses": [{"name": "witness.example/w1", "vkey": "witness.example/w1+df1c0a35+BIE5..."},
                   ...]}

Rules:
- ``witnesses`` lists 1-32 witnesses; each ``vkey`` is a C2SP verifier key of type 0x04
  (cosignature/v1) whose key name is ``name``; names and keys are distinct.
- ``quorum`` (k) is an integer with 1 <= k <= n: a checkpoint is witnessed when at least k of
  the n listed witnesses cosigned it. No other field is accepted (a misspelt field is a format
  error, not a quiet default).
- Counting (``count_cosignatures``): a signature line whose (name, key hash) matches no listed
  witness is ignored; one that matches but does not verify over the checkpoint is not counted
  and is named as invalid; a witness counts once however many lines it has.
- ``check_quorum`` raises ``ThresholdError`` ("cosigned by 1/2 witnesses") when short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crypto.encoding import Fields, parse_json_object
from crypto.note import (
    SIGNATURE_PREFIX,
    Checkpoint,
    CosignatureVerifier,
    NoteSignature,
    parse_note,
    parse_vkey,
    verify_note,
)
from custody.errors import N_, FormatError, Phrase, Said, ThresholdError

WITNESSES_FILE = "witnesses.json"
MAX_WITNESSES = 32
_FIELDS = frozenset({"quorum", "witnesses"})
_WITNESS_FIELDS = frozenset({"name", "vkey", "url"})
_LOOPBACK_HTTP = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


@dataclass(frozen=True)
class WitnessPolicy:
    """k of n: the listed witnesses' cosignature keys and how many must cosign."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int
    # Where a live witness listens (c2sp.org/tlog-witness), by name; a witness without one is
    # asked offline (`custody log witness-request`).
    urls: tuple[tuple[str, str], ...] = ()

    def url(self, name: str) -> str | None:
        return dict(self.urls).get(name)

    def __post_init__(self) -> None:
        if not 1 <= len(self.witnesses) <= MAX_WITNESSES:
            raise FormatError(
                N_("a witness policy lists 1-{max_witnesses} witnesses"),
                max_witnesses=MAX_WITNESSES,
            )
        if not 1 <= self.quorum <= len(self.witnesses):
            raise FormatError(
                N_("a witness quorum is between 1 and {n_witnesses}, not {quorum}"),
                n_witnesses=len(self.witnesses),
                quorum=self.quorum,
            )
        if len({w.name for w in self.witnesses}) != len(self.witnesses):
            raise FormatError(N_("a witness policy names a witness twice"))
        if len({w.public_key.raw for w in self.witnesses}) != len(self.witnesses):
            raise FormatError(N_("a witness policy lists one key under two names"))

    def of(self, name: str, key_hash: bytes) -> CosignatureVerifier | None:
        for w in self.witnesses:
            if w.name == name and w.key_hash == key_hash:
                return w
        return None

    def describe(self) -> str:
        return f"{self.quorum} of {len(self.witnesses)}"


@dataclass(frozen=True)
class CosignatureCount:
    """Which listed witnesses validly cosigned a checkpoint, and which lines were bad."""

    policy: WitnessPolicy
    valid: tuple[str, ...]
    invalid: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return len(self.valid) >= self.policy.quorum

    def describe(self) -> str:
        return self.said().english

    def said(self) -> Said:
        """The count as a sentence for people (rendered in the reader's language)."""
        params: dict[str, object] = {
            "n": len(self.valid),
            "listed": len(self.policy.witnesses),
            "names": ", ".join(self.valid) or Phrase("none"),
            "quorum": self.policy.quorum,
        }
        if self.invalid:
            params["invalid"] = ", ".join(self.invalid)
            return Said(
                N_(
                    "cosigned by {n} of the {listed} listed witnesses ({names}); the policy "
                    "needs {quorum}; not counted, signatures that do not verify: {invalid}"
                ),
                params,
            )
        return Said(
            N_(
                "cosigned by {n} of the {listed} listed witnesses ({names}); the policy needs "
                "{quorum}"
            ),
            params,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "quorum": self.policy.quorum,
            "witnesses": [w.name for w in self.policy.witnesses],
            "cosigned_by": list(self.valid),
            "invalid": list(self.invalid),
            "ok": self.ok,
        }


def witness_policy_from_json(data: bytes, *, source: str = WITNESSES_FILE) -> WitnessPolicy:
    """Parse ``witnesses.json``; ``source`` names the file in messages."""
    top = parse_json_object(data, what=source)
    unknown = set(top) - _FIELDS
    if unknown:
        raise FormatError(
            N_("{source}: unknown field(s) {unknown}"),
            source=source,
            unknown=", ".join(sorted(unknown)),
        )
    f = Fields(top, what=source)
    quorum = f.integer("quorum")
    witnesses = []
    urls: list[tuple[str, str]] = []
    for number, raw in enumerate(f.items("witnesses")):
        what = f"{source}: witnesses[{number}]"
        if not isinstance(raw, dict):
            raise FormatError(N_("{what} must be an object"), what=what)
        unknown = set(raw) - _WITNESS_FIELDS
        if unknown:
            raise FormatError(
                N_("{what}: unknown field(s) {unknown}"),
                what=what,
                unknown=", ".join(sorted(unknown)),
            )
        w = Fields(raw, what=what)
        name, vkey = w.text("name"), w.text("vkey")
        try:
            verifier = parse_vkey(vkey)
        except FormatError as e:
            raise FormatError(N_("{what}: {error}"), what=what, error=e) from e
        if not isinstance(verifier, CosignatureVerifier):
            raise FormatError(
                N_("{what}: the vkey is not a cosignature/v1 key (type 0x04)"), what=what
            )
        if verifier.name != name:
            raise FormatError(
                N_("{what}: the vkey is named {name!r}, not {name2!r}"),
                what=what,
                name=verifier.name,
                name2=name,
            )
        witnesses.append(verifier)
        if "url" in raw:
            url = w.text("url")
            if not url.startswith(("https://", *_LOOPBACK_HTTP)) or any(ch.isspace() for ch in url):
                raise FormatError(
                    N_("{what}: url must be https:// (or http:// on loopback)"), what=what
                )
            urls.append((name, url.rstrip("/")))
    try:
        return WitnessPolicy(tuple(witnesses), quorum, tuple(urls))
    except FormatError as e:
        raise FormatError(N_("{source}: {error}"), source=source, error=e) from e


def count_cosignatures(
    policy: WitnessPolicy, checkpoint: Checkpoint, signatures: Iterable[NoteSignature]
) -> CosignatureCount:
    """Count the listed witnesses whose cosignature/v1 verifies over ``checkpoint``."""
    text = checkpoint.body().encode("utf-8")
    valid: list[str] = []
    invalid: list[str] = []
    for sig in signatures:
        verifier = policy.of(sig.name, sig.key_hash)
        if verifier is None:
            continue
        if verifier.verify(text, sig.signature):
            if sig.name not in valid:
                valid.append(sig.name)
        elif sig.name not in invalid:
            invalid.append(sig.name)
    return CosignatureCount(policy, tuple(sorted(valid)), tuple(sorted(invalid)))


def check_quorum(count: CosignatureCount) -> None:
    """Raise ``ThresholdError`` unless at least k of the n witnesses cosigned."""
    if not count.ok:
        names = ", ".join(count.valid) or Phrase("none")
        if count.invalid:
            raise ThresholdError(
                N_(
                    "cosigned by {valid} of the {listed} listed witnesses ({names}); the policy "
                    "needs {quorum}; not counted, signatures that do not verify: {invalid}"
                ),
                valid=len(count.valid),
                listed=len(count.policy.witnesses),
                names=names,
                quorum=count.policy.quorum,
                invalid=", ".join(count.invalid),
            )
        raise ThresholdError(
            N_(
                "cosigned by {valid} of the {listed} listed witnesses ({names}); the policy "
                "needs {quorum}"
            ),
            valid=len(count.valid),
            listed=len(count.policy.witnesses),
            names=names,
            quorum=count.policy.quorum,
        )


def split_cosigned(unverified: str) -> tuple[str | None, str]:
    """Split a submission into (checkpoint note text or None, signature lines).

    A submission is either a cosigned checkpoint note (its text, a blank line, signature lines)
    or the signature lines alone (what a witness returns), each ``"— name base64\\n"``.
    """
    if unverified.startswith(SIGNATURE_PREFIX):
        if not unverified.endswith("\n"):
            unverified += "\n"
        return None, unverified
    note = parse_note(unverified)
    return note.text, "".join(s.line() for s in note.signatures)


def open_cosignatures(
    policy: WitnessPolicy, checkpoint: Checkpoint, unverified_lines: str
) -> tuple[NoteSignature, ...]:
    """The listed witnesses' cosignatures among ``unverified_lines``, each verified over
    ``checkpoint``: lines by unlisted keys are ignored, a listed witness's line that does not
    verify refuses the whole submission (``SignatureError``), so does a witness twice
    (``DuplicateSignatureError``) or no listed witness at all (``UnknownSignerError``)."""
    note = parse_note(checkpoint.body() + "\n" + unverified_lines)
    return verify_note(note, policy.witnesses).verified
