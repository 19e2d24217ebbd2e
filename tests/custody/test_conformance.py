"""Reading conformance vectors (custody/conformance.py): the published folder loads; a damaged
season or vector file is a FormatError naming the file and the part (never a crash), and a
folder that is not a vector folder is NotFoundError."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from custody.conformance import (
    SEASON_FILE,
    Expect,
    load_vectors,
    parse_season,
    parse_vector_file,
)
from custody.errors import CustodyError, FormatError, NotFoundError

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"
SEAL = "event.seal.json"

Edit = Callable[[dict[str, Any]], None]


def edited(name: str, edit: Edit) -> bytes:
    doc = json.loads((VECTORS / name).read_bytes())
    edit(doc)
    return json.dumps(doc).encode()


def test_the_published_vectors_load() -> None:
    season, files = load_vectors(VECTORS)
    assert len(season.root_seed) == len(season.log_seed) == len(season.system_seed) == 32
    assert season.authority.log_key  # its trust document names the authority it stands for
    kinds = {f.kind for f in files}
    assert "event.seal" in kinds and len(files) == len(list(VECTORS.glob("*.json"))) - 1
    for f in files:
        assert f.cases and len({c.name for c in f.cases}) == len(f.cases)
        assert all(f.setup_clock(c) for c in f.cases)
        assert all(str(c.expect) in ("accept", f"refuse {c.expect.code}") for c in f.cases)


def _set(path: str, value: object) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _twice(doc: dict[str, Any]) -> None:
    doc["cases"].append(dict(doc["cases"][0]))


@pytest.mark.parametrize(
    ("edit", "part"),
    [
        (_set("seeds.root", "not hex"), "seeds.root"),
        (_set("seeds.log", "ab" * 16), "seeds.log"),
        (_set("format", "custody-vector-season/v0"), "format"),
        (_set("trust.certificates", "none"), "certificates"),
        (_set("received", "yesterday"), "received"),
    ],
    ids=["seed-not-hex", "seed-short", "format", "certificates", "received"],
)
def test_a_damaged_season_names_its_part(edit: Edit, part: str) -> None:
    with pytest.raises(FormatError, match=part):
        parse_season(edited(SEASON_FILE, edit))


def test_a_season_whose_authority_is_another_statement_is_refused() -> None:
    doc = json.loads((VECTORS / SEASON_FILE).read_bytes())
    doc["trust"]["authority"] = doc["setup"][0]  # an event, not the authority's statement
    season = parse_season(json.dumps(doc).encode())
    with pytest.raises(FormatError, match="authority"):
        _ = season.authority


@pytest.mark.parametrize(
    ("edit", "part"),
    [
        (_set("cases.0", "a string"), "case 0"),
        (_twice, "twice"),
        (_set("cases.0.findings", "late"), "findings"),
        (_set("cases.0.expect", "refuse"), "expect"),
        (_set("cases.0.expect", "maybe"), "expect"),
        (_set("kind", 7), "kind"),
        (_set("format", "custody-vectors/v0"), "format"),
    ],
    ids=["case-not-object", "name-twice", "findings", "refuse-no-code", "expect", "kind", "format"],
)
def test_a_damaged_vector_file_names_its_part(edit: Edit, part: str) -> None:
    with pytest.raises(FormatError, match=part):
        parse_vector_file(edited(SEAL, edit))


def test_expect_reads_accept_and_refuse_with_one_code() -> None:
    assert Expect.parse("accept").code is None and str(Expect.parse("accept")) == "accept"
    refuse = Expect.parse("refuse chain")
    assert refuse.code == "chain" and str(refuse) == "refuse chain"
    for text in ("refuse a b", "", None, 1):
        with pytest.raises(FormatError):
            Expect.parse(text)


def test_a_folder_that_is_not_a_vector_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=SEASON_FILE):
        load_vectors(tmp_path)
    shutil.copy(VECTORS / SEASON_FILE, tmp_path / SEASON_FILE)
    with pytest.raises(NotFoundError, match="no vector file"):
        load_vectors(tmp_path)
    (tmp_path / SEAL).write_bytes(edited(SEAL, _twice))
    with pytest.raises(FormatError) as caught:
        load_vectors(tmp_path)
    assert caught.value.message.startswith(SEAL)  # the file is named first


def test_arbitrary_json_is_refused_only_with_format_errors() -> None:
    values: list[object] = [[], "x", 1, {"format": "custody-vectors/v1"}, {"cases": [{}]}, None]
    for value in values:
        data = json.dumps(value).encode()
        with pytest.raises(CustodyError):
            parse_vector_file(data)
        with pytest.raises(CustodyError):
            parse_season(data)
