"""An event's place is one line of plain text: control characters (a terminal's escape codes,
bidirectional overrides) and over-long places are refused on every path, and nothing is stored
or echoed."""

from __future__ import annotations

import pytest

from custody.demo import Season
from custody.errors import FormatError
from custody.events import MAX_PLACE, Kind, check_place, parse_event
from tests.api.helpers import client, seal_event, transfer_event
from tests.api.test_access_log import custody_cli

ESCAPE = "\x1b[31mRED\x07"


@pytest.mark.parametrize(
    "place", [ESCAPE, "gate\nforged line", "gate\u202eetag", "\x00", "x" * (MAX_PLACE + 1)]
)
def test_a_place_that_is_not_one_line_of_text_is_refused(place: str) -> None:
    with pytest.raises(FormatError):
        check_place(place)


@pytest.mark.parametrize("place", ["", "G65 服务区", "西安市第一考点 保密室", "x" * MAX_PLACE])
def test_ordinary_places_pass(place: str) -> None:
    assert check_place(place) == place


def test_the_cli_refuses_an_escape_in_a_place_and_stores_nothing(season: Season) -> None:
    season.submit(seal_event(season))
    season.submit(transfer_event(season, Kind.DISPATCH, "PK-1", "print-qian", "courier-sun"))
    size = season.log().size()
    done = custody_cli(
        season, "leak-report", "--by", "courier-li", "--package", "PK-1",
        "--text", "a photo of the paper", "--place", ESCAPE, "--yes",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "\x1b" not in done.stdout + done.stderr  # nothing echoed raw to the terminal
    assert "U+001B" in done.stderr
    assert season.log().size() == size


def test_the_api_refuses_an_escape_in_a_place_and_stores_nothing(season: Season) -> None:
    season.submit(seal_event(season))
    size = season.log().size()
    bad = season.event(
        Kind.DISPATCH,
        ["PK-1"],
        actors={"releaser": "print-qian", "receiver": "courier-sun"},
        signers=["print-qian", "courier-sun"],
        body={"seals": ["S0012345", "S0012346", "S0012347"]},
        place=ESCAPE,
    )
    with pytest.raises(FormatError):
        parse_event(bad.payload)
    answer = client(season).post("/v1/events", json=bad.to_json_obj())
    assert (answer.status_code, answer.json()["error"]) == (400, "format")
    assert "U+001B" in answer.json()["message"]
    assert answer.json()["message_zh"]
    assert season.log().size() == size
