"""`custody demo` as a new user runs it: the README's first command, in a subprocess, on a
machine with no system CJK font; what it leaves verifies at once on the real clock, and the
statements it leaves are accepted by `custody event submit`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.custody.cli.subprocess_cli import run_custody

PASSPHRASE = "demo passphrase for the test"


@pytest.fixture(scope="module")
def no_system_fonts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which fontconfig sees no font at all (an empty font directory)."""
    root = tmp_path_factory.mktemp("nofonts")
    (root / "fonts").mkdir()
    conf = root / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><dir>{root / 'fonts'}</dir><cachedir>{root / 'cache'}</cachedir>"
        "</fontconfig>\n"
    )
    env = {"FONTCONFIG_FILE": str(conf), "FONTCONFIG_PATH": str(root), "XDG_DATA_HOME": str(root)}
    if shutil.which("fc-list"):
        seen = subprocess.run(
            ["fc-list", ":lang=zh"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert seen.stdout.strip() == "", "fontconfig still sees a CJK font"
    return env


@pytest.fixture(scope="module")
def demo_dir(
    tmp_path_factory: pytest.TempPathFactory, no_system_fonts: dict[str, str]
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo") / "season"
    done = run_custody(
        "demo", "--out", str(out), env={**no_system_fonts, "CUSTODY_PASSPHRASE": PASSPHRASE}
    )
    return out, done


def test_demo_runs_with_no_system_cjk_font(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    assert "[1/9]" in done.stderr
    assert "[9/9]" in done.stderr  # progress shown step by step as the season plays
    # The labels and the incident reports embed (a subset of) the font the package ships.
    embedded = b"+WenQuanYiMicroHei"
    assert embedded in (out / "labels" / "labels.pdf").read_bytes()
    reports = sorted((out / "incidents").glob("*.pdf"))
    assert len(reports) == 3
    assert all(embedded in p.read_bytes() for p in reports)


def test_demo_output_verifies_at_once_on_the_real_clock(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    label = run_custody(
        "label",
        "verify",
        str(out / "labels" / "SX27-P-01-M-01.png"),
        "--trust",
        str(out / "trust-bundle"),
    )
    assert label.returncode == 0, label.stderr  # not "not yet valid": the season is past
    checked = run_custody("--home", str(out / "home"), "verify", str(out / "export"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_demo_statements_are_accepted_by_event_submit(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    statements = json.loads((out / "summary.json").read_text())["statements"]
    files = sorted((out / "statements").iterdir())
    assert [str(p) for p in files] == statements["to_submit"]
    assert [p.name for p in files] == ["01-dispatch.dsse.json", "02-handover.dsse.json"]
    command = statements["submit_with"].split()
    assert command[0] == "custody"
    submitted = run_custody(*command[1:], env={"CUSTODY_PASSPHRASE": PASSPHRASE})
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    answer = run_custody(
        *command[1:5],
        "--json",
        "event",
        "submit",
        *statements["to_submit"],
        env={"CUSTODY_PASSPHRASE": PASSPHRASE},
    )
    accepted = json.loads(answer.stdout)["accepted"]
    assert len(accepted) == 2
    assert all(r["duplicate"] for r in accepted)  # both are in the log now


def test_demo_and_export_refuse_a_used_folder_with_one_exit_code(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    """Both refuse a folder that is not empty alike: exit 5 (conflict), the folder untouched."""
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    demo = run_custody("demo", "--out", str(used))
    export = run_custody("--home", str(out / "home"), "export", "--out", str(used))
    assert demo.returncode == 5, demo.stderr
    assert export.returncode == 5, export.stderr
    assert [p.name for p in used.iterdir()] == ["something"]


def test_incident_show_prints_a_readable_page_and_json_only_when_asked(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    home = ("--home", str(out / "home"))
    # the reader: the demo's secrecy officer, with their own key (the read is recorded)
    (officer,) = (out / "home" / "people").glob("secrecy-chen-*.key")
    show = ("incident", "show", "INC-00001", "--key", str(officer))
    secret = {"CUSTODY_PASSPHRASE": PASSPHRASE}
    page = run_custody(*home, *show, env={"LANG": "C.UTF-8", **secret})
    assert page.returncode == 0, page.stderr
    assert not page.stdout.lstrip().startswith("{")
    assert "incident INC-00001" in page.stdout
    assert "Asia/Shanghai" in page.stdout  # times in the authority's zone, named
    assert "': " not in page.stdout  # no Python dict or list syntax
    assert "['" not in page.stdout
    chinese = run_custody(*home, *show, env={"LANG": "zh_CN.UTF-8", **secret})
    assert "事件 INC-00001" in chinese.stdout
    # the scope's and the evidence's keys by their Chinese names, each sentence once, in Chinese
    assert "试卷袋: BR-SEAL" in chinese.stdout
    assert "backup_packages" not in chinese.stdout and "detail_zh" not in chinese.stdout
    assert "backup_packages: -" in page.stdout
    data = json.loads(run_custody(*home, "--json", *show, env=secret).stdout)
    assert data["id"] == "INC-00001"
    # What happened, in the reader's language: the same sentence, written by the service.
    assert data["detail_zh"] != data["detail"]
    assert any("\u4e00" <= c <= "\u9fff" for c in data["detail_zh"])
    flat = " ".join(chinese.stdout.split())
    assert " ".join(data["detail_zh"].split())[:20] in flat
    assert " ".join(data["detail"].split())[:20] in " ".join(page.stdout.split())


def test_a_chinese_reader_reads_the_problems_and_the_summary_in_chinese(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """What `custody verify` finds in the demo's tampered copy, the demo's own summary and an
    incident's kind, severity and containment: Chinese first for a Chinese reader, the same
    codes kept; English for an English one; the JSON (for scripts) in English either way."""
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    verify = ("verify", str(out / "export-tampered"), "--trust", str(out / "trust-bundle"))
    zh = run_custody(*verify, env={"LANG": "zh_CN.UTF-8", "COLUMNS": "200"})
    en = run_custody(*verify, env={"LANG": "C.UTF-8", "COLUMNS": "200"})
    assert zh.returncode == en.returncode == 10, zh.stdout + zh.stderr
    assert "事件的默克尔根与已签名检查点的根不同" in zh.stdout
    assert "events.jsonl 与 manifest.json 所列的 SHA-256 不符" in zh.stdout
    assert "的密钥，但无法验证" in zh.stdout  # the refusal behind the problem, in Chinese
    assert "does not verify" not in zh.stdout
    assert "checkpoint_root" in zh.stdout  # the rule's code stays as it is
    assert "the Merkle root of the events differs" in en.stdout
    assert "默克尔" not in en.stdout
    report = json.loads(run_custody("--json", *verify, env={"LANG": "zh_CN.UTF-8"}).stdout)
    messages = [p["message"] for p in report["problems"]]
    assert any(m.startswith("the Merkle root of the events differs") for m in messages)
    # the demo's summary as a Chinese reader's terminal shows it
    again = out.parent / "season-zh"
    shown = run_custody(
        "demo", "--out", str(again), env={"LANG": "zh_CN.UTF-8", "COLUMNS": "300"}
    ).stdout
    assert "已有 2/2 名必需签名人签名" in shown
    assert "已拒绝（缺少接收人）" in shown
    # people's roles and signer slots inside refusals, named in Chinese too
    assert "缺少签名人：接收人（保管员 custodian-zhou）" in shown
    assert "（courier-he，押运员，密钥 " in shown
    assert "不能以 交出人 身份签名" in shown
    assert "封条编号不符 seal_mismatch" in shown
    assert "已冻结试卷袋 frozen" in shown
    assert "事件 #30：events.jsonl 中的封条编号被改写" in shown
    assert "signed by 2/2" not in shown
    assert "signed by 2/2 required signers" in done.stdout or "已有 2/2" in done.stdout
    summary = json.loads((again / "summary.json").read_text("utf-8"))
    assert summary["statements"]["handover"] == "signed by 2/2 required signers"
    refused = summary["statements"]["refusals"]["recused courier"]
    assert "(courier-he, courier, key " in refused  # the English as it always was
    assert refused.endswith("cannot sign as releaser")
    assert summary["verify_tampered"]["tampering"].startswith("event #30: seal serials")


def test_label_verify_shows_one_spelling_and_no_python_syntax(
    demo_dir: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = demo_dir
    assert done.returncode == 0, done.stderr
    args = ("label", "verify", str(out / "labels" / "SX27-P-01-M-01.png"))
    shown = run_custody(*args, "--trust", str(out / "trust-bundle"), env={"LANG": "C.UTF-8"})
    assert shown.returncode == 0, shown.stderr
    assert "top-secret" in shown.stdout
    assert "top_secret" not in shown.stdout
    assert "{'" not in shown.stdout
    assert "['" not in shown.stdout
    report = json.loads(run_custody("--json", *args, "--trust", str(out / "trust-bundle")).stdout)
    assert report["manifest"]["classification"] == "top-secret"
