"""The authority's per-exam policy (``exams.json`` in the home), parsed from bytes.

Example::

    {"exams": {"SX-2027-INT": {"handover_witness": true,
                               "retention_until": "2028-03-01T00:00:00Z"}}}

Rules:
- ``handover_witness`` (bool): every dispatch and handover of the exam's packages needs a
  supervising witness; ``custody package seal`` writes it into the seal event, which fixes it
  for the package's whole chain.
- ``retention_until`` (RFC 3339 UTC): the ciphertext of the exam's destroyed papers is kept
  until then (``custody paper purge``).
- Both fields are required and no other field is accepted: a misspelt field must not quietly
  leave a package without its witness. An exam the file does not name has no policy, and the
  commands that need one refuse (``NotFoundError`` naming the exam and the file) rather than
  guess a default.
- Pure: bytes in, values or ``FormatError`` out (the home reads the file).

The file is the authority's draft; what binds is the policy **on the log**: ``custody exam
publish`` (and ``custody package seal``, for the exam it seals) appends an ``exam_policy``
statement signed by the system key, whose body is ``exam_policy_body``. The log refuses a seal
whose ``handover_witness`` is not its exam's policy on the log, and ``paper purge`` reads the
retention date from there, so a policy nobody published, or an edit to the file, decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crypto.encoding import Fields, format_time, parse_json_object
from custody.errors import N_, FormatError, NotFoundError

EXAMS_FILE = "exams.json"
MAX_EXAM_ID = 200
FIELDS = frozenset({"handover_witness", "retention_until"})


@dataclass(frozen=True)
class ExamPolicy:
    exam_id: str
    handover_witness: bool
    retention_until: datetime


@dataclass(frozen=True)
class ExamPolicies:
    exams: Mapping[str, ExamPolicy]
    source: str = EXAMS_FILE

    def of(self, exam_id: str) -> ExamPolicy:
        """The exam's policy, or ``NotFoundError`` naming the exam and the file."""
        policy = self.exams.get(exam_id)
        if policy is None:
            raise NotFoundError(
                N_("exam {exam_id!r} has no policy in {source}"),
                hint=N_(
                    'add {{"handover_witness": ..., "retention_until": ...}} for it under "exams"'
                ),
                exam_id=exam_id,
                source=self.source,
            )
        return policy


def exam_policy_body(policy: ExamPolicy) -> dict[str, Any]:
    """The body of an ``exam_policy`` statement (docs/formats.md, "exam_policy")."""
    return {
        "exam": policy.exam_id,
        "handover_witness": policy.handover_witness,
        "retention_until": format_time(policy.retention_until),
    }


def exam_policy_from_body(body: Mapping[str, Any]) -> ExamPolicy:
    """Parse an ``exam_policy`` statement's body; ``FormatError`` names what is wrong."""
    what = "exam_policy body"
    unknown = set(body) - FIELDS - {"exam"}
    if unknown:
        raise FormatError(
            N_("{what}: unknown field(s) {unknown}"), what=what, unknown=sorted(unknown)
        )
    f = Fields(dict(body), what=what)
    exam_id = _exam_id(f.text("exam"), what)
    witness = f.obj.get("handover_witness")
    if not isinstance(witness, bool):
        raise FormatError(N_("{what}: field 'handover_witness' must be true or false"), what=what)
    return ExamPolicy(exam_id, witness, f.time("retention_until"))


def _exam_id(text: str, what: str) -> str:
    if not text or len(text) > MAX_EXAM_ID or not text.isprintable() or text != text.strip():
        raise FormatError(
            N_("{what}: exam id {text!r} must be 1-{max_exam_id} printable characters"),
            what=what,
            text=text,
            max_exam_id=MAX_EXAM_ID,
        )
    return text


def exams_from_json(data: bytes, *, source: str = EXAMS_FILE) -> ExamPolicies:
    """Parse ``exams.json``; ``source`` names the file in messages."""
    top = parse_json_object(data, what=source)
    unknown = set(top) - {"exams"}
    if unknown:
        raise FormatError(
            N_("{source}: unknown field(s) {unknown}"),
            source=source,
            unknown=", ".join(sorted(unknown)),
        )
    exams = Fields(top, what=source).sub("exams")
    out: dict[str, ExamPolicy] = {}
    for exam_id, raw in exams.obj.items():
        what = f"{source}: exams.{exam_id}"
        if not isinstance(raw, dict):
            raise FormatError(N_("{what} must be an object"), what=what)
        unknown = set(raw) - FIELDS
        if unknown:
            raise FormatError(
                N_("{what}: unknown field(s) {unknown}"),
                what=what,
                unknown=", ".join(sorted(unknown)),
            )
        f = Fields(raw, what=what)
        witness = f.obj.get("handover_witness")
        if not isinstance(witness, bool):
            raise FormatError(
                N_("{what}: field 'handover_witness' must be true or false"), what=what
            )
        out[_exam_id(exam_id, source)] = ExamPolicy(exam_id, witness, f.time("retention_until"))
    return ExamPolicies(out, source)


__all__ = [
    "EXAMS_FILE",
    "ExamPolicies",
    "ExamPolicy",
    "exam_policy_body",
    "exam_policy_from_body",
    "exams_from_json",
]
