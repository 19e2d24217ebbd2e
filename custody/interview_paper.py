"""Structured interview papers: questions with evaluation factors and a scoring reference.

Format ``custody-interview-paper/v1`` (JSON, UTF-8), as the national interview measures
describe a paper: each question carries its evaluation factors (要素) with points, and a
scoring reference (评分参考) for good / average / poor answers.

Rules:
- The one parser of an untrusted structured paper; every fault is a ``FormatError`` naming the
  question and field.
- Points of a question's factors add up to the question's points; questions' points add up to
  the paper's ``total_points``; question numbers run 1..n.
- The parser only validates: the bytes that get encrypted are the file's bytes, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from crypto.encoding import Fields, parse_json_object
from custody.errors import N_, FormatError, Phrase

FORMAT = "custody-interview-paper/v1"
MAX_BYTES = 4 << 20
LEVELS = ("good", "average", "poor")


@dataclass(frozen=True)
class Factor:
    name: str
    points: int


@dataclass(frozen=True)
class Question:
    number: int
    text: str
    minutes: int
    points: int
    factors: tuple[Factor, ...]
    scoring: dict[str, str]


@dataclass(frozen=True)
class InterviewPaper:
    title: str
    language: str
    total_points: int
    questions: tuple[Question, ...]


def parse_interview_paper(data: bytes) -> InterviewPaper:
    if len(data) > MAX_BYTES:
        raise FormatError(
            N_("interview paper is larger than {max_bytes} bytes"), max_bytes=MAX_BYTES
        )
    f = Fields(
        parse_json_object(data, what=Phrase("interview paper")), what=Phrase("interview paper")
    )
    f.expect("format", FORMAT)
    questions = []
    for i, raw in enumerate(f.items("questions")):
        what = f"interview paper: question {i + 1}"
        if not isinstance(raw, dict):
            raise FormatError(N_("{what} must be an object"), what=what)
        q = Fields(raw, what=what)
        if q.integer("number") != i + 1:
            raise FormatError(N_("{what}: numbers must run 1, 2, 3..."), what=what)
        factors = []
        for j, fr in enumerate(q.items("evaluation_factors")):
            if not isinstance(fr, dict):
                raise FormatError(
                    N_("{what}: factor {value} must be an object"), what=what, value=j + 1
                )
            ff = Fields(fr, what=f"{what}: factor {j + 1}")
            factors.append(Factor(ff.text("factor"), ff.integer("points")))
        if not factors:
            raise FormatError(N_("{what}: at least one evaluation factor is required"), what=what)
        points = q.integer("points")
        if sum(x.points for x in factors) != points:
            raise FormatError(
                N_("{what}: factor points do not add up to {points}"), what=what, points=points
            )
        ref = q.sub("scoring_reference")
        scoring = {level: ref.text(level) for level in LEVELS}
        text = q.text("text")
        if not text.strip():
            raise FormatError(N_("{what}: empty question text"), what=what)
        minutes = q.integer("minutes")
        questions.append(Question(i + 1, text, minutes, points, tuple(factors), scoring))
    if not questions:
        raise FormatError(N_("interview paper has no questions"))
    total = f.integer("total_points")
    if sum(q.points for q in questions) != total:
        raise FormatError(
            N_("interview paper: question points do not add up to {total}"), total=total
        )
    return InterviewPaper(f.text("title"), f.text("language"), total, tuple(questions))
