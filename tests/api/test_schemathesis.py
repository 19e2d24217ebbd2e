"""API fuzzing from the service's own OpenAPI schema (schemathesis), with and without a login:
no 500, every error a JSON body with a stable code, and only the statuses each route documents.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from api.app import Settings, create_app
from custody.demo import Season
from tests.api.helpers import as_person, seal_event
from tests.conftest import PASS

EXAMPLES = 30
# Without a login every route but the public ones answers 401 before reading the request: a
# third of the examples explores that much.
EXAMPLES_WITHOUT_LOGIN = 10
CODES = {
    "format", "scan", "usage", "invalid_request", "not_found", "method_not_allowed",
    "login_required", "login_failed", "forbidden", "too_large", "image_too_large",
    "unsupported_media_type", "request_timeout", "rate_limited", "read_only", "signature",
    "unknown_signer", "issuer", "duplicate_signature", "threshold", "revoked", "expired",
    "not_yet_valid", "role", "recused", "route", "window", "chain", "closed", "conflict",
    "clock", "mixed_packages", "seal_mismatch", "count_mismatch", "frozen", "blocked_key",
    "weak_key", "log_consistency", "decryption",
}  # fmt: skip


@pytest.fixture
def served(season: Season) -> tuple[Any, dict[str, str]]:
    season.submit(seal_event(season))
    app = create_app(
        Settings(
            home=season.home.path,
            log_passphrase=PASS,
            clock=lambda: season.now,
            desk_every=0,
            rate_per_address="1000000/minute",
            rate_per_key="1000000/minute",
        )
    )
    auth = as_person(TestClient(app), season, "auditor-chu")
    return app, auth


@pytest.fixture
def api_schema(served: tuple[Any, dict[str, str]]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", served[0])


schema = schemathesis.pytest.from_fixture("api_schema")


def _check(case: Any, response: Any) -> None:
    assert response.status_code < 500, response.text
    documented = {str(s) for s in case.operation.definition.raw.get("responses", {})}
    # 405 (another method) and 429 (rate limits) may answer any route
    assert str(response.status_code) in documented | {"default", "405", "429"}, (
        f"{case.method} {case.path}: {response.status_code} is not among {sorted(documented)}"
    )
    # the answer's media type is one the route documents for that status (schemathesis's
    # content_type_conformance: a route whose success is text/plain still errs in JSON)
    responses = case.operation.definition.raw.get("responses", {})
    media = set(responses.get(str(response.status_code), {}).get("content", {}))
    if media:
        (header,) = response.headers.get("content-type", [""])  # schemathesis: a list each
        got = header.split(";")[0].strip()
        assert got in media, (
            f"{case.method} {case.path}: {got} answered, {sorted(media)} documented"
        )
    if response.status_code >= 400:
        body = response.json()
        assert set(body) <= {"error", "message", "hint", "message_zh", "hint_zh"}, body
        assert body["error"] in CODES, body


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_WITHOUT_LOGIN,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_without_a_login(case: Any) -> None:
    _check(case, case.call())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_with_a_login(case: Any, served: tuple[Any, dict[str, str]]) -> None:
    _check(case, case.call(headers=served[1]))
