"""The verified-token cache never outlives the keys that verified its entries."""

from __future__ import annotations

import time

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
