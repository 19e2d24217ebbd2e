"""Refusals speak the reader's language: a message template (English, marked ``N_``) with its
parameters, rendered by the CLI in the locale's language and by the API in the one
``Accept-Language`` asks for; ``str(error)`` stays English (for logs)."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import api.errors  # noqa: F401 - its error classes count too
import crypto.errors
import custody.witness  # noqa: F401
import labels.scan  # noqa: F401
from custody.demo import Season
from custody.i18n import error_body, error_text, negotiate
from tests.api.helpers import client
from tests.custody.cli.subprocess_cli import run_custody

ROOT = Path(__file__).resolve().parents[2]

# Every module of the product's packages is scanned: a raise with a plain or f-string message
# would reach a Chinese reader in English. Migrations are frozen history (they raise nothing a
# person reads), and the Typer bridge passes templates through a variable that its callers mark.
PACKAGES = ("crypto", "keys", "labels", "custody", "api")
EXEMPT = {"custody/cli/library_words.py"}


def product_modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if "migrations" not in path.parts and name not in EXEMPT:
                found.append(name)
    return found


def _error_names() -> set[str]:
    found: set[str] = set()
    todo: list[type] = [crypto.errors.CustodyError]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


def _is_marked(node: ast.expr) -> bool:
    """``N_("...")``, or a choice between two of them, or a module constant (upper case) that
    is marked where it is defined (``RECOVER = N_(...)``)."""
    if isinstance(node, ast.Name) and node.id.isupper():
        return True
    if isinstance(node, ast.Attribute) and node.attr in ("template", "hint_template"):
        return True  # another refusal's template, passed on as it is (re-raised as a new class)
    if isinstance(node, ast.IfExp):
        return _is_marked(node.body) and _is_marked(node.orelse)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "N_"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def unmarked_refusals(source: str, errors: set[str]) -> list[int]:
    """Lines where an error of the product is made with a message that is not ``N_(...)``
    (an f-string, a plain string, a formatted ``_()``), or with a hint that is not."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id not in errors or not node.args:
            continue
        hint = next((k.value for k in node.keywords if k.arg == "hint"), None)
        if not _is_marked(node.args[0]) or (hint is not None and not _is_marked(hint)):
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_unmarked_messages() -> None:
    errors = {"FormatError"}
    assert unmarked_refusals('raise FormatError(f"bad {x}")', errors) == [1]
    assert unmarked_refusals('raise FormatError("bad")', errors) == [1]
    assert unmarked_refusals('raise FormatError(_("bad {x}").format(x=x))', errors) == [1]
    assert unmarked_refusals('raise FormatError(N_("bad"), hint=f"see {x}")', errors) == [1]
    assert unmarked_refusals('raise FormatError(N_("bad {x}"), x=x, hint=N_("see"))', errors) == []
    assert unmarked_refusals('raise ValueError(f"not ours {x}")', errors) == []
    passed_on = "raise FormatError(e.template, hint=e.hint_template, **e.params)"
    assert unmarked_refusals(passed_on, errors) == []
    assert unmarked_refusals("raise FormatError(e.message)", errors) == [1]


def test_converted_modules_raise_only_marked_messages() -> None:
    errors = _error_names()
    found = {}
    modules = product_modules()
    assert len(modules) > 100 and "api/web.py" in modules  # the walk found the packages
    for path in modules:
        lines = unmarked_refusals((ROOT / path).read_text(encoding="utf-8"), errors)
        if lines:
            found[path] = lines
    assert found == {}, "make these messages N_() templates with parameters"


def test_negotiate_prefers_chinese_unless_english_ranks_higher() -> None:
    assert negotiate(None) == "zh"
    assert negotiate("") == "zh"
    assert negotiate("*") == "zh"
    assert negotiate("fr-FR, de") == "zh"
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("en;q=0.5, zh-CN;q=0.8") == "zh"
    assert negotiate("zh;q=0.3, en-GB;q=0.7") == "en"
    assert negotiate("en, zh") == "en"  # a tie: the first listed
    assert negotiate("en;q=0, zh-TW") == "zh"  # q=0 is "not acceptable"
    assert negotiate("en;q=bad") == "zh"


def test_error_body_keeps_english_and_adds_chinese_for_a_chinese_reader() -> None:
    N_ = crypto.errors.N_  # noqa: N806 - the marker's name
    e = crypto.errors.ChainError(
        N_("package {package_id} was destroyed; its chain is closed"), package_id="PK-1"
    )
    assert str(e) == "package PK-1 was destroyed; its chain is closed"
    assert error_text(e, "zh") == ("试卷袋 PK-1 已销毁；其保管链已关闭", None)
    assert error_body(e, "en") == {"error": "chain", "message": str(e)}
    assert error_body(e, "zh") == {
        "error": "chain",
        "message": str(e),
        "message_zh": "试卷袋 PK-1 已销毁；其保管链已关闭",
    }


def _locale(lang: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}
    env.pop("CUSTODY_LANG", None)
    return {**env, "LANG": lang}


def test_a_refusal_speaks_the_locale(season: Season) -> None:
    """The same refusal (a label whose Base45 is broken): Chinese under zh_CN, English under C,
    the same exit code (3, format) and the same code; --json keeps the English message."""
    args = ("--home", str(season.home.path), "label", "verify", "CP1:%%%")
    trust = ("--trust", str(season.out / "trust-bundle"))
    zh = run_custody(*args, *trust, env=_locale("zh_CN.UTF-8"), inherit=False)
    en = run_custody(*args, *trust, env=_locale("C.UTF-8"), inherit=False)
    assert (zh.returncode, en.returncode) == (3, 3)
    zh_text, en_text = " ".join(zh.stderr.split()), " ".join(en.stderr.split())
    assert "(format)" in zh_text
    assert "(format)" in en_text
    assert "标签：前缀之后的文本不是有效的 Base45" in zh_text
    assert "not valid Base45" not in zh_text
    assert "label: the text after the prefix is not valid Base45" in en_text
    assert "标签" not in en_text
    as_json = run_custody("--json", *args, *trust, env=_locale("zh_CN.UTF-8"), inherit=False)
    assert as_json.returncode == 3
    body = json.loads(as_json.stdout)
    assert body["error"] == "format"
    assert body["message"] == "label: the text after the prefix is not valid Base45"
    assert body["message_zh"] == "标签：前缀之后的文本不是有效的 Base45"


def test_an_api_refusal_follows_accept_language(season: Season) -> None:
    c = client(season)
    english = "label: the text after the prefix is not valid Base45"
    chinese = "标签：前缀之后的文本不是有效的 Base45"
    zh = c.post("/v1/labels/verify", content="CP1:%%%", headers={"Accept-Language": "zh-CN"})
    en = c.post("/v1/labels/verify", content="CP1:%%%", headers={"Accept-Language": "en"})
    bare = c.post("/v1/labels/verify", content="CP1:%%%")
    assert zh.status_code == en.status_code == bare.status_code == 400
    assert zh.json() == {"error": "format", "message": english, "message_zh": chinese}
    assert en.json() == {"error": "format", "message": english}
    assert bare.json() == zh.json()  # no header: Chinese first, the users' language
    assert "accept-language" in zh.headers["vary"].lower()
