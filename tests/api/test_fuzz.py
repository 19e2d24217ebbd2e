"""No input makes the service answer 500: every refusal is one of our error bodies.

Hypothesis feeds arbitrary bytes, arbitrary JSON, mutated valid envelopes, arbitrary label text,
arbitrary images and arbitrary path and query values to every route.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from custody.demo import Season, start_season
from tests.api.helpers import client, good_label, seal_event
from tests.conftest import PASS, T0, fast_kdf

FUZZ = settings(
    max_examples=120,
    deadline=None,
    # each test has its own season (function scope); its examples share it, read-mostly
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Season, TestClient]:
    season = start_season(tmp_path / "s", now=T0, passphrase=PASS, kdf=fast_kdf())
    c = client(season)
    c.post("/v1/events", content=seal_event(season).to_bytes())
    good_label(season)
    return season, c


def assert_answered(r: Any) -> None:
    assert r.status_code != 500, r.text
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body["error"], str) and body["error"]
        assert isinstance(body["message"], str)


@FUZZ
@given(body=st.binary(max_size=400))
def test_any_bytes_to_every_post_route(world: tuple[Season, TestClient], body: bytes) -> None:
    _, c = world
    for path in ("/v1/events", "/v1/labels/verify", "/v1/labels/scan"):
        assert_answered(c.post(path, content=body))


@FUZZ
@given(value=json_values)
def test_any_json_as_events(world: tuple[Season, TestClient], value: Any) -> None:
    _, c = world
    assert_answered(c.post("/v1/events", content=json.dumps(value)))
    assert_answered(c.post("/v1/events", content=json.dumps([value, value])))


ENVELOPE_FIELDS = ("payload", "payloadType", "signatures")


@FUZZ
@given(
    field=st.sampled_from(ENVELOPE_FIELDS),
    replacement=json_values,
    sig_field=st.sampled_from(("keyid", "sig", "extra")),
    sig_value=json_values,
)
def test_mutated_envelopes(
    world: tuple[Season, TestClient],
    field: str,
    replacement: Any,
    sig_field: str,
    sig_value: Any,
) -> None:
    season, c = world
    env = seal_event(season, "PK-FUZZ").to_json_obj()
    broken = {**env, field: replacement}
    assert_answered(c.post("/v1/events", content=json.dumps(broken)))
    sigs = [dict(s) for s in env["signatures"]]  # type: ignore[attr-defined]
    sigs[0][sig_field] = sig_value
    assert_answered(c.post("/v1/events", content=json.dumps({**env, "signatures": sigs})))


@FUZZ
@given(text=st.text(max_size=300), prefix=st.sampled_from(["", "CP1:", "CP2:", "HC1:"]))
def test_any_label_text(world: tuple[Season, TestClient], text: str, prefix: str) -> None:
    _, c = world
    assert_answered(c.post("/v1/labels/verify", content=(prefix + text).encode("utf-8")))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    shade=st.integers(0, 255),
    fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP"]),
    cut=st.integers(0, 2000),
)
def test_any_image(
    world: tuple[Season, TestClient], width: int, height: int, shade: int, fmt: str, cut: int
) -> None:
    _, c = world
    out = io.BytesIO()
    Image.new("L", (width, height), shade).save(out, format=fmt)
    data = out.getvalue()
    assert_answered(c.post("/v1/labels/scan", content=data))
    assert_answered(c.post("/v1/labels/scan", content=data[: cut % max(len(data), 1)]))


@FUZZ
@given(segment=st.text(max_size=60), a=st.text(max_size=25), b=st.text(max_size=25))
def test_any_path_and_query(world: tuple[Season, TestClient], segment: str, a: str, b: str) -> None:
    _, c = world
    for path in ("/v1/entries/", "/v1/packages/"):
        assert_answered(c.get(path + quote(segment, safe="")))
    assert_answered(c.get("/v1/proofs/inclusion", params={"index": a, "size": b}))
    assert_answered(c.get("/v1/proofs/consistency", params={"old": a, "new": b}))


@FUZZ
@given(a=st.integers(-5, 2**66), b=st.integers(-5, 2**66))
def test_any_integers_to_proofs_and_entries(
    world: tuple[Season, TestClient], a: int, b: int
) -> None:
    _, c = world
    assert_answered(c.get(f"/v1/entries/{a}"))
    assert_answered(c.get("/v1/proofs/inclusion", params={"index": a, "size": b}))
    assert_answered(c.get("/v1/proofs/consistency", params={"old": a, "new": b}))
