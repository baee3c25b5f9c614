"""Every way a JWKS endpoint can fail, for real on loopback, through both fetchers.

Each fault is a failed fetch that keeps the good keys, is logged once at
WARNING with a short reason (never the body), and backs off. On a cold cache
it is a 503 with ``Retry-After``, answered within ``http_timeout``.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import warnings
from collections.abc import Callable

import pytest
from joserfc.jwk import ECKey, RSAKey

from clerkguard import ClerkAuth, KeysUnavailable
from clerkguard._core.keys import MAX_JWKS_BYTES
from clerkguard.testing import Fault, LocalIssuer

from .support import Check, Verify, eventually

#: Appears in hostile bodies; must never reach a log record.
MARKER = "BODY-MARKER-7f3a"
TIMEOUT = 0.5

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joserfc warns about the small key we want refused
    _SMALL = RSAKey.generate_key(1024, private=True).as_dict(private=False)
_EC = ECKey.generate_key("P-256", private=False).as_dict(private=False)
_UNUSABLE = {
    "keys": [
        {"kty": "RSA", "kid": "ins_small", "n": _SMALL["n"], "e": _SMALL["e"], "note": MARKER},
        {**_EC, "kid": "ins_ec"},
    ]
}

FAULTS = [
    pytest.param(Fault(delay=2.0), "timed out", id="server-hangs"),
    pytest.param(Fault(drip=0.1), "timed out", id="body-drips-a-byte-at-a-time"),
    pytest.param(Fault(drip=0.1, drip_headers=True), "timed out", id="headers-drip-a-byte-at-a-time"),
    pytest.param(Fault(close=True), "connection error", id="connection-closed"),
    pytest.param(Fault(status=500, body=MARKER.encode()), "HTTP 500", id="http-500"),
    pytest.param(Fault(status=404), "HTTP 404", id="http-404"),
    pytest.param(Fault(status=429), "HTTP 429", id="http-429"),
    pytest.param(
        Fault(redirect="http://127.0.0.1:9/jwks"), "HTTP 302 redirect (not followed)", id="redirect"
    ),
    pytest.param(Fault(body=b" " * (MAX_JWKS_BYTES + 1)), "body larger than 1 MiB", id="oversize-body"),
    pytest.param(Fault(endless=True), "body larger than 1 MiB", id="endless-body"),
    pytest.param(
        Fault(body=gzip.compress(b" " * (16 * MAX_JWKS_BYTES)), headers={"Content-Encoding": "gzip"}),
        "body larger than 1 MiB",
        id="gzip-bomb",
    ),
    pytest.param(
        Fault(body=MARKER.encode(), headers={"Content-Encoding": "gzip"}),
        "corrupt compressed body",
        id="corrupt-gzip",
    ),
    pytest.param(
        Fault(headers={"Content-Encoding": "br"}), "unsupported content-encoding", id="unknown-encoding"
    ),
    pytest.param(
        Fault(body=b'{"keys": [' + MARKER.encode()), "invalid JSON (JSONDecodeError)", id="invalid-json"
    ),
    pytest.param(Fault(body=b'{"keys": []}'), "no usable key in the set", id="empty-key-set"),
    pytest.param(Fault(body=b'{"jwks": []}'), "no 'keys' array", id="no-keys-array"),
    pytest.param(
        Fault(body=json.dumps(_UNUSABLE).encode()), "no usable key in the set", id="all-keys-unusable"
    ),
]


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def assert_nothing_leaked(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (MARKER, *secrets):
        assert secret not in text


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="clerkguard")


@pytest.mark.parametrize(("fault", "reason"), FAULTS)
async def test_a_failed_refetch_keeps_the_good_keys(
    issuer: LocalIssuer,
    make_auth: Callable[..., ClerkAuth],
    check: Check,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    reason: str,
) -> None:
    auth = make_auth(http_timeout=TIMEOUT)
    assert auth.keyring.refresh_sync()  # warm-up (a refresh: the token cooldown is untouched)
    assert await check(auth, issuer.mint()) == "ok"

    issuer.set_fault(fault)
    assert await check(auth, issuer.mint(header={"kid": "ins_unknown"})) == "401 jwk-kid-mismatch"
    await eventually(lambda: auth.stats.failures == 1)
    assert issuer.request_count == 2

    # Backs off: another unknown kid inside the cooldown makes no request.
    assert await check(auth, issuer.mint(header={"kid": "ins_another"})) == "401 jwk-kid-mismatch"
    assert issuer.request_count == 2
    # The good keys keep working.
    assert await check(auth, issuer.mint()) == "ok"
    stats = auth.stats
    assert (stats.fetches, stats.failures, stats.last_error) == (2, 1, reason)
    assert stats.key_ids == (issuer.kid,)
    assert stats.generation == 1

    await eventually(lambda: bool(warnings_logged(caplog)))  # logged by the fetch, just after landing
    assert warnings_logged(caplog) == [
        f"JWKS fetch from {issuer.jwks_uri} failed: {reason}; keeping 1 cached key(s)"
    ]
    assert_nothing_leaked(caplog)


@pytest.mark.parametrize(("fault", "reason"), FAULTS)
async def test_a_cold_cache_answers_503_with_retry_after_within_the_timeout(
    issuer: LocalIssuer,
    make_auth: Callable[..., ClerkAuth],
    verify: Verify,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    reason: str,
) -> None:
    auth = make_auth(http_timeout=TIMEOUT, jwks_cooldown=30)
    issuer.set_fault(fault)
    token = issuer.mint()
    started = time.monotonic()
    with pytest.raises(KeysUnavailable) as info:
        await verify(auth, token)
    assert time.monotonic() - started < TIMEOUT + 1.0  # generous margin for a loaded machine
    assert info.value.status == 503
    assert int(info.value.headers()["Retry-After"]) >= 1
    await eventually(lambda: auth.stats.failures == 1)
    assert auth.stats.last_error == reason

    # Backs off: the next request right away is a 503 without a request.
    with pytest.raises(KeysUnavailable):
        await verify(auth, token)
    assert issuer.request_count == 1
    await eventually(lambda: bool(warnings_logged(caplog)))
    assert warnings_logged(caplog) == [
        f"JWKS fetch from {issuer.jwks_uri} failed: {reason}; no usable keys: requests get 503"
    ]
    assert_nothing_leaked(caplog)


async def test_the_endpoint_recovers_after_the_backoff(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make_auth(jwks_cooldown=0.2)
    issuer.set_fault(status=503)
    token = issuer.mint()
    assert await check(auth, token) == "503 jwks-unavailable"
    issuer.set_fault()
    time.sleep(0.25)  # the cold backoff is min(1 s, cooldown)
    assert await check(auth, token) == "ok"
    assert issuer.request_count == 2
    assert f"JWKS fetch from {issuer.jwks_uri} succeeded after 1 failed attempt(s)" in caplog.messages


async def test_a_gzip_encoded_key_set_is_accepted(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check
) -> None:
    body = gzip.compress(json.dumps(issuer.jwks()).encode())
    issuer.set_fault(body=body, headers={"Content-Encoding": "gzip"})
    assert await check(make_auth(), issuer.mint()) == "ok"


async def test_connection_refused_warm_and_cold(check: Check, caplog: pytest.LogCaptureFixture) -> None:
    server = LocalIssuer().start()
    auth = server.auth(http_timeout=TIMEOUT)
    cold = server.auth(http_timeout=TIMEOUT)
    try:
        assert auth.keyring.refresh_sync()
        server.stop()  # nothing listens on the port any more
        assert await check(auth, server.mint(header={"kid": "ins_unknown"})) == "401 jwk-kid-mismatch"
        assert await check(auth, server.mint()) == "ok"  # keys kept
        assert auth.stats.last_error == "connection failed"

        started = time.monotonic()
        assert await check(cold, server.mint()) == "503 jwks-unavailable"
        assert time.monotonic() - started < TIMEOUT + 1.0
        assert cold.stats.last_error == "connection failed"
    finally:
        server.stop()
        auth.close()
        cold.close()
    assert len(warnings_logged(caplog)) == 2  # one per instance


async def test_the_backend_api_gets_the_secret_key_and_it_never_leaks(
    issuer: LocalIssuer, verify: Verify, check: Check, caplog: pytest.LogCaptureFixture
) -> None:
    good = ClerkAuth(secret_key=issuer.secret_key, api_url=issuer.api_url, issuer=issuer.issuer, env={})
    wrong_secret = "sk_test_" + "W" * 40
    wrong = ClerkAuth(secret_key=wrong_secret, api_url=issuer.api_url, issuer=issuer.issuer, env={})
    try:
        assert await check(good, issuer.mint()) == "ok"
        with pytest.raises(KeysUnavailable) as info:
            await verify(wrong, issuer.mint())
        assert wrong.stats.last_error == "HTTP 401"
    finally:
        good.close()
        wrong.close()
    for secret in (issuer.secret_key, wrong_secret):
        assert secret not in repr(good) + repr(wrong) + repr(info.value) + str(info.value)
        assert secret not in str(wrong.stats) + str(info.value.to_dict()) + str(info.value.headers())
    assert_nothing_leaked(caplog, issuer.secret_key, wrong_secret, "Bearer")


async def test_credentials_in_the_jwks_url_are_not_logged(
    issuer: LocalIssuer, check: Check, caplog: pytest.LogCaptureFixture
) -> None:
    # An app logging at INFO sees httpx's own "HTTP Request: GET <url>" lines too.
    caplog.set_level(logging.INFO)
    url = issuer.jwks_uri.replace("http://", "http://user:hunter2@") + "?token=sekrit"
    auth = issuer.auth(jwks_uri=url, http_timeout=TIMEOUT)
    issuer.set_fault(status=500)
    try:
        assert await check(auth, issuer.mint()) == "503 jwks-unavailable"
    finally:
        auth.close()
    assert warnings_logged(caplog) == [
        f"JWKS fetch from {issuer.jwks_uri} failed: HTTP 500; no usable keys: requests get 503"
    ]
    assert_nothing_leaked(caplog, "hunter2", "sekrit")


async def test_warnings_are_rate_limited_while_failures_continue(
    issuer: LocalIssuer, make_auth: Callable[..., ClerkAuth], check: Check, caplog: pytest.LogCaptureFixture
) -> None:
    auth = make_auth(jwks_cooldown=0)
    assert auth.keyring.refresh_sync()
    issuer.set_fault(status=502)
    for n in range(5):
        assert await check(auth, issuer.mint(header={"kid": f"ins_{n}"})) == "401 jwk-kid-mismatch"
    assert issuer.request_count == 6
    assert len(warnings_logged(caplog)) == 1
    failures = [m for m in caplog.messages if "failed: HTTP 502" in m]
    assert len(failures) == 5  # the other four at DEBUG
