"""Opaque machine tokens through the (fake, loopback) Backend API: shapes, caching, outages."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clerkguard import AuthError, BackendUnavailable, ClerkAuth, MachineCredential
from clerkguard._backend import parse_answer
from clerkguard.testing import Fault, LocalIssuer

SHAPES = json.loads((Path(__file__).parents[1] / "fixtures" / "backend_api_shapes.json").read_text())


def _error(auth: ClerkAuth, token: str, accepts: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.verify(token, accepts_token=accepts)
    return info.value


@pytest.mark.parametrize("kind", ["m2m_token", "api_key", "oauth_token"])
def test_the_request_has_clerks_exact_shape(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], kind: str
) -> None:
    token = {"m2m_token": issuer.issue_m2m_token, "api_key": issuer.issue_api_key}.get(
        kind, issuer.issue_oauth_token
    )()
    make_auth().verify(token, accepts_token=kind)
    (sent,) = issuer.backend_requests
    assert (sent.method, sent.path) == ("POST", SHAPES[kind]["path"])
    assert sent.authorization == f"Bearer {issuer.secret_key}"
    assert sent.content_type == "application/json"
    assert json.loads(sent.body) == {SHAPES[kind]["member"]: token}


def test_m2m_tokens_use_the_machine_secret_key_when_configured(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(secret_key=None, machine_secret_key=issuer.machine_secret_key)
    assert auth.verify(issuer.issue_m2m_token(), accepts_token="m2m_token").token_type == "m2m_token"
    assert issuer.backend_requests[-1].authorization == f"Bearer {issuer.machine_secret_key}"
    # API keys need the instance secret key: without one, a 503 (a server problem), no request.
    error = _error(auth, issuer.issue_api_key(), "api_key")
    assert (error.status, error.reason) == (503, "backend-api-unavailable")
    assert len(issuer.backend_requests) == 1


@pytest.mark.parametrize("kind", ["m2m_token", "api_key", "oauth_token"])
def test_the_recorded_answers_parse_and_the_fake_serves_the_same_fields(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], kind: str
) -> None:
    recorded = SHAPES[kind]["answer"]
    credential = parse_answer(kind, json.dumps(recorded).encode(), now=1_700_000_000)
    assert isinstance(credential, MachineCredential)
    assert (credential.id, credential.subject, list(credential.scopes)) == (
        recorded["id"],
        recorded["subject"],
        recorded["scopes"],
    )
    assert "token" not in credential.raw
    assert "secret" not in credential.raw
    if kind == "api_key":
        assert credential.name == "Test API Key"
    if kind == "oauth_token":
        assert credential.client_id == recorded["client_id"]
    if recorded["expiration"] is not None:
        assert credential.expires_at == recorded["expiration"] / 1000
    token = {"m2m_token": issuer.issue_m2m_token, "api_key": issuer.issue_api_key}.get(
        kind, issuer.issue_oauth_token
    )()
    served = issuer._machine_tokens[token]
    assert set(served) | {"token"} >= set(recorded) - {"token"}
    assert set(served) <= set(recorded)


def test_n_verifications_of_one_token_make_one_call(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth()
    token = issuer.issue_api_key(scopes=["read"])
    results = [auth.verify(token, accepts_token="api_key") for _ in range(50)]
    assert len(issuer.backend_requests) == 1
    assert all(r is results[0] for r in results)
    assert asyncio.run(auth.averify(token, accepts_token="api_key")) is results[0]
    assert len(issuer.backend_requests) == 1


def test_500_threads_and_500_tasks_on_one_new_token_make_one_call(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=5)
    token = issuer.issue_m2m_token(scopes=["mch_b"])
    issuer.set_backend_fault(delay=0.5)  # everyone arrives while the one call is in flight
    answers: list[str] = []
    start = threading.Barrier(501)

    def in_thread() -> None:
        start.wait()
        answers.append(auth.verify(token, accepts_token="m2m_token").id)

    async def tasks() -> list[str]:
        start.wait()
        done = await asyncio.gather(*(auth.averify(token, accepts_token="m2m_token") for _ in range(500)))
        return [c.id for c in done]

    threads = [threading.Thread(target=in_thread) for _ in range(500)]
    for thread in threads:
        thread.start()
    answers += asyncio.run(tasks())
    for thread in threads:
        thread.join()
    assert len(answers) == 1000
    assert len(set(answers)) == 1
    assert len(issuer.backend_requests) == 1


def test_unknown_tokens_are_401_and_cached_briefly(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(machine_negative_cache_ttl=60)
    for _ in range(5):
        error = _error(auth, "ak_never_issued_0000000000", "api_key")
        assert (error.status, error.reason) == (401, "token-invalid")
    assert len(issuer.backend_requests) == 1


def test_revoked_and_expired_tokens_are_401(issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]) -> None:
    auth = make_auth(machine_cache_ttl=0)
    token = issuer.issue_m2m_token()
    assert auth.verify(token, accepts_token="m2m_token")
    issuer.revoke(token)
    assert _error(auth, token, "m2m_token").reason == "token-revoked"
    assert _error(auth, issuer.issue_api_key(expires_in=-1), "api_key").reason == "token-expired"


def test_a_positive_answer_is_not_reused_past_the_tokens_expiry(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    now = [issuer.clock()]
    auth = make_auth(clock=lambda: now[0], machine_cache_ttl=3600)
    token = issuer.issue_oauth_token(expires_in=30)
    assert auth.verify(token, accepts_token="oauth_token").expires_at is not None
    now[0] += 31  # our clock says it expired: the cached answer is not used
    assert _error(auth, token, "oauth_token").reason == "token-expired"


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (Fault(status=500), "HTTP 500"),
        (Fault(status=429), "HTTP 429"),
        (Fault(status=401), "secret key"),
        (Fault(redirect="http://127.0.0.1:9/elsewhere"), "redirect"),
        (Fault(delay=3), "timed out"),
        (Fault(drip=0.3, body=b'{"id": "ak_1", "subject": "user_1"}'), "timed out"),
        (Fault(endless=True), "body larger"),
        (Fault(body=b"<html>down</html>"), "not a JSON object"),
        (Fault(body=b'{"id": 5}'), "expected fields"),
        (Fault(close=True), "connection"),
    ],
    ids=["500", "429", "401", "redirect", "slow", "drip", "huge", "garbage", "shape", "hangup"],
)
def test_outages_are_503_with_retry_after_never_401(
    issuer: LocalIssuer,
    make_auth: Callable[..., ClerkAuth],
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    why: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")
    auth = make_auth(http_timeout=1)
    token = issuer.issue_api_key()
    issuer.set_backend_fault(fault)
    error = _error(auth, token, "api_key")
    assert isinstance(error, BackendUnavailable)
    assert (error.status, error.reason) == (503, "backend-api-unavailable")
    assert int(error.headers()["Retry-After"]) >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert why in logged
    assert token not in logged
    assert issuer.secret_key not in logged
    # An outage is never cached: once the service is back, the same token passes.
    issuer.set_backend_fault(Fault())
    assert auth.verify(token, accepts_token="api_key").token_type == "api_key"


def test_a_flood_of_unknown_tokens_is_rate_limited_and_spares_the_caches(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(backend_api_rate=5)  # bursts of 10
    known_key, session_token = issuer.issue_api_key(), issuer.mint()
    assert auth.verify(known_key, accepts_token="api_key")
    session = auth.verify(session_token)
    statuses = [_error(auth, f"ak_flood_{i:04d}_xxxxxxxx", "api_key").status for i in range(200)]
    assert len(issuer.backend_requests) <= 12  # the burst, plus what refilled meanwhile
    assert statuses.count(503) >= 185
    limited = _error(auth, "ak_flood_last_xxxxxxxx", "api_key")
    assert (limited.reason, limited.status) == ("backend-api-rate-limited", 503)
    # Known tokens still pass from their caches, untouched by the flood.
    assert auth.verify(known_key, accepts_token="api_key").token_type == "api_key"
    assert auth.verify(session_token) is session


@pytest.mark.parametrize(
    "token", ["ak_" + "x" * 600, "ak_with space", "ak_tab\tx", "mt_\u00e9t\u00e9", "oat_nul\x00"]
)
def test_odd_opaque_tokens_never_reach_the_backend_api(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], token: str
) -> None:
    error = _error(make_auth(), token, "any")
    assert error.status == 401
    assert error.reason in {"token-too-large", "token-malformed"}
    assert not issuer.backend_requests


async def test_close_aborts_a_call_in_flight_with_503(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth]
) -> None:
    auth = make_auth(http_timeout=5)
    issuer.set_backend_fault(delay=3)
    pending = asyncio.ensure_future(auth.averify(issuer.issue_api_key(), accepts_token="api_key"))
    while not issuer.backend_requests:
        await asyncio.sleep(0.01)
    await auth.aclose()
    with pytest.raises(AuthError) as info:
        await asyncio.wait_for(pending, 2)
    assert info.value.status == 503
