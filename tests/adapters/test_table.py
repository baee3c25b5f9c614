"""Every framework answers every request of the shared table identically."""

from __future__ import annotations

import pytest

from clerkguard.testing import LocalIssuer

from .conftest import FRAMEWORKS, HarnessFactory, close_harness, load_factory, table_auth
from .harness import Harness, Result
from .table import CASES, Case, backend_outage

#: Template values that are not tokens (names and plain values a response may well contain).
NOT_TOKENS = {"suffixed_cookie", "suffixed_uat", "uat", "uat_later", "trusted_origin"}

ERRORS = {
    401: ("invalid_token", "unauthorized"),
    403: ("insufficient_scope",),
    503: ("temporarily_unavailable",),
}


def send(harness: Harness, case: Case, tokens: dict[str, str], issuer: LocalIssuer) -> Result:
    """Send ``case`` (``issuer``: where ``tokens`` come from, whose Backend API a case may break)."""
    headers, cookies = case.render(tokens)
    if case.backend == "up":
        return harness.request(case.method, case.path, headers=headers, cookies=cookies)
    with backend_outage(issuer):
        return harness.request(case.method, case.path, headers=headers, cookies=cookies)


def assert_answer(case: Case, result: Result) -> None:
    """The whole contract of one case: status, body, content type, challenge."""
    assert result.status == case.status, f"{case.name}: {result.status} {result.json!r}"
    challenge = result.headers.get("www-authenticate")
    if case.status >= 400:
        assert result.headers.get("content-type", "").startswith("application/json")
        assert set(result.json) == {"error", "reason", "detail"}
        assert result.json["reason"] == case.reason
        assert isinstance(result.json["detail"], str)
        assert result.json["detail"]
        assert result.json["error"] in ERRORS[case.status]
        assert challenge is not None
        assert challenge.startswith("Bearer")
    else:
        assert case.reason is None
        assert challenge is None
    if case.www_authenticate is not None:
        assert challenge is not None
        assert case.www_authenticate in challenge
    if case.status == 401:
        # RFC 6750 3.1: a request without a token gets a bare challenge.
        assert ('error="invalid_token"' in challenge) is case.token_sent
        assert (result.json["error"] == "invalid_token") is case.token_sent
    if case.status == 403:
        assert 'error="insufficient_scope"' in challenge
    if challenge is not None and "error=" in challenge:
        # RFC 6750: error_description is the human text, the same sentence as the body's detail.
        assert f'error_description="{result.json["detail"]}"' in challenge
    if case.status == 503:
        assert int(result.headers["retry-after"]) >= 1
    if case.json is not None:
        assert isinstance(result.json, dict)
        assert {k: result.json.get(k) for k in case.json} == dict(case.json)
    if case.status == 204:
        assert result.json is None
    for name, expected in case.expect_headers.items():
        assert expected in result.headers.get(name, ""), f"{case.name}: {name}: {result.headers.get(name)!r}"


@pytest.mark.parametrize("case", CASES, ids=str)
def test_table(
    case: Case,
    make_harness: HarnessFactory,
    request: pytest.FixtureRequest,
    tokens: dict[str, str],
    table_issuer: LocalIssuer,
) -> None:
    # ``make_harness`` parametrizes the test by framework; the harness on a live
    # or a dead key endpoint is then picked per case.
    harness: Harness = request.getfixturevalue("harness" if case.keys == "up" else "down_harness")
    assert_answer(case, send(harness, case, tokens, table_issuer))


def test_tokens_are_not_echoed(harness: Harness, tokens: dict[str, str], table_issuer: LocalIssuer) -> None:
    for case in CASES:
        if case.status < 400 or case.keys == "down":
            continue
        result = send(harness, case, tokens, table_issuer)
        body = repr(result.json) + repr(result.headers)
        for name, token in tokens.items():
            if name not in NOT_TOKENS:
                assert token not in body, f"{case.name} echoed the {name} token"


def test_jwks_fetched_once_for_many_requests(make_harness: HarnessFactory, table_issuer: LocalIssuer) -> None:
    auth = table_auth(table_issuer)
    harness = make_harness(auth)
    try:
        for i in range(12):  # distinct tokens: each is a real verification, not a cache hit
            token = table_issuer.mint(user_id=f"user_{i}")
            for path in ("/protected", "/async", "/sync"):
                result = harness.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                assert result.status == 200
                assert result.json["user_id"] == f"user_{i}"
        assert auth.stats.fetches == 1
    finally:
        close_harness(harness)
        auth.close()


def test_all_harnesses_agree(table_issuer: LocalIssuer, tokens: dict[str, str], dead_jwks_uri: str) -> None:
    available = [name for name in FRAMEWORKS if _installed(name)]
    if len(available) < 2:
        pytest.skip("fewer than two frameworks installed")
    answers: dict[str, list[tuple[str, int, str | None]]] = {}
    for name in available:
        factory = load_factory(name)
        auths = {
            "up": table_auth(table_issuer),
            "down": table_auth(table_issuer, jwks_uri=dead_jwks_uri, http_timeout=2.0),
        }
        built = {keys: factory(auth) for keys, auth in auths.items()}
        try:
            answers[name] = [
                (case.name, r.status, r.json.get("reason") if r.status >= 400 else None)
                for case in CASES
                for r in [send(built[case.keys], case, tokens, table_issuer)]
            ]
        finally:
            for harness in built.values():
                close_harness(harness)
            for auth in auths.values():
                auth.close()
    first, *others = available
    for name in others:
        assert answers[name] == answers[first], f"{name} disagrees with {first}"
    assert answers[first][1] == ("bearer-ok", 200, None)
    assert any(row[1] == 503 for row in answers[first])


def _installed(name: str) -> bool:
    try:
        load_factory(name)
    except pytest.skip.Exception:
        return False
    return True
