"""The real Clerk token verifies through the JWKS path; its tampered variants do not."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from clerkguard import AuthError, ClerkAuth


def _auth(fixture: dict[str, Any]) -> ClerkAuth:
    host = fixture["expected_claims"]["iss"].removeprefix("https://")
    pk = "pk_test_" + base64.b64encode(f"{host}$".encode()).decode()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=fixture["jwks"]))
    return ClerkAuth(publishable_key=pk, clock=lambda: fixture["verify_at"], transport=transport, env={})


def test_real_clerk_token_verifies(clerk_js_fixture: dict[str, Any]) -> None:
    session = _auth(clerk_js_fixture).verify(clerk_js_fixture["session_token"])
    assert dict(session.claims) == clerk_js_fixture["expected_claims"]
    assert session.user_id == "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"


@pytest.mark.parametrize("variant", ["tampered_payload_token", "malformed_payload_token"])
def test_tampered_variants_rejected(clerk_js_fixture: dict[str, Any], variant: str) -> None:
    with pytest.raises(AuthError) as info:
        _auth(clerk_js_fixture).verify(clerk_js_fixture[variant])
    assert info.value.status == 401
    assert info.value.reason == "token-invalid-signature"
