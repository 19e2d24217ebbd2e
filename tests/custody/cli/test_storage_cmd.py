"""`custody log check` as a subprocess: a sound log passes; a damaged one exits 6 (log_state)
naming what is wrong; --full finds a node the quick check does not read; --adopt keeps the
last checkpoint of a home without the file, and never replaces one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from crypto.dsse import parse_envelope
from custody.demo import Season, seal_events
from custody.store.db import make_engine

ROOT = Path(__file__).resolve().parents[3]


def check(
    season: Season, *args: str, json_out: bool = True, lang: str = "C.UTF-8"
) -> subprocess.CompletedProcess[str]:
    argv = ["--home", str(season.home.path), *(["--json"] if json_out else []), "log", "check"]
    argv += args
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    return subprocess.run(
        [sys.executable, "-c", f"from custody.cli import main; raise SystemExit(main({argv!r}))"],
        # no passphrase: the check needs none
        env={**env, "PYTHONPATH": str(ROOT), "LANG": lang, "LC_ALL": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fill(season: Season, count: int) -> None:
    log = season.log()
    for line in seal_events(season, [f"PK-{n}" for n in range(count)]):
        log.submit(parse_envelope(line), now=season.now)
    log.close()
    season.home.engine.dispose()


def damage(season: Season, sql: str, **params: object) -> None:
    engine = make_engine(season.home.database_url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()


def test_a_sound_log_passes_quick_and_full(season: Season) -> None:
    fill(season, 9)
    for args in ((), ("--full",)):
        done = check(season, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        body = json.loads(done.stdout)
        size = body["size"]  # 9 events, and the season's own (its exam policy)
        assert body["ok"] is True and size >= 9 and body["leaves_checked"] == size
        assert body["signed_head_file"].startswith(f"size {size} ")


def test_the_check_reads_in_the_readers_language(season: Season) -> None:
    fill(season, 3)
    zh = check(season, json_out=False, lang="zh_CN.UTF-8")
    en = check(season, json_out=False)
    assert zh.returncode == en.returncode == 0, zh.stdout + zh.stderr
    assert "日志的存储状态与其密钥所签署的内容一致" in zh.stdout
    assert "已签名检查点文件  大小 " in zh.stdout
    assert "agrees" not in zh.stdout
    assert "the log's stored state agrees with what its key signed" in en.stdout
    assert "signed-checkpoint file      size " in en.stdout


def test_a_zeroed_inner_node_is_found_by_the_full_check(season: Season) -> None:
    fill(season, 9)  # node (1, 1) covers entries 2..3: neither frontier nor a leaf
    damage(season, "UPDATE tree_node SET hash = :h WHERE level = 1 AND idx = 1", h=bytes(32))
    assert check(season).returncode == 0  # the quick check reads the frontier and leaves only
    done = check(season, "--full")
    assert done.returncode == 6
    body = json.loads(done.stdout)
    assert body["error"] == "log_state"
    assert "(1, 1)" in body["message"] and "restore" in body["hint"]


def test_a_head_behind_exits_6_naming_it(season: Season) -> None:
    fill(season, 4)
    damage(season, "UPDATE log_head SET size = 3")
    done = check(season)
    assert done.returncode == 6
    assert "head says 3 entries" in json.loads(done.stdout)["message"]


def test_adopt_keeps_the_checkpoint_of_a_home_without_the_file(season: Season) -> None:
    fill(season, 5)
    season.home.signed_head_path.unlink()
    done = check(season)
    assert done.returncode == 6 and "--adopt" in json.loads(done.stdout)["hint"]
    done = check(season, "--adopt")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["adopted"] is True
    assert check(season).returncode == 0
    again = check(season, "--adopt")
    assert again.returncode == 5  # never over an existing file
    assert json.loads(again.stdout)["error"] == "conflict"
