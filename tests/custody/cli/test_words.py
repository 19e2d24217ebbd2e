"""The CLI's words: one catalogue in Chinese and English chosen by the locale, complete for
Chinese; and the messages that used to confuse (each a regression test)."""

from __future__ import annotations

import gettext
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from babel.messages.pofile import read_po

from crypto.errors import ChainError, IssuerError
from custody.cli import LazyRoot, app
from custody.demo import Season
from custody.events import Kind
from custody.i18n import LOCALE_DIR, language, show_time
from keys.trust import load_trust_bundle
from tests.conftest import PASS, T0
from tests.custody.cli.subprocess_cli import run_custody
from tests.custody.test_log import SEALS, seal

ROOT = Path(__file__).resolve().parents[3]
PO = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "custody.po"


def _locale_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    return {**env, **values}


def test_zh_catalogue_has_every_message_translated() -> None:
    """Every `_()` message and command docstring of the CLI is in the .po, translated."""
    checked = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "i18n_catalogue.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    catalog = read_po(PO.open("rb"), locale="zh_CN")
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert untranslated == []
    assert len(catalog) > 250


def test_compiled_catalogue_matches_the_po() -> None:
    """The .mo the CLI reads says what the .po says (no stale compile)."""
    catalog = read_po(PO.open("rb"), locale="zh_CN")
    with PO.with_suffix(".mo").open("rb") as fh:
        mo = gettext.GNUTranslations(fh)
    for m in catalog:
        if m.id and not isinstance(m.id, tuple):
            assert mo.gettext(m.id) == m.string, m.id


def test_placeholders_survive_translation() -> None:
    catalog = read_po(PO.open("rb"), locale="zh_CN")
    for m in catalog:
        if m.id and not isinstance(m.id, tuple):
            assert sorted(re.findall(r"\{[^}]*\}", m.id)) == sorted(
                re.findall(r"\{[^}]*\}", m.string)
            ), m.id


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "C.UTF-8", "CUSTODY_LANG": "zh"}, "zh"),
    ],
    ids=["zh_CN", "C", "en_GB", "unset", "LC_ALL-wins", "CUSTODY_LANG-wins"],
)
def test_language_follows_the_locale(env: dict[str, str], expected: str) -> None:
    assert language(env) == expected


@pytest.mark.parametrize(
    ("env", "expect", "absent"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "考试机构的主目录", "The authority's home folder"),
        ({"LANG": "C.UTF-8"}, "The authority's home folder", "考试机构的主目录"),
        ({}, "考试机构的主目录", "The authority's home folder"),
    ],
    ids=["zh_CN", "C", "unset"],
)
def test_help_speaks_the_locale(env: dict[str, str], expect: str, absent: str) -> None:
    done = run_custody("--help", env=_locale_env(**env), inherit=False)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert expect in text
    assert absent not in text


def test_errors_are_titled_in_chinese_by_code(tmp_path: Path) -> None:
    done = run_custody(
        "--home", str(tmp_path / "none"), "log", "status", env=_locale_env(LANG="zh_CN.UTF-8")
    )
    assert done.returncode == 4
    assert "错误" in done.stderr
    assert "(not_found) 未找到" in " ".join(done.stderr.split())


def test_times_are_shown_in_the_authoritys_zone_with_its_name() -> None:
    assert show_time(T0) == "2027-03-01 16:00:00 Asia/Shanghai"  # 08:00 UTC
    assert show_time(T0, "UTC") == "2027-03-01 08:00:00 UTC"


# -- the messages that confused ----------------------------------------------------------------


def test_chain_refusal_shows_ids_that_differ(season: Season) -> None:
    seal(season)
    last = season.prev("PK-1")
    assert last is not None
    fake = last[:16] + ("0" if last[16] != "0" else "1") + last[17:]  # same first 16 digits
    env = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": SEALS},
        prevs={"PK-1": fake},
    )
    with pytest.raises(ChainError) as caught:
        season.submit(env)
    shown = re.findall(r"[0-9a-f]{16,}", caught.value.message)
    assert len(shown) == 2
    assert shown[0] != shown[1]
    assert fake.startswith(shown[0])
    assert last.startswith(shown[1])


def test_pinned_authority_refusal_shows_ids_that_differ(season: Season) -> None:
    real = season.authority.id
    pinned = real[:20] + ("f" if real[20] != "f" else "e") + real[21:]
    with pytest.raises(IssuerError) as caught:
        load_trust_bundle((season.out / "trust-bundle").read_bytes(), pinned_root_id=pinned)
    shown = re.findall(r"[0-9a-f]{16,}", caught.value.message)
    assert shown[0] != shown[1]
    assert real.startswith(shown[0])
    assert pinned.startswith(shown[1])


def _commands() -> dict[tuple[str, ...], set[str]]:
    """Every command path of the CLI with the options it takes (the root's included)."""
    root = typer.main.get_command(app)
    assert isinstance(root, LazyRoot)
    root.load_all()
    found: dict[tuple[str, ...], set[str]] = {}

    def walk(cmd: typer.core.TyperCommand, path: tuple[str, ...], inherited: set[str]) -> None:
        options = inherited | {o for p in cmd.params for o in p.opts if o.startswith("-")}
        found[path] = options
        if isinstance(cmd, typer.core.TyperGroup):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name), options)

    walk(root, (), set())
    return found


def test_every_command_a_message_names_exists_with_its_options() -> None:
    """A hint such as `custody init --home DIR` must name a real command and real options."""
    commands = _commands()
    quoted = re.compile(r"`custody ([^`]+)`")
    checked = 0
    for folder in ("custody", "keys", "labels", "crypto", "api"):
        for path in (ROOT / folder).rglob("*.py"):
            for mention in quoted.findall(path.read_text("utf-8")):
                words = mention.split()
                command: tuple[str, ...] = ()
                options: list[str] = []
                for word in words:
                    if word.startswith("-"):
                        options.append(word.split("=")[0])
                    elif (*command, word) in commands:
                        command = (*command, word)
                known = commands[command]
                bad = [o for o in options if o not in known]
                assert command, f"{path}: `custody {mention}` names no command"
                assert bad == [], f"{path}: `custody {mention}`: no such option {bad}"
                checked += 1
    assert checked > 5


def test_home_hint_names_the_global_home_option(tmp_path: Path) -> None:
    done = run_custody("--home", str(tmp_path / "none"), "log", "status")
    assert done.returncode == 4
    assert "custody --home DIR init --name AUTHORITY" in " ".join(done.stderr.split())


def test_revoke_with_a_short_prefix_names_the_minimum(season: Season) -> None:
    done = run_custody(
        "--home",
        str(season.home.path),
        "--now",
        (T0 + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--json",
        "keys",
        "revoke",
        "0533",
        "--reason",
        "key_compromise",
        env={"CUSTODY_PASSPHRASE": PASS},
    )
    # Said before any passphrase is asked for: the same answer with none set.
    bare = run_custody(
        "--home",
        str(season.home.path),
        "--json",
        "keys",
        "revoke",
        "0533",
        "--reason",
        "key_compromise",
        env=_locale_env(LANG="C.UTF-8"),
        inherit=False,
    )
    assert bare.returncode == 2
    assert "8-character minimum" in json.loads(bare.stdout)["message"]
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["error"] == "usage"
    assert "8-character minimum" in error["message"]


def test_a_new_authority_in_chinese_from_init_to_verify(tmp_path: Path) -> None:
    """init, keys enroll, keys list, export and verify, as a Chinese user runs them."""
    home = tmp_path / "home"
    env = _locale_env(
        LANG="zh_CN.UTF-8",
        CUSTODY_HOME=str(home),
        CUSTODY_ROOT_PASSPHRASE="the root passphrase, long",
        CUSTODY_LOG_PASSPHRASE="the log passphrase, long",
        CUSTODY_SYSTEM_PASSPHRASE="the system passphrase, long",
        CUSTODY_NEW_PASSPHRASE="another passphrase, long",
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_custody(*args, env=env, inherit=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    created = run("init", "--name", "陕西省人事考试中心")
    assert "已创建" in created.stdout
    assert "根密钥编号" in created.stdout
    enrolled = run(
        "keys",
        "enroll",
        "--subject",
        "courier-li",
        "--name",
        "李伟",
        "--org",
        "机要交通",
        "--role",
        "courier",
        "--valid-days",
        "30",
    )
    assert "已登记" in enrolled.stdout
    assert "Asia/Shanghai" in enrolled.stdout
    listed = " ".join(run("keys", "list").stdout.split())  # a table, in Chinese
    assert "有效期至" in listed
    assert "有效" in listed
    assert "valid until" not in listed
    wrote = run("trust", "export", "--out", str(tmp_path / "trust-bundle"))
    assert "已写入" in wrote.stdout


def test_export_and_verify_in_chinese(season: Season, tmp_path: Path) -> None:
    from custody.audit import export_bundle

    seal(season)
    export_bundle(season.log(), tmp_path / "bundle")
    env = {"LANG": "zh_CN.UTF-8"}
    checked = run_custody("verify", str(tmp_path / "bundle"), "--pin", season.authority.id, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "已检查签名" in checked.stdout
    assert "通过" in checked.stdout
    again = run_custody(
        "--home", str(season.home.path), "export", "--out", str(tmp_path / "bundle"), env=env
    )
    assert again.returncode == 5
    assert "与已存储的内容冲突" in again.stderr


def test_the_authority_names_its_time_zone_at_init(tmp_path: Path) -> None:
    env = _locale_env(
        LANG="C.UTF-8",
        CUSTODY_ROOT_PASSPHRASE="the root passphrase, long",
        CUSTODY_LOG_PASSPHRASE="the log passphrase, long",
        CUSTODY_SYSTEM_PASSPHRASE="the system passphrase, long",
        CUSTODY_NEW_PASSPHRASE="another passphrase, long",
    )
    bad = run_custody(
        "--home",
        str(tmp_path / "bad"),
        "init",
        "--name",
        "X",
        "--time-zone",
        "Mars/Base",
        env=env,
        inherit=False,
    )
    assert bad.returncode == 2
    assert not (tmp_path / "bad").exists()  # refused before anything is made
    home = str(tmp_path / "utc")
    made = run_custody(
        "--home", home, "init", "--name", "X", "--time-zone", "UTC", env=env, inherit=False
    )
    assert made.returncode == 0, made.stderr
    assert json.loads((tmp_path / "utc" / "custody.json").read_text())["time_zone"] == "UTC"
    enrolled = run_custody(
        "--home",
        home,
        "keys",
        "enroll",
        "--subject",
        "courier-li",
        "--name",
        "Li Wei",
        "--org",
        "Courier",
        "--role",
        "courier",
        env=env,
        inherit=False,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert " UTC" in enrolled.stdout
    assert "Asia/Shanghai" not in enrolled.stdout


# -- Typer's own words (custody/cli/library_words.py) --------------------------------------------


@pytest.mark.parametrize(
    ("lang", "words", "absent"),
    [
        (
            "zh_CN.UTF-8",
            ("用法：custody package show", "参数", "[必填]", "显示本帮助并退出"),
            "Usage:",
        ),
        (
            "C.UTF-8",
            ("Usage: custody package show", "Arguments", "[required]", "Show this"),
            "用法",
        ),
    ],
    ids=["zh_CN", "C"],
)
def test_typers_help_words_speak_the_locale(lang: str, words: tuple[str, ...], absent: str) -> None:
    done = run_custody("package", "show", "--help", env=_locale_env(LANG=lang), inherit=False)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for word in words:
        assert word in text, (word, text)
    assert absent not in text


def test_a_group_without_its_command_shows_its_help_in_chinese() -> None:
    done = run_custody("keys", env=_locale_env(LANG="zh_CN.UTF-8"), inherit=False)
    text = " ".join((done.stdout + done.stderr).split())
    assert "用法：custody keys" in text
    assert "命令" in text and "enroll" in text
    assert "Options" not in text and "Commands" not in text


@pytest.mark.parametrize(
    ("args", "zh", "en"),
    [
        (("package", "show"), "缺少参数 'package'", "missing argument 'package'"),
        (("keys", "--bogus"), "没有这个选项：--bogus", "no such option: --bogus"),
        (("bogus",), "没有这个命令：bogus", "no such command: bogus"),
        (("log", "status", "extra"), "多余的参数：extra", "unexpected extra arguments: extra"),
        (
            ("keys", "enroll", "--subject", "x", "--name", "x", "--org", "o", "--role", "pilot"),
            "'--role' 的值无效",
            "invalid value for '--role'",
        ),
    ],
    ids=["missing-argument", "no-such-option", "no-such-command", "extra-argument", "bad-value"],
)
def test_usage_errors_are_said_in_the_locales_language(
    args: tuple[str, ...], zh: str, en: str
) -> None:
    chinese = run_custody(*args, env=_locale_env(LANG="zh_CN.UTF-8"), inherit=False)
    english = run_custody(*args, env=_locale_env(LANG="C.UTF-8"), inherit=False)
    assert chinese.returncode == english.returncode == 2
    assert zh in chinese.stderr and "(usage)" in chinese.stderr
    assert "提示" in chinese.stderr and "--help" in chinese.stderr
    assert en in english.stderr
    assert "Traceback" not in chinese.stderr + english.stderr
    assert not re.search(r"[\u4e00-\u9fff]", english.stderr), english.stderr


def test_a_usage_error_under_json_is_one_json_object() -> None:
    done = run_custody(
        "--json", "package", "show", env=_locale_env(LANG="zh_CN.UTF-8"), inherit=False
    )
    assert done.returncode == 2
    answer = json.loads(done.stdout)
    assert answer["ok"] is False and answer["error"] == "usage"
    assert answer["message"] == "missing argument 'package'"  # for programs and logs
    assert answer["message_zh"] == "缺少参数 'package'"  # for the person reading it
    assert "custody package show --help" in answer["hint"]
    assert "custody package show --help" in answer["hint_zh"]
