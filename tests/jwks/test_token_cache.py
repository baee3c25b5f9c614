"""The verified-token cache never outlives the keys that verified its entries."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from clerkguard import AuthError
from clerkguard.testing import LocalIssuer


def test_a_cached_token_is_not_served_once_its_keys_are_past_max_stale(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth(jwks_ttl=1, jwks_max_stale=0, jwks_cooldown=0, http_timeout=1)
    try:
        token = clerk_issuer.mint()
        first = auth.verify(token)
        assert auth.verify(token) is first  # served from the cache while the keys are good
        clerk_issuer.set_fault(status=500)  # every refresh from now on fails
        time.sleep(1.3)  # past fetched_at + ttl + max_stale
        with pytest.raises(AuthError) as info:
            auth.verify(token)
        assert (info.value.status, info.value.reason) == (503, "jwks-unavailable")
    finally:
        auth.close()


def test_a_static_key_keeps_its_cached_tokens(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth(jwt_key=clerk_issuer.public_pem())
    token = clerk_issuer.mint()
    first = auth.verify(token)
    assert auth.verify(token) is first
    assert clerk_issuer.request_count == 0


def _big(issuer: LocalIssuer, shape: str, chars: int) -> str:
    """A token of roughly ``chars`` characters whose extra claims have ``shape``."""
    n = 8
    while True:
        extra: dict[str, object] = (
            {"note": "x" * n} if shape == "string" else {"c": {f"{i:x}": 0 for i in range(n)}}
        )
        token = issuer.mint(expires_in=3600, **extra)
        if len(token) >= chars:
            return token
        # Grow by what is missing (a member costs ~10 token characters): never past 8 KiB.
        n += (chars - len(token)) // (2 if shape == "string" else 10) + 1


def test_the_cache_is_bounded_in_bytes_as_well_as_in_entries(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth(jwt_key=clerk_issuer.public_pem(), token_cache_bytes=1_000_000)
    tokens = [_big(clerk_issuer, "string", 7000) for _ in range(200)]
    for token in tokens:
        auth.verify(token)
    assert 0 < auth._cache.bytes <= 1_000_000
    assert len(auth._cache) < 100  # ~20 KiB charged per entry: the byte budget bound it, not the count
    assert auth.verify(tokens[-1]) is auth.verify(tokens[-1])  # the newest are kept, oldest evicted
    assert tokens[0] not in auth._cache.entries


def test_an_entry_larger_than_the_whole_budget_is_not_cached(clerk_issuer: LocalIssuer) -> None:
    auth = clerk_issuer.auth(jwt_key=clerk_issuer.public_pem(), token_cache_bytes=8000)
    small, large = clerk_issuer.mint(), _big(clerk_issuer, "string", 4000)
    assert auth.verify(small) is auth.verify(small)
    assert auth.verify(large) is not auth.verify(large)  # verified each time, never stored
    assert auth.verify(small) is auth.verify(small)  # and the small one was not evicted for it
    assert auth._cache.bytes <= 8000


@pytest.mark.parametrize(
    ("shape", "chars"),
    [("clerk", 0), ("string", 2000), ("string", 8000), ("members", 2100), ("members", 8000)],
)
def test_the_bytes_charged_cover_what_the_cache_really_holds(
    clerk_issuer: LocalIssuer, shape: str, chars: int
) -> None:
    # tracemalloc: the entries (token strings, sessions, claims, frozen claims) against the charge.
    auth = clerk_issuer.auth(jwt_key=clerk_issuer.public_pem())
    if shape == "clerk":
        tokens = [
            clerk_issuer.mint(org_id="org_1", org_role="admin", permissions=["org:a:read"])
            for _ in range(300)
        ]
    else:
        tokens = [_big(clerk_issuer, shape, chars) for _ in range(300)]
    auth.verify(tokens[0])
    auth._cache.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            auth.verify((token + " ")[:-1]).claims  # noqa: B018 - a new token string; the frozen claims too
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(auth._cache) == len(tokens)
    assert held <= auth._cache.bytes, (held, auth._cache.bytes)
