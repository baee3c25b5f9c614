"""Lazy key fetching, basic cases: one request for a cold crowd, bounded refetches, 503 without keys.

(The JWKS resilience suite covers timeouts, dripping servers, stale keys and
refreshers in depth; these pin the contract the verifier relies on.)
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from clerkguard import AuthError, ClerkAuth, Session
from clerkguard.testing import LocalIssuer

from .support import FrozenClock, Verifier

MakeAuth = Callable[..., ClerkAuth]


async def test_fifty_threads_and_fifty_tasks_on_a_cold_cache_make_one_request(
    clerk_issuer: LocalIssuer, make_auth: MakeAuth, clock: FrozenClock
) -> None:
    auth = make_auth(http_timeout=30)  # generous: a loaded machine must not turn waiting into 503s
    # A slow JWKS answer keeps the first fetch in flight while everyone else arrives.
    clerk_issuer.set_fault(delay=0.3)
    tokens = [clerk_issuer.mint(issued_at=clock.now, user_id=f"user_{i}") for i in range(100)]
    start = threading.Barrier(50)
    thread_results: list[Session | BaseException] = []
    lock = threading.Lock()

    def in_thread(token: str) -> None:
        start.wait()
        try:
            result: Session | BaseException = auth.verify(token)
        except BaseException as exc:
            result = exc
        with lock:
            thread_results.append(result)

    threads = [threading.Thread(target=in_thread, args=(token,)) for token in tokens[:50]]
    for thread in threads:
        thread.start()
    task_results = await asyncio.gather(*(auth.averify(t) for t in tokens[50:]), return_exceptions=True)
    for thread in threads:
        await asyncio.to_thread(thread.join)

    results = [*thread_results, *task_results]
    assert len(results) == 100
    assert all(isinstance(result, Session) for result in results), results
    assert sorted(r.user_id for r in results if isinstance(r, Session)) == sorted(
        f"user_{i}" for i in range(100)
    )
    assert clerk_issuer.request_count == 1
    assert auth.stats.fetches == 1


async def test_unknown_kid_flood_refetches_at_most_once_per_cooldown(
    clerk_issuer: LocalIssuer, make_auth: MakeAuth, mint: Callable[..., str]
) -> None:
    auth = make_auth()  # default cooldown: 30 s, far longer than this test
    assert auth.verify(mint()).user_id
    assert clerk_issuer.request_count == 1
    floods = [mint(header={"kid": f"ins_unknown_{i}"}) for i in range(40)]

    def sync_flood() -> list[str]:
        reasons = []
        for token in floods[:20]:
            try:
                auth.verify(token)
            except AuthError as error:
                reasons.append(f"{error.status} {error.reason}")
        return reasons

    async def one(token: str) -> str:
        try:
            await auth.averify(token)
        except AuthError as error:
            return f"{error.status} {error.reason}"
        return "accepted"

    sync_reasons, async_reasons = await asyncio.gather(
        asyncio.to_thread(sync_flood), asyncio.gather(*(one(t) for t in floods[20:]))
    )
    assert [*sync_reasons, *async_reasons] == ["401 jwk-kid-mismatch"] * 40
    # At most one refetch for the whole flood (the cold fetch may already have used the cooldown).
    fetched = clerk_issuer.request_count
    assert fetched in (1, 2)
    # The known key still works throughout, without further requests.
    assert (await auth.averify(mint())).user_id
    assert clerk_issuer.request_count == fetched


@pytest.fixture
def own_issuer() -> Iterator[LocalIssuer]:
    """An issuer this test may rotate without disturbing the shared one."""
    with LocalIssuer(kid="ins_rotating") as issuer:
        yield issuer


@pytest.fixture(scope="module")
def stranger_key() -> RSAKey:
    """A private key that no JWKS publishes."""
    return RSAKey.generate_key(2048, private=True)


async def test_rotated_key_under_the_same_kid_is_found_by_one_refetch(
    own_issuer: LocalIssuer, stranger_key: RSAKey, clock: FrozenClock, mode: str
) -> None:
    # No cooldown, so the refetch a rotation needs is allowed right after the cold fetch.
    auth = own_issuer.auth(clock=clock, jwks_cooldown=0)
    verifier = Verifier(auth, mode)
    try:
        old_token = own_issuer.mint(issued_at=clock.now)
        assert (await verifier(old_token)).user_id
        own_issuer.rotate()  # Clerk keeps the kid (the instance id) across rotations
        new_token = own_issuer.mint(issued_at=clock.now)
        assert (await verifier(new_token)).user_id
        assert own_issuer.request_count == 2  # the cached key failed the signature: one refetch
        # The old key left the JWKS: its token (remembered before) fails after one refetch
        # and one retry, as does a forgery; neither is ever retried twice.
        assert await verifier.reason(old_token) == "token-invalid-signature"
        assert own_issuer.request_count == 3
        forged = own_issuer.mint(issued_at=clock.now, key=stranger_key)
        assert await verifier.reason(forged) == "token-invalid-signature"
        assert own_issuer.request_count == 4
        assert (await verifier(new_token)).user_id
        assert own_issuer.request_count == 4
    finally:
        await auth.aclose()


async def test_bad_signatures_refetch_at_most_once_per_cooldown(
    clerk_issuer: LocalIssuer,
    make_verifier: Callable[..., Verifier],
    stranger_key: RSAKey,
    clock: FrozenClock,
) -> None:
    verify = make_verifier()  # default cooldown: 30 s
    assert (await verify(clerk_issuer.mint(issued_at=clock.now))).user_id
    for i in range(20):
        forged = clerk_issuer.mint(issued_at=clock.now, key=stranger_key, user_id=f"user_{i}")
        assert await verify.reason(forged) == "token-invalid-signature"
    assert clerk_issuer.request_count in (1, 2)


# -- cold cache, no keys obtainable: 503, not 401 ------------------------------------------


@pytest.fixture(scope="module")
def dead_jwks_uri() -> str:
    """The JWKS URL of a loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/.well-known/jwks.json"


FAULTS: dict[str, dict[str, Any]] = {
    "http-500": {"status": 500},
    "http-404": {"status": 404},
    "http-401": {"status": 401},
    "redirect": {"redirect": "http://127.0.0.1:1/jwks"},
    "connection-closed": {"close": True},
    "not-json": {"body": b"<html>down for maintenance</html>"},
    "no-usable-key": {"body": b'{"keys":[{"kty":"EC","kid":"x"}]}'},
}


def _assert_unavailable(error: AuthError) -> None:
    assert (error.status, error.reason) == (503, "jwks-unavailable")
    headers = error.headers()
    assert headers["WWW-Authenticate"] == "Bearer"
    assert int(headers["Retry-After"]) >= 1
    assert error.to_dict() == {
        "error": "temporarily_unavailable",
        "reason": "jwks-unavailable",
        "detail": "signing keys are temporarily unavailable",
    }


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_cold_cache_with_a_failing_jwks_is_503_with_retry_after(
    clerk_issuer: LocalIssuer, make_verifier: Callable[..., Verifier], mint: Callable[..., str], fault: str
) -> None:
    clerk_issuer.set_fault(**FAULTS[fault])
    verify = make_verifier(http_timeout=2)
    _assert_unavailable(await verify.error(mint()))


async def test_cold_cache_with_the_server_gone_is_503(
    dead_jwks_uri: str, clerk_issuer: LocalIssuer, clock: FrozenClock, mode: str
) -> None:
    auth = ClerkAuth(jwks_uri=dead_jwks_uri, issuer=clerk_issuer.issuer, clock=clock, http_timeout=2, env={})
    try:
        _assert_unavailable(await Verifier(auth, mode).error(clerk_issuer.mint(issued_at=clock.now)))
    finally:
        await auth.aclose()


async def test_keys_become_available_again_after_an_outage(
    clerk_issuer: LocalIssuer, make_verifier: Callable[..., Verifier], mint: Callable[..., str]
) -> None:
    # With no cooldown a cold cache may retry at once; the outage ends, the next token verifies.
    verify = make_verifier(jwks_cooldown=0)
    clerk_issuer.set_fault(status=503)
    _assert_unavailable(await verify.error(mint()))
    clerk_issuer.set_fault()
    assert (await verify(mint())).user_id
