"""clerkguard.testing itself: tokens shaped like Clerk's, rotation, transports, the pytest fixtures."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from clerkguard import AuthError, ClerkAuth, ConfigurationError
from clerkguard.testing import MISSING, SESSION_CATEGORY, Fault, LocalIssuer, sign

from .support import T0, FrozenClock


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of a compact JWS, read without verification."""

    def part(segment: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        return value

    header, payload, _ = token.split(".")
    return part(header), part(payload)


@pytest.fixture(scope="module")
def issuer() -> LocalIssuer:
    """An issuer that never serves (minting and shapes only): no socket, fixed clock."""
    return LocalIssuer(kid="ins_2abcdefghijklmnopqrstuvwxyz", clock=lambda: T0)


# -- token shapes ---------------------------------------------------------------------------


def test_header_is_clerks(issuer: LocalIssuer) -> None:
    header, _ = decode(issuer.mint())
    assert list(header.items()) == [
        ("alg", "RS256"),
        ("cat", SESSION_CATEGORY),
        ("kid", "ins_2abcdefghijklmnopqrstuvwxyz"),
        ("typ", "JWT"),
    ]
    assert SESSION_CATEGORY == "cl_B7d4PD111AAA"


def test_default_v2_payload(issuer: LocalIssuer) -> None:
    _, claims = decode(issuer.mint())
    assert set(claims) == {"azp", "exp", "fva", "iat", "iss", "jti", "nbf", "sid", "sts", "sub", "v"}
    assert (claims["iat"], claims["exp"], claims["nbf"]) == (T0, T0 + 60, T0 - 10)
    assert claims["v"] == 2
    assert claims["sts"] == "active"
    assert claims["fva"] == [0, -1]
    assert claims["iss"] == issuer.issuer
    assert claims["azp"] == issuer.azp
    assert claims["sid"].startswith("sess_")
    assert claims["sub"].startswith("user_")


def test_design_example_payload(issuer: LocalIssuer) -> None:
    token = issuer.mint(
        org_role="admin",
        permissions=["org:dashboard:manage", "org:dashboard:read", "org:teams:read"],
        features=["dashboard", "teams"],
        plan="pro",
    )
    _, claims = decode(token)
    assert set(claims) == {
        "azp", "exp", "fva", "iat", "iss", "jti", "nbf", "sid", "sts", "sub", "v", "fea", "pla", "o",
    }  # fmt: skip
    assert claims["fea"] == "o:dashboard,o:teams"
    assert claims["pla"] == "o:pro"
    assert claims["o"] == {
        "id": "org_2exampleorganizationid00",
        "rol": "admin",
        "slg": "acme",
        "per": "manage,read",
        "fpm": "3,2",
    }


def test_v2_user_features_without_an_organization(issuer: LocalIssuer) -> None:
    _, claims = decode(issuer.mint(features=["beta", "u:gamma"], plan="u:free"))
    assert claims["fea"] == "u:beta,u:gamma"
    assert claims["pla"] == "u:free"
    assert "o" not in claims


def test_v1_payload(issuer: LocalIssuer) -> None:
    _, claims = decode(issuer.mint(version=1, org_role="admin", permissions=["org:invoices:read"]))
    assert claims["org_id"] == "org_2exampleorganizationid00"
    assert claims["org_role"] == "org:admin"
    assert claims["org_slug"] == "acme"
    assert claims["org_permissions"] == ["org:invoices:read"]
    assert not {"v", "sts", "fva", "o", "fea", "pla"} & set(claims)


def test_missing_removes_claims_and_headers(issuer: LocalIssuer) -> None:
    header, claims = decode(issuer.mint(sub=MISSING, azp=MISSING, status=MISSING, header={"typ": MISSING}))
    assert "typ" not in header
    assert not {"sub", "azp", "sts"} & set(claims)
    assert repr(MISSING) == "MISSING"


def test_overrides_and_replacements(issuer: LocalIssuer) -> None:
    header, claims = decode(issuer.mint(header={"kid": "other", "x": 1}, custom=[1, 2], exp=5))
    assert (header["kid"], header["x"]) == ("other", 1)
    assert (claims["custom"], claims["exp"]) == ([1, 2], 5)
    _, replaced = decode(issuer.mint(claims={"only": "this"}))
    assert replaced == {"only": "this"}


def test_claims_is_what_mint_signs(issuer: LocalIssuer) -> None:
    expected = issuer.claims(user_id="user_x", session_id="sess_fixed", actor={"sub": "user_admin"})
    _, claims = decode(issuer.mint(claims=expected))
    assert claims == expected
    assert claims["act"] == {"sub": "user_admin"}
    assert (claims["sub"], claims["sid"]) == ("user_x", "sess_fixed")


@pytest.mark.parametrize("permission", ["org:dashboard", "dashboard", "org:a:b:c"])
def test_v2_permissions_must_name_feature_and_permission(issuer: LocalIssuer, permission: str) -> None:
    with pytest.raises(ValueError, match="org:<feature>:<permission>"):
        issuer.mint(permissions=[permission])


def test_sign_signs_exactly_what_it_is_given(issuer: LocalIssuer, clock: FrozenClock) -> None:
    token = sign({"alg": "RS256", "kid": issuer.kid}, {"k": "v"}, issuer.key)
    assert decode(token) == ({"alg": "RS256", "kid": issuer.kid}, {"k": "v"})
    auth = ClerkAuth(jwt_key=issuer.public_pem(), issuer=issuer.issuer, clock=clock, env={})
    with pytest.raises(AuthError) as info:
        auth.verify(token)
    assert info.value.reason == "token-invalid-subject"  # signed correctly: judged on its claims


# -- serving, transports, rotation ------------------------------------------------------------


def test_mock_transport_serves_the_jwks_without_a_socket(clock: FrozenClock) -> None:
    issuer = LocalIssuer(clock=clock)  # never started
    auth = ClerkAuth(
        jwks_uri="https://clerk.example.test/.well-known/jwks.json",
        issuer=issuer.issuer,
        transport=issuer.mock_transport(),
        clock=clock,
        env={},
    )
    assert auth.verify(issuer.mint()).user_id
    assert issuer.request_count == 1
    assert issuer.port == 0  # no server was ever started


def test_served_documents(clerk_issuer: LocalIssuer) -> None:
    jwks = httpx.get(clerk_issuer.jwks_uri, timeout=5)
    assert jwks.status_code == 200
    assert jwks.json() == clerk_issuer.jwks()
    (key,) = jwks.json()["keys"]
    assert key["kid"] == clerk_issuer.kid
    assert set(key) == {"use", "kty", "kid", "alg", "n", "e"}  # public parts only
    backend = f"{clerk_issuer.api_url}/v1/jwks"
    assert httpx.get(backend, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {clerk_issuer.secret_key}"}
    assert httpx.get(backend, headers=auth, timeout=5).json() == clerk_issuer.jwks()
    assert httpx.get(f"{clerk_issuer.issuer}/other", timeout=5).status_code == 404
    assert clerk_issuer.request_count == 4


def test_faults_and_overrides(clerk_issuer: LocalIssuer) -> None:
    clerk_issuer.set_fault(status=500)
    assert httpx.get(clerk_issuer.jwks_uri, timeout=5).status_code == 500
    clerk_issuer.set_fault(Fault(redirect="https://elsewhere.example/jwks"))
    response = httpx.get(clerk_issuer.jwks_uri, timeout=5)
    assert (response.status_code, response.headers["location"]) == (302, "https://elsewhere.example/jwks")
    clerk_issuer.set_fault()
    clerk_issuer.jwks_override = {"keys": []}
    assert httpx.get(clerk_issuer.jwks_uri, timeout=5).json() == {"keys": []}


def test_rotate_keeps_the_kid_and_replaces_the_key(clock: FrozenClock) -> None:
    with LocalIssuer(clock=clock) as issuer:
        old_token, old_n = issuer.mint(), issuer.jwks()["keys"][0]["n"]
        issuer.rotate()
        (key,) = issuer.jwks()["keys"]
        assert key["kid"] == decode(old_token)[0]["kid"]
        assert key["n"] != old_n
        auth = issuer.auth(clock=clock)
        try:
            assert auth.verify(issuer.mint()).user_id
            with pytest.raises(AuthError):
                auth.verify(old_token)
        finally:
            auth.close()


@pytest.mark.parametrize("keep_old", [True, False])
def test_rotate_to_a_new_kid(clock: FrozenClock, keep_old: bool) -> None:
    with LocalIssuer(kid="ins_old", clock=clock) as issuer:
        old_token = issuer.mint()
        issuer.rotate(new_kid="ins_new", keep_old=keep_old)
        kids = [key["kid"] for key in issuer.jwks()["keys"]]
        assert kids == (["ins_new", "ins_old"] if keep_old else ["ins_new"])
        auth = issuer.auth(clock=clock)
        try:
            assert decode(issuer.mint())[0]["kid"] == "ins_new"
            assert auth.verify(issuer.mint()).user_id
            if keep_old:
                assert auth.verify(old_token).user_id
            else:
                with pytest.raises(AuthError):
                    auth.verify(old_token)
        finally:
            auth.close()


def test_env_and_pem_point_clerkguard_at_the_issuer(clerk_issuer: LocalIssuer, clock: FrozenClock) -> None:
    token = clerk_issuer.mint(issued_at=clock.now)
    from_env = ClerkAuth(env=clerk_issuer.env(), clock=clock)
    from_pem = ClerkAuth(jwt_key=clerk_issuer.public_pem(), issuer=clerk_issuer.issuer, clock=clock, env={})
    try:
        assert from_env.issuer == clerk_issuer.issuer
        assert from_env.verify(token).user_id == from_pem.verify(token).user_id
        assert clerk_issuer.request_count == 1
    finally:
        from_env.close()


def test_auth_ignores_the_process_environment(
    clerk_issuer: LocalIssuer, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLERK_JWKS_URI", "http://not-loopback.example/jwks")
    monkeypatch.setenv("CLERK_AUTHORIZED_PARTIES", "https://nobody.example")
    auth = clerk_issuer.auth(clock=clock)
    try:
        assert auth.jwks_uri == clerk_issuer.jwks_uri
        assert auth.verify(clerk_issuer.mint(issued_at=clock.now)).user_id
    finally:
        auth.close()


def test_stopped_issuer_releases_its_port(clock: FrozenClock) -> None:
    with LocalIssuer(clock=clock) as issuer:
        uri = issuer.jwks_uri
        assert httpx.get(uri, timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(uri, timeout=5)


# -- the pytest plugin -----------------------------------------------------------------------------
# These two run in file order: the first leaves the shared issuer dirty, the second sees it clean.


def test_plugin_fixtures_1_work_and_leave_a_mess(
    clerk_issuer: LocalIssuer, clerk_auth: ClerkAuth, clerk_token: Callable[..., str]
) -> None:
    session = clerk_auth.verify(clerk_token(org_role="admin"))
    assert session.org_role == "org:admin"
    assert clerk_auth.issuer == clerk_issuer.issuer
    assert clerk_issuer.request_count == 1
    clerk_issuer.set_fault(status=500)
    clerk_issuer.jwks_override = {"keys": []}
    _before_rotation.append((clerk_issuer.kid, clerk_issuer.key))
    clerk_issuer.rotate(new_kid="ins_rotated_by_test_1")


_before_rotation: list[tuple[str, Any]] = []


def test_plugin_fixtures_2_start_clean(clerk_issuer: LocalIssuer, clerk_auth: ClerkAuth) -> None:
    assert clerk_issuer.fault == Fault()
    assert clerk_issuer.jwks_override is None
    assert clerk_issuer.request_count == 0
    assert _before_rotation == [(clerk_issuer.kid, clerk_issuer.key)]
    assert clerk_issuer.extra_keys == []
    assert clerk_auth.verify(clerk_issuer.mint()).user_id


def test_a_small_pem_key_is_a_configuration_error_without_warnings(recwarn: pytest.WarningsRecorder) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigurationError, match="1024 bits"):
        ClerkAuth(jwt_key=pem.decode(), issuer="https://clerk.example.com", env={})
    assert [str(w.message) for w in recwarn] == []
