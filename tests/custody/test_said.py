"""Sentences the service writes for people (incident details, findings) in both languages."""

from __future__ import annotations

import pytest

from custody.errors import N_, Phrase, Said, WindowError, Words
from custody.i18n import gettext_for, said_in
from custody.incidents.detect import STATUS_WORDS
from custody.rules import FINDING_WORDS, finding_said


def test_a_sentence_is_english_for_logs_and_chinese_for_a_chinese_reader() -> None:
    said = Said(
        N_("{recovered} copies recovered of {distributed} distributed"),
        {"recovered": 28, "distributed": 30},
    )
    assert said.english == "28 copies recovered of 30 distributed"
    assert said_in(said, "en") == said.english
    assert said_in(said, "zh") == "分发 30 份，回收 28 份"


def test_nested_sentences_phrases_and_errors_are_rendered_too() -> None:
    inner = Said(N_("at {speed} km/h"), {"speed": "900"})
    outer = Said(
        N_("break-glass opening of {paper}: {summary}"), {"paper": "P1@1", "summary": inner}
    )
    assert outer.english == "break-glass opening of P1@1: at 900 km/h"
    assert said_in(outer, "zh") == "紧急启封 P1@1：时速 900 公里"
    status = Said(
        N_(
            "package {package_id} is still {status} after its window closed at "
            "{window_end}; recovery is overdue"
        ),
        {"package_id": "PK-1", "status": Phrase(STATUS_WORDS["opened"]), "window_end": "T"},
    )
    assert "“已启封”" in said_in(status, "zh")
    error = WindowError(N_("no package {package_id!r} in the log"), package_id="PK-9")
    quoted = Said(N_("break-glass opening of {paper}: {summary}"), {"paper": "P", "summary": error})
    assert said_in(quoted, "zh") != quoted.english


def test_a_translation_that_does_not_fit_falls_back_to_english() -> None:
    said = Said(N_("{recovered} copies recovered of {distributed} distributed"), {"recovered": 1})
    assert said.english == said.template  # a missing parameter: the template, never a crash
    assert said_in(said, "zh") == said.english


@pytest.mark.parametrize(
    ("kind", "evidence", "english", "chinese"),
    [
        (
            "seal_mismatch",
            {"expected": ["S1", "S2"], "observed": ["S1", "S3"], "at": "handover"},
            "seal serials seen at handover differ from the manifest (missing S2, unexpected S3)",
            "handover 时所见封条编号与清单不符（缺少 S2，多出 S3）",
        ),
        (
            "count_mismatch",
            {"distributed": 30, "recovered": 29},
            "29 copies recovered of 30 distributed",
            "分发 30 份，回收 29 份",
        ),
        (
            "late",
            {"at": "patrol", "time": "2027-03-01T08:00:00Z", "lag": "3 h"},
            "patrol captured offline at 2027-03-01T08:00:00Z and received 3 h later",
            "patrol 于 2027-03-01T08:00:00Z 离线记录，3 h 后才送达",
        ),
    ],
)
def test_findings_are_worded_from_their_evidence(
    kind: str, evidence: dict[str, object], english: str, chinese: str
) -> None:
    said = finding_said(kind, evidence)
    assert said.english == english
    assert said_in(said, "zh") == chinese


def test_a_finding_stored_before_its_wording_keeps_its_stored_text() -> None:
    old = finding_said("seal_mismatch", {"expected": ["S1"], "observed": []}, "as stored")
    assert old.english == "as stored"
    assert finding_said("some_new_kind", {}, "as stored").english == "as stored"


def test_every_worded_kind_and_status_has_chinese() -> None:
    zh = gettext_for("zh")
    for template in [*FINDING_WORDS.values(), *STATUS_WORDS.values()]:
        assert zh(template) != template, template


def test_a_refusal_with_a_sentence_as_parameter_is_chinese_throughout() -> None:
    from custody.errors import ClockError
    from custody.i18n import error_text

    allowed = Said(N_("{lag} for offline capture"), {"lag": "24 h"})
    e = ClockError(
        N_(
            "{kind} statement is dated {time}, too long before the log "
            "received it ({received}); at most {allowed}"
        ),
        kind="handover",
        time="T",
        received="R",
        allowed=allowed,
    )
    assert e.message.endswith("at most 24 h for offline capture")
    message, _hint = error_text(e, "zh")
    assert message.endswith("24 h（离线记录）")
    assert "offline" not in message


def test_a_list_reads_with_the_reader_s_separator() -> None:
    """Roles and signer slots listed in a refusal: English keeps its commas, a Chinese reader
    gets the enumeration comma (押运员、保管员), and a list joined by nothing stays so."""
    roles = Words.joined(["courier", "custodian"], ",")
    assert roles == "courier,custodian" and said_in(roles.said, "en") == "courier,custodian"
    assert said_in(roles.said, "zh") == "押运员、保管员"
    slots = Words.listed([Phrase("courier"), Phrase("witness")], ", ")
    assert slots == "courier, witness" and said_in(slots.said, "zh") == "押运员、见证人"
    alone = Words.listed([Phrase("courier"), "X"], "")
    assert said_in(alone.said, "zh") == "押运员X"  # not the catalogue's header
    sentence = Said(N_("missing signer(s): {missing}"), {"missing": slots})
    assert "押运员、见证人" in said_in(sentence, "zh")
